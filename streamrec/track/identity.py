"""Who a track is: a decision from all of its embeddings, not from one frame.

The watchlist is open-set: most faces a camera sees belong to people who are not enrolled, and
FaceNet puts about 8% of such faces within the pair-verification threshold (1.12) of someone on
a nine-person list (LFW View 1 against ../shared/data/faces, docs/accuracy.md). A name is
therefore given only on evidence that strangers rarely reach:

* an embedding *votes* for its nearest person when it is closer than ``threshold`` and the
  nearest *other* person is at least ``margin`` farther (an embedding between two enrolled
  people names neither);
* a track is named when ``votes`` of its embeddings vote for the same person (or one vote is
  closer than ``sure_distance``), that person holds most of the track's votes, and the
  decision's score reaches ``min_score``;
* it is called unknown when no one is named and ``unknown_after`` of its embeddings did not vote.

A decision is reported when it is first reached and whenever it changes; a named track stays
named unless another person wins outright.

The score is on one fixed scale for every configuration, so that a user can filter on it: for a
match, the median distance of the track's votes for the person, mapped linearly from
``SCORE_ZERO`` (1.12, the distance at which two photos are as likely one person as two, on LFW
pairs) to 0 and ``SCORE_ONE`` (0.6, about the distance between two good photos of one person)
to 1. For unknown, how far its closest embedding stayed beyond ``threshold``: 0 at the
threshold, 1 from 0.3 beyond it (and with an empty watchlist). docs/accuracy.md tabulates how
often faces of people who are not enrolled reach each match score.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from streamrec.bus.messages import DecisionType
from streamrec.config.model import MatcherConfig
from streamrec.embed.facenet import DEFAULT_THRESHOLD

__all__ = ["SCORE_ONE", "SCORE_ZERO", "Decision", "Observation", "TrackIdentity", "match_score"]

#: the distance whose match score is 0: where two photos are as likely one person as two (LFW)
SCORE_ZERO = DEFAULT_THRESHOLD
#: the distance whose match score is 1 (and closer): about that of two good photos of one person
SCORE_ONE = 0.6
#: how far beyond the threshold an unknown track's closest embedding must stay for score 1
UNKNOWN_SPAN = 0.3


def match_score(distance: float) -> float:
    """The score of a match whose votes have median ``distance`` (see the module docstring)."""
    return round(min(1.0, max(0.0, (SCORE_ZERO - distance) / (SCORE_ZERO - SCORE_ONE))), 3)


@dataclass(frozen=True)
class Observation:
    """One embedding's nearest watchlist person (``None`` when it is not under the matcher's
    threshold, or the watchlist is empty), its ``distance`` (``inf`` with an empty watchlist),
    the ``runner_up`` distance to the nearest other person (``inf`` when there is none) and the
    face's ``quality``."""

    person_id: str | None
    name: str | None
    distance: float
    quality: float
    runner_up: float = math.inf


@dataclass(frozen=True)
class Decision:
    """``type``: ``match`` or ``unknown``. ``distance``: the closest vote for the named person,
    or for unknown the closest of the embeddings that did not vote (``None`` with an empty
    watchlist). ``score``: 0-1 on the scale of the module docstring."""

    type: DecisionType
    person_id: str | None
    name: str | None
    distance: float | None
    score: float


@dataclass
class TrackIdentity:
    """Accumulates a track's observations and derives its decision."""

    config: MatcherConfig
    observations: list[Observation] = field(default_factory=list)
    decision: Decision | None = None

    def add(self, observation: Observation) -> Decision | None:
        """Record an observation; returns the new decision if it changed, else ``None``."""
        self.observations.append(observation)
        new, old = self._decide(), self.decision
        if new is None or (old is not None and old.type == "match" and new.type == "unknown"):
            return None  # a named track stays named unless another person wins outright
        self.decision = new  # a repeated verdict still refreshes its numbers
        changed = old is None or (new.type, new.person_id) != (old.type, old.person_id)
        return new if changed else None

    def votes(self, observation: Observation) -> bool:
        """Whether ``observation`` counts for its nearest person: close enough, and clearly
        closer to that person than to anyone else."""
        return (
            observation.person_id is not None
            and observation.distance < self.config.threshold
            and observation.runner_up - observation.distance >= self.config.margin
        )

    def _decide(self) -> Decision | None:
        ballots: dict[str, list[Observation]] = {}
        for obs in self.observations:
            if obs.person_id is not None and self.votes(obs):
                ballots.setdefault(obs.person_id, []).append(obs)
        if ballots:
            person, votes = max(ballots.items(), key=lambda kv: (len(kv[1]), -min(o.distance for o in kv[1])))
            distances = [o.distance for o in votes]
            majority = len(votes) * 2 > sum(len(v) for v in ballots.values())
            enough = len(votes) >= self.config.votes or min(distances) <= self.config.sure_distance
            score = match_score(statistics.median(distances))
            if majority and enough and score >= self.config.min_score:
                return Decision("match", person, votes[0].name, min(distances), score)
        rejected = [obs.distance for obs in self.observations if not self.votes(obs)]
        if len(rejected) >= self.config.unknown_after:
            closest = min(rejected)
            beyond = (closest - self.config.threshold) / UNKNOWN_SPAN
            score = round(min(1.0, max(0.0, beyond)), 3)
            return Decision("unknown", None, None, closest if math.isfinite(closest) else None, score)
        return None
