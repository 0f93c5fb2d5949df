"""Box arithmetic of the MTCNN cascade, in float32 as the published implementation computes it.

Boxes are ``(k, 4)`` float32 ``x1, y1, x2, y2`` arrays. Two overlap rules are used, as in the
reference cascade: intersection over union for stages 1 and 2 (torchvision's ``nms``: areas
without the +1), and intersection over the smaller box for stage 3 (areas with the +1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Suppressor = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

__all__ = ["batched", "crop_regions", "nms", "nms_min", "regress", "square"]


#: Suppression works through the boxes, best first, this many at a time (see :func:`_suppress`).
_BLOCK = 256


def _overlap(a: np.ndarray, b: np.ndarray, extra: float, by_min: bool) -> np.ndarray:
    """Overlap of every box in ``a`` (m, 4) with every box in ``b`` (n, 4): IoU, or intersection
    over the smaller area when ``by_min``; ``extra`` is 1 for inclusive pixel areas."""
    area_a = (a[:, 2] - a[:, 0] + extra) * (a[:, 3] - a[:, 1] + extra)
    area_b = (b[:, 2] - b[:, 0] + extra) * (b[:, 3] - b[:, 1] + extra)
    w = np.maximum(0.0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + extra)
    h = np.maximum(0.0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + extra)
    inter = w * h
    if by_min:
        return inter / np.minimum(area_a[:, None], area_b[None, :])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _suppress(boxes: np.ndarray, order: np.ndarray, threshold: float, inclusive: bool, by_min: bool) -> np.ndarray:
    """Greedy suppression in ``order`` (best first): a box is kept iff no kept box before it
    overlaps it by more than ``threshold``. Returns the kept indices, best first.

    Instead of a Python loop over kept boxes, the boxes go in blocks of :data:`_BLOCK`, best
    first: a block first loses the boxes that a box kept from an earlier block overlaps (one
    overlap matrix against every box kept so far), then settles among the rest as a fixed point
    on their own overlap matrix. The result is the greedy loop's exactly, at a cost that grows
    with the boxes times those kept (few: suppression keeps one box of each cluster), where the
    whole overlap matrix would grow with their square (a 1080p frame's first pyramid level
    gives P-Net thousands of candidates).
    """
    b = boxes[order]
    extra = 1.0 if inclusive else 0.0
    kept = np.zeros(0, np.int64)
    for start in range(0, len(b), _BLOCK):
        block = np.arange(start, min(start + _BLOCK, len(b)))
        if len(kept):
            block = block[~(_overlap(b[kept], b[block], extra, by_min) > threshold).any(axis=0)]
        kept = np.concatenate([kept, block[_settle(b[block], threshold, extra, by_min)]])
    return order[kept]


def _settle(b: np.ndarray, threshold: float, extra: float, by_min: bool) -> np.ndarray:
    """The greedy suppression of the boxes ``b`` (best first) among themselves, as a mask of the
    kept ones: a fixed point on their overlap matrix. Starting from "all kept", each pass settles
    at least one more box in order; real detections settle in a few passes."""
    suppresses = np.triu(_overlap(b, b, extra, by_min) > threshold, k=1)
    keep: np.ndarray = np.ones(len(b), bool)
    while True:
        updated = ~(suppresses & keep[:, None]).any(axis=0)
        if np.array_equal(updated, keep):
            return keep
        keep = updated


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression by IoU; returns kept indices, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds ``threshold``
    (torchvision's rule: areas without the +1).
    """
    return _suppress(boxes, np.argsort(-scores, kind="stable"), threshold, inclusive=False, by_min=False)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Non-maximum suppression by intersection over the smaller box (MTCNN's final stage).

    Uses inclusive pixel areas (``+1``) and keeps boxes whose overlap is ``<= threshold``.
    """
    return _suppress(boxes, np.argsort(scores)[::-1], threshold, inclusive=True, by_min=True)


def batched(
    suppress: Suppressor,
    boxes: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """Run ``suppress`` (:func:`nms` or :func:`nms_min`) independently within each group
    (frame index); returns kept indices into ``boxes``."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    if groups[0] == groups[-1] and (groups == groups[0]).all():
        return suppress(boxes, scores, threshold)
    order = np.argsort(groups, kind="stable")
    starts = np.flatnonzero(np.diff(groups[order])) + 1
    kept = [
        members[suppress(boxes[members], scores[members], threshold)]
        for members in np.split(order, starts)
    ]
    return np.concatenate(kept)


def regress(boxes: np.ndarray, offsets: np.ndarray, inclusive: bool) -> np.ndarray:
    """Apply the nets' box regression: each edge moves by ``offset * box size``.

    Stage 1 measures the size as ``x2 - x1``; stages 2 and 3 as ``x2 - x1 + 1`` (``inclusive``).
    """
    extra = 1.0 if inclusive else 0.0
    w = boxes[:, 2] - boxes[:, 0] + extra
    h = boxes[:, 3] - boxes[:, 1] + extra
    return np.stack(
        [
            boxes[:, 0] + offsets[:, 0] * w,
            boxes[:, 1] + offsets[:, 1] * h,
            boxes[:, 2] + offsets[:, 2] * w,
            boxes[:, 3] + offsets[:, 3] * h,
        ],
        axis=1,
    )


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around the same centre (side = the longer edge)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def crop_regions(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer crop windows ``(k, 4)`` ``y0, x0, y1, x1`` (end exclusive) for the next stage.

    Coordinates are truncated and clipped to the frame the way the reference cascade does (its
    crops never extend past the border with padding). Returns the windows and a mask of the boxes
    whose window is non-empty; boxes entirely outside the frame are dropped.
    """
    b = np.trunc(boxes).astype(np.int64)
    x0 = np.maximum(b[:, 0], 1) - 1
    y0 = np.maximum(b[:, 1], 1) - 1
    x1 = np.minimum(b[:, 2], width)
    y1 = np.minimum(b[:, 3], height)
    valid = (x1 > x0) & (y1 > y0)
    return np.stack([y0, x0, y1, x1], axis=1)[valid], valid
