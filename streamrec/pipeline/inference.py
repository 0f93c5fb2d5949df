"""The inference stage: batches the newest frame of every source, detects, tracks, embeds the
faces worth it, matches them against the watchlist and turns tracks into decisions.

One process serves every camera, so the detector sees batches across cameras (as DeepStream's
stream muxer does): a batch leaves when it holds a new frame from every live source, when
``max_frames`` are waiting, or ``max_wait_ms`` after its first frame arrived. A batch holds one
frame per source: the newest one of a camera (older ones are skipped and counted), or the next
one in order of a video file read with ``fast``, whose frames are never skipped.

Latency samples it reports (seconds): ``detect``, ``embed``, ``match`` and ``batch`` (the whole
batch) per batch; per frame, ``capture_to_detect[SOURCE]`` (its detections done) and
``capture_to_result[SOURCE]`` (its faces tracked, embedded, matched and decided), except for a
file read ``fast``, whose frames carry the file's own time line. Counters include
``frames[SOURCE]`` (processed), ``skipped[SOURCE]`` (passed over for a newer frame; all
sources: ``frames_skipped``), ``frames_stale`` (their ring slot was reused before they were
read), ``faces``, ``embeddings``, ``batches``; refused input: ``malformed_frames``,
``malformed_status`` (both in ``malformed_messages``), ``frames_unknown_source`` and
``statuses_unknown_source`` (well-formed, about a source that is not configured).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamrec.bus.messages import (
    MAX_FACES,
    MAX_NAME,
    MAX_TEXT,
    Event,
    FaceOverlay,
    FrameHeader,
    Overlay,
    SourceStatus,
)
from streamrec.bus.ring import RingReader
from streamrec.bus.sockets import Endpoints, drain_frames, pull_socket, push_socket, receive_pending, send
from streamrec.config.model import RunConfig
from streamrec.detect.mtcnn import MTCNNConfig
from streamrec.detect.types import FaceDetections
from streamrec.pipeline.rundir import RunCounter
from streamrec.pipeline.stage import Stage
from streamrec.track.identity import Decision, Observation, TrackIdentity
from streamrec.track.policy import EmbedPolicy
from streamrec.track.quality import FaceQuality, face_quality
from streamrec.track.tracker import IoUTracker, Track

__all__ = ["InferenceStage"]

#: frames of a lossless (``fast``) source held here before the stage stops taking more
LOSSLESS_BACKLOG = 8
#: the window of the per-source frame rate
FPS_WINDOW_S = 2.0
#: how long the frames a source sent before it ended may take to arrive
END_GRACE_S = 2.0


@dataclass
class _Source:
    """Per-source state: tracker, detector settings, frame-rate estimate, output pacing."""

    tracker: IoUTracker
    min_face_size: float
    lossless: bool = False  #: a video file read with ``fast``: every frame, in order
    waiting: deque[tuple[FrameHeader, np.ndarray]] = field(default_factory=deque)
    live: bool = True
    since_full: int = 0  #: frames since the last whole-cascade detection
    frames: int = 0
    fps: float = 0.0
    recent: deque[float] = field(default_factory=deque)  #: when its frames of the last FPS_WINDOW_S were processed
    last_overlay: float = 0.0


@dataclass
class _Pending:
    """A face chosen for embedding in this batch."""

    source: str
    track: Track
    quality: FaceQuality
    header: FrameHeader
    pixels: np.ndarray  #: its frame
    face: FaceDetections  #: the face alone


@dataclass
class _Batch:
    frames: dict[str, tuple[FrameHeader, np.ndarray]] = field(default_factory=dict)
    started: float = 0.0


class InferenceStage(Stage):
    name = "inference"

    def __init__(self, config: RunConfig, endpoints: Endpoints, data_dir: Path, engine_dir: Path | None, log_file: Path | None = None) -> None:
        super().__init__(endpoints.stats, log_file)
        self.config, self.endpoints, self.data_dir, self.engine_dir = config, endpoints, data_dir, engine_dir
        self.sources: dict[str, _Source] = {}
        self.batch = _Batch()

    # -- set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        from streamrec.backends import BackendOptions
        from streamrec.faces import FaceModels, ModelsConfig
        from streamrec.match.matcher import Matcher

        assert self.ctx is not None
        cfg = self.config
        options = BackendOptions(threads=cfg.pipeline.threads or None)
        pnet, rnet, onet = cfg.detector.thresholds
        detector = MTCNNConfig(min_face_size=cfg.detector.min_face_size, thresholds=(pnet, rnet, onet))
        self.models = FaceModels(
            ModelsConfig(backend=cfg.pipeline.backend, backend_options=options, precision=cfg.pipeline.precision, detector=detector),
            self.engine_dir,
            report=self.log.info,
        )
        self.matcher = Matcher(self.data_dir, threshold=cfg.matcher.threshold)
        self.policy = EmbedPolicy(cfg.tracker)
        # the run's last track id outlives this process: a restarted stage continues after it
        self.last_track_id = RunCounter(self.run_dir / "track-ids" if self.run_dir is not None else None, "track ids")
        for source in cfg.sources:
            self.sources[source.label] = _Source(
                IoUTracker(cfg.tracker.iou_threshold, cfg.tracker.max_missed_s, self._new_track_id),
                source.min_face_size or cfg.detector.min_face_size,
                lossless=source.fast,
            )
        self.frames_in = pull_socket(self.ctx, self.endpoints.frames, hwm=4, accepts=FrameHeader)
        self.rings = RingReader(Path(self.endpoints.rings))
        self.status_in = pull_socket(self.ctx, self.endpoints.status, accepts=SourceStatus)
        self.events_out = push_socket(self.ctx, self.endpoints.events_in, linger_ms=5000)
        self.overlays_out = push_socket(self.ctx, self.endpoints.overlays, hwm=2, linger_ms=0)
        self.log.info("ready: %d source(s), watchlist in %s", len(self.sources), self.data_dir)

    def _new_track_id(self) -> int:
        """The next track id of the run, recorded before it is used."""
        self.last_track_id.set(self.last_track_id.value + 1)
        return self.last_track_id.value

    # -- loop --------------------------------------------------------------------------------
    def step(self) -> bool:
        wait = self.config.batch.max_wait_ms / 1000.0
        timeout = wait if not self.batch.frames else max(0.0, self.batch.started + wait - time.monotonic())
        if not self._backlogged():
            self._receive(timeout)
        # after the wait for frames, before they are used: a capture sends a status change (the
        # camera opened) before the frames that follow it, but on another socket, so the status
        # arrives while this stage waits for frames; handled later, the decisions made on those
        # frames would be published before it
        self._statuses()
        for name, source in self.sources.items():
            if source.waiting and not (source.lossless and name in self.batch.frames):
                if not self.batch.frames:
                    self.batch.started = time.monotonic()
                if name in self.batch.frames:
                    self._skipped(name, 1)
                self.batch.frames[name] = source.waiting.popleft()
        if self._batch_ready():
            batch, self.batch = self.batch, _Batch()
            self._process(batch.frames)
        return any(s.live for s in self.sources.values()) or bool(self.batch.frames)

    def _receive(self, timeout: float) -> set[str]:
        """Take the frames that arrive within ``timeout`` s into the sources' waiting lines (a
        camera keeps only its newest). Returns the sources that sent any."""
        received, errors, stale, unknown = drain_frames(self.frames_in, self.rings, int(timeout * 1000), self.sources)
        self.refuse("frames", errors)
        self.count("frames_stale", stale)
        self.count("frames_unknown_source", unknown)
        for name, frames in received.items():
            source = self.sources[name]
            if source.lossless:
                source.waiting.extend(frames)
            else:
                self._skipped(name, len(source.waiting) + len(frames) - 1)
                source.waiting = deque(frames[-1:])
        return set(received)

    def _skipped(self, name: str, frames: int) -> None:
        """Count frames of camera ``name`` passed over for a newer one."""
        self.count("frames_skipped", frames)
        self.count(f"skipped[{name}]", frames)

    def _backlogged(self) -> bool:
        return any(len(s.waiting) >= LOSSLESS_BACKLOG for s in self.sources.values())

    def _batch_ready(self) -> bool:
        frames = self.batch.frames
        if not frames:
            return False
        live = {name for name, s in self.sources.items() if s.live}
        waited = time.monotonic() - self.batch.started >= self.config.batch.max_wait_ms / 1000.0
        return live <= frames.keys() or len(frames) >= self.config.batch.max_frames or waited or self._backlogged()

    def _statuses(self) -> None:
        messages, errors = receive_pending(self.status_in, expect=SourceStatus)
        self.refuse("status", errors)
        for _, message, _ in messages:
            if isinstance(message, SourceStatus) and message.source in self.sources:
                self._on_status(message)
            else:
                self.count("statuses_unknown_source")

    def _on_status(self, status: SourceStatus) -> None:
        source = self.sources[status.source]
        detail = f"{status.state}: {status.reason}".rstrip(": ")[:MAX_TEXT]
        self._emit(Event("source_status", status.source, time.time(), detail=detail))
        if status.state in ("ended", "failed"):
            source.live = False
            self._finish(status.source, source)
            for track in source.tracker.end_all():
                self._track_end(status.source, track)
        elif status.state == "open":
            source.live = True

    def _finish(self, name: str, source: _Source) -> None:
        """Process what an ended source sent before it ended (frames and statuses travel on
        separate sockets, so its last frames may still be arriving)."""
        deadline = time.monotonic() + END_GRACE_S
        while time.monotonic() < deadline and name in self._receive(0.2):
            pass
        if name in self.batch.frames:
            self._process({name: self.batch.frames.pop(name)})
        while source.waiting:
            self._process({name: source.waiting.popleft()})

    def teardown(self) -> None:
        for name, source in self.sources.items():
            for track in source.tracker.end_all():
                self._track_end(name, track)

    # -- work --------------------------------------------------------------------------------
    def _process(self, frames: dict[str, tuple[FrameHeader, np.ndarray]]) -> None:
        start = time.monotonic()
        detections = self._detect(frames)
        self.observe("detect", time.monotonic() - start)
        pending: list[_Pending] = []
        for name, (header, pixels) in frames.items():
            faces = detections[name]
            source = self.sources[name]
            self._frame_rate(source, header)
            matched, ended = source.tracker.update(faces, header.ts)
            for track in ended:
                self._track_end(name, track)
            for track, index in matched:
                quality = face_quality(pixels, faces.boxes[index], faces.landmarks[index])
                if self.policy.wants(track, quality, header.ts):
                    self.policy.record(track, quality, header.ts)
                    pending.append(_Pending(name, track, quality, header, pixels, faces[[index]]))
            self.count("faces", len(faces))
        if pending:
            self._embed(pending)
        done = time.time()
        for name, (header, pixels) in frames.items():
            if not self.sources[name].lossless:  # its results are complete: embedded, matched, decided
                self.observe(f"capture_to_result[{name}]", done - header.ts)
            self._overlay(name, header, pixels)
        self.observe("batch", time.monotonic() - start)
        self.count("batches")

    def _detect(self, frames: dict[str, tuple[FrameHeader, np.ndarray]]) -> dict[str, FaceDetections]:
        """Whole-cascade detection for frames that are due for one (or whose source has no
        tracks), O-Net re-detection of the tracked faces for the others; frames of equal size
        share a batch either way."""
        full: dict[tuple[int, int, float], list[str]] = defaultdict(list)
        tracked: dict[tuple[int, int], list[str]] = defaultdict(list)
        for name, (header, _) in frames.items():
            source = self.sources[name]
            if not source.tracker.tracks or source.since_full + 1 >= self.config.detector.full_every:
                source.since_full = 0
                full[(header.height, header.width, source.min_face_size)].append(name)
            else:
                source.since_full += 1
                tracked[(header.height, header.width)].append(name)
        result: dict[str, FaceDetections] = {}
        for (_, _, min_face), names in full.items():
            stack = np.stack([frames[n][1] for n in names])
            result.update(zip(names, self.models.detect(stack, min_face)))
            self.count("detections_full", len(names))
        for names in tracked.values():
            stack = np.stack([frames[n][1] for n in names])
            boxes = [np.stack([t.predicted(frames[n][0].ts) for t in self.sources[n].tracker.tracks.values()]) for n in names]
            result.update(zip(names, self.models.refine(stack, boxes)))
            self.count("detections_tracked", len(names))
        return result

    def _embed(self, pending: list[_Pending]) -> None:
        start = time.monotonic()
        vectors = self.models.embed([p.pixels for p in pending], [p.face for p in pending])
        self.observe("embed", time.monotonic() - start)
        self.count("embeddings", len(pending))
        start = time.monotonic()
        results = self.matcher.match(vectors)
        self.observe("match", time.monotonic() - start)
        for item, vector, result in zip(pending, vectors, results):
            last = item.track.state.last_vector
            if last is not None and float(np.linalg.norm(vector - last)) > self.config.tracker.switch_distance:
                self._split(item)
            state = item.track.state
            state.last_vector = vector
            if state.identity is None:
                state.identity = TrackIdentity(self.config.matcher)
            # a watchlist made before names were limited may hold longer ones than a message carries
            name = result.name[:MAX_NAME] if result.name else result.name
            observation = Observation(result.person_id, name, result.distance, item.quality.score, result.runner_up)
            decision = state.identity.add(observation)
            if decision is not None:
                self._decision(item, decision)

    def _split(self, item: _Pending) -> None:
        """The track's face is now someone else's (a scene cut, or one person walking in front
        of another): close the old track and decide about the new face afresh."""
        old = item.track
        item.track = self.sources[item.source].tracker.split(old)
        self.policy.record(item.track, item.quality, item.header.ts)
        self.count("track_splits")
        self._track_end(item.source, old)

    def _decision(self, item: _Pending, decision: Decision) -> None:
        self.count(f"decisions_{decision.type}")
        self._emit(
            Event(
                decision.type, item.source, time.time(), track_id=item.track.id, person_id=decision.person_id,
                name=decision.name, distance=_round(decision.distance), score=decision.score,
                box=tuple(round(float(v), 1) for v in item.track.box), frame_index=item.header.index,
                capture_ts=item.header.ts,
            )
        )

    def _track_end(self, source: str, track: Track) -> None:
        """Close a track that was announced (had a decision); tracks that never got one, such
        as a face seen for a frame or two, end silently."""
        decision = track.state.decision
        if decision is None:
            return
        self._emit(
            Event(
                "track_end", source, time.time(), track_id=track.id,
                person_id=decision.person_id, name=decision.name, distance=_round(decision.distance), score=decision.score,
                box=tuple(round(float(v), 1) for v in track.box),
                detail=f"seen {track.last_ts - track.first_ts:.1f} s in {track.hits} frames",
            )
        )

    def _emit(self, event: Event) -> None:
        send(self.events_out, event.type, event)

    def _frame_rate(self, source: _Source, header: FrameHeader) -> None:
        """Frames processed per second over the last ``FPS_WINDOW_S``, and how old the frame was
        when its detection ended (not for a file read ``fast``: its frames are stamped with the
        file's own time line)."""
        now = time.monotonic()
        source.recent.append(now)
        while now - source.recent[0] > FPS_WINDOW_S:
            source.recent.popleft()
        span = now - source.recent[0]
        source.fps = (len(source.recent) - 1) / span if span > 0 else 0.0
        source.frames += 1
        self.count(f"frames[{header.source}]")
        self.gauges[f"fps[{header.source}]"] = round(source.fps, 2)
        self.gauges[f"dropped[{header.source}]"] = float(header.dropped)
        if not source.lossless:
            self.observe(f"capture_to_detect[{header.source}]", time.time() - header.ts)

    def _overlay(self, name: str, header: FrameHeader, pixels: np.ndarray) -> None:
        source = self.sources[name]
        now = time.monotonic()
        if now - source.last_overlay < 1.0 / self.config.outputs.render_fps:
            return
        source.last_overlay = now
        faces = []
        for track in source.tracker.tracks.values():
            if track.last_ts != header.ts:
                continue
            decision = track.state.decision
            label = decision.name if decision and decision.type == "match" else ("unknown" if decision else "...")
            faces.append(
                FaceOverlay(
                    tuple(float(v) for v in track.box), track.id, label or "?",
                    decision.score if decision else 0.0, bool(decision and decision.type == "match"),
                )
            )
        if len(faces) > MAX_FACES:  # a crowd: the message has room for the first ones only
            self.count("faces_not_drawn", len(faces) - MAX_FACES)
        overlay = Overlay(name, header.index, header.ts, header.height, header.width, round(source.fps, 1), tuple(faces[:MAX_FACES]))
        if not send(self.overlays_out, name, overlay, pixels, block=False):
            self.count("overlays_dropped")


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
