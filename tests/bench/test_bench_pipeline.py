"""``streamrec bench pipeline`` and ``streamrec bench transport`` in their quick forms: real
processes on real files; what they report is complete and coherent. (Benchmarks, not timed
tests: no speed is asserted.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

LATENCY_KEYS = {"p50", "p95", "p99", "mean", "samples"}


def _ordered(summary: dict) -> None:
    assert set(summary) == LATENCY_KEYS and summary["samples"] > 0
    assert 0 < summary["p50"] <= summary["p95"] <= summary["p99"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_pipeline_two_streams(hamilton_clip: Path, engine_dir: Path, tmp_path: Path):
    out = tmp_path / "pipeline.json"
    result = run_cli(
        "bench", "pipeline", "--source", str(hamilton_clip), "--streams", "2", "--duration", "5", "--warmup", "3",
        "--engines", str(engine_dir), "--json", "--out", str(out), timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report == json.loads(out.read_text())
    assert {
        "machine", "config", "startup_s", "measured_s", "fps", "sources", "latency_ms", "faces_per_s", "embeddings_per_s",
        "embeddings_per_face", "frames_skipped", "decisions", "identities", "steps_ms", "batching", "cpu", "peak_rss_mb",
        "pids", "restarted",
    } <= set(report)
    config = report["config"]
    assert (config["streams"], config["embed_every_frame"], config["watchlist"]) == (2, False, None)
    assert config["source_info"]["width"] == 640 and config["source_info"]["height"] == 360
    assert report["measured_s"] >= 5 and report["startup_s"] > 0

    assert set(report["sources"]) == {"cam1", "cam2"}
    for row in report["sources"].values():
        # a file played at its own 29.97 fps: no stream can be processed faster than that
        assert 0 < row["fps"] <= 29.97 * 1.05 and 0 < row["frames"] <= 29.97 * 1.05 * report["measured_s"] + 2
        # every frame its capture sent was processed or skipped by the batcher, give or take the
        # frames of a report or two (~1 s each at 30 fps): the two stages report their counters apart
        assert abs(row["sent"] - (row["frames"] + row["skipped"])) <= 60, row
        _ordered(row["capture_to_detect_ms"])
        _ordered(row["capture_to_result_ms"])
        # results come after detections, frame by frame, so the distribution lies above
        assert row["capture_to_result_ms"]["p50"] >= row["capture_to_detect_ms"]["p50"]
    per_source = [r["fps"] for r in report["sources"].values()]
    assert max(per_source) < report["fps"] <= 2 * 29.97 * 1.05
    latency = report["latency_ms"]
    for name in ("capture_to_detect", "capture_to_result"):
        _ordered(latency[name])
    assert latency["capture_to_result"]["samples"] == sum(r["frames"] for r in report["sources"].values())
    for name in ("capture_to_event", "capture_to_delivery"):
        if latency[name] is not None:
            _ordered(latency[name])

    # the clip is full of faces; an empty watchlist names nobody
    assert report["faces_per_s"] > 0 and report["embeddings_per_s"] > 0
    assert report["decisions"]["match"] == 0 and report["identities"] == []
    assert report["steps_ms"]["detect"]["count"] > 0 and report["steps_ms"]["detect"]["median"] > 0
    assert report["batching"]["frames_per_batch"] >= 1

    stages = {"events", "render", "inference", "capture:cam1", "capture:cam2"}
    assert set(report["cpu"]["stages"]) == stages and set(report["peak_rss_mb"]) == stages and set(report["pids"]) == stages
    cpu = report["cpu"]
    assert cpu["stages"]["inference"] > 0
    # all the stages together: more than the busiest, and no more than the cores can give
    assert max(cpu["stages"].values()) < cpu["percent"] <= 100 * cpu["cores"] * 1.1
    assert report["peak_rss_mb"]["inference"] > report["peak_rss_mb"]["events"] > 0
    assert report["restarted"] == []
    # every stage process has ended with the command
    assert not [name for name, pid in report["pids"].items() if _alive(pid)]


def test_pipeline_human_table(hamilton_clip: Path, engine_dir: Path):
    result = run_cli(
        "bench", "pipeline", "--source", str(hamilton_clip), "--duration", "2", "--warmup", "1", "--no-skips",
        "--engines", str(engine_dir), timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cam1" in result.stdout and "capture to result" in result.stdout and "every face, every frame" in result.stdout
    assert "measuring" in result.stderr  # progress goes to stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "{tmp}/missing.mp4"], "missing.mp4: no such file"),
        (["--source", "{tmp}/not_a_video.mp4"], "not_a_video.mp4: not a readable video file"),
        (["--source", "{clip}", "--data-dir", "{tmp}"], "no watchlist there"),
        (["--source", "{clip}", "--streams", "0"], "--streams must be >= 1"),
    ],
)
def test_pipeline_bad_input(args: list[str], message: str, hamilton_clip: Path, tmp_path: Path):
    (tmp_path / "not_a_video.mp4").write_text("not a video")
    result = run_cli("bench", "pipeline", *(a.format(tmp=tmp_path, clip=hamilton_clip) for a in args), timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamrec: error: ") and message in lines[0]
    assert result.stdout == ""


def test_transport_quick(tmp_path: Path):
    out = tmp_path / "transport.json"
    result = run_cli("bench", "transport", "--duration", "1", "--rounds", "1", "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["frame"] == "640x480" and report["frame_bytes"] == 640 * 480 * 3
    assert report["budget_ms"] == pytest.approx(33.333, abs=1e-3) and report["goal_percent"] == 2.0
    per_ms = 3.0  #: percent of the 33.3 ms budget per millisecond
    rows = {(r["transport"], r["rate"]): r for r in report["rows"]}
    assert set(rows) == {(t, rate) for t in ("ring", "multipart", "mp_queue") for rate in ("max", 30.0)}
    for (_, rate), row in rows.items():
        assert row["frames"] > 0 and row["fps"] > 0
        assert row["cpu_per_frame_ms"] > 0 and row["transport_cpu_per_frame_ms"] >= 0
        if rate == "max":
            assert row["pacing_cpu_per_frame_ms"] == 0
        else:
            assert row["pacing_cpu_per_frame_ms"] > 0 and 20 < row["fps"] < 40
        # the transport's share: what is left of the frame's CPU once the pacing loop's is taken out
        assert 0 <= row["transport_cpu_per_frame_ms"] <= row["cpu_per_frame_ms"]
        if rate == "max":
            assert row["transport_cpu_per_frame_ms"] == row["cpu_per_frame_ms"]
        assert row["budget_percent"] == pytest.approx(per_ms * row["transport_cpu_per_frame_ms"])
        assert 0 < row["call_cpu_ms"]["median"] <= row["call_cpu_ms"]["p95"]
        assert row["call_cpu_budget_percent"]["median"] == pytest.approx(per_ms * row["call_cpu_ms"]["median"])
        assert 0 < row["send_wall_ms"]["median"] <= row["send_wall_ms"]["p95"]
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p95"] <= row["latency_ms"]["p99"]
        assert row["latency_budget_percent"] == pytest.approx(per_ms * row["latency_ms"]["p95"])
    verdict = report["verdict"]
    assert verdict["percent"] == rows[("ring", 30.0)]["budget_percent"]
    assert verdict["meets_goal"] == (verdict["percent"] < 2.0)
    assert verdict["call_percent"] == rows[("ring", 30.0)]["call_cpu_budget_percent"]["median"]
    assert verdict["calls_meet_goal"] == (verdict["call_percent"] < 2.0)
    assert verdict["multipart_percent"] == rows[("multipart", 30.0)]["budget_percent"]
    ring, queue = rows[("ring", 30.0)], rows[("mp_queue", 30.0)]
    assert (verdict["queue_cpu_ratio"] > 1) == (queue["transport_cpu_per_frame_ms"] > ring["transport_cpu_per_frame_ms"])
    assert "ring" in result.stdout and "mp_queue" in result.stdout and "% of the frame budget" in result.stdout


def test_transport_bad_size():
    result = run_cli("bench", "transport", "--size", "0x480", timeout=60)
    assert result.returncode == 1 and "--size" in result.stderr and "Traceback" not in result.stderr
