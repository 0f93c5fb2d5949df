"""The three MTCNN networks (Zhang et al. 2016) as PyTorch modules.

Layer names and shapes follow the state dicts shipped in the ``facenet-pytorch`` package
(``data/{pnet,rnet,onet}.pt``), so those files load with ``strict=True``. Each module takes raw
RGB pixel values in NHWC float32 (0..255) and normalises them itself, so every backend (ONNX
Runtime, TensorRT, PyTorch) sees the same input contract and the detector never transposes or
rescales on the CPU. Outputs are the face probability and the box regression (and landmarks for
O-Net), already sliced out of the softmax.

Only the engine build and the PyTorch backend import this module; it needs ``torch``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FaceProbability", "FlattenWHC", "ONet", "PNet", "RNet", "normalise_nhwc"]


def normalise_nhwc(x: torch.Tensor) -> torch.Tensor:
    """Map raw NHWC pixels to the NCHW ``(x - 127.5) / 128`` input both model families expect."""
    return ((x - 127.5) * 0.0078125).permute(0, 3, 1, 2)


class FlattenWHC(nn.Module):
    """Flatten NCHW features in W, H, C order: the order the original Caffe/Matlab weights of
    the dense layers expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class FaceProbability(nn.Module):
    """Probability of the "face" class from the two-class logits (channel/column 1)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)[:, 1]


class PNet(nn.Module):
    """Proposal net: fully convolutional, one 12x12 window per output cell, stride 2.

    Input ``(N, H, W, 3)`` float32 pixels; outputs ``prob (N, H', W')`` and ``reg (N, H', W', 4)``
    with ``H' = ceil((H - 2) / 2) - 4``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)
        self.face = FaceProbability()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(normalise_nhwc(x))))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.face(self.conv4_1(x)), self.conv4_2(x).permute(0, 2, 3, 1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops: input ``(N, 24, 24, 3)``; outputs ``prob (N,)``, ``reg (N, 4)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)
        self.flatten = FlattenWHC()
        self.face = FaceProbability()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(normalise_nhwc(x))))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(self.flatten(self.prelu3(self.conv3(x)))))
        return self.face(self.dense5_1(x)), self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: input ``(N, 48, 48, 3)``; outputs ``prob (N,)``, ``reg (N, 4)``
    and ``landmarks (N, 10)`` (five x values, then five y values, relative to the box)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)
        self.flatten = FlattenWHC()
        self.face = FaceProbability()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(normalise_nhwc(x))))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(self.flatten(self.prelu4(self.conv4(x)))))
        return self.face(self.dense6_1(x)), self.dense6_2(x), self.dense6_3(x)
