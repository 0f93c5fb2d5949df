"""Exact area resampling of image regions, from an integral image.

MTCNN's published weights were run in facenet-pytorch with ``interpolate(mode="area")``, i.e.
adaptive average pooling: output cell ``i`` of ``out`` averages input rows
``floor(i * in / out)`` up to ``ceil((i + 1) * in / out)``. OpenCV's ``INTER_AREA`` weighs partial
pixels instead and moves detections by 1-4 px, so the detector reproduces the pooling exactly.

Box sums come from an integral image, four corner look-ups per output pixel: cost depends on
the output size only, and one integral image per frame serves the whole pyramid and every R-Net
and O-Net crop.

With ``threads`` above 1 a level's rows, or the regions, are split between the calling thread and
helper threads (NumPy's look-ups and arithmetic release the GIL): while the host resamples, the
inference engine's threads are idle, so the cores it leaves are the host's to use.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

__all__ = ["integral_images", "resample_frames", "resample_regions"]

_INT32_SAFE_PIXELS = (2**31 - 1) // 255
#: bytes of integral-image rows one strip of a pyramid level reads (see :func:`resample_frames`)
_STRIP_BYTES = 1 << 20
#: the least work worth a thread of its own: output rows of a level, regions of a crop batch
_LEAST_ROWS = 96
_LEAST_REGIONS = 32


@functools.cache
def _helpers(count: int) -> ThreadPoolExecutor:
    """``count`` threads that take parts of a resampling beside the calling thread, kept for the
    life of the process."""
    return ThreadPoolExecutor(count, thread_name_prefix="resample")


def _in_parts(work: Callable[[slice], None], total: int, threads: int, least: int) -> None:
    """Run ``work`` over ``total`` items in up to ``threads`` contiguous slices of at least
    ``least`` items each, the calling thread taking the first."""
    parts = max(1, min(threads, total // least))
    if parts == 1:
        work(slice(0, total))
        return
    bounds = np.linspace(0, total, parts + 1).astype(int)
    slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    helpers = [_helpers(threads - 1).submit(work, part) for part in slices[1:]]
    work(slices[0])
    for helper in helpers:
        helper.result()


def integral_images(frames: np.ndarray) -> np.ndarray:
    """``(N, H + 1, W + 1, 3)`` inclusive prefix sums of uint8 ``(N, H, W, 3)`` frames.

    int32 while a whole-frame sum fits (frames up to 8.4 MP), float64 beyond: both are exact.
    """
    n, h, w, _ = frames.shape
    depth, dtype = (cv2.CV_32S, np.int32) if h * w <= _INT32_SAFE_PIXELS else (cv2.CV_64F, np.float64)
    if n == 1:  # a camera's frame at a time: OpenCV's own array, without a copy
        return cv2.integral(frames[0], sdepth=depth)[None]
    out = np.empty((n, h + 1, w + 1, 3), dtype)
    for i in range(n):
        out[i] = cv2.integral(frames[i], sdepth=depth)
    return out


def _windows(start: np.ndarray, length: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each of ``size`` pooling windows over each region, ``(k, size)``."""
    i = np.arange(size, dtype=np.int64)
    lo = (i[None, :] * length[:, None]) // size
    hi = ((i[None, :] + 1) * length[:, None] + size - 1) // size
    return start[:, None] + lo, start[:, None] + hi


def _divide(sums: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Window sums ``(k, out_h, out_w * 3)`` (each pixel's three channels side by side) to
    means in ``out``, float32 of the same shape: divide by the window height ``rows``
    ``(k or 1, out_h)``, then by the width ``cols`` ``(k or 1, out_w)``, in float32 (the order
    PyTorch's kernel uses, so results match it bit for bit). Returns ``out``.

    A pixel's three channels share one width, so the widths are repeated three times and the
    division runs over whole rows of ``out_w * 3`` values: NumPy's loop over a broadcast axis of
    length 3 costs several times more.
    """
    out[...] = sums  # the integer sums as float32
    out /= rows.astype(np.float32)[:, :, None]
    out /= np.repeat(cols.astype(np.float32), 3, axis=1)[:, None, :]
    return out


def _channels(columns: np.ndarray) -> np.ndarray:
    """The positions of each column's three channel values in a row of pixels flattened to
    ``width * 3`` values."""
    return (columns[:, None] * 3 + np.arange(3)).ravel()


def resample_frames(integral: np.ndarray, out_h: int, out_w: int, threads: int = 1) -> np.ndarray:
    """Area-resample whole frames to ``(N, out_h, out_w, 3)`` float32 (one pyramid level), on up
    to ``threads`` threads.

    Separable: whole-row differences first (contiguous copies), then column differences, which
    is several times faster than four corner look-ups per pixel. The level is made in strips of
    output rows small enough that each strip's intermediate sums stay in the CPU's cache
    (:data:`_STRIP_BYTES`): a 1080p frame's first level at min face 20 took 10 ms in strips,
    16-17 ms made whole.
    """
    n, hp, wp, _ = integral.shape
    ys, ye = _windows(np.zeros(1, np.int64), np.array([hp - 1]), out_h)
    xs, xe = _windows(np.zeros(1, np.int64), np.array([wp - 1]), out_w)
    left, right = _channels(xs[0]), _channels(xe[0])
    heights, widths = ye - ys, xe - xs
    out = np.empty((n, out_h, out_w * 3), np.float32)
    step = max(1, _STRIP_BYTES // (n * wp * 3 * integral.itemsize))

    def strips(part: slice) -> None:
        for top in range(part.start, part.stop, step):
            strip = slice(top, min(top + step, part.stop))
            rows = np.take(integral, ye[0, strip], axis=1) - np.take(integral, ys[0, strip], axis=1)
            rows = rows.reshape(n, -1, wp * 3)
            sums = np.take(rows, right, axis=2) - np.take(rows, left, axis=2)
            _divide(sums, heights[:, strip], widths, out[:, strip])

    _in_parts(strips, out_h, threads, _LEAST_ROWS)
    return out.reshape(n, out_h, out_w, 3)


def resample_regions(
    integral: np.ndarray,
    frame_index: np.ndarray,
    regions: np.ndarray,
    out_h: int,
    out_w: int,
    threads: int = 1,
) -> np.ndarray:
    """Area-resample ``k`` regions to ``(k, out_h, out_w, 3)`` float32, on up to ``threads``
    threads.

    ``integral``: from :func:`integral_images`. ``frame_index``: ``(k,)`` frame of each region.
    ``regions``: ``(k, 4)`` integer ``y0, x0, y1, x1`` (end exclusive), inside the frame and
    non-empty. The result equals PyTorch's ``interpolate(mode="area")`` of each crop.
    """
    n, hp, wp, _ = integral.shape
    regions = regions.astype(np.int64)
    flat = integral.reshape(n * hp * wp, 3)
    # int32 indices where they fit: NumPy builds and follows them several times faster
    index = np.int32 if len(flat) <= np.iinfo(np.int32).max else np.int64
    first = frame_index.astype(np.int64)[:, None] * (hp * wp)
    out = np.empty((len(regions), out_h, out_w * 3), np.float32)

    def corner(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # np.take along axis 0 copies whole 3-channel rows: several times faster than fancy indexing
        return np.take(flat, (rows[:, :, None] + cols[:, None, :]).ravel(), axis=0)

    def crops(part: slice) -> None:
        mine = regions[part]
        ys, ye = _windows(mine[:, 0], mine[:, 2] - mine[:, 0], out_h)
        xs, xe = _windows(mine[:, 1], mine[:, 3] - mine[:, 1], out_w)
        top, bottom = (first[part] + ys * wp).astype(index), (first[part] + ye * wp).astype(index)
        left, right = xs.astype(index), xe.astype(index)
        sums = corner(bottom, right) - corner(top, right) - corner(bottom, left) + corner(top, left)
        _divide(sums.reshape(out[part].shape), ye - ys, xe - xs, out[part])

    _in_parts(crops, len(regions), threads, _LEAST_REGIONS)
    return out.reshape(len(regions), out_h, out_w, 3)
