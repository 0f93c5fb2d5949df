"""Exact area resampling on the device, from integral images: the tensor twin of
:mod:`streamrec.detect.resample`.

The pyramid levels and the 24/48 px crops of the MTCNN cascade average integer pixel windows
(``floor(i * in / out)`` up to ``ceil((i + 1) * in / out)``, PyTorch's adaptive average pooling).
Window sums come from an integer integral image, so they are exact, and each mean is the exact
sum divided by the window height, then the width, in float32: the same operations in the same
order as the host code, so the results are equal bit for bit on any device.

``F.adaptive_avg_pool2d`` gives the same values for whole frames (the tests check it) but reads
every input pixel once per level; the integral image is built once per batch and then serves
every level and every crop at a cost that depends on the output size only.

On CUDA the integral image is two ``torch.cumsum`` scans. PyTorch's CPU scan is not vectorised
(measured on 2 cores: 360 ms for one 1920x1080 frame, against 6 ms for ``cv2.integral``), so on
the CPU the frames' own memory goes through OpenCV's integral, one C call per frame, and the
result is wrapped as a tensor without a copy. Both are exact integer sums, equal to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from streamrec.detect.resample import _INT32_SAFE_PIXELS
from streamrec.detect.resample import integral_images as host_integral_images

__all__ = ["Windows", "frame_windows", "integral_images", "resample_frames", "resample_regions", "scan_integral_images"]


def integral_images(frames: torch.Tensor) -> torch.Tensor:
    """``(N, H + 1, W + 1, 3)`` inclusive prefix sums of uint8 ``(N, H, W, 3)`` frames.

    int32 while a whole-frame sum fits (frames up to 8.4 MP), int64 (float64 on the CPU) beyond:
    all exact.
    """
    if frames.device.type == "cpu":
        return torch.from_numpy(host_integral_images(frames.numpy()))
    return scan_integral_images(frames)


def scan_integral_images(frames: torch.Tensor) -> torch.Tensor:
    """:func:`integral_images` as two ``torch.cumsum`` scans, on any device (int32 or int64)."""
    n, h, w, c = frames.shape
    dtype = torch.int32 if h * w <= _INT32_SAFE_PIXELS else torch.int64
    out = torch.zeros((n, h + 1, w + 1, c), dtype=dtype, device=frames.device)
    out[:, 1:, 1:] = frames.to(dtype).cumsum(1, dtype=dtype).cumsum(2, dtype=dtype)  # int32 stays int32
    return out


def _windows(start: torch.Tensor, length: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end (exclusive) of each of ``size`` pooling windows over each region, ``(k, size)``."""
    i = torch.arange(size, dtype=torch.int64, device=start.device)
    lo = torch.div(i[None, :] * length[:, None], size, rounding_mode="floor")
    hi = torch.div((i[None, :] + 1) * length[:, None] + size - 1, size, rounding_mode="floor")
    return start[:, None] + lo, start[:, None] + hi


@dataclass(frozen=True)
class Windows:
    """The row and column windows of one whole-frame resampling (one pyramid level), prepared
    once per frame size: index tensors ``(out,)`` and the window sizes as float32 divisors shaped
    to broadcast against an ``(N, out_h, out_w, 3)`` result."""

    rows_start: torch.Tensor
    rows_end: torch.Tensor
    cols_start: torch.Tensor
    cols_end: torch.Tensor
    row_sizes: torch.Tensor
    col_sizes: torch.Tensor


def frame_windows(height: int, width: int, out_h: int, out_w: int, device: torch.device) -> Windows:
    """The windows that area-resample ``height x width`` frames to ``out_h x out_w``."""
    zero = torch.zeros(1, dtype=torch.int64, device=device)
    ys, ye = _windows(zero, torch.tensor([height], device=device), out_h)
    xs, xe = _windows(zero, torch.tensor([width], device=device), out_w)
    return Windows(
        ys[0], ye[0], xs[0], xe[0],
        (ye - ys)[0].to(torch.float32)[None, :, None, None],
        (xe - xs)[0].to(torch.float32)[None, None, :, None],
    )


def resample_frames(integral: torch.Tensor, windows: Windows) -> torch.Tensor:
    """Area-resample whole frames to ``(N, out_h, out_w, 3)`` float32 (one pyramid level).

    Separable: whole-row differences first, then column differences.
    """
    rows = integral.index_select(1, windows.rows_end) - integral.index_select(1, windows.rows_start)
    sums = rows.index_select(2, windows.cols_end) - rows.index_select(2, windows.cols_start)
    return sums.to(torch.float32) / windows.row_sizes / windows.col_sizes


def resample_regions(
    integral: torch.Tensor, frame_index: torch.Tensor, regions: torch.Tensor, out_h: int, out_w: int
) -> torch.Tensor:
    """Area-resample ``k`` regions to ``(k, out_h, out_w, 3)`` float32.

    ``integral``: from :func:`integral_images`. ``frame_index``: ``(k,)`` int64 frame of each
    region. ``regions``: ``(k, 4)`` int64 ``y0, x0, y1, x1`` (end exclusive), inside the frame and
    non-empty.
    """
    n, hp, wp, c = integral.shape
    ys, ye = _windows(regions[:, 0], regions[:, 2] - regions[:, 0], out_h)
    xs, xe = _windows(regions[:, 1], regions[:, 3] - regions[:, 1], out_w)
    flat = integral.reshape(n * hp * wp, c)
    base = frame_index[:, None, None] * (hp * wp)

    def corner(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return flat.index_select(0, (base + rows[:, :, None] * wp + cols[:, None, :]).reshape(-1))

    sums = corner(ye, xe) - corner(ys, xe) - corner(ye, xs) + corner(ys, xs)
    sums = sums.reshape(len(regions), out_h, out_w, c)
    row_sizes = (ye - ys).to(torch.float32)[:, :, None, None]
    col_sizes = (xe - xs).to(torch.float32)[:, None, :, None]
    return sums.to(torch.float32) / row_sizes / col_sizes
