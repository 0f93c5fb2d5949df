"""``streamrec bench models`` in its quick form: it runs, and what it reports is coherent.
(A benchmark, not a timed test: no speed is asserted.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    rows = {(r["model"], r["batch"]): r for r in report["nets"]}
    assert set(rows) == {(m, b) for m in ("rnet", "onet", "facenet", "facenet_int8") for b in (1, 4)}
    for (_, batch), row in rows.items():
        assert 0 < row["p10_ms"] <= row["median_ms"] <= row["p90_ms"]
        # a call of the batch-4 rows carries four faces; a second is 1000 ms
        assert row["per_item_ms"] == pytest.approx(row["median_ms"] if batch == 1 else row["median_ms"] / 4)
        assert row["items_per_s"] * row["per_item_ms"] == pytest.approx(1000)
    (detection,) = report["detection"]
    assert detection["frame"] == "640x480" and detection["faces_found"] >= 2
    assert detection["streamrec"]["runs"] == 3
    # facenet-pytorch is installed with the test extra, so the side-by-side must be there
    assert detection["facenet_pytorch"]["median_ms"] > 0
    assert detection["speedup"] > 0
    assert (detection["speedup"] > 1) == (detection["facenet_pytorch"]["median_ms"] > detection["streamrec"]["median_ms"])
    assert "speed-up" in result.stdout and "facenet" in result.stdout


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
