"""The head turns of the hamilton clip (listed with how they were checked in data/NOTES.md), and
reading frames of a video as RGB arrays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

#: Lin-Manuel Miranda, one camera shot (frames 82 to 210): his first frames of the shot, turned
#: to his own left, then a turn to his right (frames 96 to 110) ...
RIGHT_TURN = (82, 140)
#: ... and, from his right, a turn back to his left (frames 132 to 158), facing the camera after
LEFT_TURN = (108, 200)


def frames(video: Path, first: int, last: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, RGB frame)`` of ``video``'s frames ``first`` to ``last`` (inclusive)."""
    capture = cv2.VideoCapture(str(video))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, first)
        for index in range(first, last + 1):
            ok, bgr = capture.read()
            if not ok:
                raise ValueError(f"{video}: no frame {index}")
            yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
