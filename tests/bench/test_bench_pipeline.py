"""``streamrec bench pipeline`` and ``streamrec bench transport`` in their quick forms: real
processes on real files; what they report is complete and coherent. (Benchmarks, not timed
tests: no speed is asserted.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamrec.bench.pipeline import open_set_figures
from streamrec.bus.messages import Event
from streamrec.match.openset import upper_bound
from streamrec.match.store import NewEmbedding, Watchlist
from tests.conftest import run_cli
from tests.pipeline.conftest import IN_THE_CLIP, enroll_people

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


def test_pipeline_two_workers(hamilton_clip: Path, engine_dir: Path):
    result = run_cli(
        "bench", "pipeline", "--source", str(hamilton_clip), "--streams", "2", "--workers", "2", "--duration", "5", "--warmup", "3",
        "--engines", str(engine_dir), "--json", timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["config"]["workers"] == 2 and report["measured_s"] >= 5
    # progress while measuring, counted over both workers, and the worker count said at the start
    assert "on 2 inference worker(s)" in result.stderr and "measuring" in result.stderr
    workers = report["workers"]
    assert set(workers) == {"inference:1", "inference:2"}
    assert set(report["pids"]) == {"events", "render", "inference:1", "inference:2", "capture:cam1", "capture:cam2"}
    # cam1 and cam2 hash to different workers of two: each worker serves one, each camera one worker
    served = [camera for worker in workers.values() for camera in worker["cameras"]]
    assert sorted(served) == ["cam1", "cam2"] and all(len(worker["cameras"]) == 1 for worker in workers.values())
    for name, worker in workers.items():
        assert set(worker) == {"pid", "cameras", "frames", "fps", "skipped", "busy", "capacity_fps", "cpu_cores", "peak_rss_mb"}
        (camera,) = worker["cameras"]
        row = report["sources"][camera]
        # a camera's figures are those of the worker that served it
        assert (worker["frames"], worker["skipped"]) == (row["frames"], row["skipped"]) and worker["fps"] == pytest.approx(row["fps"])
        assert 0 < worker["fps"] <= 29.97 * 1.05 and 0 < worker["busy"] <= 1.05
        assert worker["capacity_fps"] >= worker["fps"] * 0.95
        # its CPU time and peak memory were read from /proc while it ran, as its own process
        assert worker["pid"] == report["pids"][name] and worker["cpu_cores"] > 0
        assert worker["cpu_cores"] == pytest.approx(report["cpu"]["stages"][name] / 100)
        assert worker["peak_rss_mb"] == report["peak_rss_mb"][name] > report["peak_rss_mb"]["events"]
    assert workers["inference:1"]["pid"] != workers["inference:2"]["pid"]
    # the workers' counters add up to the totals
    assert sum(w["frames"] for w in workers.values()) == sum(r["frames"] for r in report["sources"].values())
    assert sum(w["fps"] for w in workers.values()) == pytest.approx(report["fps"])
    assert sum(w["skipped"] for w in workers.values()) == report["frames_skipped"]
    assert report["latency_ms"]["capture_to_result"]["samples"] == sum(w["frames"] for w in workers.values())
    assert report["steps_ms"]["batch"]["count"] > 0 and report["restarted"] == []
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
        (["--source", "{clip}", "--threads", "100000"], "--threads: must be a whole number between 0 and"),
        (["--source", "{clip}", "--workers", "0"], "--workers: must be a whole number between 1 and 32 (got 0)"),
    ],
)
def test_pipeline_bad_input(args: list[str], message: str, hamilton_clip: Path, tmp_path: Path):
    (tmp_path / "not_a_video.mp4").write_text("not a video")
    result = run_cli("bench", "pipeline", *(a.format(tmp=tmp_path, clip=hamilton_clip) for a in args), timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamrec: error: ") and message in lines[0]
    assert result.stdout == ""


def test_open_set_figures_count_tracks_not_events():
    def decision(kind: str, track: int, person: str | None = None, source: str = "cam1") -> Event:
        return Event(kind, source, 1.0, track_id=track, person_id=person, name=person.replace("-", "_") if person else None)

    events = [
        decision("unknown", 1), decision("match", 1, "lin-manuel-miranda"), decision("match", 1, "lin-manuel-miranda"),
        decision("unknown", 2), decision("match", 3, "joe-biden"), decision("unknown", 4), decision("match", 4, "joe-biden"),
        decision("unknown", 1, source="cam2"),  # another camera's track 1
        Event("track_end", "cam1", 2.0, track_id=2), Event("source_status", "cam1", 2.0, detail="open"),
    ]
    received = [(100.0 + 0.5 * i, event) for i, event in enumerate(events)]  # the first match arrives at 100.5
    figures = open_set_figures(received, ["lin-manuel-miranda", "barack_obama"], since=98.0)  # an id and a name
    # tracks: cam1 1 (lin), 2 (unknown), 3 and 4 (joe biden, not expected), cam2 1 (unknown)
    assert (figures["tracks"], figures["enrolled_tracks"], figures["stranger_tracks"]) == (5, 1, 4)
    assert figures["named"] == {"lin-manuel-miranda": 1, "barack_obama": 0} and figures["missed"] == ["barack_obama"]
    assert figures["first_named_s"] == {"lin-manuel-miranda": 2.5, "barack_obama": None}
    assert (figures["false_names"], figures["false_named"]) == (2, {"joe_biden": 2})
    assert figures["fpir"] == 0.5 and figures["fpir_upper_95"] == upper_bound(2, 4)
    nothing = open_set_figures([], [], since=0.0)
    assert (nothing["tracks"], nothing["fpir"], nothing["fpir_upper_95"]) == (0, None, None)


def test_pipeline_open_set_on_the_clip(hamilton_clip: Path, engine_dir: Path, faces_dir: Path, models, tmp_path: Path):
    people = tmp_path / "people"  # the people of the clip and two the clip does not show
    for person in (*sorted(IN_THE_CLIP), "joe_biden", "kit_harington"):
        (people / person).mkdir(parents=True)
        for photo in (faces_dir / person).iterdir():
            (people / person / photo.name).symlink_to(photo)
    enroll_people(people, tmp_path / "data", models)
    expected = [arg for person in sorted(IN_THE_CLIP) for arg in ("--expect", person)]
    result = run_cli(
        "bench", "pipeline", "--source", str(hamilton_clip), "--fast", "--duration", "10", "--warmup", "1",
        "--data-dir", str(tmp_path / "data"), *expected, "--engines", str(engine_dir), "--json", timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    figures = report["open_set"]
    assert report["config"]["expected"] == figures["expected"] == sorted(IN_THE_CLIP)
    assert figures["named"]["lin_manuel_miranda"] >= 1 and "lin_manuel_miranda" not in figures["missed"]
    assert 0 < figures["first_named_s"]["lin_manuel_miranda"] < 1 + report["measured_s"]  # within the run
    assert figures["tracks"] == figures["enrolled_tracks"] + figures["stranger_tracks"] and figures["stranger_tracks"] >= 1
    # the audience and the hands the detector takes for faces are nobody enrolled: never named
    assert (figures["false_names"], figures["false_named"], figures["fpir"]) == (0, {}, 0.0)
    assert figures["fpir_upper_95"] == pytest.approx(1 - 0.05 ** (1 / figures["stranger_tracks"]))
    assert {person["name"] for person in report["identities"]} <= IN_THE_CLIP


def test_pipeline_expect_must_name_someone_enrolled(hamilton_clip: Path, tmp_path: Path):
    with Watchlist(tmp_path) as store:
        vector = np.zeros(512, np.float32)
        vector[0] = 1.0
        store.enroll("Ann Lee", [NewEmbedding(vector, "ann.jpg", (0, 0, 1, 1))])
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[matcher]\nvotes = 0\n")
    for args, message in (
        (["--expect", "Bob"], f"--expect Bob: no one of that name or id in the watchlist in {tmp_path}"),
        # a name and an id of someone enrolled pass, and the run stops at the next check
        (["--expect", "Ann Lee", "--expect", "ann-lee", "--config", str(bad_config)], "matcher.votes: must be a whole number between 1 and 1000 (got 0)"),
    ):
        result = run_cli("bench", "pipeline", "--source", str(hamilton_clip), "--data-dir", str(tmp_path), *args, timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and lines[-1].startswith("streamrec: error: ") and message in lines[-1], result.stderr
    alone = run_cli("bench", "pipeline", "--source", str(hamilton_clip), "--expect", "Ann Lee", timeout=60)
    assert alone.returncode == 1 and alone.stderr.strip() == "streamrec: error: --expect needs --data-dir: the watchlist the expected people are enrolled in"


def test_transport_quick(tmp_path: Path):
    out = tmp_path / "transport.json"
    result = run_cli("bench", "transport", "--duration", "0.6", "--rounds", "1", "--out", str(out), timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["frame"] == "640x480" and report["frame_bytes"] == 640 * 480 * 3
    assert report["budget_ms"] == pytest.approx(33.333, abs=1e-3) and report["goal_percent"] == 2.0
    per_ms = 3.0  #: percent of the 33.3 ms budget per millisecond
    rows = {(r["transport"], r["rate"]): r for r in report["rows"]}
    hosts = ("raw_tcp", "jpeg_tcp", "jpeg_tcp_curve")  # the pixels inline over tcp, as between two hosts
    assert set(rows) == {(t, rate) for t in ("ring", "multipart", "mp_queue", *hosts) for rate in ("max", 30.0)}
    for (_, rate), row in rows.items():
        assert row["frames"] > 0 and row["fps"] > 0
        assert row["cpu_per_frame_ms"] > 0 and row["transport_cpu_per_frame_ms"] >= 0
        if rate == "max":
            assert row["pacing_cpu_per_frame_ms"] == 0
        else:
            # paced at 30 per second: never much faster; how much slower a loaded machine is, the
            # benchmark itself reports
            assert row["pacing_cpu_per_frame_ms"] > 0 and row["fps"] < 40
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
    # bytes per frame: a ring header, the raw pixels behind a header, a JPEG far smaller, the same under CURVE
    sent = {t: rows[(t, 30.0)]["message_bytes_per_frame"] for t in ("ring", "multipart", "mp_queue", *hosts)}
    assert sent["mp_queue"] is None and 0 < sent["ring"] < 200 and sent["multipart"] > 640 * 480 * 3
    assert 640 * 480 * 3 < sent["raw_tcp"] < 640 * 480 * 3 + 200 and 10_000 < sent["jpeg_tcp"] == sent["jpeg_tcp_curve"] < sent["raw_tcp"] / 4
    verdict = report["verdict"]
    assert verdict["percent"] == rows[("ring", 30.0)]["budget_percent"]
    assert verdict["meets_goal"] == (verdict["percent"] < 2.0)
    assert verdict["call_percent"] == rows[("ring", 30.0)]["call_cpu_budget_percent"]["median"]
    assert verdict["calls_meet_goal"] == (verdict["call_percent"] < 2.0)
    assert verdict["multipart_percent"] == rows[("multipart", 30.0)]["budget_percent"]
    ring, queue = rows[("ring", 30.0)], rows[("mp_queue", 30.0)]
    assert (verdict["queue_cpu_ratio"] > 1) == (queue["transport_cpu_per_frame_ms"] > ring["transport_cpu_per_frame_ms"])
    paced = {t: rows[(t, 30.0)] for t in hosts}
    assert all(verdict[f"{t}_percent"] == paced[t]["budget_percent"] for t in hosts)
    cpu = {t: paced[t]["transport_cpu_per_frame_ms"] for t in hosts}
    assert verdict["jpeg_cpu_ratio"] == pytest.approx(cpu["jpeg_tcp"] / cpu["raw_tcp"])
    assert verdict["curve_cpu_ratio"] == pytest.approx(cpu["jpeg_tcp_curve"] / cpu["jpeg_tcp"])
    assert verdict["jpeg_bytes_ratio"] == pytest.approx(sent["raw_tcp"] / sent["jpeg_tcp"])
    assert "ring" in result.stdout and "mp_queue" in result.stdout and "% of the frame budget" in result.stdout
    assert "jpeg_tcp_curve" in result.stdout and "across hosts at the paced rate" in result.stdout


def test_transport_bad_size():
    result = run_cli("bench", "transport", "--size", "0x480", timeout=60)
    assert result.returncode == 2 and "argument --size" in result.stderr and "Traceback" not in result.stderr
