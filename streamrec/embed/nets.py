"""Inception-ResNet-v1 (Szegedy et al. 2016) as trained by FaceNet 20180408-102900.

The module mirrors the layer structure of David Sandberg's frozen TensorFlow graph: every
convolution carries the graph scope it came from (``tf_scope``), its stride and its padding, so the
converter in :mod:`streamrec.engines.facenet` can copy weights by name and check each layer's
hyper-parameters against the graph instead of assuming them. Batch norms are already folded into
the convolutions in that graph (``Conv2D_bn_offset``), so each unit is a biased convolution plus
ReLU.

Input: raw RGB pixels, ``(N, 160, 160, 3)`` uint8 or float32. The module applies the
``(x - 127.5) / 128`` standardisation the model was trained with. Output: ``(N, 512)``
L2-normalised embeddings, computed as ``x * rsqrt(max(sum(x^2), 1e-10))`` exactly as the graph does.

Only the engine build and the PyTorch backend import this module; it needs ``torch``.
"""

from __future__ import annotations

import torch
from torch import nn

from streamrec.detect.nets import normalise_nhwc

__all__ = ["ConvUnit", "InceptionResnetV1", "UpProjection"]


class ConvUnit(nn.Module):
    """Convolution (batch norm folded into its bias) followed by ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int | tuple[int, int],
        tf_scope: str,
        stride: int = 1,
        same: bool = False,
    ) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        # TensorFlow "SAME" with stride 1 and odd kernels pads symmetrically.
        padding = (kh // 2, kw // 2) if same else (0, 0)
        self.conv = nn.Conv2d(in_ch, out_ch, (kh, kw), stride=stride, padding=padding)
        self.tf_scope = tf_scope
        self.tf_padding = "SAME" if same else "VALID"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class UpProjection(nn.Conv2d):
    """The 1x1 convolution with a real bias that closes every residual block."""

    def __init__(self, in_ch: int, out_ch: int, tf_scope: str) -> None:
        super().__init__(in_ch, out_ch, 1)
        self.tf_scope = tf_scope
        self.tf_padding = "SAME"


class _Residual(nn.Module):
    """``relu(x + scale * up(concat(branches(x))))``; the last block of the net skips the ReLU."""

    def __init__(
        self, branches: list[nn.Sequential], up: UpProjection, scale: float, relu: bool = True
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.up = up
        self.scale = scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([branch(x) for branch in self.branches], dim=1)
        out = x + self.up(mixed) * self.scale
        return torch.relu(out) if self.relu else out


def _block35(scope: str, scale: float) -> _Residual:
    return _Residual(
        [
            nn.Sequential(ConvUnit(256, 32, 1, f"{scope}/Branch_0/Conv2d_1x1", same=True)),
            nn.Sequential(
                ConvUnit(256, 32, 1, f"{scope}/Branch_1/Conv2d_0a_1x1", same=True),
                ConvUnit(32, 32, 3, f"{scope}/Branch_1/Conv2d_0b_3x3", same=True),
            ),
            nn.Sequential(
                ConvUnit(256, 32, 1, f"{scope}/Branch_2/Conv2d_0a_1x1", same=True),
                ConvUnit(32, 32, 3, f"{scope}/Branch_2/Conv2d_0b_3x3", same=True),
                ConvUnit(32, 32, 3, f"{scope}/Branch_2/Conv2d_0c_3x3", same=True),
            ),
        ],
        UpProjection(96, 256, f"{scope}/Conv2d_1x1"),
        scale,
    )


def _block17(scope: str, scale: float) -> _Residual:
    return _Residual(
        [
            nn.Sequential(ConvUnit(896, 128, 1, f"{scope}/Branch_0/Conv2d_1x1", same=True)),
            nn.Sequential(
                ConvUnit(896, 128, 1, f"{scope}/Branch_1/Conv2d_0a_1x1", same=True),
                ConvUnit(128, 128, (1, 7), f"{scope}/Branch_1/Conv2d_0b_1x7", same=True),
                ConvUnit(128, 128, (7, 1), f"{scope}/Branch_1/Conv2d_0c_7x1", same=True),
            ),
        ],
        UpProjection(256, 896, f"{scope}/Conv2d_1x1"),
        scale,
    )


def _block8(scope: str, scale: float, relu: bool = True) -> _Residual:
    return _Residual(
        [
            nn.Sequential(ConvUnit(1792, 192, 1, f"{scope}/Branch_0/Conv2d_1x1", same=True)),
            nn.Sequential(
                ConvUnit(1792, 192, 1, f"{scope}/Branch_1/Conv2d_0a_1x1", same=True),
                ConvUnit(192, 192, (1, 3), f"{scope}/Branch_1/Conv2d_0b_1x3", same=True),
                ConvUnit(192, 192, (3, 1), f"{scope}/Branch_1/Conv2d_0c_3x1", same=True),
            ),
        ],
        UpProjection(384, 1792, f"{scope}/Conv2d_1x1"),
        scale,
        relu,
    )


class _Reduction(nn.Module):
    """A grid reduction: branches (and a max pool) run side by side and are concatenated."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def _mixed_6a() -> _Reduction:
    s = "Mixed_6a"
    return _Reduction(
        [
            ConvUnit(256, 384, 3, f"{s}/Branch_0/Conv2d_1a_3x3", stride=2),
            nn.Sequential(
                ConvUnit(256, 192, 1, f"{s}/Branch_1/Conv2d_0a_1x1", same=True),
                ConvUnit(192, 192, 3, f"{s}/Branch_1/Conv2d_0b_3x3", same=True),
                ConvUnit(192, 256, 3, f"{s}/Branch_1/Conv2d_1a_3x3", stride=2),
            ),
            nn.MaxPool2d(3, 2),
        ]
    )


def _mixed_7a() -> _Reduction:
    s = "Mixed_7a"
    return _Reduction(
        [
            nn.Sequential(
                ConvUnit(896, 256, 1, f"{s}/Branch_0/Conv2d_0a_1x1", same=True),
                ConvUnit(256, 384, 3, f"{s}/Branch_0/Conv2d_1a_3x3", stride=2),
            ),
            nn.Sequential(
                ConvUnit(896, 256, 1, f"{s}/Branch_1/Conv2d_0a_1x1", same=True),
                ConvUnit(256, 256, 3, f"{s}/Branch_1/Conv2d_1a_3x3", stride=2),
            ),
            nn.Sequential(
                ConvUnit(896, 256, 1, f"{s}/Branch_2/Conv2d_0a_1x1", same=True),
                ConvUnit(256, 256, 3, f"{s}/Branch_2/Conv2d_0b_3x3", same=True),
                ConvUnit(256, 256, 3, f"{s}/Branch_2/Conv2d_1a_3x3", stride=2),
            ),
            nn.MaxPool2d(3, 2),
        ]
    )


class InceptionResnetV1(nn.Module):
    """FaceNet's embedding network: ``(N, 160, 160, 3)`` pixels -> ``(N, 512)`` unit vectors."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvUnit(3, 32, 3, "Conv2d_1a_3x3", stride=2),
            ConvUnit(32, 32, 3, "Conv2d_2a_3x3"),
            ConvUnit(32, 64, 3, "Conv2d_2b_3x3", same=True),
            nn.MaxPool2d(3, 2),
            ConvUnit(64, 80, 1, "Conv2d_3b_1x1"),
            ConvUnit(80, 192, 3, "Conv2d_4a_3x3"),
            ConvUnit(192, 256, 3, "Conv2d_4b_3x3", stride=2),
        )
        self.body = nn.Sequential(
            *[_block35(f"Repeat/block35_{i}", 0.17) for i in range(1, 6)],
            _mixed_6a(),
            *[_block17(f"Repeat_1/block17_{i}", 0.10) for i in range(1, 11)],
            _mixed_7a(),
            *[_block8(f"Repeat_2/block8_{i}", 0.20) for i in range(1, 6)],
            _block8("Block8", 1.0, relu=False),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bottleneck = nn.Linear(1792, 512, bias=False)
        self.bottleneck_bn = nn.BatchNorm1d(512, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(normalise_nhwc(x.float())))
        x = self.bottleneck_bn(self.bottleneck(torch.flatten(self.pool(x), 1)))
        return x * torch.rsqrt(torch.clamp(torch.sum(x * x, dim=1, keepdim=True), min=1e-10))
