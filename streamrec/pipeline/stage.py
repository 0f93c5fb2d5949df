"""What every stage process shares: a stop flag set by SIGTERM/SIGINT, logging, counters and
latency samples reported to the supervisor, the publishers it serves, the counting of malformed
messages it receives, and a ZeroMQ context closed on the way out.

A stage subclasses :class:`Stage` and writes :meth:`Stage.setup` and :meth:`Stage.step`; tests
can drive ``step()`` directly. Its process entry point is :func:`run_stage`.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import zmq

from streamrec.bus.curve import LinkContext, LinkCurve
from streamrec.bus.messages import MAX_SAMPLES, StageStats
from streamrec.bus.sockets import DropLog, Publisher, push_socket, send
from streamrec.pipeline.logs import configure_logging
from streamrec.pipeline.rundir import hold

__all__ = ["Stage", "count_refused", "end_with_parent", "run_stage", "stage_kind"]

STATS_INTERVAL_S = 1.0


def stage_kind(name: str) -> str:
    """What stage ``name`` runs: ``capture:front`` -> ``capture``, and ``inference:2`` (one of
    several inference workers) -> ``inference``, as a stage of one kind is named ``kind:which``."""
    return name.partition(":")[0]


def count_refused(counters: MutableMapping[str, int], drops: DropLog, socket: str, errors: Sequence[Exception]) -> None:
    """Count the malformed messages received on ``socket`` (``malformed_<socket>``, and all of a
    process's in ``malformed_messages``) and warn about them, rate-limited."""
    if errors:
        counters[f"malformed_{socket}"] = counters.get(f"malformed_{socket}", 0) + len(errors)
        counters["malformed_messages"] = counters.get("malformed_messages", 0) + len(errors)
        drops.dropped(f"malformed message(s) on {socket}", len(errors), str(errors[-1]))


class Stage:
    """Base of a stage process. ``stats_address``: the supervisor's stats socket; ``curve``: the
    links secured with CURVE (:mod:`streamrec.bus.curve`)."""

    name = "stage"

    def __init__(self, stats_address: str | None, log_file: Path | None = None, curve: LinkCurve | None = None) -> None:
        self.stats_address = stats_address
        self.curve = curve
        self.log_file = log_file
        self.stopping = False
        self.exit_code = 0  #: the process's exit status when ``step()`` returns False
        self.ctx: zmq.Context | None = None
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, float] = {}
        #: samples since the last report sent; the oldest go first if reports cannot be sent
        self.latencies: dict[str, deque[float]] = defaultdict(functools.partial(deque, maxlen=MAX_SAMPLES))
        self.publishers: dict[str, Publisher] = {}
        self._stats_sock: zmq.Socket | None = None
        self._last_stats = 0.0
        self.log = logging.getLogger(self.name)
        #: the run's private directory, set by the supervisor; the process holds a share of the
        #: run's claim on it while it lives (:mod:`streamrec.pipeline.rundir`)
        self.run_dir: Path | None = None
        #: where what a restarted stage continues from is kept (track ids, event numbers, open
        #: tracks, door challenges): the run directory under a supervisor; a folder of the data
        #: directory for a stage run alone, whom an orchestrator restarts as a new run
        self.state_dir: Path | None = None
        self.parent_pid: int | None = None  #: the supervisor's, in a stage process

    def state_path(self, name: str) -> Path | None:
        """The file ``name`` in :attr:`state_dir` (else the run directory); None without either."""
        folder = self.state_dir or self.run_dir
        return folder / name if folder is not None else None

    # -- to override ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Open sockets and load what the stage needs (called in the stage process)."""

    def step(self) -> bool:
        """Do one unit of work; return False when the stage has finished for good."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Flush and close (called on the way out, also after an error)."""

    # -- shared ----------------------------------------------------------------------------------
    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def observe(self, name: str, seconds: float) -> None:
        self.latencies[name].append(seconds)

    @functools.cached_property
    def drops(self) -> DropLog:
        """Rate-limited warnings about dropped messages (made on first use, once logging is set up)."""
        return DropLog(self.log)

    def refuse(self, socket: str, errors: Sequence[Exception]) -> None:
        """Count and report the malformed messages received on ``socket`` (:func:`count_refused`)."""
        count_refused(self.counters, self.drops, socket, errors)

    def publisher(self, name: str, address: str, topics: Iterable[str], hwm: int) -> Publisher:
        """A :class:`Publisher` bound at ``address``, served after every step and reported as
        ``subscriptions_refused_<name>``, ``publisher_resets_<name>`` and gauge ``subscribers_<name>``."""
        assert self.ctx is not None
        self.publishers[name] = Publisher(self.ctx, address, topics, hwm)
        return self.publishers[name]

    def serve_publishers(self) -> None:
        """Let each publisher read its subscriptions, and copy its figures."""
        for name, publisher in self.publishers.items():
            publisher.service()
            self.counters[f"subscriptions_refused_{name}"] = publisher.refused
            self.counters[f"publisher_resets_{name}"] = publisher.resets
            self.gauges[f"subscribers_{name}"] = float(publisher.subscribers)

    def report(self, force: bool = False) -> None:
        """Send counters and latency samples to the supervisor, about once a second."""
        now = time.monotonic()
        if self._stats_sock is None or (not force and now - self._last_stats < STATS_INTERVAL_S):
            return
        self._last_stats = now
        self.drops.flush()
        latencies = {name: tuple(samples) for name, samples in self.latencies.items()}
        stats = StageStats(self.name, os.getpid(), time.time(), dict(self.counters), dict(self.gauges), latencies)
        if send(self._stats_sock, "stats", stats, block=False):
            self.latencies.clear()

    def orphaned(self) -> bool:
        """Whether the supervisor is gone (killed): then every stage is stopping at once."""
        return self.parent_pid is not None and os.getppid() != self.parent_pid

    def request_stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        """The process body: set up, step until finished or asked to stop, tear down."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self._claim = hold(self.run_dir) if self.run_dir is not None else None  # released when the process ends
        self.log = configure_logging(self.name, self.log_file)
        self.ctx = LinkContext(self.curve)
        try:
            if self.stats_address:
                self._stats_sock = push_socket(self.ctx, self.stats_address, hwm=10, linger_ms=0)
            self.setup()
            while not self.stopping:
                if not self.step():
                    break
                self.serve_publishers()
                self.report()
            return self.exit_code
        finally:
            try:
                self.teardown()
            finally:
                self.report(force=True)
                self.ctx.destroy()  # each socket lingers as long as it was made to, to deliver what it still holds


_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None  # not Linux: children then rely on their parent's own shutdown
_PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent (pid ``parent``) dies, so that
    no child outlives a parent killed with SIGKILL; a parent already gone sends it at once. Safe
    as a ``preexec_fn`` between fork and exec: it calls nothing that was not looked up before."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def run_stage(stage: Stage) -> None:
    """``multiprocessing`` target: run ``stage`` and exit with its status; ended by SIGTERM if the
    supervisor dies."""
    parent = multiprocessing.parent_process()
    stage.parent_pid = parent.pid if parent is not None and parent.pid is not None else os.getppid()
    end_with_parent(stage.parent_pid)
    raise SystemExit(stage.run())
