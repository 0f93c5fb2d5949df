"""``streamrec run`` end to end on a real RTSP camera: recognition, a camera that dies and comes
back, a stage killed with SIGKILL, malformed messages, the door page, metrics, shutdown.

The tests share one running pipeline and pass in any order: each first waits for what it needs
(the camera open, a face recognised), and after the SIGTERM test stops the pipeline the next
test gets a new one."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import zmq

from streamrec.events.journal import read_journal
from tests.pipeline.conftest import IN_THE_CLIP, Pipeline
from tests.support.browser import video_changes

LIN = "lin_manuel_miranda"
DECISIONS = ("match", "unknown")


def _is_lin(event: dict) -> bool:
    return event["type"] == "match" and event["name"] == LIN


def test_names_lin_manuel_miranda_and_no_one_who_is_not_there(pipeline: Pipeline):
    first = pipeline.events.wait_for(_is_lin, timeout=90)
    assert first["distance"] < 1.12 and 0 < first["score"] <= 1 and first["source"]
    assert len(first["box"]) == 4 and first["frame_index"] >= 0
    # decided after its frame was captured, on the same clock; how soon is the benchmarks' to say
    # (a loaded machine takes longer), so the upper bound only catches a capture time from
    # another clock or a frame long gone
    assert 0 < first["ts"] - first["capture_ts"] < 60
    # let the clip play once more through: every name given must belong to someone in it
    pipeline.events.wait_for(lambda e: e["type"] == "match" and e["seq"] > first["seq"] and e["name"] == LIN, timeout=40, after_seq=first["seq"])
    named = {e["name"] for e in pipeline.events.received if e["type"] == "match"}
    assert LIN in named and named <= IN_THE_CLIP, named


def _status(state: str) -> Callable[[dict], bool]:
    return lambda event: event["type"] == "source_status" and event["detail"].startswith(state)


def test_a_camera_that_dies_and_comes_back_is_recognised_again(pipeline: Pipeline):
    pipeline.events.wait_for(_is_lin, timeout=90)  # the camera is open and seen
    before = {name: pipeline.stage_pid(name) for name in ("inference", "events")}
    seq = pipeline.events.last_seq
    pipeline.server.kill()
    lost = pipeline.events.wait_for(_status("lost"), timeout=30, after_seq=seq)
    # the camera stays down while the reader tries to reopen it, and fails, at least once
    retry = pipeline.events.wait_for(_status("reconnecting"), timeout=30, after_seq=lost["seq"])
    pipeline.events.wait_for(_status("reconnecting"), timeout=30, after_seq=retry["seq"])
    pipeline.server.restart()
    reopened = pipeline.events.wait_for(_status("open"), timeout=60, after_seq=seq)
    pipeline.events.wait_for(_is_lin, timeout=60, after_seq=reopened["seq"])
    assert {name: pipeline.stage_pid(name) for name in before} == before  # no other stage restarted


def test_inference_killed_with_sigkill_is_restarted_its_open_tracks_are_ended_and_ids_stay_unique(pipeline: Pipeline):
    seq = pipeline.events.last_seq
    decided = pipeline.events.wait_for(lambda e: e["type"] in DECISIONS, timeout=90, after_seq=seq)
    victim = pipeline.stage_pid("inference")
    os.kill(victim, signal.SIGKILL)  # mid-track: the face it just decided about is still in view
    ended = pipeline.events.wait_for(lambda e: e["type"] == "track_end" and e["track_id"] == decided["track_id"], timeout=30, after_seq=seq)
    assert ended["detail"] == "ended when the inference stage died (signal 9)", ended
    assert ended["source"] == decided["source"] and ended["name"] == decided["name"]
    deadline = time.monotonic() + 30
    while pipeline.stage_pid("inference") == victim and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pipeline.stage_pid("inference") != victim
    before = {e["track_id"] for e in pipeline.events.received if e["type"] in DECISIONS and e["seq"] < ended["seq"]}
    resumed = pipeline.events.wait_for(_is_lin, timeout=90, after_seq=ended["seq"])
    assert resumed["track_id"] > max(before)  # the restarted stage continues the run's track ids


def test_malformed_messages_are_counted_and_nothing_breaks(pipeline: Pipeline):
    run_dir = Path(pipeline.state()["run_dir"])
    ctx = zmq.Context()
    try:
        for endpoint in ("frames", "status", "events", "overlays"):
            sock = ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 2000)
            sock.connect(f"ipc://{run_dir / endpoint}")
            for junk in ([b"frame", b"{not json"], [b"x"], [b"frame", b'{"v": 1, "kind": "frame", "source": "cam", "index": 1, "ts": 1, "height": 9000, "width": 2}', b"x"]):
                sock.send_multipart(junk)
            sock.close()
    finally:
        ctx.destroy(linger=2000)
    seq = pipeline.events.last_seq
    pipeline.events.wait_for(_is_lin, timeout=60, after_seq=seq)  # still recognising
    deadline = time.monotonic() + 20  # stages report their counters about once a second
    while True:
        counted = _stages_counting_malformed(pipeline)
        if counted >= {"inference", "events", "render"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert counted >= {"inference", "events", "render"}


def _stages_counting_malformed(pipeline: Pipeline) -> set[str]:
    metrics = urllib.request.urlopen(f"http://{pipeline.http}/metrics", timeout=10).read().decode()
    return {
        line.partition('stage="')[2].partition('"')[0]
        for line in metrics.splitlines()
        if line.startswith("streamrec_malformed_messages_total{") and float(line.rpartition(" ")[2]) > 0
    }


def test_metrics_report_the_camera(pipeline: Pipeline):
    pipeline.events.wait_for(_is_lin, timeout=90)  # a decision to count
    names = ("streamrec_faces_total", "streamrec_embeddings_total", "streamrec_decisions_match_total", "streamrec_reconnects_total",
             "streamrec_stage_latency_seconds_bucket")
    deadline = time.monotonic() + 20  # stages report their counters about once a second
    while True:
        metrics = urllib.request.urlopen(f"http://{pipeline.http}/metrics", timeout=10).read().decode()
        fps = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("streamrec_source_fps{")]
        if (fps and max(fps) > 5 and all(name in metrics for name in names)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert fps and max(fps) > 5, fps
    assert [name for name in names if name not in metrics] == []


def test_the_door_page_shows_live_video_and_the_name(pipeline: Pipeline, browser):
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    try:
        page.goto(f"http://{pipeline.http}/", wait_until="load")
        page.wait_for_function("document.getElementById('video').naturalWidth === 640", timeout=30_000)
        page.wait_for_function(f"document.getElementById('name').textContent === '{LIN}'", timeout=60_000)
        first, second = video_changes(page.locator("#video"))
        assert first.std() > 20, "the video region is blank"
        assert abs(second - first).mean() > 5, "the video did not change"
    finally:
        page.close()


def test_sigterm_stops_every_stage_cleanly(pipeline: Pipeline):
    pipeline.events.wait_for(_is_lin, timeout=90)  # something to find in the journal afterwards
    state = pipeline.state()
    pipeline.process.send_signal(signal.SIGTERM)
    assert pipeline.process.wait(30) == 0
    for name, pid in state["stages"].items():
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0, f"{name} still running"
    assert not Path(state["run_dir"]).exists()
    assert not (pipeline.data_dir / "run.json").exists()
    journal = list(read_journal(pipeline.data_dir / "events"))
    assert any(e.get("name") == LIN for e in journal)
    decided = {e["track_id"] for e in journal if e["type"] in DECISIONS}
    ended = Counter(e["track_id"] for e in journal if e["type"] == "track_end")
    assert decided == set(ended) and set(ended.values()) == {1}  # every decided track ended, once
    kinds = [e["type"] if e["type"] != "source_status" else e["detail"].split(":")[0] for e in journal]
    assert kinds[:2] == ["opening", "open"] and kinds.index("open") < min(kinds.index(t) for t in DECISIONS if t in kinds)
