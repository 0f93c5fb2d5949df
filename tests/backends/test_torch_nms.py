"""Suppression on the device keeps the boxes the host keeps, in the host's order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.backends.torch.nms import nms_grid, nms_matrix
from streamrec.detect import boxes as bx


def _candidates(seed: int, count: int, frames: int, integer: bool) -> tuple[np.ndarray, ...]:
    """Crowded candidates: many overlapping boxes, several per frame, scores with many ties
    (the saturated 1.0 of the nets among them)."""
    rng = np.random.default_rng(seed)
    corner = rng.integers(0, 120, (count, 2))
    side = rng.integers(4, 40, (count, 1))
    boxes = np.concatenate([corner, corner + side], axis=1).astype(np.float32)
    if not integer:
        boxes += rng.random((count, 4)).astype(np.float32) * 3
    scores = rng.choice(np.array([0.61, 0.7, 0.93, 1.0], np.float32), count) if seed % 2 else rng.random(count).astype(np.float32)
    groups = rng.integers(0, frames, count).astype(np.int64)
    return boxes, scores.astype(np.float32), groups


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(a) for a in arrays]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 300), frames=st.integers(1, 6))
def test_grid_suppression_equals_the_hosts_per_frame(seed, count, frames):
    boxes, scores, groups = _candidates(seed, count, frames, integer=True)
    for threshold in (0.5, 0.7):
        expected = bx.batched(bx.nms, boxes, scores, groups, threshold)
        np.testing.assert_array_equal(nms_grid(*_tensors(boxes, scores, groups), threshold, 256).numpy(), expected)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 300), frames=st.integers(1, 6))
def test_matrix_suppression_by_iou_equals_the_hosts_per_frame(seed, count, frames):
    boxes, scores, groups = _candidates(seed, count, frames, integer=False)
    expected = bx.batched(bx.nms, boxes, scores, groups, 0.7)
    np.testing.assert_array_equal(nms_matrix(*_tensors(boxes, scores, groups), 0.7, by_min=False).numpy(), expected)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 300), frames=st.integers(1, 6))
def test_matrix_suppression_by_the_smaller_box_equals_the_hosts(seed, count, frames):
    """Distinct scores: the host ranks ties by NumPy's default sort, whose order for equal keys
    is unspecified (it changes with the CPU's vector instructions)."""
    boxes, _, groups = _candidates(seed, count, frames, integer=False)
    scores = np.random.default_rng(seed).permutation(count).astype(np.float32) / count
    expected = bx.batched(bx.nms_min, boxes, scores, groups, 0.7)
    np.testing.assert_array_equal(nms_matrix(*_tensors(boxes, scores, groups), 0.7, by_min=True).numpy(), expected)


def test_ties_under_the_smaller_box_rule_go_to_the_later_candidate():
    """Two equal scores (O-Net saturates at 1.0): the later candidate ranks first, as a stable
    ascending sort reversed orders them, and as the host does for the few faces of one frame."""
    boxes = np.array([[10, 10, 50, 50], [11, 11, 51, 51], [200, 200, 240, 240]], np.float32)
    scores = np.array([1.0, 1.0, 0.9], np.float32)
    groups = np.zeros(3, np.int64)
    kept = nms_matrix(*_tensors(boxes, scores, groups), 0.7, by_min=True).numpy()
    np.testing.assert_array_equal(kept, [1, 2])
    np.testing.assert_array_equal(kept, bx.nms_min(boxes, scores, 0.7))


def test_many_groups_split_into_exact_calls():
    """More frames and levels than one shift range holds: still exact, still by group."""
    boxes, scores, groups = _candidates(5, 400, 1, integer=True)
    groups = np.arange(400, dtype=np.int64) % 300  # 300 groups of span 2**16: 256 per call
    expected = bx.batched(bx.nms, boxes, scores, groups, 0.5)
    np.testing.assert_array_equal(nms_grid(*_tensors(boxes, scores, groups), 0.5, 2**16).numpy(), expected)


def test_groups_beyond_a_calls_box_bound_are_split_between_calls_exactly():
    """Thousands of candidates per frame (a crowd at min face 20, batched): suppressed a few
    thousand boxes per call, group by group, with the result of one call, ties included."""
    boxes, scores, groups = _candidates(7, 4_000, 5, integer=True)
    assert np.bincount(groups).max() < 1_000 < len(boxes)  # more than one call, no group split
    expected = bx.batched(bx.nms, boxes, scores, groups, 0.5)
    np.testing.assert_array_equal(nms_grid(*_tensors(boxes, scores, groups), 0.5, 256).numpy(), expected)


def test_boxes_too_large_to_shift_exactly_are_refused():
    boxes, scores, groups = _candidates(1, 10, 2, integer=True)
    with pytest.raises(ValueError, match="cannot be shifted exactly"):
        nms_grid(*_tensors(boxes, scores, groups), 0.5, 2**25)


def test_nothing_to_suppress():
    empty = [torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64)]
    assert len(nms_grid(*empty, 0.5, 256)) == 0
    assert len(nms_matrix(*empty, 0.7, by_min=True)) == 0
