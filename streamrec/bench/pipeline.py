"""``streamrec bench pipeline``: the real pipeline, end to end, measured from outside.

The stages are the very ones ``streamrec run`` starts (:func:`~streamrec.pipeline.assemble.
stage_factories`), under the same :class:`~streamrec.pipeline.supervisor.Supervisor`, run in
this process's main thread. A collector thread subscribes to the supervisor's monitor socket
(every :class:`~streamrec.bus.messages.StageStats` of every stage) and to the published events,
samples the stage processes' CPU time and peak memory from ``/proc``, prints progress, and stops
the supervisor when the measured window is over.

Timeline: the engines load; the *warm-up* starts when an inference stage first reports processed
frames and lasts ``warmup_s``; the *measured window* then runs from one inference report to the
first one at least ``duration_s`` later. Rates come from the stage's frame counters over that
window (frames / seconds, by the stage's own clock), latencies from the per-frame samples the
stage took in it. With several inference workers (``inference:1``... ``inference:N``) the first
one's reports open and close the window, and every figure of inference adds up the workers: each
worker's counters over its own reports in the window, by its own clock, and all its samples.

Result keys (times in milliseconds unless the name says ``_s``; a latency summary is
``{"p50", "p95", "p99", "mean", "samples"}``, ``null`` without samples):

``machine``
    CPU model, cores available, Python.
``config``
    ``source``, ``streams``, ``workers`` (inference workers sharing the cameras), ``duration_s``,
    ``warmup_s``, ``config_file`` (``--config``, or ``null``), ``min_face_size`` and
    ``min_face_px`` (detector and embedding size floors), ``threads`` (0: every core), ``backend``,
    ``precision``, ``embed_every_frame`` (``--no-skips``), ``fast`` (``--fast``: the file read
    as fast as the pipeline takes its frames; every latency is then ``null``, every latency
    sample list empty), ``watchlist`` (folder, or ``null`` for an empty one), ``source_info``
    (``width``, ``height``, ``fps``, ``frames`` of a file).
``startup_s``
    From launch to an inference stage's first report of processed frames (engine loading).
``measured_s``
    Length of the measured window.
``fps``
    Frames processed per second, all sources together.
``sources``
    Per source label (``cam1``...): ``fps``, ``frames`` (processed in the window, by the workers
    that served it), ``sent`` (by its capture stage), ``dropped`` (at capture: rate cap, reader
    slot overwritten, queue full),
    ``skipped`` (by the batcher, which takes only the newest waiting frame of a camera),
    ``capture_to_detect_ms`` and ``capture_to_result_ms`` (per frame, capture time to its
    detections, and to its results: tracked, embedded, matched).
``latency_ms``
    All sources together: ``capture_to_detect``, ``capture_to_result``; from the ``match`` and
    ``unknown`` events of the window: ``capture_to_event`` (the event's ``ts - capture_ts``,
    i.e. until the decision was made) and ``capture_to_delivery`` (until this subscriber
    received it).
``latency_samples_ms``
    The samples behind ``capture_to_result`` and ``capture_to_event`` (in the order taken, at
    most ``MAX_SAMPLES`` of each, evenly spaced when there were more; 0.01 ms steps): the
    distribution itself, for plots.
``faces_per_s``, ``embeddings_per_s``, ``embeddings_per_face``
    Faces detected (tracked faces count once per frame), faces embedded.
``frames_skipped``
    Frames the batcher skipped because a newer one of the same source was waiting.
``decisions``
    ``match``, ``unknown`` and ``track_end`` events in the window.
``identities``
    Every person named in a ``match`` event during the whole run (warm-up included):
    ``name``, ``matches``, ``first_s`` (seconds after launch), ``sources``.
``open_set``
    Who was named, track by track, over the whole run (warm-up included; a looping file shows
    its people again on new tracks): ``expected`` (the enrolled people said to appear in the
    source, ``--expect``), ``tracks`` (tracks with a ``match`` or ``unknown`` decision),
    ``enrolled_tracks`` (tracks named as an expected person), ``named`` (expected person ->
    tracks named so), ``first_named_s`` (expected person -> seconds from the first report of
    processed frames to the first match naming them, ``null`` if never; about a second's
    resolution), ``missed`` (expected people never named), ``stranger_tracks`` (the other
    tracks: people not enrolled, or expected people not recognised on that track),
    ``false_names`` (stranger tracks named as someone; ``false_named``: by name), ``fpir``
    (``false_names / stranger_tracks``, the false-positive identification rate per track;
    ``null`` without stranger tracks) and ``fpir_upper_95`` (its exact one-sided 95% upper
    bound). A track named as an expected person counts as that person's: a stranger named as
    someone who does appear in the source is not seen, so run a source without enrolled people
    (no ``--expect``) to measure the rate alone.
``steps_ms``
    Per step of the inference stage (every worker), from its samples in the window: ``{"median",
    "mean", "p95", "count"}`` for ``detect`` (one batched call), ``embed`` (one batched call),
    ``match``, ``batch`` (a whole batch: detect, track, crop, embed, match, decide, overlay).
``batching``
    ``frames_per_batch``, ``faces_per_embed_batch``, ``full_detections`` (whole cascade) and
    ``tracked_detections`` (O-Net on tracked boxes only) per second.
``cpu``
    ``percent``: CPU time of all stage processes together over the window, in percent of one
    core (can exceed 100); ``cores``: cores available; ``stages``: the same per stage.
``peak_rss_mb``
    Per stage, the peak resident memory (``VmHWM``) at the end of the window.
``workers``
    Per inference stage (``inference``, or ``inference:1``... ``inference:N``): ``pid``,
    ``cameras`` (the sources it processed frames of in the window), ``frames``, ``fps``,
    ``skipped``, ``busy`` (the share of the window it spent processing batches: batches times
    their mean time), ``capacity_fps`` (frames per second of processing: what it would sustain
    if always busy; ``null`` without batches), ``cpu_cores`` (its CPU time over the window, in
    cores) and ``peak_rss_mb``. Its ``frames``, ``fps`` and ``skipped`` add up to the totals.
``pids``
    Every stage's process id (all of them have ended when the command returns).
``restarted``
    Stages that were restarted during the window (their CPU time before it is lost).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from streamrec.bus.messages import Event, MessageError, StageStats
from streamrec.bus.sockets import Endpoints, receive, sub_socket
from streamrec.pipeline.supervisor import Supervisor

__all__ = ["PipelineCollector", "bench_pipeline", "cpu_ticks", "latency_summary", "open_set_figures", "peak_rss_kb"]

STARTUP_TIMEOUT_S = 180.0
MAX_SAMPLES = 4000  #: latency samples kept in the result, per kind
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_ticks(pid: int) -> int | None:
    """User + system CPU time of ``pid`` in clock ticks (``None`` if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def peak_rss_kb(pid: int) -> int | None:
    """Peak resident set size (``VmHWM``) of ``pid`` in KiB (``None`` if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def latency_summary(seconds: list[float]) -> dict[str, float] | None:
    """``p50``, ``p95``, ``p99`` and ``mean`` in milliseconds, and the sample count."""
    if not seconds:
        return None
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(ms.mean()), "samples": int(ms.size)}


def _step_summary(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median": float(np.median(ms)), "mean": float(ms.mean()), "p95": float(np.percentile(ms, 95)), "count": int(ms.size)}


def _samples_ms(seconds: list[float]) -> list[float]:
    """At most ``MAX_SAMPLES`` of ``seconds``, evenly spaced, in milliseconds (0.01 ms steps)."""
    if len(seconds) > MAX_SAMPLES:
        seconds = [seconds[i] for i in np.linspace(0, len(seconds) - 1, MAX_SAMPLES).round().astype(int)]
    return [round(s * 1e3, 2) for s in seconds]


@dataclass
class _Snapshot:
    """The newest report of every stage, and the stages' CPU ticks, at one moment."""

    mono: float
    stats: dict[str, StageStats]
    pids: dict[str, int]
    ticks: dict[str, int | None]


@dataclass
class PipelineCollector:
    """Watches a running supervisor: see the module docstring. Run :meth:`run` in a thread
    started just before ``supervisor.run()``; :meth:`halt` ends it early."""

    supervisor: Supervisor
    endpoints: Endpoints
    sources: list[str]
    warmup_s: float
    duration_s: float
    report: Callable[[str], None]
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    expected: list[str] = field(default_factory=list)  #: enrolled people (names or ids) who appear in the sources
    #: the inference stages, the first one's reports timing the window
    inference: list[str] = field(default_factory=lambda: ["inference"])
    error: str | None = None
    launched: float = field(default_factory=time.monotonic)
    launched_wall: float = field(default_factory=time.time)
    first_frames: float | None = None  #: monotonic time of the first report with frames
    start: _Snapshot | None = None
    end: _Snapshot | None = None
    window: list[StageStats] = field(default_factory=list)  #: reports after ``start``, to ``end``
    events: list[tuple[float, Event]] = field(default_factory=list)  #: (received, event), whole run
    peak_rss: dict[str, int | None] = field(default_factory=dict)
    _latest: dict[str, StageStats] = field(default_factory=dict)
    _previous_progress: tuple[float, dict[str, int]] | None = None  #: (ts, inference counters) of the last line
    _last_progress: float = 0.0
    _halt: threading.Event = field(default_factory=threading.Event)

    @property
    def complete(self) -> bool:
        return self.end is not None

    def halt(self) -> None:
        self._halt.set()

    def run(self) -> None:
        ctx = zmq.Context()
        try:
            monitor = sub_socket(ctx, self.endpoints.monitor, hwm=10_000)
            events = sub_socket(ctx, self.endpoints.events_pub, hwm=10_000)
            poller = zmq.Poller()
            poller.register(monitor, zmq.POLLIN)
            poller.register(events, zmq.POLLIN)
            while not self._halt.is_set() and not self.complete:
                ready = dict(poller.poll(100))
                if events in ready:
                    self._take(events)
                if monitor in ready:
                    self._take(monitor)
                if self.first_frames is None and time.monotonic() - self.launched > self.startup_timeout_s:
                    self.error = f"no frame was processed within {self.startup_timeout_s:.0f} s of the start"
                    break
                if self.first_frames is None:
                    self._progress(f"starting: {time.monotonic() - self.launched:.0f} s")
            # the events of the window's last moments may still be on their way
            deadline = time.monotonic() + 0.3
            while self.complete and time.monotonic() < deadline:
                if events.poll(50):
                    self._take(events)
        finally:
            self.supervisor.stop()
            ctx.destroy(linger=0)

    def _take(self, sock: zmq.Socket) -> None:
        while True:
            try:
                _, message, _ = receive(sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            except MessageError:
                continue
            if isinstance(message, Event):
                self.events.append((time.time(), message))
            elif isinstance(message, StageStats):
                self._on_stats(message)

    def _on_stats(self, stats: StageStats) -> None:
        self._latest[stats.stage] = stats
        if self.start is not None and not self.complete:
            self.window.append(stats)
        if stats.stage not in self.inference:
            return
        now = time.monotonic()
        if self.first_frames is None and any(stats.counters.get(f"frames[{s}]", 0) for s in self.sources):
            self.first_frames = now
        if stats.stage != self.clock:
            return
        if self.first_frames is not None:
            reported = all(name in self._latest for name in self.inference)
            if self.start is None and now - self.first_frames >= self.warmup_s and reported:
                self.start = self._snapshot()
            elif self.start is not None and stats.ts - self.start.stats[self.clock].ts >= self.duration_s:
                self.end = self._snapshot()
                self.peak_rss = {name: peak_rss_kb(pid) for name, pid in self.end.pids.items()}
        self._progress_line(stats)

    @property
    def clock(self) -> str:
        """The inference stage whose reports time the window: one clock, as the workers report apart."""
        return self.inference[0]

    def _inference_counters(self) -> dict[str, int]:
        """The newest counters of every inference stage, added up."""
        total: dict[str, int] = {}
        for name in self.inference:
            for key, value in (self._latest[name].counters if name in self._latest else {}).items():
                total[key] = total.get(key, 0) + value
        return total

    def _snapshot(self) -> _Snapshot:
        pids = self.supervisor.stage_pids()
        return _Snapshot(time.monotonic(), dict(self._latest), pids, {name: cpu_ticks(pid) for name, pid in pids.items()})

    def _progress(self, line: str) -> None:
        now = time.monotonic()
        if now - self._last_progress >= 0.9:
            self._last_progress = now
            self.report(line)

    def _progress_line(self, stats: StageStats) -> None:
        previous, counters = self._previous_progress, self._inference_counters()
        self._previous_progress = (stats.ts, counters)
        if previous is None or stats.ts <= previous[0]:
            return
        seconds = stats.ts - previous[0]
        rate = lambda key: (counters.get(key, 0) - previous[1].get(key, 0)) / seconds
        if self.first_frames is None:
            phase = f"starting {time.monotonic() - self.launched:.0f} s"
        elif self.start is None:
            phase = f"warm-up {time.monotonic() - self.first_frames:.0f}/{self.warmup_s:g} s"
        else:
            phase = f"measuring {stats.ts - self.start.stats[self.clock].ts:.0f}/{self.duration_s:g} s"
        fps = ", ".join(f"{s} {rate(f'frames[{s}]'):.1f}" for s in self.sources)
        self._progress(f"{phase}: fps {fps}; {rate('faces'):.1f} faces/s, {rate('embeddings'):.1f} embeddings/s")

    # -- results -----------------------------------------------------------------------------
    def results(self) -> dict[str, Any]:
        """The figures of the measured window (see the module docstring)."""
        assert self.start is not None and self.end is not None and self.first_frames is not None
        first, last = self.start.stats[self.clock], self.end.stats[self.clock]
        seconds = last.ts - first.ts
        delta = self._delta
        total = lambda key: sum(delta(key, worker) for worker in self.inference)
        samples: dict[str, list[float]] = {}
        for stats in self.window:
            if stats.stage in self.inference:
                for name, values in stats.latencies.items():
                    samples.setdefault(name, []).extend(values)
        sources: dict[str, Any] = {}
        for name in self.sources:
            capture = f"capture:{name}"
            sources[name] = {
                "fps": sum(delta(f"frames[{name}]", worker) / self._span(worker, seconds) for worker in self.inference),
                "frames": total(f"frames[{name}]"),
                "sent": delta("frames_sent", capture),
                "dropped": delta("frames_dropped", capture),
                "skipped": total(f"skipped[{name}]"),
                "capture_to_detect_ms": latency_summary(samples.get(f"capture_to_detect[{name}]", [])),
                "capture_to_result_ms": latency_summary(samples.get(f"capture_to_result[{name}]", [])),
            }
        every = lambda prefix: [v for s in self.sources for v in samples.get(f"{prefix}[{s}]", [])]
        in_window = [e for _, e in self.events if first.ts < e.ts <= last.ts]
        received = [(at, e) for at, e in self.events if first.ts < e.ts <= last.ts and e.capture_ts and e.type in ("match", "unknown")]
        faces, embeddings, batches = total("faces"), total("embeddings"), total("batches")
        cpu = self._cpu()
        return {
            "startup_s": self.first_frames - self.launched,
            "measured_s": seconds,
            "fps": sum(s["fps"] for s in sources.values()),
            "sources": sources,
            "latency_ms": {
                "capture_to_detect": latency_summary(every("capture_to_detect")),
                "capture_to_result": latency_summary(every("capture_to_result")),
                "capture_to_event": latency_summary([e.ts - e.capture_ts for _, e in received]),  # type: ignore[operator]
                "capture_to_delivery": latency_summary([at - e.capture_ts for at, e in received]),  # type: ignore[operator]
            },
            "latency_samples_ms": {
                "capture_to_result": _samples_ms(every("capture_to_result")),
                "capture_to_event": _samples_ms([e.ts - e.capture_ts for _, e in received]),  # type: ignore[operator]
            },
            "faces_per_s": faces / seconds,
            "embeddings_per_s": embeddings / seconds,
            "embeddings_per_face": embeddings / faces if faces else 0.0,
            "frames_skipped": total("frames_skipped"),
            "decisions": {kind: sum(e.type == kind for e in in_window) for kind in ("match", "unknown", "track_end")},
            "identities": self._identities(),
            "open_set": open_set_figures(self.events, self.expected, self.launched_wall + self.first_frames - self.launched),
            "steps_ms": {step: _step_summary(samples.get(step, [])) for step in ("detect", "embed", "match", "batch")},
            "batching": {
                "frames_per_batch": sum(s["frames"] for s in sources.values()) / batches if batches else 0.0,
                "faces_per_embed_batch": embeddings / len(samples["embed"]) if samples.get("embed") else 0.0,
                "full_detections_per_s": total("detections_full") / seconds,
                "tracked_detections_per_s": total("detections_tracked") / seconds,
            },
            "cpu": cpu,
            "peak_rss_mb": {name: round(kb / 1024, 1) for name, kb in self.peak_rss.items() if kb is not None},
            "workers": {worker: self._worker(worker, seconds, cpu["stages"]) for worker in self.inference},
            "pids": dict(self.end.pids),
            "restarted": sorted(n for n, pid in self.end.pids.items() if self.start.pids.get(n) not in (None, pid)),
        }

    def _delta(self, key: str, stage: str) -> int:
        """Counter ``key`` of ``stage`` over the window (0 for a stage that did not report at both ends)."""
        assert self.start is not None and self.end is not None
        if stage not in self.end.stats or stage not in self.start.stats:
            return 0
        return self.end.stats[stage].counters.get(key, 0) - self.start.stats[stage].counters.get(key, 0)

    def _span(self, stage: str, seconds: float) -> float:
        """The window by ``stage``'s own reports (``seconds``, the clock's, if it has no span of its own):
        its counters over its own time, as each worker reports when it will."""
        assert self.start is not None and self.end is not None
        if stage in self.end.stats and stage in self.start.stats:
            span = self.end.stats[stage].ts - self.start.stats[stage].ts
            if span > 0:
                return span
        return seconds

    def _worker(self, worker: str, seconds: float, cpu: dict[str, float]) -> dict[str, Any]:
        """One inference stage's share (see ``workers`` in the module docstring)."""
        assert self.end is not None
        span = self._span(worker, seconds)
        batches = self._delta("batches", worker)
        frames = sum(self._delta(f"frames[{name}]", worker) for name in self.sources)
        batch_s = [v for stats in self.window if stats.stage == worker for v in stats.latencies.get("batch", ())]
        busy_s = batches * float(np.mean(batch_s)) if batch_s else 0.0
        kb = self.peak_rss.get(worker)
        return {
            "pid": self.end.pids.get(worker),
            "cameras": [name for name in self.sources if self._delta(f"frames[{name}]", worker) > 0],
            "frames": frames,
            "fps": frames / span,
            "skipped": self._delta("frames_skipped", worker),
            "busy": busy_s / span,
            "capacity_fps": frames / busy_s if busy_s else None,
            "cpu_cores": cpu[worker] / 100.0 if worker in cpu else None,
            "peak_rss_mb": round(kb / 1024, 1) if kb is not None else None,
        }

    def _cpu(self) -> dict[str, Any]:
        assert self.start is not None and self.end is not None
        wall = self.end.mono - self.start.mono
        stages: dict[str, float] = {}
        for name, pid in self.end.pids.items():
            after = self.end.ticks.get(name)
            before = self.start.ticks.get(name) if self.start.pids.get(name) == pid else 0
            if after is not None and before is not None:
                stages[name] = 100.0 * (after - before) / _CLK_TCK / wall
        from streamrec.backends import default_threads

        return {"percent": sum(stages.values()), "cores": default_threads(), "stages": stages}

    def _identities(self) -> list[dict[str, Any]]:
        people: dict[str, dict[str, Any]] = {}
        for at, event in self.events:
            if event.type != "match" or not event.name:
                continue
            person = people.setdefault(event.name, {"name": event.name, "matches": 0, "first_s": at - self.launched_wall, "sources": []})
            person["matches"] += 1
            if event.source not in person["sources"]:
                person["sources"].append(event.source)
        return sorted(people.values(), key=lambda p: p["first_s"])


def open_set_figures(events: list[tuple[float, Event]], expected: list[str], since: float) -> dict[str, Any]:
    """Tracks named and not, from the decisions in ``events`` (each with the wall time it was
    received), with ``expected`` the enrolled people (names or ids) who appear in the source;
    ``since``: the wall time processing began (see ``open_set`` in the module docstring)."""
    from streamrec.match.openset import upper_bound

    wanted = set(expected)
    names: dict[tuple[str, int], set[str]] = {}
    first: dict[str, float] = {}
    for at, event in events:
        if event.type in ("match", "unknown") and event.track_id is not None:
            given = names.setdefault((event.source, event.track_id), set())
            if event.type == "match" and event.name:
                label = event.person_id if event.person_id in wanted else event.name
                given.add(label)
                first.setdefault(label, at - since)
    named = {person: sum(person in given for given in names.values()) for person in expected}
    strangers = [given for given in names.values() if not given & wanted]
    false_named: dict[str, int] = {}
    for given in strangers:
        for name in given:
            false_named[name] = false_named.get(name, 0) + 1
    false_names = sum(bool(given) for given in strangers)
    return {
        "expected": list(expected),
        "tracks": len(names),
        "enrolled_tracks": len(names) - len(strangers),
        "named": named,
        "first_named_s": {person: first.get(person) for person in expected},
        "missed": [person for person, count in named.items() if not count],
        "stranger_tracks": len(strangers),
        "false_names": false_names,
        "false_named": dict(sorted(false_named.items())),
        "fpir": false_names / len(strangers) if strangers else None,
        "fpir_upper_95": upper_bound(false_names, len(strangers)) if strangers else None,
    }


def bench_pipeline(supervisor: Supervisor, collector: PipelineCollector) -> tuple[dict[str, Any] | None, str]:
    """Run ``supervisor`` in this thread while ``collector`` watches it from another. Returns
    the results, or ``None`` and why the measured window was not completed: ``"interrupted"``
    (SIGINT or SIGTERM), the collector's error, or how the pipeline stopped by itself."""
    thread = threading.Thread(target=collector.run, name="bench-collector")
    thread.start()
    try:
        status = supervisor.run()
        signalled = supervisor.stopping  # before the collector's own stop request, below
    finally:
        collector.halt()
        thread.join()
    if collector.complete:
        return collector.results(), ""
    if collector.error:
        return None, collector.error
    if signalled:
        return None, "interrupted"
    failed = f" (failed: {', '.join(supervisor.failed_sources)})" if supervisor.failed_sources else ""
    return None, f"the pipeline stopped by itself with status {status}{failed}"
