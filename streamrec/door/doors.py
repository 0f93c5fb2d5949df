"""The doors of an inference stage: an access decision (:class:`~streamrec.door.access.DoorAccess`)
for each source whose role is ``door``, fed with what the stage sees, and an ``access`` event for
each challenge and each outcome.

Every final outcome goes through :meth:`Doors.finish`, the one place where a door's answer is
known: what opens the door (or keeps it shut) belongs there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from logging import Logger
from pathlib import Path

from streamrec.bus.messages import Event, FrameHeader
from streamrec.config.model import RunConfig
from streamrec.door.access import AccessOutcome, DoorAccess, Evidence, OpenChallenges
from streamrec.track.identity import Observation
from streamrec.track.tracker import Track

__all__ = ["Doors", "access_event"]


def access_event(outcome: AccessOutcome) -> Event:
    """The ``access`` event of ``outcome``."""
    challenge = outcome.challenge
    return Event(
        "access", challenge.source, time.time(), track_id=challenge.track_id, person_id=challenge.person_id,
        name=challenge.name, result=outcome.result, direction=challenge.direction, reason=outcome.reason,
        detail=outcome.detail,
    )


class Doors:
    """The door sources of ``config``; ``record``: the file of their open challenges (in the run
    directory; ``None`` keeps none), ``emit``: where their events go."""

    def __init__(self, config: RunConfig, record: Path | None, emit: Callable[[Event], None], log: Logger) -> None:
        self.doors = {
            source.label: DoorAccess(source.label, config.door, config.matcher)
            for source in config.sources
            if source.role == "door"
        }
        self.open = OpenChallenges(record)
        self.max_embeddings = config.tracker.max_embeddings
        self.emit, self.log = emit, log

    def start(self) -> None:
        """Deny the challenges a predecessor of this stage left open (it died while they ran)."""
        try:
            left = self.open.leftovers()
        except ValueError as exc:  # nothing of it can be answered: those challenges stay unanswered, never granted
            self.log.error("%s; removed", exc)
            self.open.save()
            return
        for outcome in left:
            self.log.warning("door %s: challenge of track %d denied: this stage restarted while it ran",
                             outcome.challenge.source, outcome.challenge.track_id)
            self._handle([outcome])

    def eager(self, source: str, track: Track) -> bool:
        """Whether door ``source`` waits on embeddings of ``track``: a track not answered yet,
        for its first ``[tracker] max_embeddings`` (a stranger's are not embedded for ever), and
        beyond while a challenge runs (the challenged face needs fresh ones, and a face waiting
        for its turn needs recent ones when it comes)."""
        door = self.doors.get(source)
        if door is None or track.id in door.decided:
            return False
        return door.running is not None or track.state.embeddings < self.max_embeddings

    def frame(self, header: FrameHeader, tracks: Iterable[Track]) -> None:
        """A frame of a door was tracked: the faces of ``tracks`` seen on it."""
        door = self.doors.get(header.source)
        if door is not None:
            seen = {track.id: track.landmarks for track in tracks if track.last_ts == header.ts}
            self._handle(door.frame(header.ts, seen, time.monotonic()))

    def embedded(self, source: str, track: Track, header: FrameHeader, observation: Observation) -> None:
        """A face of a door was embedded and matched."""
        door = self.doors.get(source)
        if door is not None:
            self._handle(door.evidence(Evidence(track.id, header.ts, observation)))

    def ended(self, source: str, track: Track) -> None:
        """A track of a door ended."""
        door = self.doors.get(source)
        if door is not None:
            self._handle(door.ended([track.id]))

    def lost(self, source: str, why: str) -> None:
        """A door's camera was lost, or stopped."""
        door = self.doors.get(source)
        if door is not None:
            self._handle(door.source_lost(why))

    def check_stalls(self) -> None:
        """Deny the challenges of doors whose frames stopped coming."""
        now = time.monotonic()
        for door in self.doors.values():
            self._handle(door.stalled(now))

    def _handle(self, outcomes: list[AccessOutcome]) -> None:
        for outcome in outcomes:
            self.open.record(outcome)
            if outcome.final:
                self.finish(outcome)
            else:
                self.emit(access_event(outcome))

    def finish(self, outcome: AccessOutcome) -> None:
        """A door's final answer: granted or denied. Reported as an ``access`` event."""
        challenge = outcome.challenge
        self.log.info("door %s: %s %s (track %d)%s", challenge.source, outcome.result, challenge.person_id,
                      challenge.track_id, f": {outcome.reason}" if outcome.reason else "")
        self.emit(access_event(outcome))
