"""The events stage: receives decisions from the inference stage, journals them, publishes them.

Events arrive over a lossless PUSH/PULL link, are numbered and appended to the journal, then
published on the PUB socket with the event type as topic. If the journal cannot be written
(a full disk), the events are still published, kept in memory (up to ``_BACKLOG`` events) and
written when the disk accepts them again; the error is logged once per episode.
"""

from __future__ import annotations

import time
from pathlib import Path

from streamrec.bus.messages import Event
from streamrec.bus.sockets import pub_socket, pull_socket, receive_pending, send
from streamrec.events.journal import Journal
from streamrec.pipeline.stage import Stage

__all__ = ["EventsStage"]

_BACKLOG = 100_000


class EventsStage(Stage):
    name = "events"

    def __init__(self, events_in: str, events_pub: str, journal_dir: Path, stats_address: str | None, log_file: Path | None = None) -> None:
        super().__init__(stats_address, log_file)
        self.events_in, self.events_pub, self.journal_dir = events_in, events_pub, journal_dir
        self.unwritten: list[dict] = []

    def setup(self) -> None:
        assert self.ctx is not None
        self.journal = Journal(self.journal_dir)
        self.inbox = pull_socket(self.ctx, self.events_in)
        self.outbox = pub_socket(self.ctx, self.events_pub, hwm=10_000)
        self.log.info("publishing events on %s, journal in %s (next seq %d)", self.events_pub, self.journal_dir, self.journal.seq + 1)

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
        messages, malformed = receive_pending(self.inbox, timeout_ms)
        events = [message for _, message, _ in messages if isinstance(message, Event)]
        bad = malformed + len(messages) - len(events)
        if bad:
            self.count("malformed_messages", bad)
            self.log.warning("dropped %d malformed message(s)", bad)
        return events

    def _handle(self, events: list[Event]) -> None:
        numbered = self.journal.number([e.to_json() for e in events])
        self.unwritten.extend(numbered)
        self._flush_backlog()
        for item in numbered:
            event = Event(**item)
            send(self.outbox, event.type, event)
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
