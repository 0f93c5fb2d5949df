"""What the web stage knows: the newest JPEG of each source, the recent decisions, and what
each camera's door display shows (:mod:`streamrec.web.door`).

One writer (the stage's ZeroMQ loop) and many readers (one HTTP thread per client) share it
under one condition variable, which also wakes the MJPEG streams when a new picture arrives.
Only the newest picture of a source is kept, so a slow client skips frames instead of
falling behind: each client always gets the present.

What it holds is bounded whatever the feeds bring: the configured sources and at most
``MAX_OTHER_SOURCES`` others (pictures and last decisions of any further source are refused and
counted in ``refused``), ``recent`` events, and messages whose every field the schema bounds
(:mod:`streamrec.bus.messages`). So ``/api/state`` is about a kilobyte per camera, and at most
(cameras + ``MAX_OTHER_SOURCES``) x ``MAX_FACES`` labels of ``MAX_NAME`` characters plus
``recent`` events of at most 16 KB each, whatever a sender puts in its messages.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from streamrec.bus.messages import DECISION_TYPES, Event, JpegFrame
from streamrec.web.door import Door

__all__ = ["MAX_OTHER_SOURCES", "Picture", "WebState"]

MAX_OTHER_SOURCES = 8  #: sources not configured whose pictures and decisions are kept


@dataclass(frozen=True)
class Picture:
    """A source's newest overlaid frame. ``seq`` grows with every picture received (of any
    source): a stream sends a picture only when its ``seq`` is above the last one sent."""

    header: JpegFrame
    jpeg: bytes
    seq: int
    received: float  #: Unix time it reached the web stage


class WebState:
    """Shared, thread-safe state. ``sources``: the configured camera names, listed first (in
    that order) even before they deliver a frame; others appear as their frames arrive.
    ``hold_s``: how long a door display keeps a decision after its face left; ``challenge_s``:
    how long it shows an access challenge that got no answer, at most."""

    def __init__(self, sources: Sequence[str] = (), *, hold_s: float, challenge_s: float = 10.0, recent: int = 20) -> None:
        self._changed = threading.Condition()
        self._configured = list(sources)
        self._hold_s, self._challenge_s = hold_s, challenge_s
        self._doors: dict[str, Door] = {}
        self._pictures: dict[str, Picture] = {}
        self._decisions: dict[str, Event] = {}
        self._last_decision: Event | None = None
        self._events: deque[Event] = deque(maxlen=recent)
        self._seq = 0
        self.refused: Counter[str] = Counter()  #: ``pictures_unknown_source``, ``decisions_unknown_source``
        self.closed = False
        self.requests = 0  #: HTTP requests served so far
        self.streams = 0  #: MJPEG clients connected now

    # -- writers ------------------------------------------------------------------------------
    def _room_for(self, source: str) -> bool:
        """Whether ``source`` is configured, already known, or one of the few others kept."""
        known = self._pictures.keys() | self._decisions.keys() | self._doors.keys()
        return source in self._configured or source in known or len(known - set(self._configured)) < MAX_OTHER_SOURCES

    def add_picture(self, header: JpegFrame, jpeg: bytes) -> None:
        with self._changed:
            if not self._room_for(header.source):
                self.refused["pictures_unknown_source"] += 1
                return
            self._seq += 1
            picture = self._pictures[header.source] = Picture(header, jpeg, self._seq, time.time())
            self._door(header.source).saw_frame(header, picture.received)
            self._changed.notify_all()

    def add_event(self, event: Event) -> None:
        """Keep ``event`` among the recent ones and, for a decision, as its source's last one
        (and the last overall, unless a later decision is already known)."""
        with self._changed:
            self._events.append(event)
            if not self._room_for(event.source):
                if event.type in DECISION_TYPES:
                    self.refused["decisions_unknown_source"] += 1
                return
            self._door(event.source).saw_event(event)
            if event.type in DECISION_TYPES:
                self._decisions[event.source] = event
                if self._last_decision is None or event.ts >= self._last_decision.ts:
                    self._last_decision = event

    def _door(self, source: str) -> Door:
        return self._doors.setdefault(source, Door(self._hold_s, self._challenge_s))

    def close(self) -> None:
        """Wake every stream so its thread can end."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def count_request(self) -> None:
        with self._changed:
            self.requests += 1

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Count an MJPEG client for as long as it stays connected."""
        with self._changed:
            self.streams += 1
        try:
            yield
        finally:
            with self._changed:
                self.streams -= 1

    # -- readers ------------------------------------------------------------------------------
    def sources(self) -> list[str]:
        """The configured sources, then any other that sent a frame, by name."""
        with self._changed:
            others = sorted(set(self._pictures) - set(self._configured))
            return self._configured + others

    def picture(self, source: str) -> Picture | None:
        with self._changed:
            return self._pictures.get(source)

    def next_picture(self, source: str, after: int, timeout: float) -> Picture | None:
        """The source's picture once it is newer than ``seq`` ``after``; None after ``timeout``
        seconds without one, or when the state is closed."""

        def ready() -> bool:
            picture = self._pictures.get(source)
            return self.closed or (picture is not None and picture.seq > after)

        with self._changed:
            if not self._changed.wait_for(ready, timeout) or self.closed:
                return None
            return self._pictures[source]

    def snapshot(self) -> dict[str, Any]:
        """The JSON of ``/api/state``: sources with their rate and newest frame, what each
        source's door display shows, the last decision of each source and overall, and the
        recent events (newest first)."""
        sources = self.sources()
        now = time.time()
        with self._changed:
            return {
                "time": now,
                "default_source": sources[0] if sources else None,
                "sources": [self._source_json(name, now) for name in sources],
                "door": {name: self._door(name).view(now).to_json() for name in sources},
                "last_decision": self._last_decision.to_json() if self._last_decision else None,
                "decisions": {name: event.to_json() for name, event in self._decisions.items()},
                "events": [event.to_json() for event in reversed(self._events)],
            }

    def _source_json(self, name: str, now: float) -> dict[str, Any]:
        picture = self._pictures.get(name)
        if picture is None:
            return {"name": name, "fps": None, "frame": None}
        header = picture.header
        frame = {"index": header.index, "ts": header.ts, "width": header.width, "height": header.height,
                 "labels": header.labels, "age_s": round(now - picture.received, 3)}
        return {"name": name, "fps": header.fps, "frame": frame}
