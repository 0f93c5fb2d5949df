"""Rewrites of the MTCNN nets that ONNX Runtime runs faster and that are equal in exact
arithmetic (they differ from the originals by float rounding only, ~1e-7; the build's parity
check compares the exported files against the unmodified nets).

Measured on 2 cores, ONNX Runtime's ``PRelu`` op dominated every net (R-Net, 64 crops: 1.8 of
5.4 ms), because it cannot run in the blocked channel layout the convolutions use and forces a
layout round trip. So:

* in R-Net and O-Net, ``prelu(x) = a * x + (1 - a) * relu(x)``, the two per-channel scalings as
  depthwise 1x1 convolutions, which stay in the blocked layout (R-Net batch 64: 4.4 -> 2.6 ms);
* in P-Net, which runs without that layout (:mod:`streamrec.backends.onnxruntime`),
  ``prelu(x) = relu(x) + a * min(x, 0)``, element-wise (in R-Net and O-Net it runs 1.1-1.25x
  slower than the convolutions);
* P-Net's face probability, the second column of a two-class softmax across the channel axis,
  is that softmax written out on the two channels, ``exp(l1 - m) / (exp(l0 - m) + exp(l1 - m))``
  with ``m = max(l0, l1)``: the same arithmetic, so it saturates to 1.0 where a softmax does,
  without the transposes ONNX Runtime's ``Softmax`` makes to reach a non-last axis (8.9 ms of
  P-Net's 92 ms of kernel time on the first pyramid level of a 1080p frame at min face 20).
  With both, P-Net runs 1.10-1.14x faster on 2 threads of the AVX2-only EPYC (docs/speed.md);
* the W, H, C flatten before R-Net's and O-Net's dense layers becomes a plain NCHW flatten
  with the dense weights' columns permuted to match, removing a transpose.

OpenVINO is the other way round: it joins a ``PRelu`` to the convolution before it, so its
backend reads both PReLU forms back as one operation (:mod:`streamrec.backends.openvino_prelu`).

R-Net's and O-Net's softmax, over the last axis of ``(N, 2)``, stays as it is. A sigmoid of
``l1 - l0`` in its place saturates to 1.0 at slightly different logits, and which of two
candidates scored exactly 1.0 survives non-maximum suppression changes final boxes by several
pixels.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from streamrec.detect.nets import FaceProbability, FlattenWHC, ONet, PNet, RNet

__all__ = ["for_onnx"]

#: The dense layer after each net's flatten, with the (channels, height, width) of its input.
_DENSE_AFTER_FLATTEN = {RNet: ("dense4", (64, 3, 3)), ONet: ("dense5", (128, 3, 3))}


class ScaledPReLU(nn.Module):
    """``a * x + (1 - a) * relu(x)`` with per-channel ``a``, as two depthwise 1x1 convolutions."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        slope = prelu.weight.detach()
        channels = slope.numel()
        self.linear = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        self.positive = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(slope.view(channels, 1, 1, 1))
            self.positive.weight.copy_((1 - slope).view(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.positive(torch.relu(x))


class ClampedPReLU(nn.Module):
    """``relu(x) + a * min(x, 0)`` with per-channel ``a``: four element-wise operations."""

    slope: torch.Tensor

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.register_buffer("slope", prelu.weight.detach().view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) + self.slope * torch.clamp(x, max=0)


class ChannelSoftmaxFace(FaceProbability):
    """The face column of the two-class softmax across channel 1 of NCHW logits, written out."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        background, face = logits[:, 0], logits[:, 1]
        top = torch.maximum(background, face)
        background, face = torch.exp(background - top), torch.exp(face - top)
        return face / (background + face)


def _nchw_dense(dense: nn.Linear, shape: tuple[int, int, int]) -> nn.Linear:
    """``dense`` with its input columns permuted from W, H, C order to C, H, W order."""
    c, h, w = shape
    ci, hi, wi = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
    whc_index = (wi * h * c + hi * c + ci).reshape(-1)  # column of (c, h, w) in the original
    permuted = copy.deepcopy(dense)
    with torch.no_grad():
        permuted.weight = nn.Parameter(dense.weight[:, whc_index].clone())
    return permuted


@torch.no_grad()
def for_onnx(net: PNet | RNet | ONet) -> nn.Module:
    """A rewritten copy of ``net`` for export; ``net`` itself is left untouched."""
    fast = copy.deepcopy(net).eval()
    prelu = ClampedPReLU if isinstance(net, PNet) else ScaledPReLU
    for name, module in list(fast.named_children()):
        if isinstance(module, nn.PReLU) and hasattr(fast, name.replace("prelu", "conv")):
            setattr(fast, name, prelu(module))
    if isinstance(net, PNet):
        fast.face = ChannelSoftmaxFace()
    if type(net) in _DENSE_AFTER_FLATTEN and isinstance(getattr(fast, "flatten", None), FlattenWHC):
        name, shape = _DENSE_AFTER_FLATTEN[type(net)]
        setattr(fast, name, _nchw_dense(getattr(fast, name), shape))
        fast.flatten = nn.Flatten()
    return fast
