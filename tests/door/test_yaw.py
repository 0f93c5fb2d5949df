"""The yaw estimate: the same for a face moved, scaled or rolled; its sign and size on real faces."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamrec.door.yaw import yaw_degrees
from streamrec.images import load_image
from tests.door.footage import frames

#: a frontal face's landmarks (left eye, right eye, nose, mouth corners as seen), nose 6 px to
#: the image's right of the midline
TURNED = np.array([[30, 40], [70, 40], [56, 60], [35, 80], [65, 80]], np.float64)


def test_a_nose_to_the_image_right_is_a_turn_to_the_persons_left() -> None:
    assert yaw_degrees(TURNED) == pytest.approx(math.degrees(math.asin(6 / 40 / 0.5)))
    mirrored = TURNED * [-1, 1]
    assert yaw_degrees(mirrored[[1, 0, 2, 4, 3]]) == pytest.approx(-yaw_degrees(TURNED))


def test_landmarks_on_one_point_are_no_face() -> None:
    assert math.isnan(yaw_degrees(np.zeros((5, 2))))


@given(
    dx=st.floats(-2000, 2000), dy=st.floats(-2000, 2000), scale=st.floats(0.05, 20),
    roll=st.floats(-30, 30),
)
def test_moving_scaling_and_rolling_a_face_keeps_its_yaw(dx: float, dy: float, scale: float, roll: float) -> None:
    angle = math.radians(roll)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = TURNED @ rotation.T * scale + [dx, dy]
    assert yaw_degrees(moved) == pytest.approx(yaw_degrees(TURNED), abs=1e-6)


def test_a_photo_moved_and_scaled_in_the_picture_keeps_its_yaw(faces_dir: Path, models) -> None:
    """A real photo's detected landmarks, the photo pasted smaller, larger, elsewhere and tilted
    on a larger picture: the estimate moves by the detector's noise only."""
    photo = load_image(faces_dir / "barack_obama" / "1.jpg").rgb
    h, w = photo.shape[:2]
    estimates = []
    for scale, angle, (x, y) in [(0.6, 0, (40, 30)), (0.9, 0, (300, 120)), (0.75, 8, (150, 60)), (0.75, -8, (420, 10))]:
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        matrix[:, 2] += (x, y)
        canvas = cv2.warpAffine(photo, matrix, (2 * w, 2 * h), borderValue=(90, 90, 90))
        faces = models.detect(canvas)[0]
        assert len(faces) >= 1
        estimates.append(yaw_degrees(faces.landmarks[0]))
    assert max(estimates) - min(estimates) < 5, estimates


def test_the_hamilton_head_turns(hamilton_clip: Path, models) -> None:
    """Frames checked by eye (tests/door/data/NOTES.md): Lin-Manuel Miranda turned to his own
    left at frame 86, to his right at frame 120, facing the camera at frame 150."""
    expected = {86: (10, 30), 120: (-40, -15), 150: (-8, 8)}
    for index, rgb in frames(hamilton_clip, 86, 150):
        if index in expected:
            faces = models.detect(rgb)[0]
            main = int(np.argmax(faces.areas))
            low, high = expected[index]
            assert low < yaw_degrees(faces.landmarks[main]) < high, index
