"""The face work of a batch: detection, tracking, which faces to embed, matching and decisions.

Detection: a source's frame gets the whole cascade every ``full_every`` frames, and whenever the
source has no tracks (a new face is found at once); in between, only the cascade's last stage
looks again where its tracked faces are predicted to be, at a fraction of the cost. Frames of
equal size share a batch either way (and, for the whole cascade, an equal min face size).

Each source's faces then go to its tracker; a tracked face is embedded when the embedding policy
wants it (:mod:`streamrec.track.policy`), every face chosen in a batch as one FaceNet batch, and
matched against the watchlist. An embedding far from the track's last one means another person
took the track's place: the track is split. Each track's identity
(:mod:`streamrec.track.identity`) turns its matches into decisions.

What it reports to its :class:`Meter`: counters ``detections_full`` and ``detections_tracked``
(frames), ``frames_too_large[SOURCE]`` (frames larger than the engines take: no faces looked
for, said once per source and frame size in the log), ``faces``, ``embeddings``,
``track_splits``; latencies ``embed`` and ``match`` per batch. What it finds comes back as
:class:`Decided`, :class:`Ended` and :class:`Embedded` (every matched embedding, for the doors)
outcomes, in the order they happened.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamrec.bus.messages import MAX_NAME, FrameHeader
from streamrec.config.model import RunConfig
from streamrec.detect.types import FaceDetections
from streamrec.faces import FaceModels, FrameTooLarge
from streamrec.match.kept import face_crop
from streamrec.match.matcher import Matcher
from streamrec.pipeline.batching import Frame
from streamrec.track.identity import Decision, Observation, TrackIdentity
from streamrec.track.policy import EmbedPolicy
from streamrec.track.quality import FaceQuality, face_quality
from streamrec.track.state import FaceSample
from streamrec.track.tracker import IoUTracker, Track

__all__ = ["Chosen", "Decided", "Embedded", "Ended", "Meter", "Outcome", "Recognition", "SourceFaces"]

log = logging.getLogger(__name__)


class Meter(Protocol):
    """Where counts and latencies go (a stage's statistics)."""

    def count(self, name: str, amount: int = 1) -> None: ...

    def observe(self, name: str, seconds: float) -> None: ...


@dataclass
class SourceFaces:
    """One source's tracks and its detection schedule."""

    tracker: IoUTracker
    min_face_size: float
    since_full: int = 0  #: frames since its last whole-cascade detection
    too_large: tuple[int, int] | None = None  #: the frame size last refused as too large, said once

    def due_full(self, full_every: int) -> bool:
        """Whether the source's next frame gets the whole cascade (and count it either way)."""
        if not self.tracker.tracks or self.since_full + 1 >= full_every:
            self.since_full = 0
            return True
        self.since_full += 1
        return False


@dataclass(frozen=True)
class Decided:
    """``track`` of ``source`` reached a decision, or changed it, on the frame of ``header``;
    ``face``: the face whose embedding made it."""

    source: str
    track: Track
    decision: Decision
    header: FrameHeader
    face: FaceSample | None = None


@dataclass(frozen=True)
class Ended:
    """``track`` of ``source`` ended: its face left, the source stopped, or the track split."""

    source: str
    track: Track


@dataclass(frozen=True)
class Embedded:
    """``track`` of ``source`` was embedded on the frame of ``header``, and matched: ``observation``."""

    source: str
    track: Track
    header: FrameHeader
    observation: Observation


Outcome = Decided | Ended | Embedded


@dataclass
class Chosen:
    """A face chosen for embedding in this batch: its track, its quality and its frame."""

    source: str
    track: Track
    quality: FaceQuality
    header: FrameHeader
    pixels: np.ndarray
    face: FaceDetections  #: the face alone


class Recognition:
    """The face work of the inference stage, source by source and batch by batch.

    ``new_track_id`` gives the ids of new tracks (the stage keeps them unique for the whole run).
    ``eager`` says which tracks a door waits on (embedded as often as the policy allows).
    """

    def __init__(
        self,
        config: RunConfig,
        models: FaceModels,
        matcher: Matcher,
        new_track_id: Callable[[], int],
        meter: Meter,
        eager: Callable[[str, Track], bool] = lambda source, track: False,
    ) -> None:
        self.config, self.models, self.matcher, self.meter = config, models, matcher, meter
        self.eager = eager
        self.policy = EmbedPolicy(config.tracker)
        tracking = config.tracker
        self.sources = {
            source.label: SourceFaces(
                IoUTracker(tracking.iou_threshold, tracking.max_missed_s, new_track_id),
                source.min_face_size or config.detector.min_face_size,
            )
            for source in config.sources
        }

    def detect(self, frames: Mapping[str, Frame]) -> dict[str, FaceDetections]:
        """Each frame's faces: the whole cascade for the frames due for it, re-detection of the
        tracked faces for the others."""
        full: dict[tuple[int, int, float], list[str]] = defaultdict(list)
        tracked: dict[tuple[int, int], list[str]] = defaultdict(list)
        for name, (header, _) in frames.items():
            source = self.sources[name]
            if source.due_full(self.config.detector.full_every):
                full[(header.height, header.width, source.min_face_size)].append(name)
            else:
                tracked[(header.height, header.width)].append(name)
        result: dict[str, FaceDetections] = {}
        for (height, width, min_face), names in full.items():
            stack = np.stack([frames[n][1] for n in names])
            try:
                result.update(zip(names, self.models.detect(stack, min_face)))
            except FrameTooLarge as exc:
                self._too_large(names, (height, width), exc)
                result.update(dict.fromkeys(names, FaceDetections.empty()))
                continue
            self.meter.count("detections_full", len(names))
        for names in tracked.values():
            stack = np.stack([frames[n][1] for n in names])
            boxes = [self._predicted(n, frames[n][0].motion_ts) for n in names]
            result.update(zip(names, self.models.refine(stack, boxes)))
            self.meter.count("detections_tracked", len(names))
        return result

    def _too_large(self, names: list[str], size: tuple[int, int], exc: FrameTooLarge) -> None:
        """Frames of sources ``names`` the engines cannot take: they are counted and go on with no
        faces, and each source's frame size is said once, so that one camera with too large a
        picture neither stops the others nor fills the log."""
        for name in names:
            self.meter.count(f"frames_too_large[{name}]")
            source = self.sources[name]
            if source.too_large != size:
                source.too_large = size
                log.error("source %s: no faces looked for in its frames: %s", name, exc)

    def _predicted(self, name: str, ts: float) -> np.ndarray:
        """``(k, 4)``: where source ``name``'s tracked faces are expected at ``ts``."""
        return np.stack([track.predicted(ts) for track in self.sources[name].tracker.tracks.values()])

    def track(self, name: str, frame: Frame, faces: FaceDetections) -> tuple[list[Ended], list[Chosen]]:
        """Follow ``faces`` of source ``name``'s ``frame`` on its tracks. Returns the tracks that
        ended and the faces to embed."""
        header, pixels = frame
        matched, ended = self.sources[name].tracker.update(faces, header.motion_ts)
        chosen = []
        for track, index in matched:
            quality = face_quality(pixels, faces.boxes[index], faces.landmarks[index])
            if self.policy.wants(track, quality, header.motion_ts, self.eager(name, track)):
                self.policy.record(track, quality, header.motion_ts)
                chosen.append(Chosen(name, track, quality, header, pixels, faces[[index]]))
        self.meter.count("faces", len(faces))
        return [Ended(name, track) for track in ended], chosen

    def recognise(self, chosen: list[Chosen]) -> list[Outcome]:
        """Embed and match the ``chosen`` faces; returns the splits and decisions they led to."""
        if not chosen:
            return []
        start = time.monotonic()
        vectors = self.models.embed([c.pixels for c in chosen], [c.face for c in chosen])
        self.meter.observe("embed", time.monotonic() - start)
        self.meter.count("embeddings", len(chosen))
        start = time.monotonic()
        results = self.matcher.match(vectors)
        self.meter.observe("match", time.monotonic() - start)
        outcomes: list[Outcome] = []
        switch_distance = self.config.tracker.switch_distance
        for item, vector, result in zip(chosen, vectors, results):
            last = item.track.state.last_vector
            if last is not None and float(np.linalg.norm(vector - last)) > switch_distance:
                outcomes.append(self._split(item))
            state = item.track.state
            state.last_vector = vector
            if state.identity is None:
                state.identity = TrackIdentity(self.config.matcher)
            # a watchlist made before names were limited may hold longer ones than a message carries
            name = result.name[:MAX_NAME] if result.name else result.name
            quality = item.quality.score
            sample = FaceSample(face_crop(item.pixels, item.face.boxes[0]), vector, quality, item.header.ts)
            if state.best_face is None or quality > state.best_face.quality:
                state.best_face = sample
            observation = Observation(result.person_id, name, result.distance, quality, result.runner_up)
            decision = state.identity.add(observation)
            if decision is not None:
                outcomes.append(Decided(item.source, item.track, decision, item.header, sample))
            outcomes.append(Embedded(item.source, item.track, item.header, observation))
        return outcomes

    def _split(self, item: Chosen) -> Ended:
        """The track's face is now someone else's (a scene cut, or one person walking in front
        of another): the face goes on, on a new track decided afresh; the old track ends."""
        old = item.track
        item.track = self.sources[item.source].tracker.split(old)
        self.policy.record(item.track, item.quality, item.header.motion_ts)
        self.meter.count("track_splits")
        return Ended(item.source, old)

    def end(self, name: str) -> list[Ended]:
        """End every track of source ``name`` (it stopped)."""
        return [Ended(name, track) for track in self.sources[name].tracker.end_all()]
