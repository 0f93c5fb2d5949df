"""The access decision of one door: who may pass, earned by a recognised face that turns on request.

A face at a door is first *recognised*: ``votes`` embeddings of its track, taken within
``window_s``, name one person closer than the door's ``threshold`` (stricter than a camera's),
each clearly closer to that person than to anyone else, and none of the track's embeddings in
that window names anyone else. The door then *challenges* it: turn your head left, or right
(chosen at random unless configured). Its yaw (:mod:`streamrec.door.yaw`, the median of its
last ``yaw_frames`` frames) must move ``turn_degrees`` the asked way from where it was when
asked, and end at least ``turned_degrees`` to that side, within ``challenge_s``; and an embedding
of the face taken once it has turned must still name the person (by the camera's rules: a turned
face is farther from its photos; an embedding taken before the turn does not count, as the face
may have been swapped since). Then, and only then, the person is granted.

Anything else denies, with its reason (``DENIAL_REASONS``): the head turned the other way
(``wrong_direction``); it never moved (``no_movement``: a photo or a screen held still, or moved
about: moving, scaling or tilting a flat picture leaves its yaw where it was); it moved, but not
enough in time (``timeout``); it turned, but no embedding confirmed the person meanwhile
(``unconfirmed``); an embedding named someone else (``identity_changed``); the track ended
(``track_lost``); the door's frames stopped coming (``stalled``); its camera was lost
(``source_lost``); or the stage deciding it restarted (``restarted``, see
:class:`OpenChallenges`). A track gets one decision: once denied, the person steps out of view
and back to try again.

Times: what the person does is timed on the frames' capture times (a file read fast is judged
as it was filmed); a stall, on this process's clock. Only one challenge runs at a time at a
door: a second recognised face waits for it to end.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from streamrec.bus.messages import AccessResult, Direction
from streamrec.config.model import DoorConfig, MatcherConfig
from streamrec.door.yaw import yaw_degrees
from streamrec.track.identity import Observation

__all__ = [
    "DENIAL_REASONS",
    "AccessOutcome",
    "Challenge",
    "DenialReason",
    "DoorAccess",
    "Evidence",
    "OpenChallenges",
]

DenialReason = Literal[
    "wrong_direction", "no_movement", "timeout", "unconfirmed", "identity_changed", "track_lost", "stalled",
    "source_lost", "restarted",
]
DENIAL_REASONS: tuple[str, ...] = get_args(DenialReason)
#: yaw sign of each direction (a positive yaw is a turn to the person's own left)
_SIGN: dict[Direction, int] = {"left": 1, "right": -1}


@dataclass(frozen=True)
class Evidence:
    """One embedding of track ``track_id``, taken on the frame captured at ``ts``, and what the
    watchlist said of it."""

    track_id: int
    ts: float
    observation: Observation


@dataclass(frozen=True)
class Challenge:
    """A challenge put to ``person_id``'s face on track ``track_id`` of door ``source``: turn
    ``direction``, from ``baseline`` degrees of yaw, by capture time ``deadline``."""

    source: str
    track_id: int
    person_id: str
    name: str | None
    direction: Direction
    baseline: float
    started: float
    deadline: float


@dataclass(frozen=True)
class AccessOutcome:
    """What the door decided: ``challenge`` (asked to turn), ``granted`` or ``denied`` (with its
    ``reason``), for ``challenge``'s person. ``detail``: how the yaw moved, in words."""

    result: AccessResult
    challenge: Challenge
    reason: DenialReason | None = None
    detail: str = ""

    @property
    def final(self) -> bool:
        """Whether this is the answer (granted or denied), not the question."""
        return self.result != "challenge"


@dataclass
class _Running:
    """A challenge under way: the yaw's furthest moves either way, whether the face turned as
    asked, and whether an embedding of the turned face named the person."""

    challenge: Challenge
    furthest_asked: float = 0.0  #: degrees moved the asked way, at most
    furthest_other: float = 0.0  #: ... the other way
    turned: bool = False  #: the face turned as asked
    confirmed: bool = False  #: an embedding of the turned face named the person

    def moved(self) -> str:
        """How the yaw moved, for the outcome's detail."""
        c = self.challenge
        return (f"asked {c.direction} from {c.baseline:+.0f} deg: moved {self.furthest_asked:.0f} deg that way, "
                f"{self.furthest_other:.0f} the other")


@dataclass
class _Face:
    """What the door keeps of one track: its latest yaws and its recent embeddings."""

    yaws: deque[float]
    evidence: deque[Evidence] = field(default_factory=deque)


class DoorAccess:
    """The access decisions of door ``source``, fed frame by frame (:meth:`frame`), embedding by
    embedding (:meth:`evidence`), with its tracks' ends (:meth:`ended`) and its camera's state
    (:meth:`stalled`, :meth:`source_lost`). Each returns the outcomes it led to, in order.

    ``choose``: picks the direction of a challenge when ``[door] challenge`` is ``random``.
    """

    def __init__(
        self,
        source: str,
        config: DoorConfig,
        matcher: MatcherConfig,
        choose: Callable[[], Direction] = lambda: random.SystemRandom().choice(("left", "right")),
    ) -> None:
        self.source, self.config, self.matcher, self.choose = source, config, matcher, choose
        self.faces: dict[int, _Face] = {}
        self.decided: set[int] = set()  #: tracks that had their challenge
        self.running: _Running | None = None
        self.last_frame: float | None = None  #: when the door's latest frame was processed (monotonic)

    # -- inputs ---------------------------------------------------------------------------
    def frame(self, ts: float, landmarks: Mapping[int, np.ndarray], now: float) -> list[AccessOutcome]:
        """The door's frame captured at ``ts`` showed the faces of these tracks (``(5, 2)``
        landmarks by track id); processed at ``now`` (monotonic seconds)."""
        self.last_frame = now
        for track_id, points in landmarks.items():
            yaw = yaw_degrees(points)
            if not math.isnan(yaw):
                face = self.faces.setdefault(track_id, _Face(deque(maxlen=self.config.yaw_frames)))
                face.yaws.append(yaw)
        running = self.running
        if running is None:
            return []
        challenge = running.challenge
        watched = self.faces.get(challenge.track_id)
        if challenge.track_id in landmarks and watched is not None and watched.yaws:
            toward = _SIGN[challenge.direction] * (self._yaw(challenge.track_id) - challenge.baseline)
            running.furthest_asked = max(running.furthest_asked, toward)
            running.furthest_other = max(running.furthest_other, -toward)
            if running.furthest_other >= self.config.turn_degrees:
                return [self._deny("wrong_direction")]
            side = _SIGN[challenge.direction] * self._yaw(challenge.track_id)
            turned = toward >= self.config.turn_degrees and side >= self.config.turned_degrees
            running.turned = running.turned or turned  # an embedding may confirm the person a little later
            if running.turned and running.confirmed:
                return [self._end(AccessOutcome("granted", challenge, detail=running.moved()))]
        if ts >= challenge.deadline:
            return [self._deny(self._late_reason(running))]
        return []

    def evidence(self, item: Evidence) -> list[AccessOutcome]:
        """An embedding of one of the door's tracks was matched."""
        if item.track_id in self.decided:
            return []
        running = self.running
        if running is not None and running.challenge.track_id == item.track_id:
            if self._votes(item, self.matcher.threshold):
                if item.observation.person_id != running.challenge.person_id:
                    return [self._deny("identity_changed", f"an embedding named {item.observation.person_id}")]
                # only the turned face confirms who turned (not one taken before: the face may be swapped since)
                running.confirmed = running.confirmed or running.turned
            return []
        face = self.faces.setdefault(item.track_id, _Face(deque(maxlen=self.config.yaw_frames)))
        face.evidence.append(item)
        while face.evidence and item.ts - face.evidence[0].ts > self.config.window_s:
            face.evidence.popleft()
        if running is None:
            return self._recognised(item.track_id, item.ts)
        return []

    def ended(self, track_ids: Iterable[int]) -> list[AccessOutcome]:
        """These tracks of the door ended (their face left, or another person took its place)."""
        outcomes = []
        for track_id in track_ids:
            if self.running is not None and self.running.challenge.track_id == track_id:
                outcomes.append(self._deny("track_lost"))
            self.faces.pop(track_id, None)
            self.decided.discard(track_id)
        return outcomes

    def stalled(self, now: float) -> list[AccessOutcome]:
        """Deny a running challenge when no frame came for ``stall_s`` (``now``: monotonic)."""
        if self.running is None or self.last_frame is None or now - self.last_frame < self.config.stall_s:
            return []
        return [self._deny("stalled", f"no frame for {now - self.last_frame:.1f} s")]

    def source_lost(self, why: str) -> list[AccessOutcome]:
        """The door's camera was lost or ended: deny a running challenge, forget the faces' yaws
        and evidence (the tracks that had their answer keep it: a file's last frames, still on
        their way, or a camera back after a cut, must not challenge them again)."""
        outcomes = [self._deny("source_lost", why)] if self.running is not None else []
        self.faces.clear()
        return outcomes

    # -- decisions ------------------------------------------------------------------------
    def _votes(self, item: Evidence, threshold: float) -> bool:
        """Whether ``item`` names its nearest person: closer than ``threshold``, and clearly closer
        to them than to anyone else (the camera's margin)."""
        seen = item.observation
        return (
            seen.person_id is not None
            and seen.distance < threshold
            and seen.runner_up - seen.distance >= self.matcher.margin
        )

    def _recognised(self, track_id: int, ts: float) -> list[AccessOutcome]:
        """Challenge the track's face if its recent embeddings name one person, strictly."""
        face = self.faces[track_id]
        named = {e.observation.person_id for e in face.evidence if self._votes(e, self.matcher.threshold)}
        strict = [e for e in face.evidence if self._votes(e, self.config.threshold)]
        if len(named) != 1 or len(strict) < self.config.votes or not face.yaws:
            return []
        person = strict[-1].observation
        assert person.person_id is not None  # a vote names someone
        direction: Direction = self.choose() if self.config.challenge == "random" else self.config.challenge
        challenge = Challenge(
            self.source, track_id, person.person_id, person.name, direction, round(self._yaw(track_id), 1), ts,
            ts + self.config.challenge_s,
        )
        self.running = _Running(challenge)
        return [AccessOutcome("challenge", challenge)]

    def _yaw(self, track_id: int) -> float:
        return statistics.median(self.faces[track_id].yaws)

    def _late_reason(self, running: _Running) -> DenialReason:
        if max(running.furthest_asked, running.furthest_other) < self.config.still_degrees:
            return "no_movement"
        return "unconfirmed" if running.turned else "timeout"

    def _deny(self, reason: DenialReason, why: str = "") -> AccessOutcome:
        assert self.running is not None
        detail = "; ".join(part for part in (why, self.running.moved()) if part)
        return self._end(AccessOutcome("denied", self.running.challenge, reason, detail))

    def _end(self, outcome: AccessOutcome) -> AccessOutcome:
        self.decided.add(outcome.challenge.track_id)
        self.running = None
        return outcome


class OpenChallenges:
    """The challenges running in the inference stage, kept in a file of the run directory, so that
    a stage that died with challenges running (killed, crashed) has them denied by its successor
    (``restarted``) instead of leaving a person waiting for an answer, or, worse, answering them
    later from a state that was lost. Written (atomically) whenever a challenge starts or ends."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.open: dict[str, Challenge] = {}

    def leftovers(self) -> list[AccessOutcome]:
        """The denials of the challenges a predecessor left open (none without a file)."""
        if self.path is None or not self.path.exists():
            return []
        try:
            records = json.loads(self.path.read_text())
            left = [Challenge(**record) for record in records]
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{self.path}: unreadable record of open challenges ({exc})") from None
        self.save()
        return [AccessOutcome("denied", c, "restarted", "the stage deciding it stopped") for c in left]

    def record(self, outcome: AccessOutcome) -> None:
        """Note that ``outcome``'s challenge started or ended."""
        if outcome.final:
            self.open.pop(outcome.challenge.source, None)
        else:
            self.open[outcome.challenge.source] = outcome.challenge
        self.save()

    def save(self) -> None:
        """Write the open challenges down (an empty list once a predecessor's are answered)."""
        if self.path is None:
            return
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as out:
            json.dump([asdict(c) for c in self.open.values()], out)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)
