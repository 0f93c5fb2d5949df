"""Read the constants of a TensorFlow frozen graph without TensorFlow.

A frozen ``GraphDef`` is a protobuf message; everything the converter needs from it (node names,
ops, inputs and the float tensors held by ``Const`` nodes) sits in a handful of fields, so a small
wire-format reader is enough. This keeps TensorFlow and compiled ``.proto`` modules out of the
engine build, which matters because TensorFlow does not install next to current PyTorch and NumPy.

Field numbers come from tensorflow/core/framework/{graph,node_def,attr_value,tensor,
tensor_shape}.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# tensorflow/core/framework/types.proto
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
}

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class GraphFormatError(ValueError):
    """The file is not a well-formed frozen GraphDef."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise GraphFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)``; bytes fields come back as memoryview slices."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _FIXED64:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == _FIXED32:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == _BYTES:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise GraphFormatError("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise GraphFormatError(f"unsupported wire type {wire}")
        yield number, wire, value


def _shape(buf: memoryview) -> tuple[int, ...]:
    dims = []
    for number, _, value in _fields(buf):
        if number == 2:  # dim
            size = 0
            for dnum, _, dval in _fields(value):  # type: ignore[arg-type]
                if dnum == 1:
                    size = dval if isinstance(dval, int) else 0
                    size = size - (1 << 64) if size >= 1 << 63 else size  # int64 two's complement
            dims.append(size)
    return tuple(dims)


def _tensor(buf: memoryview) -> np.ndarray:
    dtype_code, content = 0, None
    shape: tuple[int, ...] = ()
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dtype_code = int(value)
        elif number == 2:
            shape = _shape(value)  # type: ignore[arg-type]
        elif number == 4:
            content = bytes(value)
        elif number == 5:  # float_val, packed or not
            if wire == _BYTES:
                floats.extend(np.frombuffer(value, "<f4").tolist())  # type: ignore[arg-type]
            else:
                floats.append(struct.unpack("<f", struct.pack("<I", value))[0])
        elif number in (7, 10):  # int_val / int64_val
            if wire == _BYTES:
                pos, raw = 0, value
                while pos < len(raw):  # type: ignore[arg-type]
                    item, pos = _varint(raw, pos)  # type: ignore[arg-type]
                    ints.append(item)
            else:
                ints.append(int(value))
    if dtype_code not in _DTYPES:
        raise GraphFormatError(f"unsupported tensor dtype code {dtype_code}")
    dtype = _DTYPES[dtype_code]
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        array = np.frombuffer(content, dtype).copy()
    else:
        values = floats if dtype.kind == "f" else [v - (1 << 64) if v >= 1 << 63 else v for v in ints]
        array = np.asarray(values, dtype)
        if array.size == 1 and count > 1:  # TF stores a splat as one value
            array = np.full(count, array[0], dtype)
    if array.size != count:
        raise GraphFormatError(f"tensor holds {array.size} values, shape {shape} needs {count}")
    return array.reshape(shape)


@dataclass
class Node:
    """One ``NodeDef``: name, op, inputs, its constant value if it is a ``Const``, and its scalar
    and list attributes (``strides``, ``padding``, ``epsilon``...), so the converter can check the
    layer hyper-parameters instead of assuming them."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    value: np.ndarray | None = None
    attrs: dict[str, object] = field(default_factory=dict)


def _node(buf: memoryview) -> Node:
    node = Node(name="", op="")
    for number, _, value in _fields(buf):
        if number == 1:
            node.name = bytes(value).decode()
        elif number == 2:
            node.op = bytes(value).decode()
        elif number == 3:
            node.inputs.append(bytes(value).decode())
        elif number == 5:  # attr map entry: key=1, value=2 (AttrValue)
            key, attr = "", None
            for enum, _, evalue in _fields(value):  # type: ignore[arg-type]
                if enum == 1:
                    key = bytes(evalue).decode()
                elif enum == 2 and isinstance(evalue, memoryview):
                    attr = evalue
            if attr is not None:
                _attr(node, key, attr)
    return node


def _attr(node: Node, key: str, buf: memoryview) -> None:
    for number, wire, value in _fields(buf):
        if number == 8:  # tensor
            node.value = _tensor(value)  # type: ignore[arg-type]
        elif number == 2:  # s
            node.attrs[key] = bytes(value).decode(errors="replace")
        elif number in (3, 5, 6):  # i, b, type
            node.attrs[key] = int(value)
        elif number == 4 and wire == _FIXED32:  # f
            node.attrs[key] = struct.unpack("<f", struct.pack("<I", value))[0]
        elif number == 1:  # list: only its int values (strides, ksize) are needed
            node.attrs[key] = _int_list(value)  # type: ignore[arg-type]


def _int_list(buf: memoryview) -> list[int]:
    items: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 3:  # ListValue.i, packed or not
            if wire == _BYTES:
                pos = 0
                while pos < len(value):  # type: ignore[arg-type]
                    item, pos = _varint(value, pos)  # type: ignore[arg-type]
                    items.append(item)
            else:
                items.append(int(value))
    return items


def read_graph(path: Path) -> dict[str, Node]:
    """Parse a frozen GraphDef file into ``{node name: Node}``, in file order."""
    buf = memoryview(path.read_bytes())
    nodes: dict[str, Node] = {}
    for number, _, value in _fields(buf):
        if number == 1:
            node = _node(value)  # type: ignore[arg-type]
            nodes[node.name] = node
    if not nodes:
        raise GraphFormatError(f"{path}: no nodes found; is this a frozen GraphDef?")
    return nodes
