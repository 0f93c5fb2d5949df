"""Shared fixtures of the backend tests: the torch backend on the CPU beside the ONNX Runtime
path, real frames to run them on, and LFW View 1 accuracy per backend and precision."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamrec.faces import FaceModels, ModelsConfig
from streamrec.images import load_image
from tests.conftest import run_cli

#: Every readable photo of the shared data with a face or, for nonfaces, without one.
PHOTO_FOLDERS = ("faces/*/*", "scenes/*", "edge_cases/*.*", "nonfaces/*")


@pytest.fixture(scope="session")
def torch_models(engine_dir: Path) -> FaceModels:
    """Detector and embedder of the torch backend on the CPU, every other setting default."""
    return FaceModels(ModelsConfig(backend="torch"), engine_dir)


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


@pytest.fixture(scope="session")
def lfw_accuracy(lfw_view1: Path) -> Callable[..., float]:
    """``streamrec eval-pairs`` on LFW View 1, run once per backend, precision and device (the
    backend's own by default) the tests ask for.

    Each run detects and embeds all 1,549 images: 2-3 minutes on an idle 2-core machine, up to
    4 on a loaded one. Caching them here, for every backend's tests, keeps it at one run each
    (ONNX Runtime fp32, the reference of them all, runs once) however many tests compare them.
    """
    results: dict[tuple[str, str, str | None], float] = {}

    def accuracy(backend: str, precision: str, device: str | None = None) -> float:
        if (backend, precision, device) not in results:
            run = run_cli(
                "eval-pairs", "--pairs", str(lfw_view1 / "pairsDevTest.txt"), "--images", str(lfw_view1 / "deepfunneled"),
                "--backend", backend, "--precision", precision, *(["--device", device] if device else []), "--json",
                timeout=1800,
            )
            assert run.returncode == 0, run.stderr
            report = json.loads(run.stdout)
            assert report["pairs_scored"] == 1000
            results[backend, precision, device] = report["accuracy"]
        return results[backend, precision, device]

    return accuracy
