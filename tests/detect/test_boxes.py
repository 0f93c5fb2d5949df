"""Box arithmetic against the reference implementations it reproduces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import nms as torchvision_nms

from streamrec.detect import boxes as bx


def _random_boxes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32), rng.random(n).astype(np.float32)


@pytest.mark.parametrize("n", [0, 1, 7, 300, 1000, 3000])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_equals_torchvision(n, threshold):
    boxes, scores = _random_boxes(n, n)
    ours = bx.nms(boxes, scores, threshold) if n else np.zeros(0, np.int64)
    theirs = torchvision_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
    np.testing.assert_array_equal(ours, theirs)


def _nms_min_reference(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """The textbook loop: keep the best, drop what overlaps it (min-area rule), repeat."""
    order = list(np.argsort(scores)[::-1])
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + 1)
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + 1)
            area = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
            if w * h / min(area(boxes[i]), area(boxes[j])) <= threshold:
                rest.append(j)
        order = rest
    return keep


@pytest.mark.parametrize("n", [5, 60, 500, 1200])
def test_nms_min_equals_reference_loop(n):
    boxes, scores = _random_boxes(n, 100 + n)
    assert bx.nms_min(boxes, scores, 0.7).tolist() == _nms_min_reference(boxes, scores, 0.7)


def test_batched_keeps_groups_apart():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    kept = bx.batched(bx.nms, boxes, scores, np.array([0, 0, 1]), 0.5)
    assert sorted(kept.tolist()) == [0, 2]


def test_square_and_crop_regions():
    squares = bx.square(np.array([[10, 20, 30, 60]], np.float32))
    np.testing.assert_allclose(squares, [[0, 20, 40, 60]])
    regions, valid = bx.crop_regions(np.array([[-5.7, 3.2, 20.9, 500.0], [700, 10, 720, 30]], np.float32), 640, 480)
    assert valid.tolist() == [True, False]
    assert regions.tolist() == [[2, 0, 480, 20]]
