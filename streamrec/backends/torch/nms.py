"""Non-maximum suppression per frame on the device, making the same choices as
:mod:`streamrec.detect.boxes`.

Two implementations, because the cascade has two kinds of candidate sets:

* :func:`nms_grid` for stage 1, where P-Net's grid boxes are integer-valued and there can be
  thousands per frame: torchvision's greedy ``nms`` (C++ or CUDA) on boxes shifted apart by
  group. A shift usually rounds coordinates, which is why ``batched_nms`` is not used as it
  is; here each group moves by a multiple of a power of two and every coordinate stays an integer
  below 2**24, so the shifted sums, differences, areas and ratios are exactly the unshifted ones.
* :func:`nms_matrix` for stages 2 and 3, where boxes have fractional coordinates but are few:
  the overlap matrix of each frame's candidates, padded into one ``(frames, k, k)`` tensor, and
  the greedy rule solved as a fixed point (a box is kept iff no kept box before it overlaps it
  too much); each pass settles at least one more box in order, real detections settle in a few.
  It offers both overlap rules: IoU and MTCNN's final intersection over the smaller box.

Both return kept indices grouped by frame (ascending) and best first within a frame, the order
the host code produces, because later ties between equal scores are broken by position.
"""

from __future__ import annotations

import torch
import torchvision  # type: ignore[import-untyped]

__all__ = ["nms_grid", "nms_matrix"]

#: Integers up to this are exact in float32.
_EXACT_FLOAT32 = 2**24
#: Boxes one suppression call takes at most (a single larger group excepted), on the CPU and on
#: CUDA: the bounds above which torchvision's own batched_nms goes class by class (it counts
#: coordinates: 4,000 on the CPU, 100,000 elsewhere).
_BOXES_PER_CALL = {False: 1_000, True: 25_000}


def _by_group(kept: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``kept`` (best first) stably regrouped by ascending group."""
    return kept[torch.sort(groups[kept], stable=True).indices]


def _runs(groups: torch.Tensor, most_groups: int, most_boxes: int) -> list[tuple[int, int]]:
    """Consecutive group ranges ``[first, end)`` of at most ``most_groups`` groups and, unless
    one group alone is larger, at most ``most_boxes`` boxes: the calls :func:`nms_grid` makes."""
    counts = torch.bincount(groups).tolist()
    runs, first, boxes = [], 0, 0
    for group, count in enumerate(counts):
        if group > first and (group - first == most_groups or boxes + count > most_boxes):
            runs.append((first, group))
            first, boxes = group, 0
        boxes += count
    runs.append((first, len(counts)))
    return runs


def nms_grid(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float, span: int) -> torch.Tensor:
    """Greedy IoU suppression within each group of integer-valued boxes, equal to
    :func:`streamrec.detect.boxes.nms` run per group.

    ``boxes`` ``(k, 4)`` float32 with integer values in ``[0, span)``; ``groups`` ``(k,)`` int64.
    ``span`` must be a power of two. Returns kept indices by group, best first within a group.
    """
    if not len(boxes):
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    per_call = _EXACT_FLOAT32 // span
    if per_call < 1:
        raise ValueError(f"boxes up to {span} px cannot be shifted exactly in float32")
    # torchvision breaks ties between equal scores by a sort that is not stable on CUDA; the host
    # takes equal scores in index order. Distinct ranks in that order make both choose alike.
    order = torch.sort(scores, descending=True, stable=True).indices
    rank = torch.empty_like(scores)
    rank[order] = torch.arange(len(scores), 0, -1, dtype=scores.dtype, device=scores.device)
    kept = []
    # Normally one call. Its cost grows with the square of its boxes (an all-pairs bit mask on
    # CUDA), so like torchvision's batched_nms it goes group by group beyond a few thousand.
    for first, end in _runs(groups, per_call, _BOXES_PER_CALL[boxes.device.type == "cuda"]):
        members = torch.nonzero((groups >= first) & (groups < end)).flatten()
        shift = ((groups[members] - first) * span).to(torch.float32)[:, None]
        keep = torchvision.ops.nms(boxes[members] + shift, rank[members], threshold)
        kept.append(members[keep])
    return _by_group(torch.cat(kept), groups)


def _overlap(boxes: torch.Tensor, extra: float, by_min: bool) -> torch.Tensor:
    """``(g, k, k)`` overlap of every box with every other box of its group; ``boxes`` is
    ``(g, k, 4)``. The float32 operations of :func:`streamrec.detect.boxes._overlap`, in order."""
    x1, y1, x2, y2 = boxes.unbind(2)
    area = (x2 - x1 + extra) * (y2 - y1 + extra)
    w = (torch.minimum(x2[:, :, None], x2[:, None, :]) - torch.maximum(x1[:, :, None], x1[:, None, :]) + extra).clamp_min(0.0)
    h = (torch.minimum(y2[:, :, None], y2[:, None, :]) - torch.maximum(y1[:, :, None], y1[:, None, :]) + extra).clamp_min(0.0)
    inter = w * h
    if by_min:
        return inter / torch.minimum(area[:, :, None], area[:, None, :])
    return inter / (area[:, :, None] + area[:, None, :] - inter)


def nms_matrix(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float, by_min: bool
) -> torch.Tensor:
    """Greedy suppression within each group, equal to :func:`streamrec.detect.boxes.nms`
    (``by_min=False``: IoU, areas without the +1) or :func:`~streamrec.detect.boxes.nms_min`
    (``by_min=True``: intersection over the smaller box, inclusive areas) run per group.

    Ranks by score, best first; equal scores keep their order for IoU and are taken last index
    first for the smaller-box rule (the order of a stable ascending sort, reversed). Returns
    kept indices by group, in that rank order within a group.
    """
    if not len(boxes):
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    if by_min:
        order = torch.sort(scores, stable=True).indices.flip(0)
    else:
        order = torch.sort(scores, descending=True, stable=True).indices
    order = _by_group(order, groups)
    group = groups[order]
    counts = torch.bincount(group)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(order), device=boxes.device) - starts[group]
    size = int(counts.max())
    padded = torch.zeros((len(counts), size, 4), dtype=boxes.dtype, device=boxes.device)
    padded[group, slot] = boxes[order]
    valid = torch.zeros((len(counts), size), dtype=torch.bool, device=boxes.device)
    valid[group, slot] = True
    later = torch.ones((size, size), dtype=torch.bool, device=boxes.device).triu(1)
    suppresses = (_overlap(padded, 1.0 if by_min else 0.0, by_min) > threshold) & later & valid[:, :, None]
    keep = valid
    while True:
        updated = valid & ~(suppresses & keep[:, :, None]).any(dim=1)
        if torch.equal(updated, keep):
            break
        keep = updated
    index = torch.zeros((len(counts), size), dtype=torch.int64, device=boxes.device)
    index[group, slot] = order
    return index[keep]
