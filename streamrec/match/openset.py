"""Open-set identification: how often people who are not enrolled get named, and how often the
enrolled do.

A camera mostly sees people who are not on the watchlist, so the figure that matters is the
false-positive identification rate (FPIR): the share of faces, or of tracks, of people not
enrolled that the decision rule (:class:`~streamrec.track.identity.TrackIdentity` with a
:class:`~streamrec.config.model.MatcherConfig`) names as someone. It is measured here on
embeddings of photos: one folder of photos per enrolled person, one per person not enrolled.

* **Per face**: the stranger photos whose embedding would vote for someone (close enough to one
  enrolled person, and clearly closer to them than to anyone else).
* **Per track, one view**: each stranger photo's embedding seen ``track_length`` times. A track
  of a face that barely changes (a person standing still); since its embeddings are identical,
  several votes add nothing, so this is the harder case for a rule that relies on votes.
* **Per track, several views**: ``track_length`` photos of one stranger (people with at least
  two), taken in turn in a random order, ``draws`` times per person. A track that sees the face
  in several conditions. On LFW the distance of a person's photos to their nearest enrolled
  person varies about as much from photo to photo (standard deviation 0.04) as within a real
  track of the hamilton clip (0.03-0.10, docs/accuracy.md), but draws of the same person are
  not independent trials: the bound is also given over the people drawn.
* **Enrolled**: each photo of an enrolled person with at least two, held out and matched against
  everyone else's photos and the person's other photos; named right, named wrong (as someone
  else), per face and as a one-view track.

Each rate comes with the exact (Clopper-Pearson) one-sided 95% upper bound: with ``n`` trials and
no false name, the rate is below about ``3 / n`` with 95% confidence; showing a rate under
1 in 1,000 takes at least 2,996 trials without one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from streamrec.config.model import MatcherConfig
from streamrec.embed.facenet import EMBEDDING_SIZE
from streamrec.match.search import Nearest, distances, nearest_people
from streamrec.track.identity import Observation, TrackIdentity

__all__ = ["OpenSetReport", "Rate", "SweepRow", "open_set_rates", "track_decision", "upper_bound"]

CONFIDENCE = 0.95
#: the vote thresholds of the sweep (the other settings stay as configured)
SWEEP = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.12)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n may be large)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def upper_bound(events: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided upper confidence bound on a rate with ``events`` in ``trials``: the
    rate ``p`` at which seeing ``events`` or fewer has probability ``1 - confidence``
    (Clopper-Pearson). With no events it is ``1 - (1 - confidence) ** (1 / trials)``."""
    if trials <= 0:
        return 1.0
    if not 0 <= events <= trials:
        raise ValueError(f"events must be between 0 and trials ({trials}) (got {events})")
    if events == trials:
        return 1.0
    alpha = 1.0 - confidence
    if events == 0:
        return 1.0 - alpha ** (1.0 / trials)
    low, high = events / trials, 1.0
    for _ in range(60):  # bisection: the CDF falls as p grows
        middle = (low + high) / 2
        low, high = (middle, high) if _binomial_cdf(events, trials, middle) > alpha else (low, middle)
    return high


@dataclass(frozen=True)
class Rate:
    """``count`` of ``trials`` (``rate``), with the 95% upper bound ``upper``."""

    count: int
    trials: int
    rate: float
    upper: float

    @classmethod
    def of(cls, count: int, trials: int) -> Rate:
        return cls(count, trials, count / trials if trials else 0.0, upper_bound(count, trials))


@dataclass(frozen=True)
class SweepRow:
    """The stranger rates and the enrolled photos named right at one vote ``threshold``."""

    threshold: float
    face: Rate
    track_one_view: Rate
    track_views: Rate
    enrolled_named: Rate


@dataclass(frozen=True)
class OpenSetReport:
    """What :func:`open_set_rates` measured; see the module docstring. ``*_people``: the
    people behind each rate's trials. ``enrolled_wrong``: held-out enrolled photos named as
    someone else (per face)."""

    config: dict[str, Any]
    track_length: int
    draws: int
    enrolled_people: int
    enrolled_photos: int
    stranger_people: int
    stranger_photos: int
    face: Rate
    track_one_view: Rate
    track_views: Rate
    track_views_people: Rate
    enrolled_face: Rate
    enrolled_track: Rate
    enrolled_wrong: Rate
    sweep: list[SweepRow]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _observations(found: Nearest, people: Sequence[str], threshold: float) -> list[Observation]:
    """One observation per query, as the matcher reports them at ``threshold``."""
    result = []
    for label, distance, runner_up in zip(found.label, found.distance, found.runner_up):
        person = people[label] if label >= 0 and distance < threshold else None
        result.append(Observation(person, person, float(distance), 0.0, float(runner_up)))
    return result


def track_decision(config: MatcherConfig, observations: Sequence[Observation]) -> str | None:
    """The person a track with these ``observations`` (in order) is named as, or ``None``."""
    identity = TrackIdentity(config)
    for observation in observations:
        identity.add(observation)
    decision = identity.decision
    return decision.person_id if decision is not None and decision.type == "match" else None


def _stack(photos: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray]:
    people = sorted(name for name, v in photos.items() if len(v))
    vectors = [np.asarray(photos[p], np.float32).reshape(-1, EMBEDDING_SIZE) for p in people]
    labels = np.repeat(np.arange(len(people)), [len(v) for v in vectors])
    return people, np.concatenate(vectors) if vectors else np.zeros((0, EMBEDDING_SIZE), np.float32), labels


def _view_tracks(labels: np.ndarray, length: int, draws: int, rng: np.random.Generator) -> tuple[list[list[int]], list[int]]:
    """Rows of several-view pseudo-tracks (people with at least two photos) and whose they are."""
    tracks, owners = [], []
    for person in np.unique(labels):
        rows = np.flatnonzero(labels == person)
        if len(rows) < 2:
            continue
        for _ in range(draws):
            order = rng.permutation(rows)
            tracks.append([int(order[i % len(order)]) for i in range(length)])
            owners.append(int(person))
    return tracks, owners


def open_set_rates(
    enrolled: Mapping[str, np.ndarray],
    strangers: Mapping[str, np.ndarray],
    config: MatcherConfig,
    track_length: int = 6,
    draws: int = 20,
    seed: int = 0,
) -> OpenSetReport:
    """Measure ``config``'s rule: ``enrolled`` and ``strangers`` map a person to their photos'
    unit embeddings ``(n, 512)``; no one may be in both."""
    if track_length < 1 or draws < 1:
        raise ValueError(f"track_length and draws must be >= 1 (got {track_length}, {draws})")
    both = sorted(set(enrolled) & set(strangers))
    if both:
        raise ValueError(f"enrolled and not enrolled at once: {', '.join(both)}")
    people, vectors, labels = _stack(enrolled)
    s_people, s_vectors, s_labels = _stack(strangers)
    if len(people) < 2 or not len(s_vectors):
        raise ValueError(f"needs photos of at least 2 enrolled people and 1 person not enrolled (got {len(people)} and {len(s_people)})")
    stranger_found = nearest_people(distances(s_vectors, vectors), labels)
    held_out = distances(vectors, vectors)
    np.fill_diagonal(held_out, np.inf)
    testable = np.flatnonzero(np.bincount(labels)[labels] >= 2)
    enrolled_found = nearest_people(held_out[testable], labels)
    tracks, owners = _view_tracks(s_labels, track_length, draws, np.random.default_rng(seed))

    def measure(rule: MatcherConfig) -> tuple[Rate, Rate, Rate, Rate, Rate, Rate, Rate]:
        judge = TrackIdentity(rule)
        faces = _observations(stranger_found, people, rule.threshold)
        one_view = [track_decision(rule, [obs] * track_length) for obs in faces]
        views = [track_decision(rule, [faces[i] for i in rows]) for rows in tracks]
        named_people = {owner for owner, who in zip(owners, views) if who is not None}
        mine = _observations(enrolled_found, people, rule.threshold)
        truth = [people[label] for label in labels[testable]]
        as_track = [track_decision(rule, [obs] * track_length) for obs in mine]
        return (
            Rate.of(sum(judge.votes(obs) for obs in faces), len(faces)),
            Rate.of(sum(who is not None for who in one_view), len(one_view)),
            Rate.of(sum(who is not None for who in views), len(views)),
            Rate.of(len(named_people), len(set(owners))),
            Rate.of(sum(judge.votes(obs) and obs.person_id == t for obs, t in zip(mine, truth)), len(mine)),
            Rate.of(sum(who == t for who, t in zip(as_track, truth)), len(mine)),
            Rate.of(sum(judge.votes(obs) and obs.person_id != t for obs, t in zip(mine, truth)), len(mine)),
        )

    face, one_view, views, views_people, enrolled_face, enrolled_track, wrong = measure(config)
    sweep = []
    for threshold in SWEEP:
        rule = MatcherConfig.model_validate(
            {**config.model_dump(), "threshold": threshold, "sure_distance": min(config.sure_distance, threshold)}
        )
        row = measure(rule)
        sweep.append(SweepRow(threshold, row[0], row[1], row[2], row[5]))
    return OpenSetReport(
        config.model_dump(), track_length, draws, len(people), len(vectors), len(s_people), len(s_vectors),
        face, one_view, views, views_people, enrolled_face, enrolled_track, wrong, sweep,
    )
