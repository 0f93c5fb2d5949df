"""Image files made for the tests: real encodings of real pixels (OpenCV's encoders, and a small
TIFF writer for the byte orders and layouts OpenCV does not write), and the same files with a
header that claims another size, so the loader can be shown huge images without anyone
allocating them."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["ENCODERS", "claim_size", "encode", "tiff"]


def encode(pixels: np.ndarray, extension: str, *params: int) -> bytes:
    """``pixels`` (grey, BGR or BGRA; uint8 or uint16) encoded by OpenCV as ``extension``."""
    ok, buffer = cv2.imencode(extension, pixels, list(params))
    assert ok, f"OpenCV could not encode {pixels.shape} {pixels.dtype} as {extension}"
    return buffer.tobytes()


def tiff(
    grey: np.ndarray, order: str = "<", big: bool = False, tile: int | None = None, rows_per_strip: int | None = None,
    claim: tuple[int, int] | None = None,
) -> bytes:
    """An uncompressed 8-bit grey TIFF of ``grey`` (one strip of ``rows_per_strip`` >= its
    height, or one ``tile`` x ``tile`` tile that covers it, ``tile`` a power of two) in byte order ``order`` (``<`` or
    ``>``), classic or BigTIFF; ``claim`` puts another (width, height) in its header."""
    height, width = grey.shape
    assert tile is None or (tile >= max(width, height) and tile & (tile - 1) == 0), "one tile must cover the image"
    assert rows_per_strip is None or rows_per_strip >= height, "one strip must cover the image"
    if tile is not None:
        padded = np.zeros((tile, tile), np.uint8)
        padded[: min(tile, height), : min(tile, width)] = grey[:tile, :tile]
        pixels = padded.tobytes()
    else:
        pixels = np.ascontiguousarray(grey, np.uint8).tobytes()
    width, height = claim or (width, height)
    long_type, count_format, entry_format = (16, "Q", "HHQQ") if big else (4, "H", "HHII")
    header = struct.pack(order + "2sHHHQ", order_mark(order), 43, 8, 0, 16) if big else struct.pack(order + "2sHI", order_mark(order), 42, 8)
    tags = {256: width, 257: height, 258: 8, 259: 1, 262: 1, 277: 1}
    placement = {322: tile, 323: tile} if tile is not None else {278: rows_per_strip or height}
    tags.update(placement)
    data_tags = (324, 325) if tile is not None else (273, 279)
    entries = len(tags) + 2
    directory_size = struct.calcsize(order + count_format) + entries * struct.calcsize(order + entry_format) + (8 if big else 4)
    data_offset = len(header) + directory_size
    tags.update({data_tags[0]: data_offset, data_tags[1]: len(pixels)})
    directory = struct.pack(order + count_format, entries)
    for tag in sorted(tags):
        kind = 3 if tags[tag] < 65536 and tag not in data_tags else long_type
        value = struct.pack(order + ("H" if kind == 3 else "Q" if big else "I"), tags[tag]).ljust(8 if big else 4, b"\0")
        directory += struct.pack(order + entry_format[:3], tag, kind, 1) + value
    directory += b"\0" * (8 if big else 4)  # no next directory
    return header + directory + pixels


def order_mark(order: str) -> bytes:
    return b"II" if order == "<" else b"MM"


#: the formats the loader accepts, each as a function encoding real pixels
ENCODERS: dict[str, Callable[[np.ndarray], bytes]] = {
    "JPEG": lambda p: encode(p, ".jpg"),
    "PNG": lambda p: encode(p, ".png"),
    "WebP": lambda p: encode(p, ".webp", cv2.IMWRITE_WEBP_QUALITY, 90),
    "TIFF": lambda p: encode(p, ".tiff"),
    "BMP": lambda p: encode(p, ".bmp"),
    "GIF": lambda p: encode(p, ".gif"),
    "PNM": lambda p: encode(p, ".pgm" if p.ndim == 2 else ".ppm"),
}


def _patch_png(data: bytearray, width: int, height: int) -> None:
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))


def _patch_jpeg(data: bytearray, width: int, height: int) -> None:
    frame = re.search(rb"\xff[\xc0\xc1\xc2]", bytes(data))
    assert frame is not None, "no frame header"
    data[frame.start() + 5 : frame.start() + 9] = struct.pack(">HH", height, width)


def _patch_webp(data: bytearray, width: int, height: int) -> None:
    chunk = bytes(data[12:16])
    if chunk == b"VP8X":
        data[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    elif chunk == b"VP8 ":
        data[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    else:  # VP8L
        bits = struct.unpack_from("<I", data, 21)[0] & ~0x0FFFFFFF
        data[21:25] = struct.pack("<I", bits | (width - 1) | (height - 1) << 14)


def _patch_tiff(data: bytearray, width: int, height: int) -> None:
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack_from(order + "I", data, 4)[0]
    for entry in range(offset + 2, offset + 2 + 12 * struct.unpack_from(order + "H", data, offset)[0], 12):
        tag = struct.unpack_from(order + "H", data, entry)[0]
        if tag in (256, 257):
            value = width if tag == 256 else height
            data[entry + 2 : entry + 12] = struct.pack(order + "HII", 4, 1, value)


def _patch_bmp(data: bytearray, width: int, height: int) -> None:
    data[18:26] = struct.pack("<ii", width, height)


def _patch_gif(data: bytearray, width: int, height: int) -> None:
    data[6:10] = struct.pack("<HH", width, height)


def _patch_pnm(data: bytearray, width: int, height: int) -> None:
    found = re.match(rb"(P[1-6]\s+)(\d+)(\s+)(\d+)", bytes(data))
    assert found is not None, "no PNM header"
    data[: found.end()] = found[1] + str(width).encode() + found[3] + str(height).encode()


_PATCHES: dict[str, Callable[[bytearray, int, int], None]] = {
    "PNG": _patch_png, "JPEG": _patch_jpeg, "WebP": _patch_webp, "TIFF": _patch_tiff,
    "BMP": _patch_bmp, "GIF": _patch_gif, "PNM": _patch_pnm,
}


def claim_size(data: bytes, format: str, width: int, height: int) -> bytes:
    """``data`` (a file of ``format`` from :data:`ENCODERS` or :func:`tiff`) with a header that
    claims ``width`` x ``height``; the image data is left as it was."""
    patched = bytearray(data)
    _PATCHES[format](patched, width, height)
    return bytes(patched)
