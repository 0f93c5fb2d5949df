"""``[tracker] embed_every_frame``: the naive policy ``streamrec bench pipeline --no-skips``
compares against, embedding every tracked face on every frame."""

from __future__ import annotations

import numpy as np

from streamrec.config import TrackerConfig, parse_config
from streamrec.detect.types import FaceDetections
from streamrec.track.policy import EmbedPolicy
from streamrec.track.quality import FaceQuality
from streamrec.track.tracker import IoUTracker


def _track():
    faces = FaceDetections(np.array([[0, 0, 100, 100]], np.float32), np.ones(1, np.float32), np.zeros((1, 5, 2), np.float32))
    return IoUTracker().update(faces, 0.0)[0][0][0]


def test_every_face_every_frame_even_small_blurry_and_repeated():
    policy = EmbedPolicy(TrackerConfig(embed_every_frame=True, max_embeddings=2))
    track = _track()
    for ts in (0.0, 0.03, 0.06, 0.1):
        for quality in (FaceQuality(100, 100, 1.0), FaceQuality(10, 1, 0.1)):
            assert policy.wants(track, quality, ts)
            policy.record(track, quality, ts)


def test_off_by_default_and_read_from_the_config():
    assert TrackerConfig().embed_every_frame is False
    policy = EmbedPolicy(TrackerConfig())
    track = _track()
    good = FaceQuality(100, 100, 1.0)
    policy.record(track, good, 0.0)
    assert not policy.wants(track, good, 0.03)  # the default skips a face it just embedded
    assert parse_config({"tracker": {"embed_every_frame": True}}).tracker.embed_every_frame is True
