"""The events stage: receives decisions from the inference stage, journals them, publishes them.

Events arrive over a lossless PUSH/PULL link, are numbered and appended to the journal, then
published with the event type as topic, on the public address and on the web stage's feed. If
the journal cannot be written (a full disk), the events are published all the same and kept in
memory, in order, up to ``JOURNAL_BACKLOG`` of them; the journal is tried again every
``JOURNAL_RETRY_S`` and the backlog written, oldest first and as much as the disk takes, as soon
as it has room. Events that find the backlog full are published but never journaled: they are
counted (``journal_dropped``) and logged with their ``seq`` numbers, so the gap they leave in the
journal is explained. Each episode is logged once when it starts and once when it ends.

It ends the open tracks of an inference stage that died (:mod:`streamrec.events.tracks`). And
no ``seq`` is ever given twice, even to events that were published but not journaled by a
predecessor that was killed with them still in memory: the last number given lives in the run
directory (:class:`~streamrec.pipeline.rundir.RunCounter`), and a restarted stage continues
after it (a subscriber drops numbers it has seen).

Retention: with ``journal_days`` set, the files of days past it are removed at the start and every
``PRUNE_EVERY_S`` (``journal_files_pruned``).

Counters: ``events_<type>``, ``journaled``, ``journal_dropped``, ``tracks_ended_for_a_dead_stage``,
``track_ends_repeated`` (a track's own ``track_end`` dropped: it was ended here already),
``malformed_events`` (messages on its input that are not events, all in ``malformed_messages``),
and its publishers' figures (``events``: public, ``events_feed``: to the web stage; see
:meth:`Stage.publisher`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from streamrec.bus.messages import EVENT_TYPES, EndTracks, Event, Serving
from streamrec.bus.sockets import Endpoints, pull_socket, receive_pending
from streamrec.events.journal import Journal, prune_journal
from streamrec.events.tracks import SILENT_S, OpenTracks
from streamrec.pipeline.rundir import RunCounter
from streamrec.pipeline.stage import Stage

__all__ = ["JOURNAL_BACKLOG", "JOURNAL_RETRY_S", "PUBLIC_HWM", "EventsStage"]

#: events kept in memory while the journal cannot be written (about 400 bytes each)
JOURNAL_BACKLOG = 100_000
#: how often a failing journal is tried again
JOURNAL_RETRY_S = 1.0
#: with its supervisor killed, the stage stops once no event came for this long and no track it
#: follows is open, at most ORPHAN_DRAIN_S after it began to stop; the tracks still open then
#: are ended by the stage itself, since nothing else is left to end them
ORPHAN_QUIET_MS = 2000
ORPHAN_DRAIN_S = 10.0
#: events per write while catching up, so that a disk with a little room takes what fits
_WRITE_CHUNK = 1000
#: how often journal files past their days are removed
PRUNE_EVERY_S = 60.0
PUBLIC_HWM = 100  #: events queued per subscriber before publishing drops for it (the journal keeps them all)


class EventsStage(Stage):
    """Events in at ``endpoints.events_in``, published at ``endpoints.events_pub`` and
    ``endpoints.events_feed``, journaled in ``journal_dir`` for ``journal_days`` (0: for ever);
    the tracks of an inference stage silent for ``silent_s`` are ended."""

    name = "events"

    def __init__(
        self, endpoints: Endpoints, journal_dir: Path, log_file: Path | None = None, backlog: int = JOURNAL_BACKLOG,
        journal_days: float = 0.0, silent_s: float = SILENT_S, orphan_drain_s: float = ORPHAN_DRAIN_S,
    ) -> None:
        super().__init__(endpoints.stats, log_file, endpoints.curve)
        self.endpoints, self.journal_dir = endpoints, journal_dir
        self.backlog, self.journal_days, self.silent_s = backlog, journal_days, silent_s
        self.orphan_drain_s = orphan_drain_s
        self._prune_at = 0.0
        self.unwritten: list[dict[str, Any]] = []  #: numbered events not journaled yet, oldest first
        self._retry_at = 0.0
        self._caught_up = 0  #: events of the backlog written since the journal failed
        self._lost: list[int] = []  #: first and last seq, and count, of the events not journaled since it failed

    def setup(self) -> None:
        assert self.ctx is not None
        self.journal = Journal(self.journal_dir)
        self.last_seq = RunCounter(self.state_path("last-seq"), "event numbers")
        if self.last_seq.value > self.journal.seq:
            self.log.warning(
                "events %d-%d were published before this stage restarted but not journaled; numbering continues after them",
                self.journal.seq + 1, self.last_seq.value,
            )
            self.journal.seq = self.last_seq.value
        self.open_tracks = OpenTracks(self.state_path("open-tracks.json"), self.silent_s)
        self.inbox = pull_socket(self.ctx, self.endpoints.events_in, accepts=Event)
        self.outboxes = [
            self.publisher("events", self.endpoints.events_pub, EVENT_TYPES, PUBLIC_HWM),
            self.publisher("events_feed", self.endpoints.events_feed, EVENT_TYPES, PUBLIC_HWM),
        ]
        self.gauges["journal_failing"] = 0.0
        self.log.info(
            "publishing events on %s, journal in %s (next seq %d)", self.endpoints.events_pub, self.journal_dir, self.journal.seq + 1
        )

    def step(self) -> bool:
        if self.journal_days and time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + PRUNE_EVERY_S
            self._prune()
        batch = self._receive(timeout_ms=200)
        if batch:
            self._handle(batch)
        elif self.unwritten:
            self._flush_backlog()
        ending = self.open_tracks.silent(time.monotonic(), time.time())
        if ending:
            self.count("tracks_ended_for_a_dead_stage", len(ending))
            self._publish(ending)
        return True

    def _prune(self) -> None:
        try:
            removed = prune_journal(self.journal_dir, self.journal_days)
        except OSError as exc:
            self.log.warning("cannot remove old event journal files in %s: %s", self.journal_dir, exc.strerror or exc)
            return
        if removed:
            self.log.info("removed %d event journal files older than %g days", len(removed), self.journal_days)
            self.count("journal_files_pruned", len(removed))

    def teardown(self) -> None:
        # drain what the inference stage already sent, so nothing is lost on a clean stop; when
        # the supervisor was killed, every stage stops at once, so wait for the inference
        # stage's last events (the ends of its tracks) while tracks are open or events still
        # come: on a busy machine the inference stage may take longer than one quiet spell
        if hasattr(self, "inbox"):
            orphaned = self.orphaned()
            quiet_ms = ORPHAN_QUIET_MS if orphaned else 0
            began = time.monotonic()
            while True:
                batch = self._receive(timeout_ms=quiet_ms)
                if batch:
                    self._handle(batch)
                awaited = bool(batch) or bool(self.open_tracks.tracks)
                if not (awaited and quiet_ms and time.monotonic() < began + self.orphan_drain_s):
                    break
            if orphaned:
                self._end_left_open(time.monotonic() - began)
            self._flush_backlog(force=True)
            if self.unwritten:
                self.log.error(
                    "stopping with %d events not journaled (seq %d-%d): the journal in %s still cannot be written",
                    len(self.unwritten), self.unwritten[0]["seq"], self.unwritten[-1]["seq"], self.journal_dir,
                )

    def _end_left_open(self, waited_s: float) -> None:
        """With the supervisor killed, end the tracks whose inference stage sent no end while
        this stage waited ``waited_s`` s: no supervisor is left to ask for their ends, and no
        stage to notice the silence, so every decision still gets its ``track_end``."""
        left = len(self.open_tracks.tracks)
        self.log.info("the supervisor is gone: stopped after waiting %.1f s for the last events, %d track(s) still open", waited_s, left)
        if left:
            detail = f"ended when the run stopped: its supervisor was killed and no end came within {waited_s:.0f} s"
            self._publish(self.open_tracks.end_all(time.time(), detail))

    def _receive(self, timeout_ms: int) -> list[Event | EndTracks | Serving]:
        messages, errors = receive_pending(self.inbox, timeout_ms, expect=(Event, EndTracks, Serving))
        self.refuse("events", errors)
        return [message for _, message, _ in messages if isinstance(message, (Event, EndTracks, Serving))]

    def _handle(self, messages: list[Event | EndTracks | Serving]) -> None:
        kept, ended = self.open_tracks.follow(messages, time.monotonic())
        self.count("tracks_ended_for_a_dead_stage", ended)
        self.counters["track_ends_repeated"] = self.open_tracks.repeated
        self._publish(kept)

    def _publish(self, kept: list[Event]) -> None:
        """Number, journal and publish events (and write what waits for the journal)."""
        numbered = self.journal.number([e.to_json() for e in kept])
        self.last_seq.set(self.journal.seq)
        self._keep(numbered)
        self._flush_backlog()
        for item in numbered:
            event = Event(**item)
            for outbox in self.outboxes:
                outbox.send(event.type, event)
            self.count(f"events_{event.type}")
            if event.capture_ts:
                self.observe("capture_to_event", time.time() - event.capture_ts)

    def _keep(self, numbered: list[dict[str, Any]]) -> None:
        """Queue events for the journal; those that find the backlog full are counted instead."""
        room = max(0, self.backlog - len(self.unwritten))
        self.unwritten.extend(numbered[:room])
        over = numbered[room:]
        if not over:
            return
        if not self._lost:
            self.log.warning(
                "the event backlog is full (%d events): newer events are published but not journaled until the journal "
                "can be written", self.backlog,
            )
            self._lost = [over[0]["seq"], 0, 0]
        self._lost[1:] = [over[-1]["seq"], self._lost[2] + len(over)]
        self.count("journal_dropped", len(over))

    def _flush_backlog(self, force: bool = False) -> None:
        """Write the waiting events, oldest first, as far as the journal takes them."""
        if not self.unwritten or (not force and time.monotonic() < self._retry_at):
            return
        failing = bool(self.gauges.get("journal_failing"))
        written = 0
        try:
            while self.unwritten:
                chunk = self.unwritten[:_WRITE_CHUNK]
                self.journal.write(chunk)
                del self.unwritten[: len(chunk)]
                written += len(chunk)
        except OSError as exc:
            self._retry_at = time.monotonic() + JOURNAL_RETRY_S
            if not failing:
                self.log.error(
                    "cannot write the event journal in %s: %s; keeping up to %d events in memory", self.journal_dir,
                    exc.strerror or exc, self.backlog,
                )
            self.gauges["journal_failing"] = 1.0
        self.count("journaled", written)
        self.gauges["journal_backlog"] = float(len(self.unwritten))
        if failing:
            self._caught_up += written
            if not self.unwritten:
                self._writable_again()

    def _writable_again(self) -> None:
        self.log.info("the event journal is writable again: wrote the %d events kept in memory", self._caught_up)
        if self._lost:
            first, last, count = self._lost
            self.log.warning("%d events were not journaled (seq %d-%d): the backlog was full", count, first, last)
        self.gauges["journal_failing"] = 0.0
        self._caught_up = 0
        self._lost = []
