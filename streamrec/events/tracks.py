"""Which announced tracks are open, so that the tracks of an inference stage that died still end.

A decision (``match``, ``unknown``) opens a track, its ``track_end`` closes it. An inference
stage that dies cannot close the tracks it announced. Each track ends once: a ``track_end`` for
a track ended here already (an inference worker whose camera moved to another ends the tracks it
still holds when the camera comes back, or when it stops) is dropped. Three things end them, each track of
a source getting its ``track_end`` (with the track's last decision and a ``detail`` saying why):

* The supervisor of a run on one host sees the process die and sends, per source, an
  :class:`~streamrec.bus.messages.EndTracks` request with the exit status. Such a request is
  handled after the other events received with it: those the dead stage sent before it died.
* Every inference stage says which cameras it serves (:class:`~streamrec.bus.messages.Serving`,
  with an id of its own process) every second, and that it has taken one before its first
  decision about it. When another process says it has taken a camera (the stage restarted, by a
  supervisor or by whatever runs it on its host, or the camera moved to another inference
  stage), the tracks of that camera announced before are ended; and when a process has said
  nothing for ``SILENT_S`` (its host is gone), the tracks of the cameras it served are. A
  stage's messages arrive in the order it sent them, so the tracks ended are exactly its
  predecessor's. A worker that a camera left still says it serves it until it notices (no
  frames for a few seconds): that takes nothing back from the worker the camera moved to.
* When the supervisor itself is killed, every stage stops at once: the events stage waits a
  while for the inference stage's last events, then ends the tracks still open itself.

At most ``MAX_OPEN_TRACKS`` are followed (far more faces than any site has in view at once):
beyond that the oldest is forgotten, counted and logged, so that no sender can make the stage
hold more.

The open tracks and who serves each camera are also kept in the stage's directory
(``open-tracks.json``, rewritten when they change, which is at most once per decision), so that
an events stage that restarts still knows the tracks its predecessor announced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from streamrec.bus.messages import EndTracks, Event, Serving

__all__ = ["DECISIONS", "MAX_OPEN_TRACKS", "SILENT_S", "OpenTracks"]

DECISIONS = ("match", "unknown")
MAX_OPEN_TRACKS = 4096
#: an inference stage that has said nothing for this long is taken for gone (it says it is
#: alive every ``SERVING_EVERY_S``, 1 s, however busy: its loop never takes longer than a batch)
SILENT_S = 10.0

log = logging.getLogger("events")


class OpenTracks:
    """The open tracks, by ``(source, track id)``, with their last decision, and which inference
    process serves each source; kept in ``state_file`` too when given."""

    def __init__(self, state_file: Path | None = None, silent_s: float = SILENT_S) -> None:
        self.state_file, self.silent_s = state_file, silent_s
        self.tracks: dict[tuple[str, int], Event] = {}
        self.serving: dict[str, str] = {}  #: source -> the instance serving it
        self._heard: dict[str, float] = {}  #: instance -> when it last said it serves (monotonic)
        self._failing = False
        self.forgotten = 0  #: open tracks forgotten because more than ``MAX_OPEN_TRACKS`` were open
        #: tracks this stage ended for a stage that was replaced or fell silent (the newest
        #: ``MAX_OPEN_TRACKS``), whose own ``track_end`` may still come and is then dropped
        self._ended_here: dict[tuple[str, int], None] = {}
        self.repeated = 0  #: ``track_end`` events dropped because this stage had ended their track
        if state_file is not None and state_file.exists():
            self.tracks, self.serving = _load(state_file)
            self._heard = dict.fromkeys(self.serving.values(), time.monotonic())  # silent from now on
            if self.tracks:
                log.info("%d track(s) announced before this stage restarted are open", len(self.tracks))

    def follow(self, messages: list[Event | EndTracks | Serving], now: float) -> tuple[list[Event], int]:
        """Note the tracks that open and end, and who serves each source; end the tracks a
        replaced inference stage left open, in place; replace each :class:`EndTracks` request by
        the ``track_end`` events of its source's open tracks, after the others. ``now``: this
        process's monotonic clock. Returns the events to publish, and how many tracks were ended
        for a stage that is gone."""
        kept: list[Event] = []
        requests: list[EndTracks] = []
        before = (dict(self.tracks), dict(self.serving))
        ended = 0
        for message in messages:
            if isinstance(message, EndTracks):
                requests.append(message)
            elif isinstance(message, Serving):
                ended += self._served(message, now, kept)
            else:
                key = (message.source, message.track_id or 0)
                if message.type in DECISIONS and message.track_id is not None:
                    self.tracks.pop(key, None)  # the newest decision goes last: the oldest go first
                    self.tracks[key] = message
                elif message.type == "track_end" and self.tracks.pop(key, None) is None and key in self._ended_here:
                    self.repeated += 1  # a camera moved on, and the worker it left ends its tracks too
                    continue
                kept.append(message)
        self._forget_oldest()
        for request in requests:
            ended += self._end(request.source, request.ts, request.detail, kept)
        if (self.tracks, self.serving) != before:
            self._save()
        return kept, ended

    def silent(self, now: float, wall: float) -> list[Event]:
        """End the tracks of the sources whose inference stage has said nothing for ``silent_s``
        (``now``: this process's monotonic clock; ``wall``: the time the events carry); returns
        their ``track_end`` events."""
        ending: list[Event] = []
        gone = [instance for instance, heard in self._heard.items() if now - heard >= self.silent_s]
        for instance in gone:
            del self._heard[instance]
            for source in [s for s, i in self.serving.items() if i == instance]:
                del self.serving[source]
                self._end(source, wall, f"ended when the inference stage serving it fell silent "
                          f"(nothing for {self.silent_s:.0f} s)", ending)
        if gone:
            self._save()
        return ending

    def end_all(self, wall: float, detail: str) -> list[Event]:
        """End every open track (``wall``: the time the events carry); returns their
        ``track_end`` events."""
        ending: list[Event] = []
        for source in sorted({source for source, _ in self.tracks}):
            self._end(source, wall, detail, ending)
        if ending:
            self._save()
        return ending

    def _served(self, message: Serving, now: float, kept: list[Event]) -> int:
        """Note that ``message.instance`` is alive and serves its sources; end the open tracks of
        a source that another instance served until now."""
        self._heard[message.instance] = now
        ended = 0
        for source in message.sources:
            previous = self.serving.get(source)
            if previous is None or source in message.taken:
                self.serving[source] = message.instance
            if previous not in (None, message.instance) and source in message.taken:
                ended += self._end(source, message.ts, "ended when another inference stage took over its camera", kept)
        return ended

    def _end(self, source: str, ts: float, detail: str, into: list[Event]) -> int:
        """Append a ``track_end`` for each open track of ``source``; how many."""
        ending = [key for key in self.tracks if key[0] == source]
        for key in ending:
            last = self.tracks.pop(key)
            self._ended_here[key] = None
            into.append(dataclasses.replace(last, type="track_end", ts=ts, frame_index=None, capture_ts=None, detail=detail))
        for key in list(self._ended_here)[: max(0, len(self._ended_here) - MAX_OPEN_TRACKS)]:
            del self._ended_here[key]
        if ending:
            log.warning("%s: %d open track(s) %s", source, len(ending), detail)
        return len(ending)

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
            draft.write_text(json.dumps({"tracks": [event.to_json() for event in self.tracks.values()], "serving": self.serving}))
            os.replace(draft, self.state_file)
        except OSError as exc:
            if not self._failing:
                log.error("cannot keep the open tracks in %s (%s): a restart of this stage would forget them", self.state_file, exc.strerror)
            self._failing = True
            return
        self._failing = False


def _load(path: Path) -> tuple[dict[tuple[str, int], Event], dict[str, str]]:
    """The open tracks and the sources' instances kept in ``path`` (none when it is unreadable)."""
    try:
        state = json.loads(path.read_text())
        names = {spec.name for spec in dataclasses.fields(Event)}
        events = [Event(**{k: v for k, v in item.items() if k in names}) for item in state["tracks"]]
        serving = {str(source): str(instance) for source, instance in state["serving"].items()}
        return {(e.source, e.track_id or 0): e for e in events}, serving
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        log.error("cannot read the open tracks kept in %s (%s): they will not be ended", path, exc)
        return {}, {}
