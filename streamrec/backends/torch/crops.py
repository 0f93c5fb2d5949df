"""FaceNet's 160x160 crops cut on the device, equal to :func:`streamrec.embed.align.box_crops`
and :func:`~streamrec.embed.align.warp_crops`.

The host functions resize with OpenCV, and FaceNet's embeddings were measured on those crops,
so the device reproduces OpenCV's arithmetic rather than using ``interpolate``/``grid_sample``
(whose results differ by several grey levels at edges):

* ``INTER_AREA`` shrinking (the crop is at least 160 px both ways): per output pixel, fractional
  coverage weights of the source pixels (OpenCV's ``computeResizeAreaTab``), summed along each
  row in float32, then across rows, in OpenCV's order, and rounded half to even. When the
  shrink factor is a whole number both ways, OpenCV averages integer blocks instead (``2x2``:
  ``(sum + 2) >> 2``; otherwise ``sum * (1 / area)`` rounded), and so does this.
* ``INTER_LINEAR`` (enlarging, and ``INTER_AREA`` when one side is under 160 px, with OpenCV's
  "area mode" coefficients): 11-bit fixed-point weights, integer horizontal sums, and the
  vertical step as OpenCV's vector code computes it (``(((a >> 4) * b0) >> 16) + ...``).
* ``warpAffine`` (``INTER_LINEAR``, border replicated), as OpenCV 5 computes it: the landmark
  similarity from the host's own solver, inverted in double, then source positions and the
  bilinear blend in float32 with fused multiply-adds (emulated exactly: a product of two float32
  values is exact in float64, so one rounding remains), rounded half to even.

The resize's vector code is OpenCV's baseline (SSE2) build, the same on every x86 CPU; the warp's
is dispatched to AVX2 or AVX-512, both with FMA. The weight tables depend only on crop sizes and
transforms: they are built on the host (tiny arrays, cached per size) and every pixel is read
and computed on the device. The tests compare crops of real photos with OpenCV's, byte for byte.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from streamrec.embed.align import FACE_SIZE, TEMPLATE_160, _similarity, margin_regions

__all__ = ["box_crops", "warp_crops"]

_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)


def _gather(frames: torch.Tensor, frame: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Pixels ``(k, R, C, 3)`` at every ``rows (k, R)`` x ``cols (k, C)`` of each crop's frame."""
    n, h, w, c = frames.shape
    index = frame[:, None, None] * (h * w) + rows[:, :, None] * w + cols[:, None, :]
    return frames.reshape(n * h * w, c)[index.reshape(-1)].reshape(*index.shape, c)


def _scale(length: int, size: int) -> tuple[float, float]:
    """OpenCV's ``inv_scale`` and ``scale`` (in double) for resizing ``length`` to ``size``."""
    inv = size / length
    return inv, 1.0 / inv


def _horizontal(
    frames: torch.Tensor, frame: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Each source row of ``rows (k, size, R)`` combined along x: ``sum_t pixel(row, cols[..., t])
    * weights[..., t]`` added tap by tap in order (OpenCV's order), in ``weights``' dtype.
    ``cols``/``weights``: ``(k, size, T)``. Returns ``(k, size, R, size, 3)``."""
    k, size, taps = cols.shape
    flat_rows = rows.reshape(k, -1)
    total = None
    for t in range(taps):
        term = _gather(frames, frame, flat_rows, cols[:, :, t]).to(weights.dtype) * weights[:, None, :, t, None]
        total = term if total is None else total + term
    assert total is not None
    return total.reshape(k, size, rows.shape[2], size, 3)


def _upload(tables: list[np.ndarray], device: torch.device, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    return torch.from_numpy(np.stack(tables)).to(device, dtype)


# -- INTER_LINEAR ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _linear_taps(length: int, size: int, area_mode: bool, horizontal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The two source indices (clamped into the crop) and 11-bit weights of each output
    position, ``(size, 2)`` int64 each, as OpenCV's ``resize`` computes them for
    ``INTER_LINEAR`` (or for ``INTER_AREA`` in its "area mode" when one side enlarges)."""
    inv, scale = _scale(length, size)
    d = np.arange(size, dtype=np.float64)
    if area_mode:
        start = np.floor(d * scale).astype(np.int64)
        frac = ((d + 1) - (start + 1) * inv).astype(np.float32)
        frac = np.where(frac <= 0, np.float32(0), frac - np.floor(frac)).astype(np.float32)
    else:
        frac = ((d + 0.5) * scale - 0.5).astype(np.float32)
        start = np.floor(frac).astype(np.int64)
        frac = (frac - start.astype(np.float32)).astype(np.float32)
    if horizontal:  # columns outside the crop snap to its edge with all the weight
        frac = np.where((start < 0) | (start >= length - 1), np.float32(0), frac).astype(np.float32)
    index = np.clip(np.stack([start, start + 1], axis=1), 0, length - 1)
    weights = np.rint(np.stack([np.float32(1) - frac, frac], axis=1) * np.float32(_COEF_SCALE)).astype(np.int64)
    return index, weights


def _linear(frames: torch.Tensor, frame: torch.Tensor, regions: np.ndarray, area_mode: bool, size: int) -> torch.Tensor:
    """OpenCV's fixed-point linear resize of each region, ``(k, size, size, 3)`` uint8."""
    device = frames.device
    x_taps = [_linear_taps(int(r[2] - r[0]), size, area_mode, True) for r in regions]
    y_taps = [_linear_taps(int(r[3] - r[1]), size, area_mode, False) for r in regions]
    cols = _upload([t[0] + r[0] for t, r in zip(x_taps, regions)], device)
    rows = _upload([t[0] + r[1] for t, r in zip(y_taps, regions)], device)
    alpha = _upload([t[1] for t in x_taps], device, torch.int32)
    beta = _upload([t[1] for t in y_taps], device, torch.int32)[:, :, :, None, None]
    rowsum = _horizontal(frames, frame, rows, cols, alpha)
    # The vertical step as OpenCV's vector code does it: ((h >> 4) * beta) >> 16 per row,
    # the two rows added, then (+ 2) >> 2 and saturated.
    blended = ((rowsum >> 4) * beta) >> 16
    return ((blended[:, :, 0] + blended[:, :, 1] + 2) >> 2).clamp(0, 255).to(torch.uint8)


# -- INTER_AREA ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _area_taps(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``computeResizeAreaTab``: for each output position, the source indices it
    covers and their coverage weights (float32), ``(size, T)``; unused taps weigh 0."""
    _, scale = _scale(length, size)
    start = np.arange(size, dtype=np.float64) * scale
    end = start + scale
    cell = np.minimum(scale, length - start)
    first = np.ceil(start).astype(np.int64)
    last = np.minimum(np.floor(end).astype(np.int64), length - 1)
    first = np.minimum(first, last)
    left = first - start > 1e-3
    right = end - last > 1e-3
    count = left.astype(np.int64) + (last - first) + right
    taps = int(count.max())
    t = np.arange(taps)[None, :]
    index = (first - left)[:, None] + t
    weights = np.where(t < count[:, None], (1.0 / cell)[:, None], 0.0)
    weights[:, 0] = np.where(left, (first - start) / cell, weights[:, 0])
    last_tap = np.clip(count - 1, 0, taps - 1)
    tail = np.minimum(np.minimum(end - last, 1.0), cell) / cell
    weights[np.arange(size), last_tap] = np.where(right, tail, weights[np.arange(size), last_tap])
    return np.clip(index, 0, length - 1), weights.astype(np.float32)


def _pad_taps(tables: list[np.ndarray]) -> list[np.ndarray]:
    """Tap tables of different widths padded to the widest with zero weights (index 0)."""
    taps = max(t.shape[1] for t in tables)
    return [np.pad(t, ((0, 0), (0, taps - t.shape[1]))) for t in tables]


def _area(frames: torch.Tensor, frame: torch.Tensor, regions: np.ndarray, size: int) -> torch.Tensor:
    """OpenCV's ``INTER_AREA`` shrink of each region (at least ``size`` both ways)."""
    device = frames.device
    x_taps = [_area_taps(int(r[2] - r[0]), size) for r in regions]
    y_taps = [_area_taps(int(r[3] - r[1]), size) for r in regions]
    cols = _upload(_pad_taps([t[0] + r[0] for t, r in zip(x_taps, regions)]), device)
    rows = _upload(_pad_taps([t[0] + r[1] for t, r in zip(y_taps, regions)]), device)
    alpha = _upload(_pad_taps([t[1] for t in x_taps]), device, torch.float32)
    beta = _upload(_pad_taps([t[1] for t in y_taps]), device, torch.float32)[:, :, :, None, None]
    rowsum = _horizontal(frames, frame, rows, cols, alpha)
    total = rowsum[:, :, 0] * beta[:, :, 0]
    for j in range(1, rowsum.shape[2]):
        total = total + rowsum[:, :, j] * beta[:, :, j]
    return torch.round(total).clamp(0, 255).to(torch.uint8)


def _block_average(frames: torch.Tensor, frame: torch.Tensor, regions: np.ndarray, factors: np.ndarray, size: int) -> torch.Tensor:
    """OpenCV's ``INTER_AREA`` when the shrink factors are whole numbers ``(k, 2)`` (x, y):
    integer block sums, ``(sum + 2) >> 2`` for 2x2 blocks, else ``sum * (1 / area)`` rounded."""
    device = frames.device
    widest = int(factors.max())
    t = np.arange(widest)[None, None, :]
    d = np.arange(size)[None, :, None]
    fx, fy = factors[:, 0, None, None], factors[:, 1, None, None]
    cols = torch.from_numpy(regions[:, 0, None, None] + np.minimum(d * fx + t, d * fx + fx - 1)).to(device)
    rows = torch.from_numpy(regions[:, 1, None, None] + np.minimum(d * fy + t, d * fy + fy - 1)).to(device)
    ones = torch.from_numpy(np.broadcast_to(t < fx, (len(regions), size, widest)).astype(np.int32)).to(device)
    inside = torch.from_numpy((t < fy).astype(np.int32)).to(device)[:, :, :, None, None]
    sums = (_horizontal(frames, frame, rows, cols, ones) * inside).sum(dim=2)
    area = factors[:, 0] * factors[:, 1]
    scale = torch.from_numpy(np.float32(1) / area.astype(np.float32)).to(device)[:, None, None, None]
    rounded = torch.round(sums.to(torch.float32) * scale)
    halves = torch.from_numpy((factors[:, 0] == 2) & (factors[:, 1] == 2)).to(device)[:, None, None, None]
    return torch.where(halves, (sums + 2) >> 2, rounded.to(torch.int32)).clamp(0, 255).to(torch.uint8)


def _whole(scale: np.ndarray) -> np.ndarray:
    """Which shrink factors OpenCV treats as whole numbers (within ``DBL_EPSILON``)."""
    return np.abs(scale - np.rint(scale)) < np.finfo(np.float64).eps


def box_crops(
    frames: torch.Tensor, frame: np.ndarray, boxes: np.ndarray, margin: float, size: int = FACE_SIZE
) -> torch.Tensor:
    """``(k, size, size, 3)`` uint8 crops around ``boxes (k, 4)`` of ``frames[frame[i]]``,
    widened by ``margin``, on the frames' device: equal to
    :func:`streamrec.embed.align.box_crops` of each frame."""
    _, h, w, _ = frames.shape
    regions = margin_regions(boxes, margin, w, h)
    widths, heights = regions[:, 2] - regions[:, 0], regions[:, 3] - regions[:, 1]
    shrinking = (widths > size) | (heights > size)
    both = shrinking & (widths >= size) & (heights >= size)
    factors = np.stack([1.0 / (size / widths), 1.0 / (size / heights)], axis=1)
    whole = both & _whole(factors).all(axis=1)
    index = torch.from_numpy(frame.astype(np.int64)).to(frames.device)
    out = torch.empty((len(boxes), size, size, 3), dtype=torch.uint8, device=frames.device)
    kinds = {
        "linear": ~shrinking,
        "area mode": shrinking & ~both,
        "area": both & ~whole,
        "blocks": whole,
    }
    for kind, mask in kinds.items():
        members = np.flatnonzero(mask)
        if not len(members):
            continue
        chosen, picked = index[torch.from_numpy(members).to(frames.device)], regions[members]
        if kind in ("linear", "area mode"):
            crops = _linear(frames, chosen, picked, kind == "area mode", size)
        elif kind == "area":
            crops = _area(frames, chosen, picked, size)
        else:
            crops = _block_average(frames, chosen, picked, np.rint(factors[members]).astype(np.int64), size)
        out[torch.from_numpy(members).to(frames.device)] = crops
    return out


# -- warpAffine ----------------------------------------------------------------------------------
def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 ``a * b + c`` rounded once, as a fused multiply-add: the product of two float32
    values is exact in float64, so only the final rounding to float32 remains."""
    return (a.double() * b.double() + c.double()).to(torch.float32)


def _inverse_maps(landmarks: np.ndarray, size: int) -> np.ndarray:
    """``(k, 6)`` float32 inverse similarity maps (output pixel -> source position), inverted in
    double as ``warpAffine`` does, then rounded to float32 as its kernels use them."""
    template = (TEMPLATE_160 * (size / FACE_SIZE)).astype(np.float64)
    maps = np.empty((len(landmarks), 6), np.float64)
    for i, points in enumerate(landmarks):
        m = _similarity(points.astype(np.float64), template).ravel()
        det = m[0] * m[4] - m[1] * m[3]
        det = 1.0 / det if det != 0 else 0.0
        a11, a22 = m[4] * det, m[0] * det
        m[0], m[1], m[3], m[4] = a11, m[1] * -det, m[3] * -det, a22
        m[2], m[5] = -m[0] * m[2] - m[1] * m[5], -m[3] * m[2] - m[4] * m[5]
        maps[i] = m
    return maps.astype(np.float32)


def warp_crops(frames: torch.Tensor, frame: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> torch.Tensor:
    """``(k, size, size, 3)`` uint8 faces of ``frames[frame[i]]`` warped so their landmarks
    ``(k, 5, 2)`` match the template, on the frames' device: equal to
    :func:`streamrec.embed.align.warp_crops` of each frame (border pixels replicated)."""
    n, h, w, c = frames.shape
    device = frames.device
    m = torch.from_numpy(_inverse_maps(landmarks, size)).to(device)[:, :, None, None]
    d = torch.arange(size, dtype=torch.float32, device=device)
    rows, cols = d[None, :, None], d[None, None, :]
    # Per output row the offset y * M[1] + M[2] in float32, then x * M[0] + offset fused.
    x = _fma(m[:, 0], cols, rows * m[:, 1] + m[:, 2])
    y = _fma(m[:, 3], cols, rows * m[:, 4] + m[:, 5])
    x0, y0 = torch.floor(x), torch.floor(y)
    alpha, beta = (x - x0)[..., None], (y - y0)[..., None]
    ix, iy = x0.to(torch.int64), y0.to(torch.int64)
    base = torch.from_numpy(frame.astype(np.int64)).to(device)[:, None, None] * (h * w)
    flat = frames.reshape(n * h * w, c)

    def pixel(dy: int, dx: int) -> torch.Tensor:
        index = base + (iy + dy).clamp(0, h - 1) * w + (ix + dx).clamp(0, w - 1)
        return flat[index.reshape(-1)].reshape(*index.shape, c).to(torch.float32)

    top = _fma(alpha, pixel(0, 1) - pixel(0, 0), pixel(0, 0))
    bottom = _fma(alpha, pixel(1, 1) - pixel(1, 0), pixel(1, 0))
    return torch.round(_fma(beta, bottom - top, top)).clamp(0, 255).to(torch.uint8)
