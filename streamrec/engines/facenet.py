"""Convert Sandberg's frozen FaceNet graph into the PyTorch :class:`InceptionResnetV1`.

Every weight is copied by graph name and every layer's stride, padding, residual scale and batch
norm epsilon is checked against the graph, so a graph that differs from the architecture in
:mod:`streamrec.embed.nets` fails the conversion with the name of the first mismatching node
rather than producing a silently wrong model. The conversion also checks that no float tensor of
the graph was left unused.
"""

from __future__ import annotations

import numpy as np
import torch

from streamrec.embed.nets import ConvUnit, InceptionResnetV1, UpProjection, _Residual
from streamrec.engines.tfgraph import Node

__all__ = ["ConversionError", "facenet_from_graph"]

_ROOT = "InceptionResnetV1"


class ConversionError(ValueError):
    """The graph does not match the architecture the converter expects."""


class _Consts:
    """Looks constants up by name and remembers which ones were used."""

    def __init__(self, graph: dict[str, Node]) -> None:
        self.graph = graph
        self.used: set[str] = set()

    def node(self, name: str) -> Node:
        if name not in self.graph:
            raise ConversionError(f"graph has no node {name!r}")
        return self.graph[name]

    def array(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        value = self.node(name).value
        if value is None:
            raise ConversionError(f"node {name!r} is not a constant")
        if shape is not None and value.shape != shape:
            raise ConversionError(f"{name}: shape {value.shape}, expected {shape}")
        self.used.add(name)
        return value

    def unused_tensors(self) -> list[str]:
        return [
            n.name
            for n in self.graph.values()
            if n.value is not None
            and n.value.dtype.kind == "f"
            and n.value.ndim > 0
            and n.name not in self.used
        ]


def _check_conv(consts: _Consts, scope: str, conv: torch.nn.Conv2d, padding: str) -> None:
    node = consts.node(f"{scope}/Conv2D")
    stride = conv.stride[0]
    if node.attrs.get("strides") != [1, stride, stride, 1] or node.attrs.get("padding") != padding:
        raise ConversionError(
            f"{node.name}: graph has strides {node.attrs.get('strides')} padding "
            f"{node.attrs.get('padding')}, the model expects stride {stride} padding {padding}"
        )


def _load_conv(consts: _Consts, module: ConvUnit | UpProjection) -> None:
    scope = f"{_ROOT}/{module.tf_scope}"
    conv = module.conv if isinstance(module, ConvUnit) else module
    o, i, kh, kw = conv.weight.shape
    weights = consts.array(f"{scope}/weights", (kh, kw, i, o))
    bias_name = "Conv2D_bn_offset" if isinstance(module, ConvUnit) else "biases"
    bias = consts.array(f"{scope}/{bias_name}", (o,))
    _check_conv(consts, scope, conv, module.tf_padding)
    conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights.transpose(3, 2, 0, 1))))
    assert conv.bias is not None
    conv.bias.copy_(torch.from_numpy(bias))


def _check_scale(consts: _Consts, block: _Residual) -> None:
    scope = f"{_ROOT}/{block.up.tf_scope.rsplit('/', 1)[0]}"
    scale = float(consts.array(f"{scope}/mul/x"))
    if not np.isclose(scale, block.scale, rtol=0, atol=1e-7):
        raise ConversionError(f"{scope}: residual scale {scale} in the graph, {block.scale} expected")


def _load_head(consts: _Consts, model: InceptionResnetV1) -> None:
    scope = f"{_ROOT}/Bottleneck"
    weights = consts.array(f"{scope}/weights", (1792, 512))
    model.bottleneck.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights.T)))
    bn_node = consts.node(f"{scope}/BatchNorm/cond/FusedBatchNorm_1")
    gamma, beta, mean, var = (consts.array(name, (512,)) for name in bn_node.inputs[1:5])
    bn = model.bottleneck_bn
    bn.weight.copy_(torch.from_numpy(gamma))
    bn.bias.copy_(torch.from_numpy(beta))
    assert bn.running_mean is not None and bn.running_var is not None
    bn.running_mean.copy_(torch.from_numpy(mean))
    bn.running_var.copy_(torch.from_numpy(var))
    epsilon = bn_node.attrs.get("epsilon")
    if not isinstance(epsilon, float) or not np.isclose(epsilon, bn.eps, rtol=1e-6):
        raise ConversionError(f"{bn_node.name}: epsilon {epsilon}, expected {bn.eps}")
    norm_eps = float(consts.array("embeddings/Maximum/y"))
    if not np.isclose(norm_eps, 1e-10, rtol=1e-6):
        raise ConversionError(f"embeddings/Maximum/y is {norm_eps}, expected 1e-10")


@torch.no_grad()
def facenet_from_graph(graph: dict[str, Node]) -> InceptionResnetV1:
    """Build an :class:`InceptionResnetV1` in eval mode holding the graph's weights.

    Raises :class:`ConversionError` naming the node when the graph and the architecture disagree
    or when a float tensor of the graph is left unused.
    """
    consts = _Consts(graph)
    if "input" not in graph or "embeddings" not in graph:
        raise ConversionError("graph lacks the 'input' placeholder or the 'embeddings' output")
    model = InceptionResnetV1().eval()
    for module in model.modules():
        if isinstance(module, (ConvUnit, UpProjection)):
            _load_conv(consts, module)
        elif isinstance(module, _Residual):
            _check_scale(consts, module)
    _load_head(consts, model)
    leftover = consts.unused_tensors()
    if leftover:
        raise ConversionError(f"{len(leftover)} graph tensors were not used, e.g. {leftover[0]}")
    return model
