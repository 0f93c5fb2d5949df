"""Threshold calibration: on the real face photos (function and command) and at scale."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from streamrec.match.calibrate import CalibrationError, calibrate
from tests.conftest import run_cli
from tests.match.synthetic import FaceLikeSpace


def _by_person(face_photos) -> dict[str, np.ndarray]:
    return {person: np.stack([v for _, v in photos]) for person, photos in face_photos.items()}


def test_calibration_on_the_real_photos(face_photos):
    embeddings = _by_person(face_photos)
    result = calibrate(embeddings, far=0.001)
    sizes = [len(v) for v in embeddings.values()]
    same = sum(n * (n - 1) // 2 for n in sizes)
    assert (result.people, result.photos) == (9, 24)
    assert (result.same_pairs, result.different_pairs) == (same, math.comb(sum(sizes), 2) - same)
    # fewer than 1,000 different-person pairs: the proposal accepts none of them, and says so
    assert result.proposed.false_accepts == 0
    assert result.proposed.threshold == math.floor(result.different_range[0] * 1000) / 1000
    assert result.warning is not None and f"only {result.different_pairs} different-person pairs" in result.warning
    # these photos separate cleanly: every same-person pair is closer than every different one
    assert result.same_range[1] < result.proposed.threshold and result.proposed.frr == 0.0
    assert result.default.threshold == 1.12 and result.default.false_accepts == 0


def test_the_proposed_threshold_is_the_largest_within_the_target():
    space = FaceLikeSpace(seed=3)
    photos = space.photos(space.identities(150), 4)
    result = calibrate({f"p{i}": p for i, p in enumerate(photos)}, far=0.01)
    vectors = photos.reshape(-1, 512).astype(np.float64)
    labels = np.repeat(np.arange(150), 4)
    upper = np.triu_indices(len(vectors), k=1)
    dist = np.sqrt(np.clip(2 - 2 * vectors @ vectors.T, 0, None))[upper]
    same = labels[upper[0]] == labels[upper[1]]
    threshold = result.proposed.threshold
    assert result.warning is None and result.different_pairs == (~same).sum() == 178_800
    assert result.proposed.far == pytest.approx((dist[~same] < threshold).mean(), abs=1e-6) and result.proposed.far <= 0.01
    assert (dist[~same] < threshold + 0.001).mean() > 0.01  # one step more would miss the target
    assert result.proposed.frr == pytest.approx((dist[same] >= threshold).mean(), abs=1e-6)


def test_too_few_people_or_pairs_is_an_error(face_photos):
    embeddings = _by_person(face_photos)
    with pytest.raises(CalibrationError, match=r"at least 2 people \(found 1\)"):
        calibrate({"barack_obama": embeddings["barack_obama"], "nobody": np.zeros((0, 512))})
    with pytest.raises(CalibrationError, match="at least one person with 2 or more usable photos"):
        calibrate({p: embeddings[p][:1] for p in ("barack_obama", "joe_biden")})
    with pytest.raises(ValueError, match="between 0 and 1"):
        calibrate(embeddings, far=1.5)


def test_calibrate_command(faces_dir: Path, tmp_path: Path):
    result = run_cli("calibrate", "--images", str(faces_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["people"], report["photos"], report["skipped_photos"]) == (9, 24, 0)
    assert report["proposed"]["far"] <= report["target_far"] == 0.001
    assert report["same_range"][1] < report["proposed"]["threshold"] <= report["different_range"][0]
    assert "warning: only 246 different-person pairs" in result.stderr
    lonely = tmp_path / "photos" / "barack_obama"
    lonely.mkdir(parents=True)
    for photo in (faces_dir / "barack_obama").iterdir():
        (lonely / photo.name).symlink_to(photo)
    (lonely / "notes.txt").write_text("not a photo")
    refused = run_cli("calibrate", "--images", str(lonely.parent))
    assert refused.returncode == 1
    assert "notes.txt: skipped" in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == "streamrec: error: calibration needs usable photos of at least 2 people (found 1)"
