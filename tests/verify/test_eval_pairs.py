"""``streamrec eval-pairs`` end to end, as a real process on real photos."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_lfw_view1(lfw_view1: Path):
    result = run_cli(
        "eval-pairs", "--pairs", str(lfw_view1 / "pairsDevTest.txt"), "--images", str(lfw_view1 / "deepfunneled"), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("accuracy", "accuracy_std", "val_at_far_1e-3", "threshold", "pairs", "failed_detections"):
        assert key in report
    assert report["pairs"] == 1000 and report["pairs_scored"] == 1000
    assert report["failed_detections"] == 0
    # docs/accuracy.md records 0.986 for the defaults (dlib's face_recognition: ~0.985). A
    # 1,000-pair estimate moves by +-0.002 when float rounding on another CPU flips a single
    # near-threshold pair, so the guard sits just below the recorded figure.
    assert report["accuracy"] >= 0.982
    assert report["val_at_far_1e-3"] >= 0.9
    assert 1.0 <= report["threshold"] <= 1.2
    assert "embedding images: 1549/1549" in result.stderr


def test_lfw_view1_int8(lfw_view1: Path):
    """The int8 engine keeps View 1 accuracy (docs/accuracy.md: 0.985, fp32 0.986), two pairs of
    rounding on another CPU allowed as for fp32 above; with its L2 normalisation quantized it
    measured 0.982."""
    result = run_cli(
        "eval-pairs", "--pairs", str(lfw_view1 / "pairsDevTest.txt"), "--images", str(lfw_view1 / "deepfunneled"),
        "--precision", "int8", "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] >= 0.983


@pytest.fixture()
def small_lfw(tmp_path: Path, faces_dir: Path, nonfaces: Path) -> Path:
    """The face photos laid out the LFW way (links, not copies), plus a 'person' with no face."""
    people = {}
    for folder in sorted(p for p in faces_dir.iterdir() if p.is_dir()):
        photos = sorted(folder.iterdir())
        (tmp_path / folder.name).mkdir()
        for i, photo in enumerate(photos, start=1):
            (tmp_path / folder.name / f"{folder.name}_{i:04d}.jpg").symlink_to(photo.resolve())
        people[folder.name] = len(photos)
    (tmp_path / "no_one").mkdir()
    (tmp_path / "no_one" / "no_one_0001.jpg").symlink_to((nonfaces / "trt_dog.jpg").resolve())
    same = [(name, i, j) for name, n in people.items() for i, j in itertools.combinations(range(1, n + 1), 2)]
    names = sorted(people)
    different = [(a, 1, b, 1) for a, b in itertools.combinations(names, 2)][: len(same) - 1] + [("no_one", 1, names[0], 1)]
    lines = [str(len(same))] + [" ".join(map(str, p)) for p in same + different]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_pair_list_built_from_the_face_photos(small_lfw: Path):
    result = run_cli("eval-pairs", "--pairs", str(small_lfw / "pairs.txt"), "--images", str(small_lfw), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pairs"] == 60
    assert report["failed_detections"] == 1 and report["skipped_pairs"] == 1
    assert report["pairs_scored"] == 59
    # Same-person pairs reach 1.065 and different people start at 1.154 on these photos: the
    # threshold chosen on all pairs falls in that gap. Held-out folds see thresholds chosen
    # without their hardest pair, so a fold can miss one pair.
    assert 1.07 <= report["threshold"] <= 1.15
    assert report["accuracy"] >= 0.95
    assert report["accuracy_counting_skipped"] == pytest.approx(report["accuracy"] * 59 / 60)
    assert any("no_one_0001.jpg" in path for path in report["failures"])


def test_human_output_and_bad_lists(small_lfw: Path, tmp_path: Path):
    result = run_cli("eval-pairs", "--pairs", str(small_lfw / "pairs.txt"), "--images", str(small_lfw))
    assert result.returncode == 0
    assert "pairs: 60 (59 scored, 1 skipped)" in result.stdout and "failed detections: 1" in result.stdout
    assert "no_one_0001.jpg: no face found" in result.stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("2\nA 1 2\n")
    result = run_cli("eval-pairs", "--pairs", str(bad), "--images", str(small_lfw))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("streamrec: error:") and "promises 4 pairs" in result.stderr
    assert "Traceback" not in result.stderr
