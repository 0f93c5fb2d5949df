"""One real output pipeline for the web tests: a render stage and a web stage as processes,
fed by a thread of the test that plays the stages upstream of them (the inference stage's
overlays, the events stage's feed of published events) and the supervisor (which forwards every
stage's statistics to the monitor socket), over real ZeroMQ sockets; the web stage serves HTTP
on a loopback port."""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message as Headers
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from streamrec.bus.messages import EVENT_TYPES, Event, MessageError, StageStats
from streamrec.bus.sockets import Endpoints, Publisher, new_run_dir, pull_socket, push_socket, receive, send
from streamrec.config.model import AuthConfig, OutputsConfig
from streamrec.render.stage import RenderStage
from streamrec.web.stage import EXIT_HTTP_FAILED, WebStage
from tests.match.conftest import face_photos  # noqa: F401 - a shared fixture
from tests.render.frames import centre_box, face, overlay, photo_frames, start_stage, stop_stage
from tests.support.ports import free_port

TICK_S = 0.1  #: the feeder's pace: 10 frames per second, like a slow camera
SOURCES = ["front", "side"]  #: configured cameras; "side" never delivers a frame
HOLD_S = 1.0  #: the door page's hold time, short to keep the tests quick


OBAMA = face(centre_box(640, 360), "Barack Obama", True, 0.97)  #: the face on the frames unless a test says otherwise


@dataclass
class Feeder:
    """Sends a new overlaid photo of ``front`` every tick, with ``faces`` on it, and
    republishes ``events`` and ``stats`` every tick (a subscriber misses what was published
    before it subscribed)."""

    endpoints: Endpoints
    frames: list[np.ndarray]
    faces: list[dict[str, Any]]
    events: list[Event] = field(default_factory=list)
    stats: list[StageStats] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """The thread's body; its sockets live and die in this thread."""
        ctx = zmq.Context()
        try:
            overlays = push_socket(ctx, self.endpoints.overlays, hwm=2, linger_ms=0)
            events = Publisher(ctx, self.endpoints.events_feed, EVENT_TYPES, hwm=1000)
            monitor = Publisher(ctx, self.endpoints.monitor, ["stats"], hwm=100)
            reports = pull_socket(ctx, self.endpoints.stats, accepts=StageStats)
            for tick in range(10**9):
                if self.stop.wait(TICK_S):
                    return
                frame = self.frames[tick % len(self.frames)]
                send(overlays, "front", overlay("front", tick, frame, list(self.faces)), frame, block=False)
                for event in list(self.events):
                    events.send(event.type, event)
                for stats in [*self.stats, *self._reports(reports)]:
                    monitor.send("stats", stats)
        finally:
            ctx.destroy(linger=0)

    @staticmethod
    def _reports(sock: zmq.Socket) -> list[StageStats]:
        """What the real stages reported, as the supervisor collects it."""
        found = []
        while sock.poll(0):
            try:
                message = receive(sock)[1]
            except MessageError:
                continue
            if isinstance(message, StageStats):
                found.append(message)
        return found


@dataclass
class Web:
    """The running outputs: the web stage's base URL, the feeder, the run's endpoints."""

    url: str
    feeder: Feeder
    endpoints: Endpoints
    log_dir: Path

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, Headers, bytes]:
        """``(status, headers, body)`` of a GET, errors included."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def wait_for(self, path: str, accept: Callable[[int, bytes], bool], timeout_s: float = 20.0) -> bytes:
        """GET ``path`` until ``accept(status, body)``; the accepted body."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, _, body = self.get(path)
            if accept(status, body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: still {status} {body[:300]!r} after {timeout_s} s")
            time.sleep(0.1)


def _wait_listening(address: str, process: multiprocessing.process.BaseProcess, timeout_s: float = 20.0) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            assert process.is_alive(), f"the web stage ended with status {process.exitcode}"
            assert time.monotonic() < deadline, f"nothing listens on {address} after {timeout_s} s"
            time.sleep(0.05)


def refused_start(outputs: OutputsConfig, log_dir: Path, auth: AuthConfig | None = None) -> list[str]:
    """Start a web stage that must refuse to: it ends with ``EXIT_HTTP_FAILED``; its ERROR lines.
    Its user file is looked for in ``log_dir``."""
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/events-pub", f"ipc://{run_dir}/jpeg-pub")
    process = start_stage(WebStage(outputs, endpoints, log_dir / "web.log", auth=auth, data_dir=log_dir))
    try:
        process.join(30)
        assert process.exitcode == EXIT_HTTP_FAILED
    finally:
        stop_stage(process)
        shutil.rmtree(run_dir)
    return [line for line in (log_dir / "web.log").read_text().splitlines() if " ERROR " in line]


@contextlib.contextmanager
def outputs_running(outputs: OutputsConfig, faces_dir: Path, log_dir: Path, auth: AuthConfig | None = None,
                    data_dir: Path | None = None, scheme: str = "http") -> Iterator[Web]:
    """A render stage and a web stage serving ``outputs.http``, fed by a :class:`Feeder`."""
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/events-pub", f"ipc://{run_dir}/jpeg-pub")
    feeder = Feeder(endpoints, photo_frames(faces_dir, 640, 360), [OBAMA])
    thread = threading.Thread(target=feeder.run, name="feeder", daemon=True)
    thread.start()
    stages = [
        start_stage(RenderStage(outputs, endpoints, log_dir / "render.log", sources=SOURCES)),
        start_stage(WebStage(outputs, endpoints, log_dir / "web.log", sources=SOURCES, auth=auth, data_dir=data_dir)),
    ]
    try:
        _wait_listening(outputs.http, stages[1])
        yield Web(f"{scheme}://{outputs.http}", feeder, endpoints, log_dir)
    finally:
        for process in stages:
            stop_stage(process)
        feeder.stop.set()
        thread.join(10)
        shutil.rmtree(run_dir)


@pytest.fixture(scope="package")
def web(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    outputs = OutputsConfig(http=f"127.0.0.1:{free_port()}", door_hold_s=HOLD_S)
    log_dir = tmp_path_factory.mktemp("outputs")
    with outputs_running(outputs, faces_dir, log_dir, data_dir=log_dir) as running:  # no user file there
        yield running
