"""An IoU tracker for faces, one per source.

Faces move little between frames at video rates, so box overlap with a track's predicted box
(its last box moved by its recent velocity) is enough to keep identities apart; a track that
goes unmatched for ``max_missed_s`` ends. The velocity is smoothed over time
(``VELOCITY_TIME_S``), not over frames: a detector's box wobbles by a few pixels from frame to
frame, and frames can come a millisecond apart (a paced file catching up, a burst after a
stall), so a per-frame difference would read a still face as moving at hundreds of pixels a
second, predict it far from where it stands, and lose it. Matching is greedy on overlap, best pairs first.
Overlap cannot see a scene cut that puts another face where the last one was: the embeddings
can, and :meth:`IoUTracker.split` then gives the new face a track of its own.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streamrec.detect.types import FaceDetections
from streamrec.track.state import TrackState

__all__ = ["VELOCITY_TIME_S", "IoUTracker", "Track", "iou_matrix"]

#: time constant of the velocity's smoothing, seconds: a step of ``dt`` moves the estimate
#: ``1 - exp(-dt / VELOCITY_TIME_S)`` of the way to the step's own speed, so one box's wobble of
#: ``d`` pixels adds at most about ``d / VELOCITY_TIME_S`` px/s, however close the frames came
VELOCITY_TIME_S = 0.25


@dataclass
class Track:
    """A face followed over frames. ``box``/``landmarks`` are from the latest detection.
    ``state`` holds what other components keep per track (embeddings, the decision)."""

    id: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    first_ts: float
    last_ts: float
    hits: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    state: TrackState = field(default_factory=TrackState)

    def predicted(self, ts: float) -> np.ndarray:
        """Where the box is expected at ``ts``, moving at its recent velocity (px per second)."""
        return self.box + self.velocity * (ts - self.last_ts)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (m, 4) with every box in ``b`` (n, 4)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


class IoUTracker:
    """Assigns the faces of each frame of one source to tracks. ``new_id``: where track ids come
    from (the inference stage keeps them unique for a whole run; the default counts from 1)."""

    def __init__(self, iou_threshold: float = 0.3, max_missed_s: float = 1.0, new_id: Callable[[], int] | None = None) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed_s = max_missed_s
        self.tracks: dict[int, Track] = {}
        self._new_id = new_id if new_id is not None else itertools.count(1).__next__

    def update(self, faces: FaceDetections, ts: float) -> tuple[list[tuple[Track, int]], list[Track]]:
        """Feed one frame's faces (taken at ``ts``). Returns ``(matched, ended)``: each face's
        track with the face's index (new tracks included), and the tracks that just ended."""
        tracks = list(self.tracks.values())
        pairs = self._associate(tracks, faces, ts)
        matched: list[tuple[Track, int]] = []
        used = set()
        for t, f in pairs:
            track = tracks[t]
            new_box = faces.boxes[f].astype(np.float32)
            dt = ts - track.last_ts
            if dt > 0:
                weight = -math.expm1(-dt / VELOCITY_TIME_S)
                track.velocity = (1 - weight) * track.velocity + weight * (new_box - track.box) / dt
            track.box, track.landmarks, track.score = new_box, faces.landmarks[f], float(faces.scores[f])
            track.last_ts, track.hits = ts, track.hits + 1
            matched.append((track, f))
            used.add(f)
        for f in range(len(faces)):
            if f not in used:
                track = Track(self._new_id(), faces.boxes[f].astype(np.float32), faces.landmarks[f], float(faces.scores[f]), ts, ts)
                self.tracks[track.id] = track
                matched.append((track, f))
        ended = [t for t in self.tracks.values() if ts - t.last_ts > self.max_missed_s]
        for track in ended:
            del self.tracks[track.id]
        return matched, ended

    def split(self, track: Track) -> Track:
        """End ``track`` and continue its current face on a new track (another person has taken
        its place, e.g. at a scene cut). Returns the new track; the caller closes the old one."""
        del self.tracks[track.id]
        new = Track(self._new_id(), track.box, track.landmarks, track.score, track.last_ts, track.last_ts)
        self.tracks[new.id] = new
        return new

    def end_all(self) -> list[Track]:
        """End every track (the source stopped); returns them."""
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended

    def _associate(self, tracks: list[Track], faces: FaceDetections, ts: float) -> list[tuple[int, int]]:
        if not tracks or not len(faces):
            return []
        predicted = np.stack([t.predicted(ts) for t in tracks])
        overlap = iou_matrix(predicted, faces.boxes)
        pairs: list[tuple[int, int]] = []
        while True:
            t, f = np.unravel_index(int(np.argmax(overlap)), overlap.shape)
            if overlap[t, f] < self.iou_threshold:
                return pairs
            pairs.append((int(t), int(f)))
            overlap[t, :] = -1
            overlap[:, f] = -1
