"""Measure exact vs Annoy search on face-like embeddings (the numbers in docs/watchlist.md).

Not a test (pytest does not collect it): ``python -m tests.match.annoy_tuning [--people 10000]``.
Enrolls ``--people`` synthetic identities (tests/match/synthetic.py) with ``--photos`` each into
a temporary watchlist, then times exact search against the watchlist size, and for each Annoy
setting the build and the queries, and how often the index's decisions equal exact search's on
held-out photos of enrolled people and photos of people never enrolled.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from streamrec.match.index import AnnoyBuild, IndexSettings, build_index, index_dir
from streamrec.match.search import Nearest, SearchSet
from streamrec.match.store import NewEmbedding, Watchlist
from tests.match.synthetic import FaceLikeSpace

THRESHOLDS = (1.12, 0.9)


def _enroll(store: Watchlist, photos: np.ndarray) -> None:
    for person, vectors in enumerate(photos):
        store.enroll(f"id {person}", (NewEmbedding(v, "synthetic", (0, 0, 1, 1)) for v in vectors))


def _per_query_ms(search: SearchSet, queries: np.ndarray, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(queries), batch):
        search.nearest(queries[start : start + batch])
    return (time.perf_counter() - started) * 1000 / len(queries)


def exact_timing(vectors: np.ndarray, queries: np.ndarray) -> None:
    print("exact search, ms per query (batch 1 / batch 8):")
    for size in (1_000, 5_000, 20_000, 50_000, 100_000, 200_000, 500_000):
        if size <= len(vectors):
            search = SearchSet(np.arange(size) // 10, vectors[:size])
            print(f"  {size:>7}: {_per_query_ms(search, queries[:200], 1):.3f} / {_per_query_ms(search, queries[:200], 8):.3f}")


def _agreement(exact: Nearest, approx: Nearest, threshold: float) -> float:
    accept_e, accept_a = exact.distance < threshold, approx.distance < threshold
    same = (accept_e == accept_a) & (~accept_e | (exact.label == approx.label))
    return float(same.mean())


def annoy_tuning(store: Watchlist, labels: np.ndarray, vectors: np.ndarray, queries: np.ndarray, trees: list[int], search_ks: list[int]) -> None:
    reference = SearchSet(labels, vectors).nearest(queries)
    print("trees search_k | build s  MB | ms/query | nearest recall | runner-up equal | decisions equal at " + ", ".join(map(str, THRESHOLDS)))
    for n_trees in trees:
        shutil.rmtree(index_dir(store.path.parent), ignore_errors=True)
        started = time.perf_counter()
        build = AnnoyBuild(build_index(store, IndexSettings(n_trees=n_trees)))
        seconds = time.perf_counter() - started
        megabytes = (build.path / "annoy.ann").stat().st_size / 1e6
        for search_k in search_ks:
            search = SearchSet(labels[:0], vectors[:0], build, labels, IndexSettings(n_trees=n_trees, search_k=search_k, search_share=0))
            ms = _per_query_ms(search, queries, 1)
            found = search.nearest(queries)
            recall = np.mean(np.isclose(found.distance, reference.distance, atol=1e-5))
            runner = np.mean(np.isclose(found.runner_up, reference.runner_up, atol=1e-6))
            agree = ", ".join(f"{_agreement(reference, found, t):.4f}" for t in THRESHOLDS)
            print(f"{n_trees:>5} {search_k:>8} | {seconds:6.1f} {megabytes:4.0f} | {ms:8.3f} | {recall:14.4f} | {runner:15.4f} | {agree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--queries", type=int, default=500, help="held-out photos, and as many strangers")
    parser.add_argument("--trees", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--search-k", type=int, nargs="+", default=[1_000, 5_000, 20_000, 50_000])
    args = parser.parse_args()
    space = FaceLikeSpace(seed=7)
    photos = space.photos(space.identities(args.people), args.photos + 1)
    strangers = space.photos(space.identities(args.queries), 1)[:, 0]
    queries = np.concatenate([photos[: args.queries, -1], strangers])
    vectors = photos[:, :-1].reshape(-1, 512)
    labels = np.repeat(np.arange(args.people), args.photos)
    exact_timing(vectors, queries)
    with tempfile.TemporaryDirectory() as folder, Watchlist(Path(folder)) as store:
        started = time.perf_counter()
        _enroll(store, photos[:, :-1])
        print(f"enrolled {len(vectors)} embeddings in {time.perf_counter() - started:.1f} s")
        annoy_tuning(store, labels, vectors, queries, args.trees, args.search_k)


if __name__ == "__main__":
    main()
