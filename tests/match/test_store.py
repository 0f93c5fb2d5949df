"""The watchlist file: format, ids and names, refusals, and crash safety with real processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamrec.match.store import DB_NAME, NewEmbedding, Watchlist, WatchlistError, slugify


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return v / np.linalg.norm(v)


def _face(seed: int, image: str = "photo.jpg") -> NewEmbedding:
    return NewEmbedding(_unit(seed), image, (10.0, 20.0, 110.0, 150.0))


def _state(store: Watchlist) -> tuple[int, list[tuple[str, int]], int]:
    with store.read() as view:
        return view.generation(), [(p.id, p.embeddings) for p in view.persons()], view.count()


def test_on_disk_format_is_the_documented_one(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        result = store.enroll("Ada Lovelace", [_face(1, "ada.jpg")], metadata={"team": "analytical"})
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0] == 1
    assert db.execute("SELECT id, name, metadata FROM persons").fetchall() == [("ada-lovelace", "Ada Lovelace", '{"team": "analytical"}')]
    (row,) = db.execute("SELECT id, person_id, vector, image, x1, y1, x2, y2 FROM embeddings").fetchall()
    assert row[0] == result.embedding_ids[0] and row[1] == "ada-lovelace" and row[3:] == ("ada.jpg", 10.0, 20.0, 110.0, 150.0)
    assert len(row[2]) == 2048
    np.testing.assert_allclose(np.frombuffer(row[2], "<f4"), _unit(1), atol=1e-7)


def test_ids_are_slugs_and_a_known_name_gets_more_photos(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        first = store.enroll("  Zoë   Saldaña ", [_face(1)])
        again = store.enroll("zoë saldaña", [_face(2)], metadata={"note": "second visit"})
        assert (first.person.id, first.person.name, first.created) == ("zoe-saldana", "Zoë Saldaña", True)
        assert (again.person.id, again.created, again.person.embeddings) == ("zoe-saldana", False, 2)
        assert again.person.metadata == {"note": "second visit"}
        namesake = store.enroll("Zoë Saldaña", [_face(3)], person_id="zoe")
        assert namesake.created and namesake.person.id == "zoe"
        with pytest.raises(WatchlistError, match=r"2 people are named 'Zoë Saldaña' \(ids zoe, zoe-saldana\)"):
            store.enroll("Zoë Saldaña", [_face(4)])
    assert slugify("O'Brien, Ann!") == "o-brien-ann" and slugify("李小龙") == "person"


def test_a_taken_slug_gets_a_suffix(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        store.enroll("Ann Lee", [_face(1)], person_id="ann-lee")
        store.enroll("Ann Lee", [_face(2)], person_id="ann-lee-2")
        other = store.enroll("Ann  Lee.", [_face(3)])
    assert other.created and other.person.id == "ann-lee-3"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.enroll(" ", [_face(1)]), "name must not be empty"),
        (lambda s: s.enroll("B" * 201, [_face(1)]), r"name must be at most 200 characters \(got 201\)"),
        (lambda s: s.enroll("Bo", [_face(1)], person_id="Bad Id"), "bad person id 'Bad Id'"),
        (lambda s: s.enroll("Bo", [_face(1)], person_id="ada"), "id 'ada' belongs to 'Ada', not 'Bo'"),
        (lambda s: s.enroll("Bo", []), "nothing to enroll"),
        (lambda s: s.enroll("Bo", [NewEmbedding(np.ones(128, np.float32), "x", (0, 0, 1, 1))]), r"512 finite numbers \(got shape \(128,\)\)"),
        (lambda s: s.enroll("Bo", [_face(1), NewEmbedding(np.full(512, np.nan), "x", (0, 0, 1, 1))]), "512 finite numbers"),
        (lambda s: s.enroll("Bo", [NewEmbedding(2 * _unit(1), "x", (0, 0, 1, 1))]), r"L2-normalised \(norm 2.0000\)"),
        (lambda s: s.remove("nobody"), "no person with id 'nobody'"),
    ],
    ids=["empty name", "name too long", "bad id", "id of another", "no embeddings", "wrong size", "nan after a good one", "not unit", "remove unknown"],
)
def test_refusals_change_nothing(tmp_path: Path, call, message: str):
    with Watchlist(tmp_path) as store:
        store.enroll("Ada", [_face(0)], person_id="ada")
        before = _state(store)
        with pytest.raises(WatchlistError, match=message):
            call(store)
        assert _state(store) == before


def test_every_change_moves_the_generation_and_ids_are_never_reused(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        ada = store.enroll("Ada", [_face(1), _face(2)])
        bo = store.enroll("Bo", [_face(3)])
        assert store.generation() == 2
        removed = store.remove("ada")
        assert (removed.id, removed.embeddings) == ("ada", 2)
        assert _state(store) == (3, [("bo", 1)], 1)
        with store.read() as view:
            assert view.embeddings("ada") == [] and view.person("ada") is None
        again = store.enroll("Ada", [_face(4)])
    assert again.embedding_ids[0] > max(ada.embedding_ids + bo.embedding_ids)


def test_refuses_a_newer_schema_and_a_file_that_is_no_database(tmp_path: Path):
    Watchlist(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("PRAGMA user_version = 3")
    db.close()
    with pytest.raises(WatchlistError, match="schema 3 is newer than this streamrec's"):
        Watchlist(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / DB_NAME).write_text("name,photo\nada,ada.jpg\n" * 100)
    with pytest.raises(WatchlistError, match="not a readable watchlist"):
        Watchlist(other)


def test_a_version_1_file_is_migrated_and_loses_nothing(tmp_path: Path):
    Watchlist(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)  # version 1 is version 2 without negatives
    db.executescript("DROP TABLE negatives; PRAGMA user_version = 1;")
    db.execute("INSERT INTO persons VALUES ('ada', 'Ada', '{\"team\": \"x\"}', 1.5)")
    db.execute("INSERT INTO embeddings VALUES (7, 'ada', ?, 'ada.jpg', 1, 2, 3, 4, 2.5)", (_unit(1).astype("<f4").tobytes(),))
    db.execute("UPDATE meta SET value = 5")
    db.commit()
    db.close()
    with Watchlist(tmp_path) as store, store.read() as view:
        assert view.generation() == 5
        assert [(p.id, p.name, p.metadata, p.created, p.embeddings) for p in view.persons()] == [("ada", "Ada", {"team": "x"}, 1.5, 1)]
        (info,) = view.embeddings("ada")
        assert (info.id, info.image, info.box, info.created) == (7, "ada.jpg", (1.0, 2.0, 3.0, 4.0), 2.5)
        np.testing.assert_array_equal(view.vectors().vectors[0], _unit(1))
        assert view.negatives() == []
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    with Watchlist(tmp_path) as store:  # migrated files open as they are, and take negatives
        negative = store.add_negative("ada", _unit(2), "stranger.jpg")
        with store.read() as view:
            assert view.negatives("ada")[0].id == negative


def test_negatives_belong_to_a_person_and_go_with_them(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        store.enroll("Ada", [_face(1)])
        store.enroll("Bo", [_face(2)])
        before = store.generation()
        first = store.add_negative("ada", _unit(3), "kept/1.jpg")
        store.add_negative("bo", _unit(4), "kept/2.jpg")
        assert store.generation() == before + 2
        with pytest.raises(WatchlistError, match="no person with id 'cy'"):
            store.add_negative("cy", _unit(5), "x.jpg")
        with pytest.raises(WatchlistError, match="L2-normalised"):
            store.add_negative("ada", _unit(5) * 2, "x.jpg")
        with store.read() as view:
            assert [(n.id, n.person_id, n.image) for n in view.negatives("ada")] == [(first, "ada", "kept/1.jpg")]
            negatives = view.negative_vectors()
            assert list(negatives.people) == ["ada", "bo"]
            np.testing.assert_allclose(negatives.vectors[0], _unit(3), atol=1e-6)
        store.remove("ada")
        with store.read() as view:
            assert [n.person_id for n in view.negatives()] == ["bo"]


def test_one_photo_can_be_removed(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        enrolled = store.enroll("Ada", [_face(1, "a.jpg"), _face(2, "b.jpg")])
        removed = store.remove_embedding(enrolled.embedding_ids[0])
        assert removed.image == "a.jpg" and removed.person_id == "ada"
        with store.read() as view:
            assert [e.image for e in view.embeddings("ada")] == ["b.jpg"]
        with pytest.raises(WatchlistError, match="no embedding with id"):
            store.remove_embedding(enrolled.embedding_ids[0])


# A writer that enrolls COUNT random embeddings in one transaction; with "stop" it then waits,
# transaction open, for the test to kill it.
_WRITER = """
import sys, time
import numpy as np
from streamrec.match.store import NewEmbedding, Watchlist
folder, count, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "stop"
rng = np.random.default_rng(0)
def faces():
    for i in range(count):
        v = rng.standard_normal(512)
        yield NewEmbedding(v / np.linalg.norm(v), f"frame{i}.jpg", (0, 0, 1, 1))
    if stop:
        print("written, not committed", flush=True)
        time.sleep(600)
with Watchlist(folder) as store:
    store.enroll("Crowd", faces())
print("committed", flush=True)
"""


def _writer(folder: Path, count: int, stop: bool) -> subprocess.Popen:
    args = [sys.executable, "-c", _WRITER, str(folder), str(count), "stop" if stop else "go"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def test_a_writer_killed_mid_transaction_leaves_none_of_it(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        store.enroll("Ada", [_face(1)])
        before = _state(store)
        writer = _writer(tmp_path, 5000, stop=True)
        try:
            assert writer.stdout.readline().strip() == "written, not committed"
            # 10 MB of rows outgrew SQLite's page cache: they sit, uncommitted, in the log
            assert (tmp_path / f"{DB_NAME}-wal").stat().st_size > 5_000_000
            assert _state(store) == before  # a reader meanwhile sees the last committed state
        finally:
            writer.kill()
            writer.wait()
    assert writer.returncode == -9
    with Watchlist(tmp_path) as reopened:
        assert _state(reopened) == before
        reopened.enroll("Bo", [_face(2)])  # nothing is left locked
        assert _state(reopened)[1] == [("ada", 1), ("bo", 1)]
    assert sqlite3.connect(tmp_path / DB_NAME).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_writer_that_finishes_leaves_all_of_it(tmp_path: Path):
    writer = _writer(tmp_path, 1000, stop=False)
    assert writer.communicate(timeout=120)[0].strip() == "committed"
    with Watchlist(tmp_path) as store:
        assert _state(store) == (1, [("crowd", 1000)], 1000)


def test_a_watchlist_keeps_one_model_and_refuses_to_mix(tmp_path: Path):
    with Watchlist(tmp_path) as store:
        store.enroll("Ada Lovelace", [_face(1)])  # no model named: the published one
        with store.read() as view:
            assert view.model() == "facenet"
        before = _state(store)
        with pytest.raises(WatchlistError, match=r"^the watchlist holds embeddings of model 'facenet', not 'door': "
                           r"use --model facenet, or another watchlist \(--data-dir\) for this model$"):
            store.enroll("Ada Lovelace", [_face(2)], model="door")
        assert _state(store) == before  # nothing written
        store.remove("ada-lovelace")
        store.enroll("Bo", [_face(3)], model="door")  # empty again: any model may start it
        with store.read() as view:
            assert view.model() == "door"
            view.check_model("door")
            with pytest.raises(WatchlistError, match="holds embeddings of model 'door', not 'facenet'"):
                view.check_model("facenet")
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()[0] == "door"


def test_a_matcher_refuses_a_watchlist_of_another_model(tmp_path: Path):
    from streamrec.match.matcher import Matcher

    with Watchlist(tmp_path) as store:
        store.enroll("Ada Lovelace", [_face(1)], model="door")
    with pytest.raises(WatchlistError, match="holds embeddings of model 'door', not 'facenet'"):
        Matcher(tmp_path)
    matcher = Matcher(tmp_path, model="door")
    assert matcher.match(_unit(1)[None])[0].person_id == "ada-lovelace"
    matcher.close()
