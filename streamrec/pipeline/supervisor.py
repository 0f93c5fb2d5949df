"""The supervisor: starts the stage processes in order, restarts a crashed one, shows a live
status line, and shuts everything down cleanly.

Stages (one process each): ``events`` (journal + publish), ``render`` and ``web`` (outputs),
``inference`` (the batcher, detector, tracker, embedder, matcher) and one ``capture:<source>``
per source. They start consumers first, so no producer sends into the void, and stop in
reverse. A stage that dies is restarted (at most ``MAX_RESTARTS`` times per ``RESTART_WINDOW_S``;
beyond that the run stops with an error), every child asks the kernel to end it if the
supervisor itself dies, and the run directory with the ipc endpoints is removed at the end.
Every process of the run holds a claim on the run directory while it lives
(:mod:`streamrec.pipeline.rundir`), so that what a killed run leaves behind is recognised and
removed by the next one, and a live run's never is. When the inference stage dies, the tracks
it had announced are ended by the events stage, with the reason (see
:mod:`streamrec.events.stage`); the restarted stage continues the run's track ids. Nothing the
supervisor writes (``run.json``, its log) can end the run: a write that fails is logged once
and retried.

With several inference workers (``inference:1``... ``inference:N``), a worker that dies is
restarted as any stage is; meanwhile its cameras move to the others (and may come back to it),
and the worker taking a camera ends its open tracks through the events stage. The workers never
end by themselves: the run ends when every capture has finished, and stops them.

A capture stage that exits 0 has finished its source (a file ended); one that exits with
``EXIT_SOURCE_FAILED`` failed for good after saying why (a camera that does not exist), and
neither is restarted. When every source has finished, the inference stage ends its tracks and
exits, the outputs are flushed and the run ends: exit status 0, or 1 if a source failed.

Every stage's ``StageStats`` report is forwarded on the monitor publisher (to the web stage's
``/metrics``), and about once a second a report of its own, stage ``supervisor``: counters
``malformed_stats`` (messages on the stats socket that are no valid report, also in
``malformed_messages``), ``stats_unknown_stage`` (valid reports from no stage of this run) and
the monitor publisher's figures (``subscriptions_refused_monitor``...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from streamrec.bus.curve import LinkContext
from streamrec.bus.messages import EndTracks, StageStats
from streamrec.bus.sockets import (
    DropLog,
    Endpoints,
    Publisher,
    pull_socket,
    push_socket,
    receive_pending,
    send,
)
from streamrec.config.model import RunConfig
from streamrec.pipeline.capture import EXIT_SOURCE_FAILED
from streamrec.pipeline.logs import console
from streamrec.pipeline.rundir import own
from streamrec.pipeline.stage import STATS_INTERVAL_S, Stage, count_refused, run_stage, stage_kind

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW_S", "Supervisor"]

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
STOP_TIMEOUT_S = 10.0
#: how often ``run.json`` is tried again after a write failed (a full disk)
STATE_RETRY_S = 5.0
STATS_HWM = 16  #: reports queued for the supervisor (of up to 2 MB each, were they all malformed)

log = logging.getLogger("supervisor")


@dataclass
class _Child:
    """A stage process and how to make it again."""

    name: str
    factory: Callable[[], Stage]
    process: multiprocessing.process.BaseProcess | None = None
    restarts: deque[float] = field(default_factory=deque)
    finished: bool = False


class Supervisor:
    """Runs one pipeline. ``factories``: stage name -> a function building the stage object,
    in start order (consumers first). ``status_line``: show the live status line on stderr
    (off when the caller reports progress itself, as ``streamrec bench pipeline`` does)."""

    def __init__(
        self, config: RunConfig, data_dir: Path, factories: dict[str, Callable[[], Stage]], endpoints: Endpoints, run_dir: Path,
        status_line: bool = True,
    ) -> None:
        self.config, self.data_dir, self.endpoints, self.run_dir = config, data_dir, endpoints, run_dir
        self.show_status = status_line
        self.console = console()  #: log lines and the status line share it, so they never overlap
        self.children = [_Child(name, factory) for name, factory in factories.items()]
        self.stopping = False
        self.failed_sources: list[str] = []
        self.stats: dict[str, StageStats] = {}
        self.counters: dict[str, int] = {"malformed_stats": 0, "malformed_messages": 0, "stats_unknown_stage": 0}
        self.ctx = multiprocessing.get_context("spawn")
        self._last_status = 0.0
        self._state_retry: float | None = None  #: when to try ``run.json`` again, after a failed write
        self._last_report = 0.0
        self._drops = DropLog(log)

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        """Start every stage and supervise until the sources end or a stop is requested."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        claim = own(self.run_dir)  # held until this process ends
        zctx = LinkContext(self.endpoints.curve)
        stats_in = pull_socket(zctx, self.endpoints.stats, hwm=STATS_HWM, accepts=StageStats)
        monitor = Publisher(zctx, self.endpoints.monitor, ["stats"], hwm=100)
        self.events_out = push_socket(zctx, self.endpoints.events_in, linger_ms=2000)
        status = 0
        try:
            for child in self.children:
                self._start(child)
            self._write_state()
            status = self._supervise(stats_in, monitor)
        finally:
            self._stop_all()
            zctx.destroy()  # each socket lingers as long as it was made to
            shutil.rmtree(self.run_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.data_dir / "run.json").unlink(missing_ok=True)
            self._status_line(final=True)
            os.close(claim)
        return status

    def _request_stop(self, *_: Any) -> None:
        self.stopping = True

    def stop(self) -> None:
        """Ask :meth:`run` to stop every stage and return (from another thread, too)."""
        self.stopping = True

    def stage_pids(self) -> dict[str, int]:
        """The process id of every stage started so far (a restarted stage has a new one)."""
        return {c.name: c.process.pid for c in self.children if c.process is not None and c.process.pid is not None}

    def _start(self, child: _Child) -> None:
        stage = child.factory()
        stage.run_dir = self.run_dir
        child.process = self.ctx.Process(target=run_stage, args=(stage,), name=f"streamrec.{child.name}", daemon=False)
        child.process.start()
        log.info("started %s (pid %s)", child.name, child.process.pid)

    def _supervise(self, stats_in: zmq.Socket, monitor: Publisher) -> int:
        while not self.stopping:
            self._collect(stats_in, monitor)
            for child in self.children:
                if child.finished or child.process is None or child.process.is_alive():
                    continue
                code = child.process.exitcode
                if code in (0, EXIT_SOURCE_FAILED):
                    child.finished = True
                    log.info("%s finished", child.name)
                    if code == EXIT_SOURCE_FAILED:
                        self.failed_sources.append(child.name)
                    if child.name == "inference":
                        self._reap_captures()
                        return 1 if self.failed_sources else 0
                    continue
                if not self._restart(child, code):
                    return 1
            if self._workers_done():
                return 1 if self.failed_sources else 0
            if self._state_retry is not None and time.monotonic() >= self._state_retry:
                self._write_state()
            self._status_line()
        return 0

    def _workers_done(self) -> bool:
        """With several inference workers (which never end by themselves): whether every capture
        has finished, so the run ends (the workers are stopped, and end their tracks)."""
        captures = [child for child in self.children if child.name.startswith("capture:")]
        return bool(self.endpoints.workers) and all(child.finished for child in captures)

    def _reap_captures(self) -> None:
        """The inference stage has ended because every source has: wait for the capture stages
        still finishing (sending their last statuses), and note the sources that failed, whichever
        order the processes happened to end in."""
        for child in self.children:
            if not child.name.startswith("capture:") or child.process is None:
                continue
            child.process.join(STOP_TIMEOUT_S)
            if child.process.exitcode == EXIT_SOURCE_FAILED and child.name not in self.failed_sources:
                self.failed_sources.append(child.name)

    def _restart(self, child: _Child, code: int | None) -> bool:
        now = time.monotonic()
        while child.restarts and now - child.restarts[0] > RESTART_WINDOW_S:
            child.restarts.popleft()
        how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
        if child.name == "inference":  # a worker's cameras move on, and the one taking each ends its tracks
            self._end_tracks(f"ended when the inference stage died ({how})")
        if len(child.restarts) >= MAX_RESTARTS:
            log.error("%s died (%s) %d times within %.0f s; giving up", child.name, how, MAX_RESTARTS, RESTART_WINDOW_S)
            return False
        child.restarts.append(now)
        log.warning("%s died (%s); restarting it", child.name, how)
        self._start(child)
        self._write_state()
        return True

    def _stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process is not None and child.process.is_alive():
                child.process.terminate()
                child.process.join(STOP_TIMEOUT_S)
            if child.process is not None and child.process.is_alive():
                log.warning("%s did not stop within %.0f s; killing it", child.name, STOP_TIMEOUT_S)
                child.process.kill()
                child.process.join()
                if stage_kind(child.name) == "inference":
                    self._end_tracks(f"ended when the inference stage was killed (it did not stop within {STOP_TIMEOUT_S:.0f} s)")

    def _end_tracks(self, why: str) -> None:
        """The inference stage is gone without ending its tracks: ask the events stage, which saw
        every decision and track end, to end the tracks still open with ``why``: an
        :class:`EndTracks` request per source, which it turns into one ``track_end`` per open track."""
        for source in self.config.sources:
            if not send(self.events_out, "end_tracks", EndTracks(source.label, time.time(), why), block=False):
                log.error("could not ask the events stage to end the open tracks of %s (%s)", source.label, why)

    # -- monitoring --------------------------------------------------------------------------
    def _collect(self, stats_in: zmq.Socket, monitor: Publisher) -> None:
        """Forward the stages' reports (only those of this run's stages, so that what /metrics
        shows is bounded), count the rest, and send a report of the supervisor's own."""
        messages, errors = receive_pending(stats_in, timeout_ms=200, expect=StageStats)
        count_refused(self.counters, self._drops, "stats", errors)
        stages = {child.name for child in self.children}
        for _, message, _ in messages:
            assert isinstance(message, StageStats)  # what receive gives with expect=StageStats
            if message.stage in stages:
                self.stats[message.stage] = message
                monitor.send("stats", message)
            else:
                self.counters["stats_unknown_stage"] += 1
                self._drops.dropped("report(s) from no stage of this run", 1, f"stage {message.stage!r}")
        monitor.service()
        now = time.monotonic()
        if now - self._last_report >= STATS_INTERVAL_S:
            self._last_report = now
            self._drops.flush()
            counters = {**self.counters, "subscriptions_refused_monitor": monitor.refused, "publisher_resets_monitor": monitor.resets}
            gauges = {"subscribers_monitor": float(monitor.subscribers)}
            monitor.send("stats", StageStats("supervisor", os.getpid(), time.time(), counters, gauges))

    def _write_state(self) -> None:
        """Rewrite ``run.json`` (the stage pids change with every restart). A write that fails
        (a full disk) is logged once and tried again every ``STATE_RETRY_S``: it never ends the
        run."""
        state = {
            "pid": os.getpid(),
            "stages": self.stage_pids(),
            "events": self.endpoints.events_pub,
            "frames": self.endpoints.jpeg_pub,
            "http": self.config.outputs.http,
            "run_dir": str(self.run_dir),
        }
        path = self.data_dir / "run.json"
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(state, indent=2) + "\n")
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if self._state_retry is None:
                log.error("cannot write %s (%s); the run goes on, and it is tried again every %.0f s", path, exc.strerror or exc, STATE_RETRY_S)
            self._state_retry = time.monotonic() + STATE_RETRY_S
            return
        if self._state_retry is not None:
            log.info("wrote %s again", path)
        self._state_retry = None

    def _status_line(self, final: bool = False) -> None:
        if not self.show_status:
            return
        now = time.monotonic()
        interactive = self.console.live
        if not final and now - self._last_status < (1.0 if interactive else 10.0):
            return
        self._last_status = now
        reports = [stats for stage, stats in self.stats.items() if stage_kind(stage) == "inference"]
        if not reports:
            return
        counter = lambda name: sum(report.counters.get(name, 0) for report in reports)
        parts = []
        for source in self.config.sources:
            name = source.label
            capture = self.stats.get(f"capture:{name}")
            dropped = (capture.counters.get("frames_dropped", 0) if capture else 0) + counter(f"skipped[{name}]")
            fps = max(report.gauges.get(f"fps[{name}]", 0.0) for report in reports)
            parts.append(f"{name} {fps:.1f} fps, {dropped} dropped")
        parts.append(f"{counter('faces')} faces, {counter('decisions_match')} matches")
        self.console.status(" | ".join(parts), final)
