"""``detect``, ``embed``, ``compare`` and every verb's ``--help``, run as real processes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

VERBS = [
    ["demo"], ["run"], ["config", "check"], ["config", "defaults"], ["config", "reference"], ["events"], ["enroll"], ["watchlist", "list"], ["calibrate"], ["engines", "build"], ["engines", "info"],
    ["detect"], ["embed"], ["compare"], ["eval-pairs"], ["train"], ["bench", "models"], ["bench", "pipeline"], ["bench", "transport"], ["bench", "peers"],
    ["bench", "report"], ["engines", "check"], ["engines", "export"],
]


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help(verb):
    result = run_cli(*verb, "--help")
    assert result.returncode == 0 and "usage: streamrec" in result.stdout
    assert "%%" not in result.stdout  # a description is printed as written, not %-formatted as an option's help is


def test_detect_json(scenes: Path):
    result = run_cli("detect", str(scenes / "fr_two_people.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)
    assert (item["width"], item["height"]) == (1126, 661)
    assert len(item["faces"]) == 2
    for face in item["faces"]:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 1126 and 0 <= y1 < y2 <= 661 and face["score"] > 0.99
        assert set(face["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
        lx, ly = face["landmarks"]["left_eye"]
        assert x1 < lx < x2 and y1 < ly < y2


def test_detect_reports_boxes_in_original_pixels(faces_dir: Path):
    """A 36 MP photo is detected downscaled; boxes come back in the file's own pixels."""
    result = run_cli("detect", str(faces_dir / "compreface_person_a" / "1.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)
    assert (item["width"], item["height"]) == (4912, 7360)
    main = item["faces"][item["main_face"]]
    # detected on a 1068x1600 copy, reported in the file's pixels: the face spans x 1905-2315
    assert main["box"][0] > 1600 and main["box"][2] - main["box"][0] > 300


def test_compare_same_and_different(faces_dir: Path):
    same = run_cli("compare", str(faces_dir / "barack_obama" / "1.jpg"), str(faces_dir / "barack_obama" / "3.jpg"), "--json")
    different = run_cli("compare", str(faces_dir / "barack_obama" / "1.jpg"), str(faces_dir / "joe_biden" / "1.jpg"), "--json")
    for result in (same, different):
        assert result.returncode == 0, result.stderr
    same_report, different_report = json.loads(same.stdout), json.loads(different.stdout)
    assert set(same_report) >= {"distance", "same", "threshold"}
    assert same_report["same"] is True and different_report["same"] is False
    assert same_report["distance"] < same_report["threshold"] < different_report["distance"]
    text = run_cli("compare", str(faces_dir / "rose_leslie" / "1.jpg"), str(faces_dir / "rose_leslie" / "2.jpg"))
    assert "same person" in text.stdout


def test_embed_writes_one_row_per_image(tmp_path: Path, faces_dir: Path, nonfaces: Path):
    out = tmp_path / "vectors.npy"
    images = [faces_dir / "kit_harington" / "2.jpg", nonfaces / "trt_dog.jpg", faces_dir / "rose_leslie" / "1.jpg"]
    result = run_cli("embed", *map(str, images), "--out", str(out), "--json")
    assert result.returncode == 1  # the dog has no face: reported, nothing else lost
    vectors = np.load(out)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.isnan(vectors[1]).all()
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1.0, atol=1e-5)
    listing = json.loads(result.stdout)["embeddings"]
    assert listing[1]["error"] == "no face found" and listing[1]["row"] == 1


def test_embed_all_faces(tmp_path: Path, scenes: Path):
    out = tmp_path / "all.npy"
    result = run_cli("embed", str(scenes / "fapi_bbt4.jpg"), "--all-faces", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert np.load(out).shape == (6, 512)
    assert result.stdout.count("row ") == 6 and "wrote 6 embeddings" in result.stdout


def test_detect_numbers_faces_as_json_indexes_them(shared_data: Path):
    image = str(shared_data / "scenes" / "fr_two_people.jpg")
    (item,) = json.loads(run_cli("detect", image, "--json").stdout)
    text = run_cli("detect", image).stdout.splitlines()
    assert [line.split(":")[0].strip() for line in text[1:]] == [
        f"face {k}" + (" (main)" if k == item["main_face"] else "") for k in range(len(item["faces"]))]
