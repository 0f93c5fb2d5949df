"""The capture stage as a real process: frames and status changes over real ZeroMQ sockets."""

from __future__ import annotations

import multiprocessing
import re
import shutil
import time
from pathlib import Path

import pytest
import zmq

from streamrec.bus.messages import FrameHeader, SourceStatus
from streamrec.bus.ring import RingReader
from streamrec.bus.sockets import Endpoints, drain_frames, new_run_dir, pull_socket, receive
from streamrec.config.model import SourceConfig
from streamrec.pipeline.capture import EXIT_SOURCE_FAILED, CaptureStage
from streamrec.pipeline.stage import run_stage
from tests.support.rtsp import RtspServer


@pytest.fixture()
def sockets():
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, "ipc://unused-events", "ipc://unused-jpeg")
    ctx = zmq.Context()
    frames = pull_socket(ctx, endpoints.frames, hwm=1000)
    status = pull_socket(ctx, endpoints.status)
    yield endpoints, frames, status
    ctx.destroy(linger=0)
    shutil.rmtree(run_dir)


def _start(source: SourceConfig, endpoints: Endpoints) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=run_stage, args=(CaptureStage(source, endpoints),))
    process.start()
    return process


def _statuses(sock: zmq.Socket, until: str, timeout_ms: int = 30_000) -> list[SourceStatus]:
    seen: list[SourceStatus] = []
    while sock.poll(timeout_ms):
        message = receive(sock)[1]
        assert isinstance(message, SourceStatus)
        seen.append(message)
        if message.state == until:
            break
    return seen


def test_a_file_is_published_then_ends(shared_data: Path, sockets):
    endpoints, frames, status = sockets
    clip = shared_data / "video" / "short_hamilton_clip.mp4"
    process = _start(SourceConfig(url=str(clip), name="hamilton", fast=True), endpoints)
    try:
        headers: list[FrameHeader] = []
        rings = RingReader(Path(endpoints.rings))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a file read fast waits for its frames to be read
            received, errors, stale, unknown = drain_frames(frames, rings, 500, ["hamilton"])
            if not received and not process.is_alive():
                break
            assert (errors, stale, unknown) == ([], 0, 0)
            for header, pixels in received.get("hamilton", []):
                assert pixels.shape == (360, 640, 3) and pixels.any()
                headers.append(header)
        assert process.exitcode == 0
        states = [s.state for s in _statuses(status, "ended")]
        assert states[0] == "opening" and "open" in states and states[-1] == "ended"
        assert headers and all(h.source == "hamilton" for h in headers)
        indices = [h.index for h in headers]
        assert indices == sorted(indices) and indices[-1] <= 274
        # every frame the reader delivered was either sent or counted as dropped
        assert len(headers) + headers[-1].dropped >= indices[-1] + 1 - 2
    finally:
        process.kill()


def test_a_camera_that_does_not_exist_fails_for_good(sockets):
    endpoints, _, status = sockets
    process = _start(SourceConfig(url="7"), endpoints)
    try:
        seen = _statuses(status, "failed")
        assert seen[-1].state == "failed" and "cannot open camera index 7" in seen[-1].reason
        process.join(30)
        assert process.exitcode == EXIT_SOURCE_FAILED
    finally:
        process.kill()


def test_the_last_status_of_a_failed_camera_waits_for_a_late_batcher(capfd: pytest.CaptureFixture[str]):
    """The inference stage binds its sockets only once its models are loaded, which can take
    longer than a camera takes to fail: the ``failed`` status must wait for it, or the run would
    wait forever for a source that is gone."""
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, "ipc://unused-events", "ipc://unused-jpeg")
    process = _start(SourceConfig(url="7"), endpoints)
    ctx = zmq.Context()
    try:
        deadline = time.monotonic() + 30
        while "cannot open camera index 7" not in capfd.readouterr().err:  # it failed, and is on its way out
            assert time.monotonic() < deadline
            time.sleep(0.1)
        process.join(5)  # as long as it would linger at most, and more
        status = pull_socket(ctx, endpoints.status)  # the batcher is ready at last
        seen = _statuses(status, "failed", timeout_ms=10_000)
        assert seen and seen[-1].state == "failed", seen
        process.join(30)
        assert process.exitcode == EXIT_SOURCE_FAILED
    finally:
        process.kill()
        ctx.destroy(linger=0)
        shutil.rmtree(run_dir)


LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) capture:cam\[\d+\]: ")


def test_a_camera_that_reconnects_prints_streamrec_lines_only(rtsp_server: RtspServer, sockets, capfd: pytest.CaptureFixture[str]):
    endpoints, _, status = sockets
    process = _start(SourceConfig(url=rtsp_server.url, name="cam"), endpoints)
    try:
        assert _statuses(status, "open")[-1].state == "open"
        rtsp_server.kill()
        seen = [_statuses(status, "reconnecting")[-1] for _ in range(3)]  # three attempts on a dead server
        rtsp_server.restart()
        seen += _statuses(status, "open")
        assert seen[-1].state == "open"
    finally:
        process.terminate()
        process.join(10)
        process.kill()
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert [line for line in lines if not LOG_LINE.match(line)] == []  # nothing from OpenCV or FFmpeg
    reconnects = [s for s in seen if s.state == "reconnecting"]
    assert len([line for line in lines if ": reconnecting" in line]) == len(reconnects) >= 3  # one line each
