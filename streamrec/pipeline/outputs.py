"""What the inference stage sends: events about sources and tracks, and overlays of frames.

A track is announced by its first decision; it then gets a ``track_end`` event when it ends.
Tracks that never got a decision, such as a face seen for a frame or two, end silently. An
overlay (the boxes and labels of one frame, for the render stage) leaves at most ``render_fps``
times a second per source and carries the source's processing rate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamrec.bus.messages import MAX_FACES, MAX_TEXT, Event, FaceOverlay, FrameHeader, Overlay, SourceStatus
from streamrec.pipeline.recognition import Decided, Ended
from streamrec.track.tracker import Track

__all__ = ["FPS_WINDOW_S", "SourceOutput", "decision_event", "overlay", "status_event", "track_end_event"]

#: the window of the per-source frame rate
FPS_WINDOW_S = 2.0


@dataclass
class SourceOutput:
    """A source's processing rate (frames per second over the last ``FPS_WINDOW_S``) and when
    its last overlay left (monotonic seconds)."""

    recent: deque[float] = field(default_factory=deque)  #: when the frames of the window were processed
    fps: float = 0.0
    last_overlay: float = 0.0

    def processed(self, now: float) -> float:
        """Note a frame processed at ``now``; returns the frame rate."""
        self.recent.append(now)
        while now - self.recent[0] > FPS_WINDOW_S:
            self.recent.popleft()
        span = now - self.recent[0]
        self.fps = (len(self.recent) - 1) / span if span > 0 else 0.0
        return self.fps

    def overlay_due(self, now: float, render_fps: float) -> bool:
        """Whether an overlay may leave at ``now`` (and if so, note that it does)."""
        if now - self.last_overlay < 1.0 / render_fps:
            return False
        self.last_overlay = now
        return True


def status_event(status: SourceStatus) -> Event:
    detail = f"{status.state}: {status.reason}".rstrip(": ")[:MAX_TEXT]
    return Event("source_status", status.source, time.time(), detail=detail)


def decision_event(decided: Decided) -> Event:
    decision, track, header = decided.decision, decided.track, decided.header
    return Event(
        decision.type, decided.source, time.time(), track_id=track.id, person_id=decision.person_id,
        name=decision.name, distance=_round(decision.distance), score=decision.score, box=_box(track),
        frame_index=header.index, capture_ts=header.ts,
    )


def track_end_event(ended: Ended) -> Event | None:
    """The ``track_end`` event of a track that was announced, else ``None``."""
    track = ended.track
    decision = track.state.decision
    if decision is None:
        return None
    return Event(
        "track_end", ended.source, time.time(), track_id=track.id, person_id=decision.person_id,
        name=decision.name, distance=_round(decision.distance), score=decision.score, box=_box(track),
        detail=f"seen {track.last_ts - track.first_ts:.1f} s in {track.hits} frames",
    )


def overlay(header: FrameHeader, tracks: Iterable[Track], fps: float) -> tuple[Overlay, int]:
    """The overlay of the frame of ``header``: the ``tracks`` seen on it, labelled with their
    decisions. Returns it and how many faces it has no room for (a crowd)."""
    faces = []
    for track in tracks:
        if track.last_ts != header.motion_ts:
            continue
        decision = track.state.decision
        label = decision.name if decision and decision.type == "match" else ("unknown" if decision else "...")
        faces.append(
            FaceOverlay(
                tuple(float(v) for v in track.box), track.id, label or "?",
                decision.score if decision else 0.0, bool(decision and decision.type == "match"),
            )
        )
    shown = tuple(faces[:MAX_FACES])
    h, w = header.height, header.width
    message = Overlay(header.source, header.index, header.ts, h, w, round(fps, 1), shown)
    return message, len(faces) - len(shown)


def _box(track: Track) -> tuple[float, ...]:
    return tuple(round(float(v), 1) for v in track.box)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
