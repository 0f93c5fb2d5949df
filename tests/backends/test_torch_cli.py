"""``--backend torch`` through the commands, as real processes: the same faces and embeddings
as the default ONNX Runtime backend, LFW View 1 accuracy within 0.002 of it, and one clear line
for every device, precision or installation it cannot use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamrec.backends.torch.device import cpu_flags
from streamrec.detect.types import FaceDetections
from tests.backends.compare import assert_same_faces
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
        # JSON rounds to 0.01 px, hence the extra hundredth.
        assert_same_faces(_faces(mine), _faces(theirs), mine["image"])


def test_embed_gives_the_embeddings_of_the_default_backend(faces_dir: Path, tmp_path: Path):
    images = [str(p) for p in sorted(faces_dir.glob("*/1.*"))]
    _json(run_cli("embed", *images, "--backend", "torch", "--out", str(tmp_path / "torch.npy"), "--json"))
    _json(run_cli("embed", *images, "--out", str(tmp_path / "ort.npy"), "--json"))
    ours, reference = np.load(tmp_path / "torch.npy"), np.load(tmp_path / "ort.npy")
    assert ours.shape == reference.shape == (len(images), 512)
    assert np.sum(ours * reference, axis=1).min() >= 0.9999


def _refusals() -> list[tuple[list[str], str]]:
    cases = [
        (["--backend", "torch", "--precision", "int8"], "the torch backend computes FaceNet in fp32, fp16, bf16 (got 'int8')"),
        (["--backend", "torch", "--precision", "fp16"], "fp16 needs a CUDA device"),
        (["--backend", "torch", "--device", "tpu"], "unknown device 'tpu'; use cpu, cuda or cuda:N"),
        (["--device", "cuda"], "device 'cuda': the onnxruntime backend runs on the CPU"),
        (["--precision", "bf16"], "the onnxruntime backend computes FaceNet in fp32, int8 (got 'bf16')"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--backend", "torch", "--device", "cuda"], "device 'cuda': no CUDA device is visible"))
    if not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        cases.append((["--backend", "torch", "--precision", "bf16"], "bf16 on the CPU needs AVX-512 BF16 or AMX"))
    return cases


@pytest.mark.parametrize("options, message", _refusals())
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
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamrec: error: the torch backend needs PyTorch and torchvision (")
    assert lines[0].endswith("pip install 'streamrec[torch]'")


@pytest.fixture(scope="session")
def lfw_reports(lfw_view1: Path) -> dict[str, dict[str, Any]]:
    """``eval-pairs`` on LFW View 1 with each backend, once per session.

    Each run detects and embeds all 1,549 images of the 1,000 pairs: about 2-3 minutes each on
    a quiet 2-core machine (the torch run a little longer: PyTorch's CPU kernels are slower than
    ONNX Runtime's there), so this module adds about 5-6 minutes to CI.
    """
    pairs, images = str(lfw_view1 / "pairsDevTest.txt"), str(lfw_view1 / "deepfunneled")
    return {
        backend: _json(run_cli("eval-pairs", "--pairs", pairs, "--images", images, "--backend", backend, "--json", timeout=1800))
        for backend in ("onnxruntime", "torch")
    }


def test_lfw_view1_accuracy_matches_onnx_runtime(lfw_reports):
    ours, reference = lfw_reports["torch"], lfw_reports["onnxruntime"]
    assert ours["pairs_scored"] == reference["pairs_scored"] == 1000
    assert ours["failed_detections"] == reference["failed_detections"] == 0
    assert abs(ours["accuracy"] - reference["accuracy"]) <= 0.002, (ours["accuracy"], reference["accuracy"])
    assert abs(ours["threshold"] - reference["threshold"]) <= 0.02
