"""Who is nearest: exact distances, and the search over an Annoy build plus an exact layer.

A match decision needs, per query, the nearest person and the runner-up person (the nearest
embedding of anyone else), not the nearest embeddings. :class:`SearchSet` finds them over every
enrolled embedding: exactly with numpy for the embeddings it holds in memory, and through an
Annoy build (candidates re-ranked with exact distances) for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamrec.embed.facenet import EMBEDDING_SIZE
from streamrec.match.index import AnnoyBuild, IndexSettings

__all__ = ["Nearest", "SearchSet", "distances", "nearest_people"]


def distances(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``(k, m)`` float32 Euclidean distances between unit vectors ``(k, 512)`` and ``(m, 512)``.

    ``|a - b|^2 = 2 - 2 a.b`` for unit vectors: one matrix product instead of ``k * m``
    differences.
    """
    return np.sqrt(np.maximum(2.0 - 2.0 * (queries @ np.asarray(vectors).T), 0.0)).astype(np.float32)


@dataclass(frozen=True)
class Nearest:
    """Per query: ``label`` of the nearest person (-1 when nothing is enrolled), the
    ``distance`` to them and the ``runner_up`` distance to the nearest other person (``inf``
    when there is none)."""

    label: np.ndarray
    distance: np.ndarray
    runner_up: np.ndarray


def nearest_people(dist: np.ndarray, labels: np.ndarray) -> Nearest:
    """Nearest and runner-up person for each row of ``dist`` ``(k, m)``, whose columns are
    embeddings of the people ``labels`` ``(m,)``."""
    k = len(dist)
    if dist.shape[1] == 0:
        return Nearest(np.full(k, -1, np.int64), np.full(k, np.inf, np.float32), np.full(k, np.inf, np.float32))
    best = dist.argmin(axis=1)
    label = labels[best]
    others = np.where(labels[None, :] == label[:, None], np.inf, dist)
    return Nearest(label.astype(np.int64), dist[np.arange(k), best], others.min(axis=1).astype(np.float32))


class SearchSet:
    """Every enrolled embedding, searchable; immutable once made, so threads may share it.

    ``labels``/``vectors``: the embeddings searched exactly (person label of each, ``(m, 512)``).
    ``build``/``build_labels``: an Annoy build and the person label of each of its rows, -1 for
    rows to ignore (embeddings removed since the build).
    """

    def __init__(
        self,
        labels: np.ndarray,
        vectors: np.ndarray,
        build: AnnoyBuild | None = None,
        build_labels: np.ndarray | None = None,
        settings: IndexSettings | None = None,
    ) -> None:
        if vectors.shape != (len(labels), EMBEDDING_SIZE):
            raise ValueError(f"vectors: shape {vectors.shape}, expected ({len(labels)}, {EMBEDDING_SIZE})")
        if build is not None and (build_labels is None or len(build_labels) != len(build)):
            raise ValueError("build_labels must give one label per row of the build")
        self.labels, self.vectors = np.asarray(labels, np.int64), vectors
        self.build, self.build_labels = build, build_labels
        self.settings = settings or IndexSettings()

    def __len__(self) -> int:
        live = int((self.build_labels >= 0).sum()) if self.build_labels is not None else 0
        return len(self.labels) + live

    def nearest(self, queries: np.ndarray) -> Nearest:
        """Nearest and runner-up person for each unit-vector row of ``queries`` ``(k, 512)``."""
        exact = distances(queries, self.vectors)
        if self.build is None or not len(queries):
            return nearest_people(exact, self.labels)
        found = [self._with_build(query, row) for query, row in zip(queries, exact)]
        return Nearest(*(np.concatenate([getattr(f, part) for f in found]) for part in ("label", "distance", "runner_up")))

    def _with_build(self, query: np.ndarray, exact_row: np.ndarray) -> Nearest:
        """One query: Annoy's candidates (minus removed rows), re-ranked exactly, with the exact layer."""
        assert self.build is not None and self.build_labels is not None
        rows = self.build.candidates(query, self.settings)
        rows = rows[self.build_labels[rows] >= 0]
        near = distances(query[None], self.build.vectors[rows])[0]
        return nearest_people(
            np.concatenate([exact_row, near])[None], np.concatenate([self.labels, self.build_labels[rows]])
        )
