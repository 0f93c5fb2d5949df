"""``enroll`` and ``watchlist`` as real processes, on real photos."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli

WATCHLIST_VERBS = [["enroll"], ["watchlist", "list"], ["watchlist", "show"], ["watchlist", "remove"], ["watchlist", "negative"],
                   ["watchlist", "rebuild"]]


@pytest.mark.parametrize("verb", [*WATCHLIST_VERBS, ["calibrate"]], ids=" ".join)
def test_every_verb_has_help(verb):
    result = run_cli(*verb, "--help")
    assert result.returncode == 0 and "usage: streamrec" in result.stdout and "--json" in result.stdout
    assert ("--data-dir" in result.stdout) == (verb in WATCHLIST_VERBS)  # calibrate keeps no state


def _cli_json(*args: str, status: int = 0):
    result = run_cli(*args, "--json")
    assert result.returncode == status, result.stderr
    return json.loads(result.stdout)


def test_enroll_keeps_the_good_photos_and_refuses_the_rest(tmp_path: Path, faces_dir: Path, scenes: Path,
                                                           nonfaces: Path, edge_cases: Path):
    good = [faces_dir / "barack_obama" / name for name in ("1.jpg", "2.jpg")]
    two_people = scenes / "fr_two_people.jpg"
    no_face = sorted(nonfaces.iterdir())
    broken = sorted((edge_cases / "broken").iterdir())
    photos = [good[0], *no_face, two_people, *broken, good[1]]
    report = _cli_json("enroll", "--name", "Barack Obama", *map(str, photos), "--data-dir", str(tmp_path), status=1)
    assert report["created"] is True and report["person"]["id"] == "barack-obama" and report["person"]["photos"] == 2
    outcome = {Path(p["image"]).name: p.get("refused", "enrolled") for p in report["photos"]}
    assert outcome["1.jpg"] == outcome["2.jpg"] == "enrolled"
    for photo in no_face:
        assert outcome[photo.name] == "no face found" or outcome[photo.name].startswith("no clear face"), photo
    assert outcome["fr_two_people.jpg"].startswith("2 faces of similar size")
    assert outcome["cf_truncated.jpg"].startswith("truncated JPEG")
    assert outcome["cf_corrupted.png"].startswith("corrupt PNG")
    assert outcome["cf_empty.png"].startswith("not a readable image")
    shown = _cli_json("watchlist", "show", "barack-obama", "--data-dir", str(tmp_path))
    assert [e["image"] for e in shown["embeddings"]] == [str(p.resolve()) for p in good]
    x1, y1, x2, y2 = shown["embeddings"][0]["box"]
    assert 300 < x1 < x2 < 700 and 50 < y1 < y2 < 500 and shown["name"] == "Barack Obama"


def test_nothing_usable_enrolls_nobody(tmp_path: Path, nonfaces: Path):
    white = nonfaces / "fapi_white.png"
    result = run_cli("enroll", "--name", "Nobody", str(white), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.strip() == f"{white}: refused: no face found"
    assert result.stderr.strip().endswith("streamrec: error: nothing enrolled: none of the 1 photos has a usable face")
    assert _cli_json("watchlist", "list", "--data-dir", str(tmp_path))["people"] == []


def test_same_name_adds_photos_then_list_show_and_remove(tmp_path: Path, faces_dir: Path):
    rose = faces_dir / "rose_leslie"
    data = ["--data-dir", str(tmp_path)]
    first = _cli_json("enroll", "--name", "Rose Leslie", str(rose / "1.jpg"), "--metadata", "show=Game of Thrones", *data)
    second = _cli_json("enroll", "--name", "rose leslie", str(rose / "2.jpg"), "--metadata", "role=Ygritte", *data)
    assert (first["created"], second["created"]) == (True, False)
    listed = _cli_json("watchlist", "list", *data)
    assert listed["generation"] == 2
    (person,) = listed["people"]
    assert (person["id"], person["name"], person["photos"]) == ("rose-leslie", "Rose Leslie", 2)
    assert person["metadata"] == {"show": "Game of Thrones", "role": "Ygritte"}
    text = run_cli("watchlist", "show", "rose-leslie", *data)
    assert text.returncode == 0 and text.stdout.startswith("Rose Leslie (id rose-leslie)") and "role: Ygritte" in text.stdout
    mismatch = run_cli("enroll", "--name", "Kit Harington", "--id", "rose-leslie", str(rose / "1.jpg"), *data)
    assert mismatch.returncode == 1 and "id 'rose-leslie' belongs to 'Rose Leslie', not 'Kit Harington'" in mismatch.stderr
    removed = run_cli("watchlist", "remove", "rose-leslie", *data)
    assert removed.returncode == 0 and removed.stdout.strip() == "removed Rose Leslie (id rose-leslie) and 2 embeddings"
    assert _cli_json("watchlist", "list", *data)["people"] == []
    gone = run_cli("watchlist", "show", "rose-leslie", *data)
    assert gone.returncode == 1 and gone.stderr.strip() == "streamrec: error: no person with id 'rose-leslie' in the watchlist"


def test_data_dir_defaults_to_streamrec_data(tmp_path: Path, faces_dir: Path):
    env = {**os.environ, "STREAMREC_DATA": str(tmp_path / "from-env")}
    result = run_cli("enroll", "--name", "Joe Biden", str(faces_dir / "joe_biden" / "1.jpg"), env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-env" / "watchlist.sqlite3").is_file()
    listed = run_cli("watchlist", "list", env=env)
    assert listed.stdout.split()[:4] == ["joe-biden", "Joe", "Biden", "1"]


def test_remove_purge_leaves_nothing_of_the_person_on_disk(tmp_path: Path):
    import time

    import numpy as np

    from streamrec.bus.messages import Event
    from streamrec.events.journal import Journal, read_journal
    from streamrec.match.kept import KeptFaces
    from streamrec.match.store import NewEmbedding, Watchlist

    rng = np.random.default_rng(0)
    units = [v / np.linalg.norm(v) for v in rng.standard_normal((4, 512)).astype(np.float32)]
    photo = tmp_path / "photos" / "0123abcd.jpeg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"\xff\xd8 a photo of Ada Lovelace")
    with Watchlist(tmp_path) as store:
        store.enroll("Ada Lovelace", [NewEmbedding(units[0], str(photo), (0, 0, 1, 1))])
        store.enroll("Bo Bell", [NewEmbedding(units[1], "bo.jpg", (0, 0, 1, 1))])
        store.add_negative("ada-lovelace", units[2], "kept.jpg")
    kept = KeptFaces(tmp_path)
    crop = np.zeros((8, 8, 3), np.uint8)
    kept.keep("match", "cam", 1, time.time(), crop, units[0], 0.9, "ada-lovelace", "Ada Lovelace")
    bo_face = kept.keep("match", "cam", 2, time.time(), crop, units[1], 0.9, "bo-bell", "Bo Bell")
    kept.keep("unknown", "cam", 3, time.time(), crop, units[0], 0.9)  # Ada's face before she was enrolled
    stranger = kept.keep("unknown", "cam", 4, time.time(), crop, units[3], 0.9)
    Journal(tmp_path / "events").append([
        Event("match", "cam", time.time(), track_id=1, person_id="ada-lovelace", name="Ada Lovelace").to_json(),
        Event("match", "cam", time.time(), track_id=2, person_id="bo-bell", name="Bo Bell").to_json(),
    ])
    erased = _cli_json("watchlist", "remove", "ada-lovelace", "--purge", "--data-dir", str(tmp_path))
    assert erased == {"removed": "ada-lovelace", "name": "Ada Lovelace", "embeddings": 1, "negatives": 1, "photos": 1,
                      "kept_faces": 2, "events_renamed": 1}
    traces = [b"Ada Lovelace", units[0].astype("<f4").tobytes()[:64], units[2].astype("<f4").tobytes()[:64]]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [t for t in traces if t in data], f"{path} still holds the person"
    assert not photo.exists()
    assert [(e["person_id"], e["name"]) for e in read_journal(tmp_path / "events")] == [("ada-lovelace", "ada-lovelace"), ("bo-bell", "Bo Bell")]
    assert bo_face is not None and kept.get(bo_face.id) is not None
    assert [f.id for f in kept.recent("unknown")] == [stranger.id]
    with Watchlist(tmp_path) as store, store.read() as view:
        assert [p.id for p in view.persons()] == ["bo-bell"]
    refused = run_cli("watchlist", "remove", "ada-lovelace", "--purge", "--data-dir", str(tmp_path))
    assert refused.returncode != 0 and refused.stderr.strip().endswith("no person with id 'ada-lovelace' in the watchlist")


@pytest.mark.parametrize("verb", [["watchlist", "list"], ["watchlist", "show", "ada"], ["watchlist", "remove", "ada"],
                                  ["watchlist", "remove", "ada", "--purge"], ["watchlist", "rebuild"]], ids=" ".join)
def test_a_mistyped_data_dir_is_refused_not_created(tmp_path: Path, verb: list[str]):
    missing, empty = tmp_path / "nosuch", tmp_path / "empty"
    empty.mkdir()
    for folder in (missing, empty):
        result = run_cli(*verb, "--data-dir", str(folder))
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.splitlines() == [f"streamrec: error: no watchlist in {folder}"]
    assert not missing.exists() and not any(empty.iterdir())
