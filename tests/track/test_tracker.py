"""The IoU tracker, the embedding policy and per-track identity decisions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.config.model import MatcherConfig, TrackerConfig
from streamrec.detect.types import FaceDetections
from streamrec.track.identity import Observation, TrackIdentity
from streamrec.track.policy import EmbedPolicy
from streamrec.track.quality import FaceQuality, face_quality
from streamrec.track.state import TrackState
from streamrec.track.tracker import IoUTracker


def _faces(*boxes: list[float]) -> FaceDetections:
    n = len(boxes)
    b = np.array(boxes, np.float32).reshape(n, 4)
    marks = np.zeros((n, 5, 2), np.float32)
    return FaceDetections(b, np.ones(n, np.float32), marks)


def test_tracks_follow_moving_faces_and_keep_ids():
    tracker = IoUTracker(iou_threshold=0.3, max_missed_s=0.5)
    ids = []
    for step in range(10):
        x = 10 * step  # a face moving right 10 px per frame, another standing still
        matched, ended = tracker.update(_faces([100 + x, 50, 180 + x, 150], [400, 60, 470, 150]), ts=step * 0.04)
        assert not ended
        ids.append(sorted(t.id for t, _ in matched))
    assert all(i == ids[0] for i in ids) and len(ids[0]) == 2


def test_a_face_that_leaves_ends_its_track_and_a_new_face_gets_a_new_id():
    tracker = IoUTracker(max_missed_s=0.5)
    (first, _), = tracker.update(_faces([0, 0, 50, 50]), 0.0)[0]
    matched, ended = tracker.update(_faces(), 0.3)
    assert not matched and not ended
    matched, ended = tracker.update(_faces([300, 300, 350, 350]), 0.6)
    assert [t.id for t in ended] == [first.id]
    assert matched[0][0].id != first.id
    assert [t.id for t in tracker.end_all()] == [matched[0][0].id] and not tracker.tracks


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0005, 0.3), st.lists(st.floats(-4, 4), min_size=4, max_size=4)), min_size=2, max_size=60))
def test_a_still_face_keeps_its_track_however_its_box_wobbles_and_its_frames_bunch(steps):
    """A face held still, its detected box off by up to 4 px each frame (the wobble between a
    full detection and a re-detection), its frames from half a millisecond to 0.3 s apart (a
    paced file catching up, a stall): one track throughout, predicted where the face stands."""
    tracker = IoUTracker()
    still = np.array([200, 95, 325, 270], np.float32)
    (track, _), = tracker.update(_faces(still.tolist()), 0.0)[0]
    ts = 0.0
    for gap, wobble in steps:
        ts += gap
        assert np.abs(track.predicted(ts) - still).max() < 16
        matched, ended = tracker.update(_faces((still + np.array(wobble, np.float32)).tolist()), ts)
        assert not ended and [t.id for t, _ in matched] == [track.id]


def test_two_faces_crossing_keep_their_ids_by_overlap():
    tracker = IoUTracker()
    a, b = [t for t, _ in tracker.update(_faces([0, 0, 60, 60], [200, 0, 260, 60]), 0.0)[0]]
    matched, _ = tracker.update(_faces([205, 2, 265, 62], [4, 1, 64, 61]), 0.04)  # order swapped
    by_index = {index: track.id for track, index in matched}
    assert by_index == {0: b.id, 1: a.id}


def test_quality_ranks_sharp_frontal_large_faces_first(faces_dir):
    import cv2

    from streamrec.images import load_image

    image = load_image(faces_dir / "barack_obama" / "4.jpg").rgb
    box = np.array([536, 120, 902, 644], np.float32)
    marks = np.array([[640, 330], [800, 330], [720, 420], [650, 520], [790, 520]], np.float32)
    sharp = face_quality(image, box, marks)
    blurred = face_quality(cv2.GaussianBlur(image, (0, 0), 6), box, marks)
    turned = face_quality(image, box, marks + np.array([[0, 0], [0, 0], [60, 0], [0, 0], [0, 0]], np.float32))
    assert sharp.sharpness > 4 * blurred.sharpness
    assert sharp.frontality > 0.9 > turned.frontality
    assert sharp.score > blurred.score and sharp.score > turned.score


def _track():
    tracker = IoUTracker()
    return tracker.update(_faces([0, 0, 100, 100]), 0.0)[0][0][0]


def test_policy_embeds_on_appearance_improvement_and_interval_only():
    policy = EmbedPolicy(TrackerConfig(min_face_px=40, min_sharpness=20, embed_interval_s=1.0, improve_factor=1.25, min_gap_s=0.2, max_embeddings=4))
    track = _track()
    good = FaceQuality(100, 100, 1.0)
    assert not policy.wants(track, FaceQuality(30, 100, 1.0), 0.0)  # too small
    assert not policy.wants(track, FaceQuality(100, 5, 1.0), 0.0)  # too blurry
    assert policy.wants(track, good, 0.0)
    policy.record(track, good, 0.0)
    assert not policy.wants(track, good, 0.1)  # too soon
    assert policy.wants(track, good, 0.25)  # undecided: as often as min_gap_s allows
    policy.record(track, good, 0.25)
    identity = track.state.identity = TrackIdentity(MATCHER)
    for distance in (0.7, 0.75):
        identity.add(Observation("ann", "Ann", distance, 1.0))
    assert identity.decision is not None
    assert not policy.wants(track, good, 0.5)  # decided, nothing new
    better = FaceQuality(200, 200, 1.0)
    assert policy.wants(track, better, 0.5)
    policy.record(track, better, 0.5)
    assert not policy.wants(track, good, 1.4)
    assert policy.wants(track, good, 1.6)  # the interval passed
    policy.record(track, good, 1.6)
    assert not policy.wants(track, FaceQuality(400, 200, 1.0), 9.0)  # max_embeddings reached
    # a door waiting on the track: every min_gap_s, decided and past max_embeddings as it is
    assert policy.wants(track, good, 9.0, eager=True)
    assert not policy.wants(track, good, 1.7, eager=True)  # but never more often than min_gap_s
    assert not policy.wants(track, FaceQuality(30, 100, 1.0), 9.0, eager=True)  # nor a face too small


MATCHER = MatcherConfig(threshold=1.1, votes=2, sure_distance=0.9, unknown_after=3)


def test_a_match_needs_two_votes_or_one_sure_distance():
    identity = TrackIdentity(MATCHER)
    assert identity.add(Observation("ann", "Ann", 1.05, 1.0)) is None  # one weak vote: wait
    decision = identity.add(Observation("ann", "Ann", 1.0, 1.0))
    assert decision is not None and (decision.type, decision.person_id, decision.distance) == ("match", "ann", 1.0)
    assert 0 < decision.score <= 1
    assert identity.add(Observation("ann", "Ann", 0.95, 1.0)) is None  # same verdict: no new event
    assert identity.decision.distance == 0.95
    sure = TrackIdentity(MATCHER)
    assert sure.add(Observation("bob", "Bob", 0.8, 1.0)).type == "match"


def test_passers_by_near_the_threshold_are_not_named():
    identity = TrackIdentity(MATCHER)
    decisions = [identity.add(Observation(p, p, d, 1.0)) for p, d in [("ann", 1.08), ("bob", 1.15), ("cid", 1.2), ("dan", 1.09)]]
    assert decisions == [None, None, None, None]  # two lone weak votes for different people
    decision = identity.add(Observation("eve", "eve", 1.3, 1.0))
    assert decision is not None and decision.type == "unknown" and decision.distance == 1.15


def test_conflicting_votes_name_nobody_until_one_person_wins():
    identity = TrackIdentity(MATCHER)
    assert identity.add(Observation("ann", "Ann", 1.0, 1.0)) is None
    assert identity.add(Observation("bob", "Bob", 1.0, 1.0)) is None
    decision = identity.add(Observation("bob", "Bob", 1.05, 1.0))  # bob: 2 of the 3 votes
    assert decision is not None and decision.person_id == "bob"
    assert identity.add(Observation("ann", "Ann", 1.0, 1.0)) is None  # 2-2: bob keeps the name


def test_empty_watchlist_gives_unknown_without_a_distance():
    identity = TrackIdentity(MATCHER)
    for _ in range(2):
        assert identity.add(Observation(None, None, float("inf"), 1.0)) is None
    decision = identity.add(Observation(None, None, float("inf"), 1.0))
    assert decision is not None and decision.type == "unknown" and decision.distance is None


@pytest.mark.parametrize("bad", [{"iou_threshold": 1.5}, {"improve_factor": 0.5}, {"max_embeddings": 0}])
def test_bad_tracker_settings(bad):
    with pytest.raises(ValueError):
        TrackerConfig(**bad)


def test_split_continues_the_face_on_a_new_track():
    tracker = IoUTracker()
    (old, _), = tracker.update(_faces([0, 0, 100, 100]), 0.0)[0]
    old.state.identity = TrackIdentity(MATCHER)
    new = tracker.split(old)
    assert new.id != old.id and list(tracker.tracks) == [new.id]
    assert np.array_equal(new.box, old.box) and new.state == TrackState() and new.first_ts == old.last_ts
    (again, _), = tracker.update(_faces([2, 0, 102, 100]), 0.04)[0]
    assert again is new  # the face goes on on the new track
