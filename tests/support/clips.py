"""Small real video files for tests that need a source `streamrec run` accepts but are about
something else: `run` reads the first frames of a file source before it checks anything after."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def tiny_clip(path: Path, frames: int = 5) -> Path:
    """Write a ``frames``-frame 64x48 MPEG-4 video of plain grey frames to ``path``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), 40 * index % 256, np.uint8))
    writer.release()
    return path
