"""Shared fixtures of the backend tests: the torch backend on the CPU beside the ONNX Runtime
path, and real frames to run them on."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamrec.faces import FaceModels, ModelsConfig
from streamrec.images import load_image

#: Every readable photo of the shared data with a face or, for nonfaces, without one.
PHOTO_FOLDERS = ("faces/*/*", "scenes/*", "edge_cases/*.*", "nonfaces/*")


@pytest.fixture(scope="session")
def torch_models() -> FaceModels:
    """Detector and embedder of the torch backend on the CPU, every other setting default."""
    return FaceModels(ModelsConfig(backend="torch"))


@pytest.fixture(scope="session")
def photos(shared_data: Path) -> dict[str, np.ndarray]:
    """The real photos as the commands see them (longer side at most 1024 px), by path."""
    paths = sorted(p for pattern in PHOTO_FOLDERS for p in shared_data.glob(pattern))
    assert len(paths) >= 50, paths
    return {str(p.relative_to(shared_data)): load_image(p, 1024).rgb for p in paths}


@pytest.fixture(scope="session")
def clip_frames(hamilton_clip: Path) -> np.ndarray:
    """16 frames spread over the hamilton clip, ``(16, 360, 640, 3)`` RGB."""
    capture = cv2.VideoCapture(str(hamilton_clip))
    frames = []
    for index in np.linspace(0, 270, 16).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        assert ok, f"cannot read frame {index} of {hamilton_clip}"
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)
