"""``streamrec bench torch`` end to end, as a real process, on the smallest useful settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_a_short_run_reports_both_backends(faces_dir: Path, tmp_path: Path):
    out = tmp_path / "torch.json"
    result = run_cli(
        "bench", "torch", "--source", str(faces_dir / "barack_obama" / "1.jpg"), "--cases", "320x240@40",
        "--batches", "1,2", "--facenet-batches", "2", "--rounds", "2", "--threads", "1", "--out", str(out), "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(out.read_text()) == report
    assert report["machine"]["cpu_flags"] is not None and len(report["machine"]["load_average"]) == 3
    assert [(r["frame"], r["batch"]) for r in report["detection"]] == [("320x240", 1), ("320x240", 2)]
    for row in report["detection"]:
        assert row["onnxruntime"]["median_ms"] > 0 and row["torch"]["median_ms"] > 0
        assert row["faces"]["torch"] == row["faces"]["onnxruntime"] >= row["batch"]  # one face per frame at least
    (facenet,) = report["facenet"]
    assert facenet["batch"] == 2 and facenet["torch"]["per_face_ms"] == pytest.approx(facenet["torch"]["median_ms"] / 2)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--cases", "10x10@40"], "frames and faces must be at least 12 px"),
        (["--cases", "640x480"], "expected WIDTHxHEIGHT@MINFACE"),
        (["--batches", "0"], "expected numbers >= 1"),
    ],
)
def test_bad_settings_are_one_line(options, message):
    result = run_cli("bench", "torch", *options)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
