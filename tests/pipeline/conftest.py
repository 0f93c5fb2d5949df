"""A running pipeline for the end-to-end tests: ``streamrec run`` as a real process on a real
RTSP camera (the hamilton clip, looping), with the people of ../shared/data/faces enrolled, and
``streamrec events`` as a real subscriber process."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from streamrec.bus import sockets
from streamrec.bus.ring import FrameRing
from streamrec.config.model import RunConfig
from streamrec.pipeline.inference import InferenceStage
from tests.conftest import cli_command
from tests.support.ports import free_port
from tests.support.rtsp import RtspServer

IN_THE_CLIP = {"lin_manuel_miranda", "barack_obama", "alex_lacamoire"}


@dataclass
class SteppedInference:
    """An inference stage set up in this process, with the sockets and frame ring of a source
    ``cam`` that a test plays the capture and events stages on."""

    stage: InferenceStage
    events_in: zmq.Socket
    frames_out: zmq.Socket
    status_out: zmq.Socket
    ring: FrameRing


@contextlib.contextmanager
def stepped_inference(config: RunConfig, data_dir: Path, engine_dir: Path) -> Iterator[SteppedInference]:
    """An inference stage on real sockets and a real frame ring, for a test to call ``step`` on."""
    run_dir = sockets.new_run_dir()
    endpoints = sockets.Endpoints.for_run(run_dir, "ipc://unused-events", "ipc://unused-jpeg")
    stage = InferenceStage(config, endpoints, data_dir, engine_dir)
    stage.ctx = zmq.Context()
    try:
        events_in = sockets.pull_socket(stage.ctx, endpoints.events_in)
        stage.setup()
        yield SteppedInference(stage, events_in, sockets.push_socket(stage.ctx, endpoints.frames),
                               sockets.push_socket(stage.ctx, endpoints.status), FrameRing(run_dir, "cam"))
    finally:
        stage.teardown()
        stage.ctx.destroy(linger=0)
        shutil.rmtree(run_dir)


def quiet_outputs() -> list[str]:
    """``run`` options for a test's own run: no web server, events and frames on free ports."""
    return ["--http", "", "--events", f"tcp://127.0.0.1:{free_port()}", "--frames", f"tcp://127.0.0.1:{free_port()}"]


def enroll_people(faces_dir: Path, data_dir: Path, models) -> None:
    """Enroll every person of ``faces_dir`` (the main face of each photo) into ``data_dir``."""
    from streamrec.match.store import NewEmbedding, Watchlist

    watchlist = Watchlist(data_dir)
    try:
        for person in sorted(p for p in faces_dir.iterdir() if p.is_dir()):
            results = models.analyse(sorted(person.iterdir()))
            items = []
            for r in results:
                if r.main is not None:
                    x1, y1, x2, y2 = (float(v) for v in r.faces.boxes[r.main])
                    items.append(NewEmbedding(r.embeddings[0], str(r.path), (x1, y1, x2, y2)))
            watchlist.enroll(person.name, items, model=models.config.model)
    finally:
        watchlist.close()


class JsonLines:
    """What a process prints on its standard output, one JSON object a line, read on a thread of
    its own: a test takes the lines as they come, with a deadline, and never blocks on the pipe."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self._lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(json.loads(line))

    def take(self, timeout: float) -> dict | None:
        """The next line, waiting ``timeout`` seconds at most for it; None when none came."""
        try:
            return self._lines.get(timeout=timeout) if timeout > 0 else self._lines.get_nowait()
        except queue.Empty:
            return None


class Events(JsonLines):
    """The events a ``streamrec events --json`` process printed, parsed, as they arrive."""

    def __init__(self, process: subprocess.Popen) -> None:
        super().__init__(process)
        self.received: list[dict] = []  #: every event taken so far, in order

    def wait_for(self, test: Callable[[dict], bool], timeout: float, after_seq: int = 0) -> dict:
        """The first event (received now or later, with ``seq > after_seq``) passing ``test``."""
        for event in self.received:
            if event["seq"] > after_seq and test(event):
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.take(0.5)
            if event is None:
                continue
            self.received.append(event)
            if event["seq"] > after_seq and test(event):
                return event
        raise AssertionError(f"no such event within {timeout:.0f} s; got {[(e['type'], e.get('name'), e.get('detail')) for e in self.received[-15:]]}")

    def drain(self) -> list[dict]:
        """Take in every event that has arrived, without waiting; returns all received so far."""
        while (event := self.take(0)) is not None:
            self.received.append(event)
        return self.received

    @property
    def last_seq(self) -> int:
        return max((e["seq"] for e in self.drain()), default=0)


@dataclass
class Pipeline:
    process: subprocess.Popen
    data_dir: Path
    http: str
    events_address: str
    server: RtspServer
    events: Events
    log: Path

    def state(self) -> dict:
        return json.loads((self.data_dir / "run.json").read_text())

    def stage_pid(self, name: str) -> int:
        return int(self.state()["stages"][name])

    def close(self) -> None:
        """SIGTERM the pipeline and the subscriber (SIGKILL if one does not stop), stop the camera."""
        for child in (self.events.process, self.process):
            stop_process(child)
        self.server.stop()


def start_pipeline(rtsp_clip: Path, data_dir: Path, folder: Path, options: Sequence[str] = ()) -> Pipeline:
    """``streamrec run`` (with ``options`` besides its own) on a new RTSP camera serving
    ``rtsp_clip``, with ``streamrec events`` subscribed, once the pipeline has written
    ``run.json`` and serves HTTP. When it does not get that far, what it started is stopped before
    the failure goes on: the caller has no :class:`Pipeline` to close."""
    server = RtspServer(rtsp_clip, folder / "rtsp_server.log").start()
    http, events, frames = f"127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    log = folder / "run.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started: list[subprocess.Popen] = []  # in the order started; stopped the other way round, as close does
    try:
        with open(log, "a") as out:
            started.append(subprocess.Popen(
                [*cli_command(), "run", "--source", server.url, "--data-dir", str(data_dir), "--http", http,
                 "--events", events, "--frames", frames, *options],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            ))
        started.append(subprocess.Popen(
            [*cli_command(), "events", "--json", "--address", events, "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        ))
        process, subscriber = started
        running = Pipeline(process, data_dir, http, events, server, Events(subscriber), log)
        deadline = time.monotonic() + 60
        while not ((data_dir / "run.json").exists() and _listening(http)):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    except BaseException:
        for child in reversed(started):
            stop_process(child)
        server.stop()
        raise
    return running


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def pipelines(rtsp_clip: Path, faces_dir: Path, models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Pipeline]]:
    """A running pipeline on demand: the same one for every test of the module, and a new one
    (same data directory, new camera and addresses) after a test stopped it."""
    folder = tmp_path_factory.mktemp("pipeline")
    data_dir = folder / "data"
    enroll_people(faces_dir, data_dir, models)
    started: list[Pipeline] = []

    def running() -> Pipeline:
        if not started or started[-1].process.poll() is not None:
            if started:
                started[-1].close()
            started.append(start_pipeline(rtsp_clip, data_dir, folder))
        return started[-1]

    try:
        yield running
    finally:
        for pipeline in started:
            pipeline.close()


@pytest.fixture
def pipeline(pipelines: Callable[[], Pipeline]) -> Pipeline:
    """The module's running pipeline (see :func:`pipelines`)."""
    return pipelines()


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM (a clean stop), then SIGKILL if it has not ended within ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
