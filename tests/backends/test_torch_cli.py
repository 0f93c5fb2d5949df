"""``--backend torch`` through the commands, as real processes: the same faces as the default
ONNX Runtime backend, LFW View 1 accuracy within 0.002 of it, and one clear line for every
device, precision or installation it cannot use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamrec.detect.types import FaceDetections
from tests.backends.compare import LFW_TOLERANCE, assert_same_faces, needs_bf16
from tests.conftest import run_cli

SCENES = ["scenes/fr_two_people.jpg", "scenes/cf_016_8.jpg", "scenes/fapi_bbt4.jpg", "faces/kit_harington/1.jpg"]


def _faces(entry: dict[str, Any]) -> FaceDetections:
    faces = entry["faces"]
    return FaceDetections(
        np.array([f["box"] for f in faces], np.float32).reshape(-1, 4),
        np.array([f["score"] for f in faces], np.float32),
        np.array([list(f["landmarks"].values()) for f in faces], np.float32).reshape(-1, 5, 2),
    )


def _json(result: subprocess.CompletedProcess) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_detect_finds_the_faces_of_the_default_backend(shared_data: Path):
    images = [str(shared_data / name) for name in SCENES]
    ours = _json(run_cli("detect", *images, "--backend", "torch", "--device", "cpu", "--json"))
    reference = _json(run_cli("detect", *images, "--json"))
    for mine, theirs in zip(ours, reference):
        assert mine["main_face"] == theirs["main_face"]
        assert_same_faces(_faces(mine), _faces(theirs), mine["image"])


#: Each refused before any image is read; the torch backend's device and bf16 refusals are
#: checked as lines in test_torch_device.py and through ``run`` in tests/pipeline/test_run_errors.py.
REFUSALS = [
    (["--backend", "torch", "--precision", "int8"], "the torch backend runs fp32 and bf16 and fp16 only (got precision 'int8')"),
    (["--backend", "torch", "--precision", "fp16"], "fp16 needs a CUDA device"),
    (["--device", "cuda"], "the onnxruntime backend runs on the CPU only (got device 'cuda')"),
    (["--precision", "fp16"], "the onnxruntime backend runs fp32 and int8 only (got precision 'fp16')"),
]


@pytest.mark.parametrize("options, message", REFUSALS)
def test_what_cannot_run_here_is_one_line(shared_data: Path, tmp_path: Path, options, message):
    """Refused before any image is read or any file written."""
    out = tmp_path / "faces.npy"
    result = run_cli("embed", str(shared_data / SCENES[0]), "--out", str(out), *options, timeout=300)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"streamrec: error: {message}"), result.stderr
    assert not out.exists()


def test_without_pytorch_the_backend_is_one_line(shared_data: Path):
    """A machine without PyTorch (made so for this process only) gets the install hint."""
    hide = "import sys; sys.modules['torch'] = None; from streamrec.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", hide, "detect", str(shared_data / SCENES[0]), "--backend", "torch"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("streamrec: error: the torch backend is not available: it needs PyTorch and torchvision (")
    assert line.endswith("pip install 'streamrec[torch]'")


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16)])
def test_lfw_view1_accuracy_within_0_002_of_onnxruntime(lfw_accuracy, precision):
    """``eval-pairs --backend torch`` (detector and embedder whole in PyTorch on the CPU) against
    ONNX Runtime fp32: the same View 1 accuracy to two pairs in 1,000, in fp32 and, on a CPU that
    computes in it, with FaceNet in bf16 (what ``auto`` picks on such a CPU without OpenVINO)."""
    assert abs(lfw_accuracy("torch", precision) - lfw_accuracy("onnxruntime", "fp32")) <= LFW_TOLERANCE
