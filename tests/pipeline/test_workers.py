"""Several inference workers sharing the cameras: ``streamrec run`` with two ``[[links.workers]]``
on loopback TCP ports, on two real RTSP cameras (the hamilton clip under two paths), with the
people of ../shared/data/faces enrolled. One pipeline serves every check of the module, in order:
each camera on the worker rendezvous hashing gives it; that worker killed with SIGKILL and its
camera taken over by the other; a worker that stops answering (SIGSTOP: its connections stay
open, as those of a host that vanished do) noticed by the heartbeats, and its camera moved."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamrec.events.journal import read_journal
from streamrec.pipeline.workers import rendezvous
from tests.conftest import run_cli
from tests.pipeline.conftest import Pipeline, enroll_people, quiet_outputs, start_pipeline
from tests.support.ports import free_port
from tests.support.rtsp import RtspServer
from tests.support.wait import wait_until

LIN = "lin_manuel_miranda"
DECISIONS = ("match", "unknown")
TAKEOVER = "ended when another inference stage took over its camera"


@pytest.fixture(scope="module")
def workers(rtsp_clip: Path, faces_dir: Path, models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, list[str]]]:
    """The pipeline with two workers, and the labels of its two cameras."""
    folder = tmp_path_factory.mktemp("workers")
    data_dir = folder / "data"
    enroll_people(faces_dir, data_dir, models)
    second = RtspServer(rtsp_clip, folder / "rtsp_second.log", path="/second").start()
    try:  # the ports below are probed once the camera holds its own, so that none of them is the camera's
        config = folder / "workers.toml"
        config.write_text("".join(f'[[links.workers]]\nframes = "tcp://127.0.0.1:{free_port()}"\n'
                                  f'status = "tcp://127.0.0.1:{free_port()}"\n' for _ in range(2)))
        options = ["--config", str(config), "--source", second.url]
        pipeline = start_pipeline(rtsp_clip, data_dir, folder, options)
        try:
            yield pipeline, [url.removeprefix("rtsp://") for url in (pipeline.server.url, second.url)]
        finally:
            pipeline.close()
    finally:
        second.stop()


def _metrics(pipeline: Pipeline) -> dict[tuple[str, str, str], float]:
    """``/metrics`` as ``(metric, stage, source) -> value``."""
    text = urllib.request.urlopen(f"http://{pipeline.http}/metrics", timeout=10).read().decode()
    found = re.findall(r'^(\w+)\{source="([^"]*)",stage="([^"]*)"\} (\S+)$', text, re.MULTILINE)
    return {(metric, stage, source): float(value) for metric, source, stage, value in found}


def _is_lin_on(label: str) -> Callable[[dict], bool]:
    return lambda event: event["type"] == "match" and event["name"] == LIN and event["source"] == label


def test_each_camera_is_served_by_the_worker_rendezvous_gives_it_and_the_person_is_named_on_both(workers):
    pipeline, labels = workers
    for label in labels:
        pipeline.events.wait_for(_is_lin_on(label), timeout=180)
    expected = {label: rendezvous(label, {1, 2}) for label in labels}
    before = _metrics(pipeline)
    frames = lambda figures, worker, label: figures.get(("streamrec_frames_total", f"inference:{worker}", label), 0)

    def ten_more_frames_each() -> bool:
        now = _metrics(pipeline)
        return all(frames(now, worker, label) >= frames(before, worker, label) + 10 for label, worker in expected.items())

    wait_until(ten_more_frames_each, 60, f"cameras not served as rendezvous gives them: {expected}: {_metrics(pipeline)}",
               every=0.5)
    after = _metrics(pipeline)
    for label, worker in expected.items():
        assert after[("streamrec_worker", f"capture:{label}", label)] == worker
        assert after[("streamrec_worker_moves_total", f"capture:{label}", label)] == 0
        assert frames(after, 3 - worker, label) == 0, "a camera's frames went to both workers"
    decisions = [e for e in pipeline.events.received if e["type"] in DECISIONS]
    # worker K of 2 hands out K, K + 2, K + 4...
    assert all(e["track_id"] % 2 == expected[e["source"]] % 2 for e in decisions), "a worker handed out another's track id"


def test_a_killed_worker_s_camera_moves_to_the_other_its_tracks_end_and_ids_stay_unique(workers):
    pipeline, labels = workers
    camera = labels[0]
    worker = rendezvous(camera, {1, 2})
    other = 3 - worker
    seq = pipeline.events.last_seq
    decided = pipeline.events.wait_for(lambda e: e["type"] in DECISIONS and e["source"] == camera, timeout=90, after_seq=seq)
    os.kill(pipeline.stage_pid(f"inference:{worker}"), signal.SIGKILL)  # its face is still in view
    ended = pipeline.events.wait_for(lambda e: e["type"] == "track_end" and e["track_id"] == decided["track_id"], timeout=30, after_seq=seq)
    assert ended["detail"] == TAKEOVER, ended
    taken = pipeline.events.wait_for(lambda e: e["type"] in DECISIONS and e["source"] == camera, timeout=60, after_seq=ended["seq"])
    assert taken["track_id"] != decided["track_id"]
    log = pipeline.log.read_text()
    assert f"{camera}: now served by worker {other}; worker {worker} is gone" in log
    wait_until(lambda: _metrics(pipeline).get(("streamrec_worker_moves_total", f"capture:{camera}", camera), 0) >= 1, 20,
               "the move was not counted", every=0.5)
    sources: dict[int, set[str]] = {}
    for event in pipeline.events.received:
        if event["type"] in DECISIONS:
            sources.setdefault(event["track_id"], set()).add(event["source"])
    assert all(len(named) == 1 for named in sources.values()), "a track id was handed out twice"


def test_a_worker_that_stops_answering_is_noticed_by_the_heartbeats_and_its_camera_moves(workers):
    pipeline, labels = workers
    camera = labels[1]
    worker = rendezvous(camera, {1, 2})
    serving = lambda: _metrics(pipeline).get(("streamrec_worker", f"capture:{camera}", camera))
    wait_until(lambda: serving() == worker, 120, "the camera is not on its own worker (one killed before is still starting)",
               every=0.5)
    seq = pipeline.events.last_seq
    decided = pipeline.events.wait_for(lambda e: e["type"] in DECISIONS and e["source"] == camera, timeout=90, after_seq=seq)
    moved = f"{camera}: now served by worker {3 - worker}; worker {worker} is gone"
    back = f"{camera}: now served by worker {worker}; worker {3 - worker} is still linked"
    lines = lambda line: pipeline.log.read_text().count(line)
    moves, returns = lines(moved), lines(back)  # the camera may have moved before, with the worker killed
    hung = pipeline.stage_pid(f"inference:{worker}")
    os.kill(hung, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        wait_until(lambda: lines(moved) > moves, 20, "the hung worker was not noticed", every=0.5)
        assert time.monotonic() - stopped < 10  # three missed heartbeats of a second, and a step
        ended = pipeline.events.wait_for(lambda e: e["type"] == "track_end" and e["track_id"] == decided["track_id"], timeout=30,
                                         after_seq=seq)
        assert ended["detail"] == TAKEOVER, ended
        pipeline.events.wait_for(lambda e: e["type"] in DECISIONS and e["source"] == camera, timeout=60, after_seq=ended["seq"])
    finally:
        os.kill(hung, signal.SIGCONT)
    wait_until(lambda: lines(back) > returns, 30, "the camera did not come back to its worker", every=0.5)


def test_a_run_of_workers_ends_when_every_file_has_ended_and_every_track_with_it(
    hamilton_clip: Path, faces_dir: Path, models, tmp_path: Path
):
    enroll_people(faces_dir, tmp_path, models)
    config = tmp_path / "files.toml"
    config.write_text("[pipeline]\nworkers = 2\n" + "".join(
        f'[[sources]]\nurl = "{hamilton_clip}"\nname = "{name}"\nfast = true\n' for name in ("left", "right")))
    result = run_cli("run", "--config", str(config), "--data-dir", str(tmp_path), *quiet_outputs(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    events = list(read_journal(tmp_path / "events"))
    for name in ("left", "right"):
        assert LIN in {e["name"] for e in events if e["type"] == "match" and e["source"] == name}, name
        assert any(e["type"] == "source_status" and e["source"] == name and e["detail"].startswith("ended") for e in events)
    decided = {(e["source"], e["track_id"]) for e in events if e["type"] in DECISIONS}
    assert decided <= {(e["source"], e["track_id"]) for e in events if e["type"] == "track_end"}  # all closed at the end


ONE_WORKER = '[[links.workers]]\nframes = "tcp://127.0.0.1:5601"\nstatus = "tcp://127.0.0.1:5602"\n'
#: what an inference stage of `streamrec stage` needs besides its worker's links
STAGE_LINKS = '[links]\nevents_in = "tcp://127.0.0.1:5603"\noverlays = "tcp://127.0.0.1:5604"\nframe_pixels = "raw"\n'
CHECK = ["config", "check"]


@pytest.mark.parametrize(("toml", "args", "expected"), [
    ("[pipeline]\nworkers = 0\n", CHECK, "pipeline.workers"),
    ('[[links.workers]]\nframes = "tcp://127.0.0.1:5601"\n', CHECK, "links.workers[0].status"),
    (ONE_WORKER + '[[links.workers]]\nframes = "tcp://127.0.0.1:5602"\nstatus = "tcp://127.0.0.1:5603"\n', CHECK,
     "links.workers[1].frames: binds the same address as links.workers[0].status"),
    (ONE_WORKER.replace("127.0.0.1", "192.0.2.7") + '[links]\nframe_pixels = "raw"\n', CHECK,
     "links.workers[0].frames: a link beyond this machine needs CURVE"),
    ('[pipeline]\nworkers = 2\n[links]\nframes = "tcp://127.0.0.1:5601"\n', CHECK, "pipeline.workers"),
    ("[pipeline]\nworkers = 3\n" + ONE_WORKER, CHECK, "pipeline.workers: [[links.workers]] gives 1 worker(s)"),
    (ONE_WORKER + STAGE_LINKS, ["stage", "inference"], "say which this is with --worker K"),
    (ONE_WORKER + STAGE_LINKS, ["stage", "inference", "--worker", "2"], "--worker: no worker 2"),
], ids=["zero", "half", "clash", "beyond", "shared-frames", "count", "which", "no-such"])
def test_worker_settings_that_cannot_work_are_refused_in_one_line(tmp_path: Path, toml: str, args: list[str], expected: str):
    config = tmp_path / "workers.toml"
    config.write_text(toml)
    done = run_cli(*args, "--config", str(config), timeout=120) if args[0] == "stage" else run_cli(*args, str(config), timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
