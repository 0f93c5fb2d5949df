"""The doors of an inference stage: an access decision (:class:`~streamrec.door.access.DoorAccess`)
for each source whose role is ``door``, fed with what the stage sees, and an ``access`` event for
each challenge and each outcome.

Every final outcome goes through :meth:`Doors.finish`, the one place where a door's answer is
known: there it is published, and handed to the configured actions (``[door] actions``: a
webhook, a relay command; :mod:`streamrec.door.actions`). They run on a thread of their own, so a
slow relay never holds up the next decision; their results come back through a queue and are
published by the stage's own thread (:meth:`Doors.report_actions`), since a ZeroMQ socket is
used by one thread only. Each result is an ``access`` event with ``result`` ``action``.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from collections.abc import Callable, Iterable, Mapping
from logging import Logger
from pathlib import Path
from typing import Any

from streamrec.bus.messages import MAX_TEXT, Event, FrameHeader
from streamrec.config.model import RunConfig
from streamrec.door.access import AccessOutcome, DoorAccess, Evidence, OpenChallenges
from streamrec.door.actions import ActionResult, ActionRunner
from streamrec.track.identity import Observation
from streamrec.track.tracker import Track

__all__ = ["ACTION_CLOSE_S", "Doors", "access_event", "action_event"]

ACTION_CLOSE_S = 5.0  #: how long a stopping stage waits for actions under way, to record them


def access_event(outcome: AccessOutcome) -> Event:
    """The ``access`` event of ``outcome``."""
    challenge = outcome.challenge
    return Event(
        "access", challenge.source, time.time(), track_id=challenge.track_id, person_id=challenge.person_id,
        name=challenge.name, result=outcome.result, direction=challenge.direction, reason=outcome.reason,
        detail=outcome.detail,
    )


def action_event(outcome: Mapping[str, Any], result: ActionResult) -> Event:
    """The record of one action run for ``outcome`` (an access event's fields): an ``access``
    event with ``result`` ``action``, ``reason`` ``done``, ``failed`` or ``timeout``, and the
    action's label, its line and time in ``detail``."""
    reason = "done" if result.ok else "timeout" if result.timed_out else "failed"
    detail = f"{result.action}: {result.detail} ({result.elapsed_s:.2f} s)"
    return Event(
        "access", outcome["source"], time.time(), track_id=outcome.get("track_id"), person_id=outcome.get("person_id"),
        name=outcome.get("name"), result="action", reason=reason, detail=detail[:MAX_TEXT],
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
        self._results: queue.SimpleQueue[tuple[Mapping[str, Any], ActionResult]] = queue.SimpleQueue()
        self.runner = ActionRunner(config.door.actions, self._action_done) if config.door.actions and self.doors else None

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
            seen = {track.id: track.landmarks for track in tracks if track.last_ts == header.motion_ts}
            self._handle(door.frame(header.motion_ts, seen, time.monotonic()))

    def embedded(self, source: str, track: Track, header: FrameHeader, observation: Observation) -> None:
        """A face of a door was embedded and matched."""
        door = self.doors.get(source)
        if door is not None:
            self._handle(door.evidence(Evidence(track.id, header.motion_ts, observation)))

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

    def report_actions(self) -> None:
        """Publish the results of the actions finished since the last call."""
        while True:
            try:
                outcome, result = self._results.get_nowait()
            except queue.Empty:
                return
            event = action_event(outcome, result)
            log = self.log.info if result.ok else self.log.warning
            log("door %s: action %s", event.source, event.detail)
            self.emit(event)

    def close(self) -> None:
        """Let the actions under way finish (for at most :data:`ACTION_CLOSE_S`) and publish
        their results; one still running then is recorded by its own log line only."""
        if self.runner is not None and not self.runner.close(ACTION_CLOSE_S):
            self.log.warning("door actions still running after %.0f s: not waited for", ACTION_CLOSE_S)
        self.report_actions()

    def _action_done(self, outcome: Mapping[str, Any], result: ActionResult) -> None:
        self._results.put((outcome, result))  # from the actions' thread: published by the stage's

    def _handle(self, outcomes: list[AccessOutcome]) -> None:
        for outcome in outcomes:
            self.open.record(outcome)
            if outcome.final:
                self.finish(outcome)
            else:
                self.emit(access_event(outcome))

    def finish(self, outcome: AccessOutcome) -> None:
        """A door's final answer: granted or denied. Reported as an ``access`` event, and handed
        to the actions with ``outcome`` set to the answer (the event's other fields beside it)."""
        challenge = outcome.challenge
        self.log.info("door %s: %s %s (track %d)%s", challenge.source, outcome.result, challenge.person_id,
                      challenge.track_id, f": {outcome.reason}" if outcome.reason else "")
        event = access_event(outcome)
        self.emit(event)
        if self.runner is not None:
            fields = {k: v for k, v in dataclasses.asdict(event).items() if v is not None and v != ""}
            self.runner.submit({**fields, "type": "access", "outcome": outcome.result})
