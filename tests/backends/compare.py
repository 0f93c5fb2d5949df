"""Comparing two detectors' results on the same frame."""

from __future__ import annotations

import numpy as np

from streamrec.detect.types import FaceDetections


def assert_same_faces(ours: FaceDetections, reference: FaceDetections, where: str) -> None:
    """Same number of faces; each reference face has one of ours within 1 px (box and
    landmarks) and with the same score to 1e-4."""
    assert len(ours) == len(reference), f"{where}: {len(ours)} faces, reference {len(reference)}"
    for box, points, score in zip(reference.boxes, reference.landmarks, reference.scores):
        j = int(np.argmin(np.abs(ours.boxes - box).max(axis=1)))
        assert np.abs(ours.boxes[j] - box).max() <= 1.0, f"{where}: box {ours.boxes[j]} vs {box}"
        assert np.abs(ours.landmarks[j] - points).max() <= 1.0, f"{where}: landmarks differ"
        assert abs(float(ours.scores[j]) - float(score)) <= 1e-4, f"{where}: score {ours.scores[j]} vs {score}"
