"""The inference stage: batches the newest frame of every source, detects, tracks, embeds the
faces worth it, matches them against the watchlist and turns tracks into decisions.

This module schedules; the work is done by :mod:`~streamrec.pipeline.batching` (which frames go
together: the newest of each camera, every frame of a file read ``fast``, on a deadline),
:mod:`~streamrec.pipeline.recognition` (detection schedule, tracking, quality gates, embedding,
matching, decisions and track splits, through :class:`~streamrec.faces.FaceModels`) and
:mod:`~streamrec.pipeline.outputs` (events and overlays). Sources whose role is ``door`` also get
access decisions (:mod:`streamrec.door.doors`): challenges open while the stage dies are denied
by its successor, and a door whose frames stop is denied on this stage's own clock.

Latency samples it reports (seconds): ``detect``, ``embed``, ``match`` and ``batch`` (the whole
batch) per batch; per frame, ``capture_to_detect[SOURCE]`` (its detections done) and
``capture_to_result[SOURCE]`` (its faces tracked, embedded, matched and decided), except for a
file read ``fast``, whose frames wait their turn in queues that it keeps full (their age is the
backlog, not the pipeline's speed). Both add the age the frame
header brought (measured by the capture on its own clock) to the time since it arrived here,
so no two hosts' clocks are ever subtracted. Counters include
``frames[SOURCE]`` (processed), ``skipped[SOURCE]`` (passed over for a newer frame; all
sources: ``frames_skipped``), ``frames_stale`` (their ring slot was reused before they were
read), ``faces``, ``embeddings``, ``batches``, ``detections_full`` and ``detections_tracked``
(frames given the whole cascade, or re-detection of their tracked faces), ``track_splits``,
``decisions_match`` and ``decisions_unknown``, ``overlays_dropped`` and ``faces_not_drawn``,
``frames_too_large[SOURCE]`` (larger than the engines take at its min face size: no faces
looked for, said once per frame size in the log);
refused input: ``malformed_frames``, ``malformed_status`` (both in ``malformed_messages``),
``frames_unknown_source`` and ``statuses_unknown_source`` (well-formed, about a source that is
not configured), ``faces_kept`` and ``faces_pruned``; ``batches_failed`` (their frames lost: the
backend's server did not answer, :class:`~streamrec.backends.BackendUnavailable`). Gauges:
``fps[SOURCE]`` and ``dropped[SOURCE]`` (frames its capture dropped); with the triton backend,
the server's health every ``HEALTH_EVERY_S`` (:class:`~streamrec.backends.triton.TritonHealth`).

Several inference workers can share the cameras (``[pipeline] workers``, ``[[links.workers]]``):
each capture sends its camera to one of them (:mod:`~streamrec.pipeline.workers`). A worker
(``worker`` K of ``workers``) serves whichever cameras are sent to it, hands out track ids no
other worker hands out, and keeps running while none is sent (its run stops it).

It tells the events stage which cameras it serves (:class:`~streamrec.bus.messages.Serving`, with
an id of this process) every ``SERVING_EVERY_S``, and that it has taken one before its first
decision about a camera new to it or back after ``SERVED_S`` without frames, so that tracks a
predecessor or a stage that fell silent left open are ended (:mod:`streamrec.events.tracks`),
wherever the stages run.

Each decision keeps a face for the face library (:mod:`streamrec.match.kept`): a track decided
unknown its best-quality face, a match the face that made it; faces past ``[privacy]
unknown_days`` are pruned at the start and every ``PRUNE_EVERY_S``.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from streamrec.backends import BackendUnavailable
from streamrec.bus.messages import Event, FrameHeader, Serving, SourceStatus
from streamrec.bus.ring import RingReader
from streamrec.bus.sockets import Endpoints, drain_frames, pull_socket, push_socket, receive_pending, send
from streamrec.config.model import RunConfig
from streamrec.door.doors import Doors
from streamrec.match.kept import KeptFaces
from streamrec.pipeline.batching import Frame, FrameBatcher
from streamrec.pipeline.outputs import SourceOutput, decision_event, overlay, status_event, track_end_event
from streamrec.pipeline.recognition import Chosen, Decided, Embedded, Ended, Outcome, Recognition
from streamrec.pipeline.rundir import RunCounter
from streamrec.pipeline.stage import Stage

if TYPE_CHECKING:
    from streamrec.backends.triton import TritonHealth

__all__ = ["SERVING_EVERY_S", "InferenceStage"]

#: how long the frames a source sent before it ended may take to arrive
END_GRACE_S = 2.0
#: how often kept faces past their days are removed
PRUNE_EVERY_S = 60.0
#: how often the stage tells the events stage that it is alive and which cameras it serves
SERVING_EVERY_S = 1.0
#: how often a remote backend's server health is read into the gauges
HEALTH_EVERY_S = 5.0
#: a worker that has had no frame of a camera for this long no longer says it serves it
SERVED_S = 3.0


class InferenceStage(Stage):
    name = "inference"

    def __init__(
        self, config: RunConfig, endpoints: Endpoints, data_dir: Path, engine_dir: Path | None,
        log_file: Path | None = None, worker: int = 0, workers: int = 1,
    ) -> None:
        if worker:
            self.name = f"inference:{worker}"
        super().__init__(endpoints.stats, log_file, endpoints.curve)
        self.config, self.endpoints, self.data_dir, self.engine_dir = config, endpoints, data_dir, engine_dir
        self.worker, self.workers = worker, workers
        lossless = {source.label: source.fast for source in config.sources}
        max_wait_s = config.batch.max_wait_ms / 1000.0
        self.batcher = FrameBatcher(lossless, config.batch.max_frames, max_wait_s, self._skipped)
        if worker:  # a worker waits for the cameras sent to it: they say they are open first
            for name in lossless:
                self.batcher.set_live(name, False)
        self.outputs = {name: SourceOutput() for name in lossless}
        privacy = config.privacy
        self.kept = KeptFaces(data_dir, privacy.kept_faces, int(privacy.kept_mb * 2**20), privacy.unknown_days)
        self._prune_at = 0.0
        self._health_at = 0.0
        self.health: TritonHealth | None = None

    # -- set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        from streamrec.backends import BackendOptions
        from streamrec.backends.choose import choose
        from streamrec.detect.mtcnn import MTCNNConfig
        from streamrec.faces import FaceModels, ModelsConfig
        from streamrec.match.matcher import Matcher

        assert self.ctx is not None
        cfg = self.config
        # `streamrec run` resolved "auto" before the start; resolved here too for other callers
        choice = choose(cfg.pipeline.backend, cfg.pipeline.precision, cfg.pipeline.device or None, cfg.pipeline.model,
                        cfg.detector.precision)
        options = BackendOptions(threads=cfg.pipeline.threads or None, device=choice.device,
                                 triton=cfg.triton.options())
        pnet, rnet, onet = cfg.detector.thresholds
        detector = MTCNNConfig(min_face_size=cfg.detector.min_face_size, thresholds=(pnet, rnet, onet))
        settings = ModelsConfig(
            backend=choice.backend, backend_options=options, precision=choice.precision, detection=choice.detection,
            detector=detector, model=cfg.pipeline.model, max_side=None,  # camera frames, each size checked
        )
        models = FaceModels(settings, self.engine_dir, report=self.log.info)
        if choice.backend == "triton":
            from streamrec.backends.triton import TritonHealth

            names = [cfg.triton.model_prefix + net.model_path.stem for net in models.nets]
            self.health = TritonHealth(options.triton, names)
        matcher = Matcher(self.data_dir, threshold=cfg.matcher.threshold, model=cfg.pipeline.model)
        # the run's last track id outlives this process: a restarted stage continues after it
        worker = f"-{self.worker}" if self.worker else ""  # workers of one run share its folder
        ids_file = self.state_path(f"track-ids{worker}")
        self.last_track_id = RunCounter(ids_file, "track ids")
        self.events_out = push_socket(self.ctx, self.endpoints.events_in, linger_ms=5000)
        record = self.state_path(f"door-challenges{worker}")
        self.doors = Doors(cfg, record, self._emit, self.log)
        self.doors.start()
        self.faces = Recognition(cfg, models, matcher, self._new_track_id, self, self.doors.eager)
        inline = cfg.links.frame_pixels != "ring"
        self.frames_in = pull_socket(self.ctx, self.endpoints.frames, hwm=4, accepts=FrameHeader, inline_pixels=inline)
        self.rings = RingReader(Path(self.endpoints.rings))
        self.status_in = pull_socket(self.ctx, self.endpoints.status, accepts=SourceStatus)
        self.overlays_out = push_socket(self.ctx, self.endpoints.overlays, hwm=2, linger_ms=0)
        self.instance = secrets.token_hex(8)  #: this process's id to the events stage
        self.served: dict[str, float] = {}  #: the cameras whose frames it has taken, and when last
        self._serving()
        self.log.info("ready: %d source(s), watchlist in %s", len(self.outputs), self.data_dir)

    def _new_track_id(self) -> int:
        """The next track id of the run, recorded before it is used. Worker K of N hands out
        K, K + N, K + 2N...: no two workers ever give the same id."""
        self.last_track_id.set(self.last_track_id.value + 1)
        return (self.last_track_id.value - 1) * self.workers + max(self.worker, 1)

    # -- loop --------------------------------------------------------------------------------
    def step(self) -> bool:
        if time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + PRUNE_EVERY_S
            self._prune()
        if self.health is not None and time.monotonic() >= self._health_at:
            self._health_at = time.monotonic() + HEALTH_EVERY_S
            self.gauges.update(self.health.gauges())
        if not self.batcher.backlogged():
            self._receive(self.batcher.wait_s(time.monotonic()))
        # after the wait for frames, before they are used: a capture sends a status change (the
        # camera opened) before the frames that follow it, but on another socket, so the status
        # arrives while this stage waits for frames; handled later, the decisions made on those
        # frames would be published before it
        self._statuses()
        self.batcher.fill(time.monotonic())
        if self.batcher.ready(time.monotonic()):
            self._process_or_lose(self.batcher.take())
        self.doors.check_stalls()
        self.doors.report_actions()
        if time.monotonic() >= self._serving_due:
            self._serving(block=False)  # a beat missed while the events stage is away matters not
        if self.worker:  # the cameras come and go; the run stops the worker when they have all ended
            self._forget_cameras()
            return True
        return self.batcher.live or bool(self.batcher.frames)

    def _serving(self, taken: frozenset[str] = frozenset(), block: bool = True) -> None:
        """Tell the events stage that this process is alive and which cameras it serves, of
        which ``taken`` it has just taken: their tracks announced before are another stage's."""
        served = Serving(self.instance, tuple(sorted(self.served)), time.time(), tuple(sorted(taken)))
        send(self.events_out, Serving.kind, served, block=block)
        self._serving_due = time.monotonic() + SERVING_EVERY_S

    def _forget_cameras(self) -> None:
        """A worker no longer claims the cameras it has had no frame of for ``SERVED_S`` (moved to
        another worker, or silent), so that it never takes one back from the worker serving it."""
        now = time.monotonic()
        for name in [name for name, last in self.served.items() if now - last >= SERVED_S]:
            del self.served[name]
            self.batcher.set_live(name, False)

    def _receive(self, timeout: float) -> set[str]:
        """Hand the frames that arrive within ``timeout`` s to the batcher. Returns the sources
        that sent any."""
        timeout_ms = int(timeout * 1000)
        received, errors, stale, unknown = drain_frames(self.frames_in, self.rings, timeout_ms, self.outputs)
        self.refuse("frames", errors)
        self.count("frames_stale", stale)
        self.count("frames_unknown_source", unknown)
        now = time.monotonic()
        # new to it, or back after a break (it may have moved to another worker meanwhile)
        taken = frozenset(name for name in received if now - self.served.get(name, now - SERVED_S) >= SERVED_S)
        self.served.update(dict.fromkeys(received, now))
        if taken:  # before any decision about them
            self._serving(taken)
        for name, frames in received.items():
            self.batcher.add(name, frames)
        return set(received)

    def _skipped(self, name: str, frames: int) -> None:
        """Count frames of camera ``name`` passed over for a newer one."""
        self.count("frames_skipped", frames)
        self.count(f"skipped[{name}]", frames)

    def _statuses(self) -> None:
        messages, errors = receive_pending(self.status_in, expect=SourceStatus)
        self.refuse("status", errors)
        for _, message, _ in messages:
            if isinstance(message, SourceStatus) and message.source in self.outputs:
                self._on_status(message)
            else:
                self.count("statuses_unknown_source")

    def _on_status(self, status: SourceStatus) -> None:
        self._emit(status_event(status))
        if status.state in ("ended", "failed"):
            self.batcher.set_live(status.source, False)
            self._finish(status.source)
        if status.state in ("lost", "reconnecting", "ended", "failed"):  # after the frames it sent before
            self.doors.lost(status.source, f"{status.state}: {status.reason}".rstrip(": "))
        if status.state in ("ended", "failed"):
            self._announce(self.faces.end(status.source))
        elif status.state == "open":
            self.batcher.set_live(status.source, True)

    def _finish(self, name: str) -> None:
        """Process what an ended source sent before it ended (frames and statuses travel on
        separate sockets, so its last frames may still be arriving)."""
        deadline = time.monotonic() + END_GRACE_S
        while time.monotonic() < deadline and name in self._receive(0.2):
            pass
        for frame in self.batcher.leftovers(name):
            self._process_or_lose({name: frame})

    def teardown(self) -> None:
        if not hasattr(self, "faces"):  # the set-up failed (engines, watchlist): no track was opened
            return
        if hasattr(self, "status_in"):  # those that came before the stop (a worker is stopped once its cameras end)
            self._statuses()
        for name in self.outputs:
            self._announce(self.faces.end(name))
        self.doors.close()
        if self.health is not None:
            self.health.close()

    # -- work --------------------------------------------------------------------------------
    def _process_or_lose(self, frames: dict[str, Frame]) -> None:
        """Process a batch; when the backend's server does not answer, its frames are lost (counted
        and warned about, rate-limited) and the stage carries on with the next ones."""
        try:
            self._process(frames)
        except BackendUnavailable as exc:
            self.count("batches_failed")
            self.drops.dropped("batch(es) of frames lost", 1, str(exc))

    def _process(self, frames: dict[str, Frame]) -> None:
        start = time.monotonic()
        found = self.faces.detect(frames)
        self.observe("detect", time.monotonic() - start)
        chosen: list[Chosen] = []
        for name, frame in frames.items():
            self._detected(name, frame[0])
            ended, wanted = self.faces.track(name, frame, found[name])
            self._announce(ended)
            self.doors.frame(frame[0], self.faces.sources[name].tracker.tracks.values())
            chosen += wanted
        self._announce(self.faces.recognise(chosen))
        done = time.monotonic()
        for name, frame in frames.items():
            if not self.batcher.lossless(name):  # its results are complete: embedded, matched, decided
                self.observe(f"capture_to_result[{name}]", frame[0].age_at(done))
            self._overlay(name, frame)
        self.observe("batch", time.monotonic() - start)
        self.count("batches")

    def _overlay(self, name: str, frame: Frame) -> None:
        """Send the frame's overlay to the render stage, unless one left too recently."""
        header, pixels = frame
        output = self.outputs[name]
        if not output.overlay_due(time.monotonic(), self.config.outputs.render_fps):
            return
        message, not_drawn = overlay(header, self.faces.sources[name].tracker.tracks.values(), output.fps)
        if not_drawn:
            self.count("faces_not_drawn", not_drawn)
        if not send(self.overlays_out, name, message, pixels, block=False):
            self.count("overlays_dropped")

    def _detected(self, name: str, header: FrameHeader) -> None:
        """Count a frame whose detection is done, with the source's frame rate, and how old the
        frame was by then (not for a file read ``fast``: its frames wait their turn in full
        queues, so their age measures the backlog)."""
        fps = self.outputs[name].processed(time.monotonic())
        self.count(f"frames[{name}]")
        self.gauges[f"fps[{name}]"] = round(fps, 2)
        self.gauges[f"dropped[{name}]"] = float(header.dropped)
        if not self.batcher.lossless(name):
            self.observe(f"capture_to_detect[{name}]", header.age_at(time.monotonic()))

    def _announce(self, outcomes: Sequence[Outcome]) -> None:
        """Send the events of decisions and of ended tracks, in the order they happened, and hand
        the doors what concerns them."""
        for outcome in outcomes:
            if isinstance(outcome, Decided):
                self.count(f"decisions_{outcome.decision.type}")
                self._emit(decision_event(outcome))
                self._keep(outcome)
            elif isinstance(outcome, Embedded):
                self.doors.embedded(outcome.source, outcome.track, outcome.header, outcome.observation)
            elif isinstance(outcome, Ended):
                self.doors.ended(outcome.source, outcome.track)
                if (event := track_end_event(outcome)) is not None:
                    if event.person_id is not None and event.person_id not in self.faces.matcher.names():
                        event = dataclasses.replace(event, name=event.person_id)  # erased while the track lived
                    self._emit(event)

    def _prune(self) -> None:
        """Remove kept faces past their days (a failure is logged and tried again later)."""
        try:
            self.count("faces_pruned", self.kept.prune())
        except OSError as exc:
            self.log.warning("cannot remove old face crops in %s: %s", self.data_dir, exc.strerror or exc)

    def _keep(self, decided: Decided) -> None:
        """Keep the face of a decision for the face library."""
        decision = decided.decision
        face = decided.face if decision.type == "match" else decided.track.state.best_face
        if face is None:
            return
        kept = self.kept.keep(decision.type, decided.source, decided.track.id, face.ts, face.crop, face.vector,
                              face.quality, decision.person_id, decision.name)
        self.count("faces_kept", kept is not None)

    def _emit(self, event: Event) -> None:
        send(self.events_out, event.type, event)
