"""Who a track is: a decision from all of its embeddings, not from one frame.

A single per-frame threshold cannot both name a person seen in profile (true distances up to
~1.2) and refuse passers-by who happen to land at 1.05-1.10; several embeddings of one track,
taken at its best moments, can. A track is named when ``votes`` of its embeddings fall under
the threshold for the same person (or one falls under ``sure_distance``) and that person holds
most of the accepted embeddings; it is called unknown when no one is named and
``unknown_after`` of its embeddings matched nobody. A decision is reported when it is first reached and whenever it changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streamrec.bus.messages import DecisionType
from streamrec.config.model import MatcherConfig

__all__ = ["Decision", "Observation", "TrackIdentity"]


@dataclass(frozen=True)
class Observation:
    """One embedding's nearest watchlist person and distance (``None`` and ``inf`` when the
    watchlist is empty)."""

    person_id: str | None
    name: str | None
    distance: float
    quality: float


@dataclass(frozen=True)
class Decision:
    """``type``: ``match`` or ``unknown``. ``distance``: the closest accepted distance for a
    match, the closest of the non-matching distances for unknown (``None`` with an empty
    watchlist). ``score``: 0-1, half the share of the
    track's embeddings that name the person, half the margin under the threshold (for unknown:
    the margin above it)."""

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

    def _decide(self) -> Decision | None:
        threshold = self.config.threshold
        accepted: dict[str, list[Observation]] = {}
        for obs in self.observations:
            if obs.person_id is not None and obs.distance < threshold:
                accepted.setdefault(obs.person_id, []).append(obs)
        total = len(self.observations)
        if accepted:
            person, votes = max(accepted.items(), key=lambda kv: (len(kv[1]), -min(o.distance for o in kv[1])))
            best = min(o.distance for o in votes)
            majority = len(votes) * 2 > sum(len(v) for v in accepted.values())
            if majority and (len(votes) >= self.config.votes or best <= self.config.sure_distance):
                share = len(votes) / total
                margin = min(1.0, (threshold - best) / max(threshold - self.config.sure_distance, 1e-6))
                return Decision("match", person, votes[0].name, best, round(0.5 * share + 0.5 * margin, 3))
        rejected = [obs for obs in self.observations if obs.person_id is None or obs.distance >= threshold]
        if len(rejected) >= self.config.unknown_after:
            closest = min(obs.distance for obs in rejected)
            margin = min(1.0, (closest - threshold) / 0.3)
            distance = closest if math.isfinite(closest) else None
            return Decision("unknown", None, None, distance, round(0.5 + 0.5 * margin, 3))
        return None
