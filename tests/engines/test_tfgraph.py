"""The GraphDef reader and the FaceNet conversion, on the real published graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.engines.sources import locate_sources
from streamrec.engines.tfgraph import GraphFormatError, read_graph


@pytest.fixture(scope="module")
def graph():
    return read_graph(locate_sources()["facenet"].path)


def test_graph_layout_matches_the_published_facts(graph):
    assert len(graph) == 793
    assert graph["input"].op == "Placeholder"
    assert graph["embeddings"].op == "Mul"
    weights = graph["InceptionResnetV1/Conv2d_1a_3x3/weights"].value
    assert weights.shape == (3, 3, 3, 32) and weights.dtype == np.float32
    conv = graph["InceptionResnetV1/Conv2d_1a_3x3/Conv2D"]
    assert conv.attrs["strides"] == [1, 2, 2, 1] and conv.attrs["padding"] == "VALID"
    floats = sum(n.value.size for n in graph.values() if n.value is not None and n.value.dtype.kind == "f" and n.value.ndim)
    assert floats == 23_469_360


def test_conversion_uses_every_tensor_and_checks_the_architecture(graph):
    from streamrec.engines.facenet import ConversionError, facenet_from_graph

    model = facenet_from_graph(graph)
    stats = model.bottleneck_bn.running_mean.numel() + model.bottleneck_bn.running_var.numel()
    assert sum(p.numel() for p in model.parameters()) + stats == 23_469_360
    broken = dict(graph)
    node = broken["InceptionResnetV1/Repeat/block35_2/mul/x"]
    broken["InceptionResnetV1/Repeat/block35_2/mul/x"] = type(node)(node.name, node.op, node.inputs, np.float32(0.5), node.attrs)
    with pytest.raises(ConversionError, match="block35_2.*residual scale 0.5"):
        facenet_from_graph(broken)


@pytest.mark.parametrize("payload", [b"", b"\x0a\xff\xff\xff\xff\x0f", b"\x0f\x01"])
def test_malformed_graph_is_a_clear_error(tmp_path: Path, payload: bytes):
    path = tmp_path / "bad.pb"
    path.write_bytes(payload)
    with pytest.raises(GraphFormatError):
        read_graph(path)
