"""annotate(): boxes and tags drawn on a copy, colours per decision, sizes per frame size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.bus.messages import FaceOverlay, Overlay
from streamrec.render.annotate import KNOWN, UNDECIDED, UNKNOWN, annotate, tag_text
from tests.render.frames import face, overlay, video_frame


def _grey(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 128, np.uint8)


def _tag_rows(image: np.ndarray, box: list[float], colour: tuple[int, int, int]) -> int:
    """Rows of tag fill just inside the tag's left edge, above the box."""
    x1, y1 = round(box[0]), round(box[1])
    column = image[:y1, x1 + 1]
    return int((column == colour).all(axis=1).sum())


def test_boxes_are_drawn_on_a_new_image_and_the_frame_is_left_alone(faces_dir: Path):
    frame = video_frame(faces_dir / "barack_obama" / "1.jpg", 640, 360)
    original = frame.copy()
    boxes = [[60.0, 80.0, 160.0, 200.0], [400.0, 100.0, 500.0, 230.0]]
    faces = [face(boxes[0], "Barack Obama", True), face(boxes[1], "...", False, 0.0, 2)]
    out = annotate(frame, overlay("front", 7, frame, faces))
    assert np.array_equal(frame, original)
    assert out.shape == frame.shape and out.dtype == np.uint8 and not np.shares_memory(out, frame)
    for x1, y1, _, y2 in boxes:
        left_edge = (slice(round(y1) + 20, round(y2) - 20), round(x1))
        assert np.abs(out[left_edge].astype(int) - frame[left_edge]).mean() > 20
    # far from the boxes, their tags and the corner, the picture is untouched
    assert np.array_equal(out[240:320, 200:380], frame[240:320, 200:380])


def test_each_decision_has_its_own_colour_and_the_corner_is_readable():
    frame = _grey(640, 360)
    boxes = {KNOWN: [40.0, 100.0, 140.0, 220.0], UNKNOWN: [260.0, 100.0, 360.0, 220.0], UNDECIDED: [480.0, 100.0, 580.0, 220.0]}
    faces = [face(boxes[KNOWN], "Ada", True), face(boxes[UNKNOWN], "unknown", False), face(boxes[UNDECIDED], "...", False)]
    out = annotate(frame, overlay("front", 1, frame, faces))
    for colour, (x1, y1, _, y2) in boxes.items():
        assert tuple(out[round((y1 + y2) / 2), round(x1)]) == colour
        assert _tag_rows(out, boxes[colour], colour) >= 16  # a filled tag in the box's colour
    corner = out[-20:, :100].astype(int)
    assert corner.min() < 60 and corner.max() > 200  # darkened strip with white text on it


def test_tags_grow_with_the_frame():
    rows = {}
    for width, height in ((640, 360), (1920, 1080)):
        scale = height / 360
        box = [200 * scale, 120 * scale, 300 * scale, 250 * scale]
        frame = _grey(width, height)
        rows[height] = _tag_rows(annotate(frame, overlay("front", 1, frame, [face(box, "Barack Obama", True)])), box, KNOWN)
    assert rows[360] >= 16
    assert rows[1080] >= 2.5 * rows[360]


def test_faces_at_the_edges_and_names_in_any_script():
    frame = _grey(640, 360)
    faces = [
        face([-30.0, -20.0, 80.0, 90.0], "李小龍", True),  # past the top-left corner: tag goes below
        face([590.0, 300.0, 700.0, 420.0], "José Núñez", False, 0.4),  # past the bottom-right
    ]
    out = annotate(frame, overlay("entrée", 1, frame, faces))
    assert out.shape == frame.shape
    below = out[92:130, 2:60]  # the first face's tag, under its clipped box
    assert (below == KNOWN).all(axis=2).sum() > 100 and below.max() == 255  # fill + white glyphs
    assert tag_text(FaceOverlay(**faces[1])) == "José Núñez 0.40"
    assert tag_text(FaceOverlay(**face([0, 0, 1, 1], "...", False))) == "..."


def test_a_frame_that_is_not_rgb_is_refused():
    grey = np.zeros((360, 640), np.uint8)
    with pytest.raises(ValueError, match="RGB uint8"):
        annotate(grey, Overlay("front", 1, 0.0, 360, 640, 0.0))
