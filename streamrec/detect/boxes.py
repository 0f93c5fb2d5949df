"""Box arithmetic of the MTCNN cascade, in float32 as the published implementation computes it.

Boxes are ``(k, 4)`` float32 ``x1, y1, x2, y2`` arrays. Two overlap rules are used, as in the
reference cascade: intersection over union for stages 1 and 2 (torchvision's ``nms``: areas
without the +1), and intersection over the smaller box for stage 3 (areas with the +1).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Suppressor = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

__all__ = ["nms", "nms_min", "batched", "regress", "square", "crop_regions"]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression by IoU; returns kept indices, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds ``threshold``.
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Non-maximum suppression by intersection over the smaller box (MTCNN's final stage).

    Uses inclusive pixel areas (``+1``) and keeps boxes whose overlap is ``<= threshold``.
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        order = rest[w * h / np.minimum(areas[i], areas[rest]) <= threshold]
    return np.asarray(keep, dtype=np.int64)


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
    kept = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        kept.append(members[suppress(boxes[members], scores[members], threshold)])
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
