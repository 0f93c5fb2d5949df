"""The MTCNN rewrites for export compute what the published layers compute, at the extremes too."""

from __future__ import annotations

import torch
from torch import nn

from streamrec.engines.mtcnn_export import ChannelSoftmaxFace, ClampedPReLU


def test_clamped_prelu_is_prelu_bit_for_bit() -> None:
    """Either branch adds an exact zero, so the results are PReLU's own, whatever the slope's sign
    or size (P-Net's range from -1.28 to 1.01 included)."""
    prelu = nn.PReLU(5)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([-1.28, -0.3, 0.0, 0.25, 1.01]))
    x = torch.randn(3, 5, 7, 9, generator=torch.Generator().manual_seed(0)) * 100
    x[0, :, 0, 0] = 0.0
    assert torch.equal(ClampedPReLU(prelu)(x), prelu(x))


def test_written_out_softmax_saturates_where_softmax_does() -> None:
    """Which candidates score exactly 1.0 (or 0.0) decides ties in suppression, so the written-out
    softmax must saturate at the same logits as the softmax, on both sides of the ~16.6 gap where
    float32 rounds 1 + exp(-gap) to 1."""
    gaps = torch.cat([torch.linspace(-120, 120, 4801), torch.linspace(15, 18, 3001), torch.linspace(-18, -15, 3001)])
    background = torch.randn(gaps.numel(), generator=torch.Generator().manual_seed(1)) * 30
    logits = torch.stack([background, background + gaps]).reshape(1, 2, 1, -1)
    written = ChannelSoftmaxFace()(logits)
    reference = torch.softmax(logits, dim=1)[:, 1]
    assert torch.equal(written == 1.0, reference == 1.0)
    assert torch.equal(written == 0.0, reference == 0.0)
    assert (written == 1.0).any() and (written == 0.0).any()
    assert torch.allclose(written, reference, rtol=0, atol=1e-7)
