"""The events stage: receives decisions from the inference stage, journals them, publishes them.

Events arrive over a lossless PUSH/PULL link, are numbered and appended to the journal, then
published with the event type as topic, on the public address and on the web stage's feed. If
the journal cannot be written (a full disk), the events are still published, kept in memory (up
to ``_BACKLOG`` events) and written when the disk accepts them again; the error is logged once
per episode.

Counters: ``events_<type>``, ``journaled``, ``malformed_events`` (messages on its input that
are not events, all in ``malformed_messages``), and its publishers' figures (``events``:
public, ``events_feed``: to the web stage; see :meth:`Stage.publisher`).
"""

from __future__ import annotations

import time
from pathlib import Path

from streamrec.bus.messages import EVENT_TYPES, Event
from streamrec.bus.sockets import Endpoints, pull_socket, receive_pending
from streamrec.events.journal import Journal
from streamrec.pipeline.stage import Stage

__all__ = ["PUBLIC_HWM", "EventsStage"]

_BACKLOG = 100_000
PUBLIC_HWM = 100  #: events queued per subscriber before publishing drops for it (the journal keeps them all)


class EventsStage(Stage):
    """Events in at ``endpoints.events_in``, published at ``endpoints.events_pub`` and
    ``endpoints.events_feed``, journaled in ``journal_dir``."""

    name = "events"

    def __init__(self, endpoints: Endpoints, journal_dir: Path, log_file: Path | None = None) -> None:
        super().__init__(endpoints.stats, log_file)
        self.endpoints, self.journal_dir = endpoints, journal_dir
        self.unwritten: list[dict] = []

    def setup(self) -> None:
        assert self.ctx is not None
        self.journal = Journal(self.journal_dir)
        self.inbox = pull_socket(self.ctx, self.endpoints.events_in, accepts=Event)
        self.outboxes = [
            self.publisher("events", self.endpoints.events_pub, EVENT_TYPES, PUBLIC_HWM),
            self.publisher("events_feed", self.endpoints.events_feed, EVENT_TYPES, PUBLIC_HWM),
        ]
        self.log.info(
            "publishing events on %s, journal in %s (next seq %d)", self.endpoints.events_pub, self.journal_dir, self.journal.seq + 1
        )

    def step(self) -> bool:
        batch = self._receive(timeout_ms=200)
        if batch:
            self._handle(batch)
        elif self.unwritten:
            self._flush_backlog()
        return True

    def teardown(self) -> None:
        # drain what the inference stage already sent, so nothing is lost on a clean stop
        if hasattr(self, "inbox"):
            batch = self._receive(timeout_ms=0)
            if batch:
                self._handle(batch)
            self._flush_backlog()

    def _receive(self, timeout_ms: int) -> list[Event]:
        messages, errors = receive_pending(self.inbox, timeout_ms, expect=Event)
        self.refuse("events", errors)
        return [message for _, message, _ in messages if isinstance(message, Event)]

    def _handle(self, events: list[Event]) -> None:
        numbered = self.journal.number([e.to_json() for e in events])
        self.unwritten.extend(numbered)
        self._flush_backlog()
        for item in numbered:
            event = Event(**item)
            for outbox in self.outboxes:
                outbox.send(event.type, event)
            self.count(f"events_{event.type}")
            if event.capture_ts:
                self.observe("capture_to_event", time.time() - event.capture_ts)

    def _flush_backlog(self) -> None:
        if not self.unwritten:
            return
        try:
            self.journal.write(self.unwritten)
        except OSError as exc:
            if not self.gauges.get("journal_failing"):
                self.log.error("cannot write the event journal in %s: %s; keeping events in memory", self.journal_dir, exc.strerror or exc)
            self.gauges["journal_failing"] = 1.0
            del self.unwritten[:-_BACKLOG]
            return
        if self.gauges.get("journal_failing"):
            self.log.info("event journal writable again")
        self.gauges["journal_failing"] = 0.0
        self.count("journaled", len(self.unwritten))
        self.unwritten.clear()
