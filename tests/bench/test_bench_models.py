"""``streamrec bench models`` in its quick form: it runs, and what it reports is coherent.
(A benchmark, not a timed test: no speed is asserted.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streamrec.backends.cpu import cpu_info
from tests.conftest import run_cli


def test_quick_bench_reports_every_model_and_the_reference(tmp_path: Path):
    out = tmp_path / "bench.json"
    result = run_cli(
        "bench", "models", "--duration", "0.1", "--rounds", "3", "--batches", "1,4",
        "--min-face-sizes", "40", "--threads", "1", "--out", str(out),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["threads"] == 1 and report["machine"]["cores_available"] >= 1
    assert report["machine"]["cpu_flags"] == list(cpu_info().flags or [])
    assert set(report["libraries"]) == {"onnxruntime"}
    rows = {(r["model"], r["precision"], r["batch"]): r for r in report["nets"]}
    expected = [("rnet", "fp32"), ("onet", "fp32"), ("facenet", "fp32"), ("facenet", "int8")]
    assert set(rows) == {(m, p, b) for m, p in expected for b in (1, 4)}
    for (_, _, batch), row in rows.items():
        assert row["backend"] == "onnxruntime"
        assert 0 < row["p10_ms"] <= row["median_ms"] <= row["p90_ms"]
        # a call of the batch-4 rows carries four faces; a second is 1000 ms
        assert row["per_item_ms"] == pytest.approx(row["median_ms"] if batch == 1 else row["median_ms"] / 4)
        assert row["items_per_s"] * row["per_item_ms"] == pytest.approx(1000)
    (detection,) = report["detection"]
    ours = detection["streamrec"]["onnxruntime"]
    assert detection["frame"] == "640x480" and detection["faces_found"]["onnxruntime"] >= 2
    assert ours["runs"] == 3
    # facenet-pytorch is installed with the test extra, so the side-by-side must be there
    assert detection["facenet_pytorch"]["median_ms"] > 0
    assert detection["speedup"]["onnxruntime"] > 0
    assert (detection["speedup"]["onnxruntime"] > 1) == (detection["facenet_pytorch"]["median_ms"] > ours["median_ms"])
    assert "speed-up" in result.stdout and "facenet" in result.stdout


def test_backends_and_precisions_side_by_side(tmp_path: Path):
    """Every backend and precision asked for is timed in the same run; one this CPU cannot run
    (bf16 without AVX-512 BF16 or AMX; int8 on torch, bf16 on ONNX Runtime never) is left out
    with its reason. The torch backend's detector is its own (the cascade on its device)."""
    pytest.importorskip("openvino", reason="OpenVINO is the 'openvino' extra")
    out = tmp_path / "bench.json"
    backends = ("onnxruntime", "openvino", "torch")
    result = run_cli(
        "bench", "models", "--duration", "0.05", "--rounds", "2", "--batches", "2", "--min-face-sizes", "40",
        "--threads", "1", "--backend", ",".join(backends), "--precision", "fp32,bf16,int8", "--out", str(out),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["libraries"]) == set(backends)
    facenet = {(r["backend"], r["precision"]) for r in report["nets"] if r["model"] == "facenet"}
    bf16 = {("openvino", "bf16"), ("torch", "bf16")} if cpu_info().bf16 else set()
    assert facenet == {(b, p) for b in ("onnxruntime", "openvino") for p in ("fp32", "int8")} | {("torch", "fp32")} | bf16
    assert {(r["backend"], r["precision"]) for r in report["nets"] if r["model"] == "rnet"} == {(b, "fp32") for b in backends}
    assert any(line.startswith("onnxruntime bf16: the onnxruntime backend runs fp32 and int8 only") for line in report["skipped"])
    assert any(line.startswith("torch int8: the torch backend runs fp32 and bf16 and fp16 only") for line in report["skipped"])
    assert cpu_info().bf16 or any(line.startswith("openvino bf16: bf16 needs a CPU") for line in report["skipped"])
    (detection,) = report["detection"]
    assert set(detection["streamrec"]) == set(backends)
    assert detection["faces_found"]["openvino"] == detection["faces_found"]["torch"] == detection["faces_found"]["onnxruntime"] >= 2


def test_bench_refuses_when_nothing_asked_for_can_run():
    result = run_cli("bench", "models", "--backend", "onnxruntime", "--precision", "bf16")
    assert result.returncode == 1 and "no backend here runs the precisions asked for" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_on_a_video_file(shared_data: Path):
    clip = shared_data / "video" / "short_hamilton_clip.mp4"
    result = run_cli(
        "bench", "models", "--duration", "0.05", "--rounds", "2", "--batches", "1", "--min-face-sizes", "40",
        "--size", "640x360", "--source", str(clip), "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["detection"][0]["frame"] == "640x360"


def test_bench_bad_source(tmp_path: Path):
    result = run_cli("bench", "models", "--source", str(tmp_path / "missing.mp4"), "--duration", "0.05")
    assert result.returncode == 1 and "missing.mp4" in result.stderr and "Traceback" not in result.stderr


def test_a_device_no_backend_asked_for_runs_on_is_refused_with_the_reasons():
    """``--device cuda:0`` for ONNX Runtime (CPU only here): nothing runs, one line per reason."""
    result = run_cli("bench", "models", "--backend", "onnxruntime", "--precision", "fp32", "--device", "cuda:0")
    assert result.returncode == 1 and "no backend here runs the precisions asked for" in result.stderr
    assert "cuda:0" in result.stderr and "Traceback" not in result.stderr


def test_the_device_is_recorded(tmp_path: Path):
    out = tmp_path / "bench.json"
    result = run_cli(
        "bench", "models", "--duration", "0.05", "--rounds", "1", "--batches", "1", "--min-face-sizes", "40",
        "--threads", "1", "--precision", "fp32", "--device", "cpu", "--out", str(out),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["machine"]["gpu"] is None
    assert {r["backend"] for r in report["nets"]} == {"onnxruntime"}


def test_a_run_with_onednn_limited_says_so_in_its_record_and_its_line(tmp_path: Path):
    """``ONEDNN_MAX_CPU_ISA`` makes OpenVINO run the kernels of a lesser CPU; the figures must say
    it, since the CPU's own flags no longer tell what ran."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = run_cli(
        "bench", "models", "--duration", "0.05", "--rounds", "1", "--batches", "1", "--min-face-sizes", "40",
        "--threads", "1", "--backend", "openvino", "--precision", "fp32", "--out", str(out), env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["machine"]["isa_cap"] == "AVX2"
    assert "oneDNN limited to AVX2)" in result.stdout
