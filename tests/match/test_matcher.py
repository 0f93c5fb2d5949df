"""The matcher on real embeddings: identification, strangers, and changes made by other processes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from streamrec.match.matcher import Match, Matcher
from streamrec.match.store import Watchlist
from tests.conftest import run_cli
from tests.match.conftest import enroll_real

ENROLLED = ["alex_lacamoire", "barack_obama", "compreface_person_a", "compreface_person_b", "joe_biden", "kit_harington", "rose_leslie"]
STRANGERS = ["compreface_person_c", "lin_manuel_miranda"]  # one photo each, never enrolled


def test_held_out_photos_are_identified_and_strangers_are_unknown(tmp_path: Path, face_photos):
    with Watchlist(tmp_path) as store:
        enroll_real(store, face_photos, ENROLLED)
    matcher = Matcher(tmp_path)
    queries = [face_photos[p][-1][1] for p in ENROLLED + STRANGERS]
    found = matcher.match(np.stack(queries))
    assert [m.person_id for m in found] == [p.replace("_", "-") for p in ENROLLED] + [None, None]
    assert found[1].name == "Barack Obama"
    for match in found[: len(ENROLLED)]:
        assert match.distance < matcher.threshold < match.runner_up
    for match in found[len(ENROLLED) :]:
        assert not match.known and match.name is None and matcher.threshold <= match.distance < 2.0
    strict = Matcher(tmp_path, threshold=0.5)  # the same nearest people, refused at a strict threshold
    assert [m.known for m in strict.match(np.stack(queries))] == [m.distance < 0.5 for m in found]


def test_empty_watchlist_and_unusable_rows(tmp_path: Path, face_photos):
    matcher = Matcher(tmp_path)
    nobody = Match(None, None, float("inf"), float("inf"))
    assert matcher.match(np.stack([face_photos["joe_biden"][0][1]])) == [nobody]
    assert matcher.match(np.zeros((0, 512), np.float32)) == []
    with Watchlist(tmp_path) as store:
        enroll_real(store, face_photos, ["joe_biden"])
    biden = face_photos["joe_biden"][-1][1]
    found = matcher.match(np.stack([np.full(512, np.nan, np.float32), np.zeros(512, np.float32), 3 * biden]))
    assert found[:2] == [nobody, nobody]
    assert found[2].person_id == "joe-biden" and found[2].runner_up == float("inf")  # rows are normalised
    with pytest.raises(ValueError, match=r"embeddings must be \(k, 512\), got \(128,\)"):
        matcher.match(np.zeros(128, np.float32))
    with pytest.raises(ValueError, match="threshold must be > 0"):
        Matcher(tmp_path, threshold=0)


def test_enrollment_and_removal_by_other_processes_are_seen_without_restart(tmp_path: Path, faces_dir: Path, face_photos):
    matcher = Matcher(tmp_path)
    kit = np.stack([face_photos["kit_harington"][-1][1]])
    assert not matcher.match(kit)[0].known
    photos = [str(faces_dir / "kit_harington" / name) for name in ("1.jpg", "2.jpg")]
    enrolled = run_cli("enroll", "--name", "Kit Harington", *photos, "--data-dir", str(tmp_path))
    assert enrolled.returncode == 0, enrolled.stderr
    assert matcher.match(kit)[0].person_id == "kit-harington"
    assert matcher.status().embeddings == 2
    removed = run_cli("watchlist", "remove", "kit-harington", "--data-dir", str(tmp_path))
    assert removed.returncode == 0, removed.stderr
    assert not matcher.match(kit)[0].known
    assert matcher.status().people == 0


def test_matching_from_many_threads_while_the_watchlist_changes(tmp_path: Path, face_photos):
    with Watchlist(tmp_path) as store:
        enroll_real(store, face_photos, ["barack_obama"])
    matcher = Matcher(tmp_path)
    obama, biden = (face_photos[p][-1][1] for p in ("barack_obama", "joe_biden"))
    queries = np.stack([obama, biden])
    seen: list[tuple[str | None, str | None]] = []
    errors: list[BaseException] = []

    def query() -> None:
        try:
            for _ in range(150):
                found = matcher.match(queries)
                seen.append((found[0].person_id, found[1].person_id))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=query) for _ in range(4)]
    for thread in threads:
        thread.start()
    with Watchlist(tmp_path) as store:
        for _ in range(15):  # Biden comes and goes while the threads match
            enroll_real(store, face_photos, ["joe_biden"])
            store.remove("joe-biden")
    for thread in threads:
        thread.join()
    assert not errors
    assert len(seen) == 600
    assert set(seen) <= {("barack-obama", None), ("barack-obama", "joe-biden")}


def test_a_negative_stops_a_stranger_being_named_and_keeps_the_person_named(tmp_path: Path, faces_dir: Path, face_photos):
    """The figures of docs/watchlist.md ("Not this person"): at a lax threshold, half the photos
    of a person not enrolled are named as one who is; one of them marked "not this person"
    (through the CLI, by another process) and none is, while every enrolled person's held-out
    photo is still named."""
    enrolled = [p for p in ENROLLED if p != "compreface_person_a"]
    with Watchlist(tmp_path) as store:
        enroll_real(store, face_photos, enrolled)
    matcher = Matcher(tmp_path, threshold=1.25)
    stranger = np.stack([v for _, v in face_photos["compreface_person_a"]])
    held_out = np.stack([face_photos[p][-1][1] for p in enrolled if len(face_photos[p]) > 1])
    expected = [p.replace("_", "-") for p in enrolled if len(face_photos[p]) > 1]
    before = matcher.match(stranger)
    assert [m.person_id for m in before] == ["compreface-person-b"] * 3 + [None] * 3
    assert [m.person_id for m in matcher.match(held_out)] == expected
    photo = faces_dir / "compreface_person_a" / "1.jpg"
    marked = run_cli("watchlist", "negative", "compreface-person-b", str(photo), str(faces_dir / "nowhere.jpg"),
                     "--data-dir", str(tmp_path), "--json")
    assert marked.returncode == 1, marked.stderr  # one photo refused
    assert json.loads(marked.stdout)["photos"] == [
        {"image": str(photo), "negative": 1}, {"image": str(faces_dir / "nowhere.jpg"), "refused": "no such file"}]
    after = matcher.match(stranger)
    assert [m.person_id for m in after] == [None] * 6
    assert [m.vetoed for m in after] == ["compreface-person-b"] * 3 + [None] * 3
    assert [m.person_id for m in matcher.match(held_out)] == expected


def _clip_faces(clip: Path, models, every: int = 3) -> tuple[list[int], np.ndarray]:
    """The frame index and embedding of every clear face (score >= 0.95, 40 px or more) of
    every ``every``-th frame of the clip."""
    import cv2

    frames, vectors = [], []
    capture = cv2.VideoCapture(str(clip))
    index = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        if index % every == 0:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            faces = models.detect(rgb[None])[0]
            sides = np.minimum(faces.boxes[:, 2] - faces.boxes[:, 0], faces.boxes[:, 3] - faces.boxes[:, 1])
            clear = np.flatnonzero((faces.scores >= 0.95) & (sides >= 40))
            if len(clear):
                vectors.append(models.embed([rgb], [faces[clear]]))
                frames += [index] * len(clear)
        index += 1
    capture.release()
    return frames, np.concatenate(vectors)


def test_on_the_clip_a_negative_stops_lin_being_named_obama_and_obama_is_still_named(tmp_path: Path, hamilton_clip: Path, models, face_photos):
    """The clip figures of docs/watchlist.md: with everyone but Lin-Manuel Miranda enrolled, at
    the pair threshold (1.12), two faces of Lin (frames 141 and 144; he is on screen from frame
    87 to 210) are named Barack Obama (in the audience from frame 231). One of them marked "not
    Barack Obama" and neither is, while every face of Obama is still named."""
    frames, vectors = _clip_faces(hamilton_clip, models)
    with Watchlist(tmp_path) as store:
        enroll_real(store, face_photos, [p for p in face_photos if p != "lin_manuel_miranda"], held_out=0)
    matcher = Matcher(tmp_path, threshold=1.12)

    def named() -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for frame, match in zip(frames, matcher.match(vectors)):
            if match.known:
                found.setdefault(str(match.person_id), []).append(frame)
        return found

    before = named()
    assert list(before) == ["barack-obama"] and len(frames) == 132
    lin_as_obama = [f for f in before["barack-obama"] if f <= 210]
    obama = [f for f in before["barack-obama"] if f >= 231]
    assert lin_as_obama == [141, 144] and len(obama) == 15
    with Watchlist(tmp_path) as store:
        store.add_negative("barack-obama", vectors[frames.index(141)], "clip frame 141")
    assert named() == {"barack-obama": obama}
