"""Which announced tracks are open, so that the tracks of an inference stage that died still end.

A decision (``match``, ``unknown``) opens a track, its ``track_end`` closes it. An inference
stage that dies cannot close the tracks it announced; the supervisor then sends, per source, an
:class:`~streamrec.bus.messages.EndTracks` request whose ``detail`` says why, and each open
track of that source gets its ``track_end`` (with the track's last decision and that detail).
Such a request is handled after the other events received with it: those the dead stage sent
before it died. At most ``MAX_OPEN_TRACKS`` are followed (far more faces than any site has in
view at once): beyond that the oldest is forgotten, counted and logged, so that no sender can
make the stage hold more.

The open tracks are also kept in the run directory (``open-tracks.json``, rewritten when they
change, which is at most once per decision), so that an events stage that restarts still knows
the tracks its predecessor announced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from streamrec.bus.messages import EndTracks, Event

__all__ = ["DECISIONS", "MAX_OPEN_TRACKS", "OpenTracks"]

DECISIONS = ("match", "unknown")
MAX_OPEN_TRACKS = 4096

log = logging.getLogger("events")


class OpenTracks:
    """The open tracks, by ``(source, track id)``, with their last decision; kept in
    ``state_file`` too when given."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.state_file = state_file
        self.tracks: dict[tuple[str, int], Event] = {}
        self._failing = False
        self.forgotten = 0  #: open tracks forgotten because more than ``MAX_OPEN_TRACKS`` were open
        if state_file is not None and state_file.exists():
            self.tracks = {(e.source, e.track_id or 0): e for e in _load(state_file)}
            if self.tracks:
                log.info("%d track(s) announced before this stage restarted are open", len(self.tracks))

    def follow(self, events: list[Event | EndTracks]) -> tuple[list[Event], int]:
        """Note the tracks that open and end; replace each :class:`EndTracks` request by the
        ``track_end`` events of its source's open tracks, after the others. Returns the events to
        publish, and how many tracks were ended on request."""
        kept: list[Event] = []
        requests: list[EndTracks] = []
        before = dict(self.tracks)
        for event in events:
            if isinstance(event, EndTracks):
                requests.append(event)
                continue
            key = (event.source, event.track_id or 0)
            if event.type in DECISIONS and event.track_id is not None:
                self.tracks.pop(key, None)  # the newest decision goes last: the oldest go first
                self.tracks[key] = event
            elif event.type == "track_end":
                self.tracks.pop(key, None)
            kept.append(event)
        self._forget_oldest()
        ended = 0
        for request in requests:
            ending = [key for key in self.tracks if key[0] == request.source]
            for key in ending:
                last = self.tracks.pop(key)
                kept.append(dataclasses.replace(last, type="track_end", ts=request.ts, frame_index=None, capture_ts=None, detail=request.detail))
            ended += len(ending)
            log.warning("%s: %d open track(s) %s", request.source, len(ending), request.detail)
        if self.tracks != before:
            self._save()
        return kept, ended

    def _forget_oldest(self) -> None:
        over = len(self.tracks) - MAX_OPEN_TRACKS
        if over <= 0:
            return
        for key in list(self.tracks)[:over]:
            del self.tracks[key]
        self.forgotten += over
        log.warning("following more than %d open tracks: forgot the %d oldest (%d so far)", MAX_OPEN_TRACKS, over, self.forgotten)

    def _save(self) -> None:
        """Rewrite the state file; a failure (a full ``/dev/shm``) is logged once, not raised."""
        if self.state_file is None:
            return
        draft = self.state_file.with_suffix(".tmp")
        try:
            draft.write_text(json.dumps([event.to_json() for event in self.tracks.values()]))
            os.replace(draft, self.state_file)
        except OSError as exc:
            if not self._failing:
                log.error("cannot keep the open tracks in %s (%s): a restart of this stage would forget them", self.state_file, exc.strerror)
            self._failing = True
            return
        self._failing = False


def _load(path: Path) -> list[Event]:
    try:
        items = json.loads(path.read_text())
        names = {spec.name for spec in dataclasses.fields(Event)}
        return [Event(**{k: v for k, v in item.items() if k in names}) for item in items]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.error("cannot read the open tracks kept in %s (%s): they will not be ended", path, exc)
        return []
