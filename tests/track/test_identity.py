"""The open-set decision rule on hand-made observations; every expected score is worked out by
hand in the comment beside it (match: (1.12 - median vote) / 0.52; unknown: (closest -
threshold) / 0.3)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from streamrec.config import ConfigError, parse_config
from streamrec.config.model import MatcherConfig
from streamrec.track.identity import Observation, TrackIdentity, match_score


def _obs(person: str | None, distance: float, runner_up: float = math.inf) -> Observation:
    return Observation(person, person, distance, 1.0, runner_up)


def _feed(config: MatcherConfig, observations: list[Observation]) -> list:
    identity = TrackIdentity(config)
    return [identity.add(obs) for obs in observations]


def test_the_passer_by_named_in_the_field_is_refused_by_the_defaults():
    # a stranger at 1.10-1.11 from an enrolled person, the next person at 1.15-1.2: named
    # "joe_biden" at score 0.23-0.37 by the pair threshold (1.12); the defaults refuse every
    # one of these embeddings and call the track unknown after the third
    seen = [_obs("joe_biden", 1.10, 1.16), _obs("joe_biden", 1.11, 1.15), _obs("joe_biden", 1.105, 1.2)]
    decisions = _feed(MatcherConfig(), seen)
    assert decisions[:2] == [None, None]
    unknown = decisions[2]
    assert (unknown.type, unknown.person_id, unknown.distance) == ("unknown", None, 1.10)
    assert unknown.score == 0.667  # (1.10 - 0.9) / 0.3 = 0.6667


def test_a_clear_match_is_named_at_once_and_scored_by_its_distance():
    config = MatcherConfig(threshold=0.9, sure_distance=0.8, margin=0.1)
    (decision,) = _feed(config, [_obs("ann", 0.7, 1.3)])  # one vote under sure_distance
    assert (decision.type, decision.person_id, decision.distance) == ("match", "ann", 0.7)
    assert decision.score == 0.808  # (1.12 - 0.7) / 0.52 = 0.8077


def test_two_votes_name_a_person_with_the_median_as_the_score():
    config = MatcherConfig(threshold=0.9, sure_distance=0.8, votes=2, margin=0.1)
    first, second = _feed(config, [_obs("ann", 0.88, 1.3), _obs("ann", 0.84, 1.25)])
    assert first is None  # one vote, not under sure_distance: wait
    assert (second.type, second.person_id, second.distance) == ("match", "ann", 0.84)
    assert second.score == 0.5  # median (0.88 + 0.84) / 2 = 0.86; (1.12 - 0.86) / 0.52 = 0.5


def test_an_embedding_between_two_enrolled_people_does_not_vote():
    config = MatcherConfig(threshold=1.0, sure_distance=0.8, votes=2, margin=0.1, unknown_after=3)
    # ann at 0.85 but bob at 0.9: a margin of 0.05, under 0.1
    ambiguous = _feed(config, [_obs("ann", 0.85, 0.9), _obs("ann", 0.86, 0.92), _obs("ann", 0.84, 0.91)])
    assert ambiguous[:2] == [None, None]
    assert ambiguous[2].type == "unknown" and ambiguous[2].distance == 0.84
    assert ambiguous[2].score == 0.0  # 0.84 is under the threshold: no distance beyond it
    # the same distances with bob far away: named at the second vote
    clear = _feed(config, [_obs("ann", 0.85, 1.2), _obs("ann", 0.86, 1.25)])
    assert clear[0] is None and clear[1].person_id == "ann"
    assert clear[1].score == 0.510  # median 0.855; (1.12 - 0.855) / 0.52 = 0.5096


def test_the_margin_is_inclusive_and_zero_turns_it_off():
    # the runner-up exactly a margin farther counts (0.5, 0.625 and 0.125 are exact in binary)
    assert _feed(MatcherConfig(threshold=0.9, sure_distance=0.8, margin=0.125), [_obs("ann", 0.5, 0.625)])[0].type == "match"
    assert _feed(MatcherConfig(threshold=0.9, sure_distance=0.8, margin=0.0), [_obs("ann", 0.5, 0.5)])[0].type == "match"


def test_min_score_waits_for_votes_close_enough_on_the_median():
    config = MatcherConfig(threshold=1.0, sure_distance=0.6, votes=2, margin=0.0, min_score=0.5, unknown_after=10)
    seen = [_obs("ann", 0.95), _obs("ann", 0.97), _obs("ann", 0.6), _obs("ann", 0.6), _obs("ann", 0.6)]
    decisions = _feed(config, seen)
    # medians of the votes: 0.95 (one vote: not enough anyway), 0.96 -> 0.308, 0.95 -> 0.327,
    # then (0.6 + 0.95) / 2 = 0.775 -> (1.12 - 0.775) / 0.52 = 0.6635: named
    assert decisions[:3] == [None, None, None]
    assert decisions[3].person_id == "ann" and decisions[3].score == 0.663
    assert decisions[4] is None  # the same verdict: no new event

def test_the_person_with_most_of_the_votes_is_named():
    config = MatcherConfig(threshold=0.9, sure_distance=0.5, votes=2, margin=0.1, unknown_after=10)
    # ann gets two votes, bob one: ann holds most of them
    decisions = _feed(config, [_obs("ann", 0.8, 1.2), _obs("bob", 0.7, 1.1), _obs("ann", 0.85, 1.2)])
    assert decisions[:2] == [None, None]
    assert decisions[2].person_id == "ann" and decisions[2].distance == 0.8
    assert decisions[2].score == 0.567  # median of ann's votes 0.825; (1.12 - 0.825) / 0.52 = 0.5673


@pytest.mark.parametrize(("distance", "score"), [(1.12, 0.0), (1.3, 0.0), (0.6, 1.0), (0.3, 1.0), (0.86, 0.5), (0.99, 0.25)])
def test_the_match_score_scale(distance: float, score: float):
    assert match_score(distance) == score  # 1.12 -> 0, 0.6 -> 1, linear between


@pytest.mark.parametrize(
    ("bad", "message"),
    [({"margin": -0.1}, r"margin: must be a finite number between 0 and 2 \(got -0.1\)"),
     ({"min_score": 1.5}, r"min_score: must be a finite number between 0 and 1 \(got 1.5\)"),
     ({"threshold": 0.8, "sure_distance": 0.85}, r"sure_distance: must be at most threshold \(0.8\)")],
)
def test_bad_matcher_settings(bad: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        parse_config({"matcher": bad})


def test_the_shipped_configurations_state_the_rule_they_claim():
    from streamrec.config import load_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    assert load_config(configs / "default.toml").matcher == MatcherConfig()  # "every key with its default"
    door, default = load_config(configs / "door.toml").matcher, MatcherConfig()
    # "stricter than the default": no setting lets more through
    assert door.threshold <= default.threshold and door.sure_distance <= default.sure_distance
    assert door.votes >= default.votes and door.margin >= default.margin and door.min_score >= default.min_score
