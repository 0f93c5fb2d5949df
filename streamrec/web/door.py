"""What the door display shows for one camera, from the frames and decisions the web stage gets.

A door needs one of four answers at any moment: nobody is there (``waiting``); a face is there
and not decided yet (``checking``); who is there (``match``, with the name) or that nobody on
the watchlist is (``unknown``). Decision events say who a face track is; the overlaid frames
say, by their labels, which faces are on screen now: names, ``unknown``, and ``...`` for a
face still undecided (the inference stage's label, drawn as such by the render stage).

A decided track counts as on screen while the newest frame carries its label, or while its
decision is newer than that frame (the events and the frames travel by different stages).
Once its face has left, its decision stays for ``hold_s`` seconds, so that a person looking
away for a moment does not make the display flicker; then the display waits again. A frame
older than ``hold_s`` says nothing any more: a camera or pipeline that stopped does not keep
a face on the display.

At a door that decides access (``access`` events), its answers come first: while a challenge
runs, the display asks the person to turn their head (``challenge``) and shows no name at all,
so that nobody else's name can appear while someone is being checked; the answer (``granted``
or ``denied``) then stays for ``hold_s``. A challenge that got no answer within ``challenge_s``
(its longest possible run: the inference stage that ran it died) is no longer shown.

What is shown, first that applies: a running challenge, an answer held for ``hold_s``, a
decided face on screen (the newest decision), an undecided face (checking), a decision held
after its face left, waiting. So a new face is never greeted with the previous person's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from streamrec.bus.messages import Event, JpegFrame

__all__ = ["UNDECIDED", "Door", "DoorView"]

UNDECIDED = "..."  #: the label of a face whose track has no decision yet
MAX_TRACKS = 64  #: decided tracks remembered per camera, however many faces a crowd brings

DoorState = Literal["waiting", "checking", "match", "unknown", "challenge", "granted", "denied"]


@dataclass(frozen=True)
class DoorView:
    """What the display shows: ``state``, the decision (for ``match`` and ``unknown``), and
    whether its face is on screen now or the decision is held after the face left."""

    state: DoorState
    event: Event | None = None
    on_screen: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "event": self.event.to_json() if self.event else None, "on_screen": self.on_screen}


@dataclass
class _Track:
    """A decided track: its newest decision, the wall time its face was last seen (on a frame,
    or by the decision itself), and whether the inference stage said it ended."""

    event: Event
    seen_at: float
    ended: bool = False

    @property
    def label(self) -> str:
        """The label its frames carry (see the inference stage's overlays)."""
        return (self.event.name or "?") if self.event.type == "match" else "unknown"

    def view(self, on_screen: bool) -> DoorView:
        return DoorView("match" if self.event.type == "match" else "unknown", self.event, on_screen)

    @property
    def decided_on(self) -> float:
        """Capture time of the frame it was decided on (comparable with frames' ``ts``)."""
        return self.event.capture_ts if self.event.capture_ts is not None else self.event.ts


@dataclass
class Door:
    """One camera's door. Not thread-safe: :class:`~streamrec.web.state.WebState` calls it
    under its lock. Times are Unix seconds: ``received`` of a frame, ``ts`` of a decision."""

    hold_s: float
    challenge_s: float = 10.0
    _challenge: Event | None = None  #: the access challenge running
    _answer: Event | None = None  #: the latest access answer
    _tracks: dict[int, _Track] = field(default_factory=dict)
    _labels: frozenset[str] = frozenset()
    _frame_ts: float | None = None  #: capture time of the newest frame
    _frame_at: float | None = None  #: when it was received

    def saw_frame(self, header: JpegFrame, received: float) -> None:
        """A new overlaid frame: its labels say who is on screen now."""
        self._labels, self._frame_ts, self._frame_at = frozenset(header.labels), header.ts, received
        for track in self._tracks.values():
            if not track.ended and track.label in self._labels:
                track.seen_at = received
        self._forget(received)

    def saw_event(self, event: Event) -> None:
        """A decision (``match``, ``unknown``), a ``track_end`` or an ``access`` event; others
        change nothing. A decision already known (the same one again, or an older one) changes
        nothing either."""
        if event.type == "access":
            self._saw_access(event)
            return
        if event.track_id is None:
            return
        known = self._tracks.get(event.track_id)
        if event.type == "track_end" and known is not None:
            known.ended = True
        elif event.type in ("match", "unknown") and (known is None or event.ts > known.event.ts):
            self._tracks[event.track_id] = _Track(event, max(event.ts, known.seen_at if known else event.ts))
            self._forget(event.ts)

    def _saw_access(self, event: Event) -> None:
        """A challenge starts, or one is answered (which ends the challenge of its track); what a
        door action did after an answer changes nothing on the display."""
        if event.result == "action":
            return
        if event.result == "challenge":
            answered = self._answer is not None and self._answer.track_id == event.track_id
            if not (answered and self._answer is not None and self._answer.ts >= event.ts):  # not one already answered
                self._challenge = event
            return
        if self._challenge is not None and self._challenge.track_id == event.track_id:
            self._challenge = None
        if self._answer is None or event.ts >= self._answer.ts:
            self._answer = event

    def view(self, now: float) -> DoorView:
        """What to show at Unix time ``now``."""
        if self._challenge is not None and now - self._challenge.ts <= self.challenge_s:
            return DoorView("challenge", self._challenge, on_screen=True)
        answer = self._answer
        if answer is not None and (answer.result == "granted" or answer.result == "denied") and now - answer.ts <= self.hold_s:
            return DoorView(answer.result, answer)
        held = [t for t in self._tracks.values() if now - t.seen_at <= self.hold_s]
        on_screen = [t for t in held if not t.ended and (t.label in self._labels or self._newer_than_frame(t))]
        if on_screen:
            return max(on_screen, key=lambda t: t.event.ts).view(on_screen=True)
        if UNDECIDED in self._labels and self._frame_at is not None and now - self._frame_at <= self.hold_s:
            return DoorView("checking")
        if held:
            return max(held, key=lambda t: t.seen_at).view(on_screen=False)
        return DoorView("waiting")

    def _newer_than_frame(self, track: _Track) -> bool:
        return self._frame_ts is None or track.decided_on >= self._frame_ts

    def _forget(self, now: float) -> None:
        """Drop the tracks that can no longer be shown, and the oldest beyond ``MAX_TRACKS``."""
        keep = sorted((t for t in self._tracks.values() if now - t.seen_at <= self.hold_s), key=lambda t: t.seen_at)
        self._tracks = {t.event.track_id: t for t in keep[-MAX_TRACKS:] if t.event.track_id is not None}
