"""``streamrec engines check``: a backend's parity with ONNX Runtime fp32, per precision, recorded
beside the manifest and shown by ``engines info``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streamrec.backends.cpu import cpu_info
from streamrec.engines import MANIFEST_NAME, expected_files
from streamrec.engines.check import MIN_COSINE, failures
from tests.conftest import run_cli


@pytest.fixture()
def engine_copy(tmp_path: Path, engine_dir: Path) -> Path:
    """The built engines, linked into a folder of the test's own, so the record lands there."""
    for name in [*expected_files(), MANIFEST_NAME]:
        (tmp_path / name).symlink_to((engine_dir / name).resolve())
    return tmp_path


def test_openvino_record(engine_copy: Path):
    try:
        import openvino  # type: ignore[import-untyped]
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("OpenVINO is not installed; CI installs the 'openvino' extra")
        pytest.skip("OpenVINO is the 'openvino' extra")
    result = run_cli("engines", "check", "--backend", "openvino", "--engines", str(engine_copy), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert json.loads((engine_copy / "parity-openvino.json").read_text()) == record
    assert record["version"] == openvino.__version__.split("-")[0] and record["cpu"] == cpu_info().model
    assert record["passed"] and record["facenet_crops"] >= 10
    for precision in ("fp32", "int8"):
        entry = record["facenet"][precision]
        assert MIN_COSINE[precision] <= entry["min_cosine"] <= entry["mean_cosine"] <= 1.0 + 1e-6
    if cpu_info().bf16:
        assert record["facenet"]["bf16"]["min_cosine"] >= MIN_COSINE["bf16"]
    else:
        assert "avx512_bf16" in record["facenet"]["bf16"]["skipped"]
    assert set(record["mtcnn_max_abs_diff"]) == {"pnet", "rnet", "onet"}
    assert max(record["mtcnn_max_abs_diff"].values()) <= record["mtcnn_tolerance"]
    info = run_cli("engines", "info", "--engines", str(engine_copy))
    assert info.returncode == 0 and f"openvino {record['version']} on {record['cpu']}" in info.stdout
    for precision, entry in record["facenet"].items():
        if "skipped" in entry:  # with the reason, which the record keeps
            assert f"{precision} not run here ({entry['skipped']})" in info.stdout


def test_a_figure_below_its_bound_is_a_failure():
    record = {
        "facenet": {"fp32": {"min_cosine": 0.9991, "min_cosine_required": 0.9999}, "bf16": {"skipped": "no bf16"}},
        "mtcnn_max_abs_diff": {"pnet": 3e-4, "rnet": 1e-6},
    }
    assert failures(record) == ["FaceNet fp32 min cosine 0.999100 < 0.9999", "pnet max abs diff 3.0e-04 > 1e-04"]
