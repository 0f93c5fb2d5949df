"""The Annoy index against exact search, on real embeddings among many face-like synthetic ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from annoy import AnnoyIndex

from streamrec.embed.facenet import DEFAULT_THRESHOLD
from streamrec.match.index import AnnoyBuild, IndexSettings, build_index, index_dir, newest_build
from streamrec.match.matcher import Matcher
from streamrec.match.store import NewEmbedding, Watchlist
from tests.conftest import run_cli
from tests.match.conftest import enroll_real
from tests.match.synthetic import FaceLikeSpace

REAL_PEOPLE = ["alex_lacamoire", "barack_obama", "compreface_person_a", "compreface_person_b", "joe_biden", "rose_leslie"]


def _enroll_synthetic(store: Watchlist, photos: np.ndarray) -> None:
    for i, person in enumerate(photos):
        store.enroll(f"synthetic {i}", [NewEmbedding(v, f"s{i}_{j}", (0, 0, 1, 1)) for j, v in enumerate(person)])


def test_annoy_angular_distance_is_the_euclidean_distance_of_unit_vectors():
    space = FaceLikeSpace(seed=1)
    vectors = space.photos(space.identities(100), 5).reshape(-1, 512)
    annoy = AnnoyIndex(512, "angular")
    for i, v in enumerate(vectors):
        annoy.add_item(i, v)
    annoy.build(5)
    for i in range(0, len(vectors), 25):
        rows, dists = annoy.get_nns_by_vector(vectors[i].tolist(), 20, search_k=len(vectors) * 5, include_distances=True)
        euclid = np.linalg.norm(vectors[rows] - vectors[i], axis=1)
        np.testing.assert_allclose(dists, euclid, atol=2e-4)
        assert rows[0] == i and np.all(np.diff(euclid) >= -1e-5)  # same order as Euclidean


def _reference(store: Watchlist, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brute force in float64: nearest person, distance to them, distance to the next person."""
    with store.read() as view:
        data = view.vectors()
    dist = np.sqrt(np.clip(2 - 2 * queries.astype(np.float64) @ data.vectors.astype(np.float64).T, 0, None))
    best = dist.argmin(axis=1)
    person = data.people[best]
    runner_up = np.where(data.people[None, :] == person[:, None], np.inf, dist).min(axis=1)
    return person, dist[np.arange(len(queries)), best], runner_up


@pytest.fixture(scope="module")
def large_watchlist(tmp_path_factory, face_photos) -> tuple[Path, np.ndarray]:
    """3,000 synthetic people x 6 photos plus six real people (18,000+ embeddings); queries:
    held-out photos of 300 synthetic and the six real people, 300 synthetic strangers, and the
    real people never enrolled."""
    folder = tmp_path_factory.mktemp("large")
    space = FaceLikeSpace(seed=11)
    photos = space.photos(space.identities(3000), 7)
    with Watchlist(folder) as store:
        enroll_real(store, face_photos, REAL_PEOPLE)
        _enroll_synthetic(store, photos[:, :6])
    real = [face_photos[p][-1][1] for p in [*REAL_PEOPLE, "kit_harington", "lin_manuel_miranda", "compreface_person_c"]]
    strangers = space.photos(space.identities(300), 1)[:, 0]
    return folder, np.concatenate([photos[:300, 6], strangers, np.stack(real)])


@pytest.mark.parametrize("exact_limit", [0, 10**9], ids=["annoy", "exact"])
def test_match_decisions_equal_brute_force(large_watchlist, exact_limit: int):
    folder, queries = large_watchlist
    matcher = Matcher(folder, settings=IndexSettings(exact_limit=exact_limit))
    matcher.status()
    assert matcher.wait_for_index(timeout=300)
    status = matcher.status()
    assert status.embeddings > 18_000 and status.indexed == (status.embeddings if exact_limit == 0 else 0)
    found = matcher.match(queries)
    with Watchlist(folder) as store:
        person, distance, runner_up = _reference(store, queries)
    got = np.array([m.distance for m in found])
    for threshold in (DEFAULT_THRESHOLD, 1.0, 0.9):
        np.testing.assert_array_equal(got < threshold, distance < threshold)
    accepted = distance < DEFAULT_THRESHOLD
    assert [m.person_id for m in found] == [p if a else None for p, a in zip(person, accepted)]
    np.testing.assert_allclose(got[accepted], distance[accepted], atol=1e-5)
    # the runner-up comes from Annoy's candidates: never closer than the true one, and nearly always it
    got_runner_up = np.array([m.runner_up for m in found])
    assert np.all(got_runner_up >= runner_up - 1e-5)
    assert np.isclose(got_runner_up, runner_up, atol=1e-5).mean() >= (0.99 if exact_limit == 0 else 1.0)
    assert [m.person_id for m in found[600:]] == [p.replace("_", "-") for p in REAL_PEOPLE] + [None] * 3
    assert accepted[:300].sum() >= 250  # held-out photos mostly find their person...
    assert accepted[300:600].sum() > 100  # ...and with 3,000 people, 1.12 names many strangers too (docs/watchlist.md)


def test_changes_after_a_build_are_searched_exactly_until_the_next(tmp_path: Path, face_photos):
    space = FaceLikeSpace(seed=5)
    obama = face_photos["barack_obama"]
    with Watchlist(tmp_path) as store:
        enroll_real(store, face_photos, [p for p in REAL_PEOPLE if p != "barack_obama"])
        enroll_real(store, face_photos, ["barack_obama"], held_out=2)  # photos 1 and 2
        store.enroll("Obama Lookalike", [NewEmbedding(obama[2][1], str(obama[2][0]), (0, 0, 1, 1))])  # photo 3
        _enroll_synthetic(store, space.photos(space.identities(300), 3))
        build_index(store)
        matcher = Matcher(tmp_path, settings=IndexSettings(exact_limit=0, background_builds=False))
        queries = np.stack([face_photos["kit_harington"][-1][1], obama[3][1], face_photos["joe_biden"][-1][1]])
        assert [m.person_id for m in matcher.match(queries)] == [None, "barack-obama", "joe-biden"]
        before = matcher.status()
        assert before.indexed == before.embeddings
        enroll_real(store, face_photos, ["kit_harington"])  # 2 photos, after the build
        store.remove("barack-obama")  # 2 photos in the build, one of them photo 4's nearest
    found = matcher.match(queries)
    assert [m.person_id for m in found] == ["kit-harington", "obama-lookalike", "joe-biden"]
    after = matcher.status()
    assert (after.embeddings, after.indexed) == (before.embeddings, before.indexed - 2)
    # a build made by another process is picked up though the watchlist did not change
    result = run_cli("watchlist", "rebuild", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["embeddings"] == after.embeddings
    rebuilt = matcher.status()
    assert rebuilt.indexed == rebuilt.embeddings == after.embeddings
    assert [m.person_id for m in matcher.match(queries)] == ["kit-harington", "obama-lookalike", "joe-biden"]


def test_damaged_builds_are_ignored(tmp_path: Path, face_photos):
    with Watchlist(tmp_path) as store:
        enroll_real(store, face_photos, REAL_PEOPLE)
        good = build_index(store)
    leftover = index_dir(tmp_path) / ".tmp-build-crashed"
    leftover.mkdir()
    (leftover / "annoy.ann").write_bytes(b"\0" * 100)
    assert newest_build(tmp_path) == good  # a build that never finished is invisible
    damaged = index_dir(tmp_path) / "build-999999999999"
    shutil.copytree(good, damaged)
    np.save(damaged / "ids.npy", np.arange(3))  # rows no longer match the vectors
    with pytest.raises(ValueError, match="inconsistent build"):
        AnnoyBuild(damaged)
    matcher = Matcher(tmp_path, settings=IndexSettings(exact_limit=0, background_builds=False))
    found = matcher.match(np.stack([face_photos[p][-1][1] for p in REAL_PEOPLE]))
    assert [m.person_id for m in found] == [p.replace("_", "-") for p in REAL_PEOPLE]
    assert matcher.status().indexed == 0  # answered exactly instead
