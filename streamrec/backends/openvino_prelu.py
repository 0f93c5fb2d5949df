"""MTCNN's PReLUs back as single operations, for OpenVINO.

The engine build writes each PReLU of the MTCNN nets as other operations that ONNX Runtime runs
faster (:mod:`streamrec.engines.mtcnn_export`): in R-Net and O-Net ``a * x + (1 - a) * relu(x)``
as two depthwise 1x1 convolutions, in P-Net ``relu(x) + a * min(x, 0)``. OpenVINO's CPU plugin
is the other way round: a ``PRelu`` joins the convolution before it and costs no pass over the
activations of its own, while the rewrites cost several (O-Net on 32 crops: 1.9 of 5.3 ms of
kernel time). So the OpenVINO backend folds them back when it reads a model: R-Net and O-Net run
1.3-1.4x faster on their own, P-Net 1.2-1.3x (docs/speed.md). The results differ by float
rounding only (a few 1e-7), as the rewrites did from the published nets.

Only those two exact forms are folded, with the slopes read from their constants and checked
(``a`` and ``1 - a`` must sum to one); a model without them (FaceNet) is returned as it was read.
"""

from __future__ import annotations

import numpy as np

try:
    import openvino as ov  # type: ignore[import-untyped]
    from openvino import opset13
    from openvino.passes import ConstantFolding, Manager  # type: ignore[import-untyped]
except ImportError:
    raise ImportError("OpenVINO is not installed: pip install 'streamrec[openvino]'") from None

__all__ = ["fold_prelus"]

#: how far ``a + (1 - a)`` may be from one after both were rounded to float32
_SUM_TOLERANCE = 1e-6


def _constant(value: ov.Output) -> np.ndarray | None:
    node = value.get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None


def _is(value: ov.Output, type_name: str) -> bool:
    return bool(value.get_node().get_type_name() == type_name)


def _pairs(add: ov.Node) -> list[tuple[ov.Output, ov.Output]]:
    """The inputs of ``add`` in both orders."""
    a, b = add.input_value(0), add.input_value(1)
    return [(a, b), (b, a)]


def _channel_scale(conv: ov.Output) -> np.ndarray | None:
    """The per-channel factors of a depthwise 1x1 convolution without padding or stride, or None."""
    if not _is(conv, "GroupConvolution"):
        return None
    node = conv.get_node()
    weights = _constant(node.input_value(1))
    attributes = node.get_attributes()
    plain = all(v == 1 for v in attributes["strides"] + attributes["dilations"]) and not any(
        attributes["pads_begin"] + attributes["pads_end"]
    )
    if weights is None or not plain or weights.shape[1:] != (1, 1, 1, 1):
        return None
    return weights.reshape(-1)


def _scaled(add: ov.Node) -> tuple[ov.Output, np.ndarray] | None:
    """``(x, a)`` where ``add`` is ``conv_a(x) + conv_(1-a)(relu(x))``, depthwise 1x1."""
    for linear, positive in _pairs(add):
        slope, rest = _channel_scale(linear), _channel_scale(positive)
        if slope is None or rest is None or slope.shape != rest.shape:
            continue
        x, relu = linear.get_node().input_value(0), positive.get_node().input_value(0)
        if _is(relu, "Relu") and relu.get_node().input_value(0) == x and np.allclose(slope + rest, 1, atol=_SUM_TOLERANCE):
            return x, slope
    return None


def _negative_part(value: ov.Output) -> ov.Output | None:
    """``x`` where ``value`` is ``min(x, 0)``, as ONNX's ``Clip(max=0)`` reads: ``min(0, max(lowest, x))``."""
    if not _is(value, "Minimum"):
        return None
    for zero, inner in _pairs(value.get_node()):
        bound = _constant(zero)
        if bound is None or bound.size != 1 or bound.item() != 0:
            continue
        if not _is(inner, "Maximum"):
            return inner
        for lowest, x in _pairs(inner.get_node()):
            floor = _constant(lowest)
            if floor is not None and floor.size == 1 and floor.item() <= np.finfo(np.float32).min:
                return x
    return None


def _clamped(add: ov.Node) -> tuple[ov.Output, np.ndarray] | None:
    """``(x, a)`` where ``add`` is ``relu(x) + a * min(x, 0)`` with per-channel ``a``."""
    for relu, scaled in _pairs(add):
        if not (_is(relu, "Relu") and _is(scaled, "Multiply")):
            continue
        x = relu.get_node().input_value(0)
        for slope, clipped in _pairs(scaled.get_node()):
            a = _constant(slope)
            if a is not None and a.shape == (1, a.size, 1, 1) and _negative_part(clipped) == x:
                return x, a.reshape(-1)
    return None


def fold_prelus(model: ov.Model) -> ov.Model:
    """``model`` with every rewritten PReLU (either form above) as one ``PRelu`` operation: a
    folded copy when there were any, else ``model`` itself, untouched (constant folding, which
    the matching needs, would also fold a quantized model's weight decompression). The matching
    works on a folded copy of the whole model, so a caller that knows a model has none (the
    quantized FaceNets) need not ask."""
    folded = model.clone()
    manager = Manager()
    manager.register_pass(ConstantFolding())
    manager.run_passes(folded)
    found = 0
    for node in folded.get_ordered_ops():
        if node.get_type_name() != "Add":
            continue
        match = _scaled(node) or _clamped(node)
        if match is None:
            continue
        x, slope = match
        prelu = opset13.prelu(x, opset13.constant(slope.astype(np.float32).reshape(-1, 1, 1)))
        prelu.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(prelu.output(0))
        found += 1
    if not found:
        return model
    folded.validate_nodes_and_infer_types()
    return folded
