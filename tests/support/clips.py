"""Real video files written for tests: clips of given pictures, and small ones for tests that need
a source `streamrec run` accepts but are about something else (`run` reads the first frames of a
file source before it checks anything after)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np


def write_clip(path: Path, pictures: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> Path:
    """An MPEG-4 video at ``path`` of RGB ``pictures``, each ``size`` (width, height), at ``fps``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    try:
        for rgb in pictures:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def tiny_clip(path: Path, frames: int = 5) -> Path:
    """Write a ``frames``-frame 64x48 MPEG-4 video of plain grey frames to ``path``."""
    return write_clip(path, (np.full((48, 64, 3), 40 * index % 256, np.uint8) for index in range(frames)), 10.0, (64, 48))
