"""Open-set measurement: the rates on real embeddings of the shared photos (some people enrolled,
the others not), the confidence bound, and ``streamrec calibrate --open-set``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamrec.config.model import MatcherConfig
from streamrec.match.openset import SWEEP, open_set_rates, upper_bound
from tests.conftest import run_cli

ENROLLED = ["alex_lacamoire", "barack_obama", "compreface_person_b", "joe_biden", "kit_harington"]
STRANGERS = ["compreface_person_a", "compreface_person_c", "lin_manuel_miranda", "rose_leslie"]


def _embeddings(face_photos, people: list[str]) -> dict[str, np.ndarray]:
    return {p: np.stack([v for _, v in face_photos[p]]) for p in people}


def _split(face_photos) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The embeddings of the people enrolled here, and of those who are not."""
    return _embeddings(face_photos, ENROLLED), _embeddings(face_photos, STRANGERS)


def _nearest_distance(queries: np.ndarray, photos: dict[str, np.ndarray]) -> np.ndarray:
    every = np.concatenate(list(photos.values()))
    return np.linalg.norm(queries[:, None, :] - every[None, :, :], axis=2).min(axis=1)


def test_the_defaults_name_no_stranger_and_the_held_out_photos_of_the_enrolled(face_photos):
    enrolled, strangers = _split(face_photos)
    report = open_set_rates(enrolled, strangers, MatcherConfig(), track_length=4, draws=5)
    assert (report.enrolled_people, report.enrolled_photos, report.stranger_people, report.stranger_photos) == (5, 14, 4, 10)
    for rate in (report.face, report.track_one_view):
        assert (rate.count, rate.trials, rate.rate) == (0, 10, 0.0)
        assert rate.upper == pytest.approx(1 - 0.05 ** (1 / 10))  # no event in 10 trials
    # several views: rose_leslie (2 photos) and compreface_person_a (6), 5 draws each
    assert (report.track_views.count, report.track_views.trials) == (0, 10)
    assert (report.track_views_people.count, report.track_views_people.trials) == (0, 2)
    # every held-out photo of an enrolled person, matched against the 13 others: named right
    # when its own person is nearest and under the threshold (the margin holds on these photos)
    rows = [(p, i) for p in ENROLLED for i in range(len(enrolled[p]))]
    right = 0
    for person, i in rows:
        others = {q: np.delete(v, i, axis=0) if q == person else v for q, v in enrolled.items()}
        own = _nearest_distance(enrolled[person][i : i + 1], {person: others[person]})[0]
        right += own < 0.9 and own == _nearest_distance(enrolled[person][i : i + 1], others)[0]
    assert report.enrolled_face.trials == report.enrolled_track.trials == len(rows) == 14
    assert report.enrolled_face.count == report.enrolled_track.count == right >= 12
    assert report.enrolled_wrong.count == 0
    assert [row.threshold for row in report.sweep] == list(SWEEP)
    named = [row.enrolled_named.rate for row in report.sweep]
    assert named == sorted(named) and named[-1] == 1.0  # at 1.12 every held-out photo is named


def test_a_loose_rule_names_strangers_as_often_as_a_direct_count_says(face_photos):
    enrolled, strangers = _split(face_photos)
    loose = MatcherConfig(threshold=1.3, sure_distance=1.3, votes=1, margin=0.0)
    report = open_set_rates(enrolled, strangers, loose, track_length=3, draws=4)
    every = np.concatenate([strangers[p] for p in sorted(strangers)])
    close = int((_nearest_distance(every, enrolled) < 1.3).sum())
    assert 0 < close < len(every)  # these photos sit on both sides of 1.3
    assert (report.face.count, report.face.trials) == (close, 10)
    assert report.track_one_view.count == close  # one vote is enough: named as often as faces vote
    assert report.face.upper == pytest.approx(upper_bound(close, 10))
    assert report.face.upper > report.face.rate
    faces = [row.face.rate for row in report.sweep]
    assert faces == sorted(faces)  # a larger threshold never names fewer


@pytest.mark.parametrize(
    ("events", "trials", "bound"),
    # exact one-sided 95% Clopper-Pearson bounds (the 0.95 quantile of Beta(k + 1, n - k))
    [(0, 2996, 0.000999411), (0, 1549, 0.001932109), (1, 100, 0.046559811), (3, 1000, 0.007735245), (5, 10, 0.777558899), (4, 4, 1.0)],
)
def test_upper_bound(events: int, trials: int, bound: float):
    assert upper_bound(events, trials) == pytest.approx(bound, abs=1e-8)


def test_bad_input_is_refused(face_photos):
    enrolled, strangers = _split(face_photos)
    with pytest.raises(ValueError, match="enrolled and not enrolled at once: barack_obama"):
        open_set_rates(enrolled, {**strangers, "barack_obama": enrolled["barack_obama"]}, MatcherConfig())
    with pytest.raises(ValueError, match="at least 2 enrolled people"):
        open_set_rates({"barack_obama": enrolled["barack_obama"]}, strangers, MatcherConfig())
    with pytest.raises(ValueError, match="between 0 and trials"):
        upper_bound(3, 2)


def _folders(root: Path, faces_dir: Path, people: list[str]) -> Path:
    for person in people:
        (root / person).mkdir(parents=True)
        for photo in (faces_dir / person).iterdir():
            (root / person / photo.name).symlink_to(photo)
    return root


def test_calibrate_open_set_command(faces_dir: Path, tmp_path: Path):
    small = ["compreface_person_c", "lin_manuel_miranda", "rose_leslie"]  # compreface_person_a's photos are huge
    enrolled = _folders(tmp_path / "enrolled", faces_dir, ["alex_lacamoire", "barack_obama", "joe_biden", "kit_harington"])
    strangers = _folders(tmp_path / "strangers", faces_dir, small)
    config = tmp_path / "strict.toml"
    config.write_text("[matcher]\nthreshold = 0.85\nsure_distance = 0.8\nvotes = 3\n")
    result = run_cli("calibrate", "--open-set", "--images", str(enrolled), "--strangers", str(strangers), "--config", str(config),
                     "--track-length", "5", "--draws", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["threshold"] == 0.85 and report["config"]["votes"] == 3 and report["config_file"] == str(config)
    assert (report["enrolled_people"], report["enrolled_photos"], report["stranger_people"], report["stranger_photos"]) == (4, 12, 3, 4)
    assert (report["track_length"], report["draws"], report["track_views"]["trials"]) == (5, 3, 3)  # rose_leslie, 3 draws
    assert report["face"]["count"] == 0 and report["face"]["upper"] == pytest.approx(1 - 0.05 ** (1 / 4))
    assert report["skipped_photos"] == report["skipped_stranger_photos"] == 0
    text = run_cli("calibrate", "--open-set", "--images", str(enrolled), "--strangers", str(strangers), "--draws", "2")
    assert text.returncode == 0, text.stderr
    assert "decision rule (defaults): threshold 0.9, margin 0.1, votes 2" in text.stdout
    assert "per face:" in text.stdout and "95% upper bound" in text.stdout and "1.12" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--open-set", "--images", "{faces}"], "--open-set needs --strangers DIR"),
        (["--images", "{faces}", "--strangers", "{faces}"], "--strangers needs --open-set"),
        (["--open-set", "--images", "{faces}", "--strangers", "{tmp}/nowhere"], "nowhere: not a folder"),
        (["--open-set", "--images", "{faces}", "--strangers", "{faces}", "--config", "{tmp}/bad.toml"], "matcher.min_score: must be a finite number between 0 and 1 (got 2)"),
        (["--open-set", "--images", "{faces}", "--strangers", "{faces}", "--draws", "0"], "argument --draws: must be a whole number >= 1 (got 0)"),
    ],
)
def test_calibrate_open_set_bad_input(args: list[str], message: str, faces_dir: Path, tmp_path: Path):
    (tmp_path / "bad.toml").write_text("[matcher]\nmin_score = 2\n")
    result = run_cli("calibrate", *(a.format(faces=faces_dir, tmp=tmp_path) for a in args), timeout=120)
    assert result.returncode != 0 and result.stdout == ""
    assert message in result.stderr.strip().splitlines()[-1], result.stderr
