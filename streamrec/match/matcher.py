"""The matcher: FaceNet embeddings in, watchlist people (or "unknown") out, for a long-running
process.

Every :meth:`Matcher.match` call first reads the watchlist's generation counter (one ~4 us query);
when another process has enrolled or removed someone since, it reads only what changed (rows
with a higher id, and the id list when something was removed) and swaps in a new immutable
:class:`~streamrec.match.search.SearchSet`, so concurrent calls never see a half-made state.
Past ``IndexSettings.exact_limit`` embeddings a background thread builds an Annoy index whenever
the watchlist has moved past the newest build; until it is done, queries use the previous build
plus exact search over the embeddings it lacks.

Negatives ("not this person", :meth:`~streamrec.match.store.Watchlist.add_negative`) veto a
name: a face whose nearest person is P is not named P when it is closer to one of P's negatives
than to P's own nearest embedding. It is then unknown (not the next person: a face between P and
someone else names neither, as the margin rule has it). Negatives are few, so they are searched
exactly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamrec.embed.facenet import DEFAULT_THRESHOLD, EMBEDDING_SIZE
from streamrec.engines import PUBLISHED_MODEL
from streamrec.match.index import AnnoyBuild, IndexSettings, build_index, index_stamp, newest_build
from streamrec.match.search import SearchSet
from streamrec.match.store import Vectors, Watchlist, WatchlistError, WatchlistView

__all__ = ["Match", "Matcher", "MatcherStatus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Match:
    """One embedding's verdict. ``person_id``/``name``: the nearest person when ``distance`` is
    under the threshold, else ``None`` (unknown). ``distance``: to the nearest enrolled
    embedding (``inf`` with an empty watchlist). ``runner_up``: to the nearest embedding of
    anyone else (``inf`` if nobody else); a small gap means an ambiguous match. ``vetoed``: the
    nearest person, when one of their negatives kept them from being named."""

    person_id: str | None
    name: str | None
    distance: float
    runner_up: float
    vetoed: str | None = None

    @property
    def known(self) -> bool:
        return self.person_id is not None


@dataclass(frozen=True)
class MatcherStatus:
    """What the matcher searches now: the watchlist ``generation`` it reflects, ``people`` and
    ``embeddings`` counts, how many of those go through the Annoy build (``indexed``), and
    whether a build is running."""

    generation: int
    people: int
    embeddings: int
    indexed: int
    building: bool


@dataclass(frozen=True)
class _State:
    """One consistent picture of the watchlist, as searched."""

    generation: int
    index_stamp: int
    last_id: int
    ids: np.ndarray
    people: np.ndarray
    names: dict[str, str]
    by_label: list[str]
    exact: Vectors
    build: AnnoyBuild | None
    search: SearchSet
    negatives: dict[int, np.ndarray]  #: person label -> ``(k, 512)`` faces that are not them

    @property
    def indexed(self) -> int:
        """Embeddings searched through the Annoy build."""
        return len(self.search) - len(self.exact.ids)


def _empty_state() -> _State:
    nothing = Vectors(np.zeros(0, np.int64), np.zeros(0, object), np.zeros((0, EMBEDDING_SIZE), np.float32))
    return _State(-1, -1, 0, nothing.ids, nothing.people, {}, [], nothing, None, SearchSet(nothing.ids, nothing.vectors), {})


class Matcher:
    """Matches embeddings against the watchlist in ``data_dir``; thread-safe."""

    def __init__(
        self, data_dir: Path, threshold: float = DEFAULT_THRESHOLD, settings: IndexSettings | None = None,
        model: str = PUBLISHED_MODEL,
    ) -> None:
        """``model``: the FaceNet whose embeddings will be matched; a watchlist holding another
        model's is refused (:class:`~streamrec.match.store.WatchlistError`)."""
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0 (got {threshold})")
        self.data_dir, self.threshold = Path(data_dir), float(threshold)
        self.settings = settings or IndexSettings()
        self.store = Watchlist(self.data_dir)
        try:
            with self.store.read() as view:
                view.check_model(model)
        except WatchlistError:
            self.store.close()
            raise
        self._lock = threading.Lock()
        self._state = _empty_state()
        self._builder: threading.Thread | None = None
        self._build_done = False  # set by the builder thread: look at the new build now
        self._build_tried = -1  # the generation last built for: a failing build is not retried in a loop

    def close(self) -> None:
        """Release the watchlist connection (a running build finishes on its own)."""
        self.store.close()

    def match(self, embeddings: np.ndarray) -> list[Match]:
        """One :class:`Match` per row of ``embeddings`` ``(k, 512)`` (rows are normalised here;
        a row that is not finite matches nobody)."""
        queries = np.asarray(embeddings, np.float32)
        if queries.ndim != 2 or queries.shape[1] != EMBEDDING_SIZE:
            raise ValueError(f"embeddings must be (k, {EMBEDDING_SIZE}), got {queries.shape}")
        norms = np.linalg.norm(queries, axis=1)
        valid = np.isfinite(norms) & (norms > 0)
        state = self._current()
        found = state.search.nearest(queries[valid] / norms[valid, None])
        results = [Match(None, None, float("inf"), float("inf"))] * len(queries)
        for i, label, distance, runner_up in zip(np.flatnonzero(valid), found.label, found.distance, found.runner_up):
            person = state.by_label[label] if label >= 0 and distance < self.threshold else None
            vetoed = None
            if person is not None and _vetoed(queries[i] / norms[i], state.negatives.get(int(label)), distance):
                person, vetoed = None, person
            name = state.names[person] if person is not None else None
            results[i] = Match(person, name, float(distance), float(runner_up), vetoed)
        return results

    def _current(self) -> _State:
        """The state to search, after catching up with the watchlist if it changed."""
        with self._lock:
            state = self._state
            if self._build_done or (self.store.generation(), index_stamp(self.data_dir)) != (state.generation, state.index_stamp):
                self._build_done = False
                with self.store.read() as view:
                    self._state = self._next_state(view)
                self._start_build_if_stale()
            return self._state

    def names(self) -> dict[str, str]:
        """Person id -> name of everyone in the watchlist now (after catching up)."""
        return dict(self._current().names)

    def status(self) -> MatcherStatus:
        """Counts of what is searched now (after catching up)."""
        state = self._current()
        building = self._builder is not None and self._builder.is_alive()
        return MatcherStatus(state.generation, len(state.names), len(state.ids), state.indexed, building)

    def wait_for_index(self, timeout: float | None = None) -> bool:
        """Wait for a running index build; ``True`` if none is running any more."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return builder is None or not builder.is_alive()

    def _next_state(self, view: WatchlistView) -> _State:
        old, stamp = self._state, index_stamp(self.data_dir)  # stamp first: a build landing later is seen next time
        added = view.vectors(after_id=old.last_id)
        ids, people = np.concatenate([old.ids, added.ids]), np.concatenate([old.people, added.people])
        if len(ids) != view.count():  # something was removed: keep what still exists
            keep = np.isin(ids, view.catalogue()[0])
            ids, people = ids[keep], people[keep]
        names = view.names()
        build = self._choose_build(len(ids))
        covered = np.isin(ids, build.ids) if build is not None else np.zeros(len(ids), bool)
        exact = _gather(ids[~covered], people[~covered], [old.exact, added], view)
        by_label = sorted(names)
        order = {person: label for label, person in enumerate(by_label)}
        label_of = np.array([order[p] for p in people], np.int64)
        search = SearchSet(label_of[~covered], exact.vectors, build, _build_labels(build, ids, label_of), self.settings)
        last_id = int(max(old.last_id, added.ids[-1] if len(added.ids) else 0))
        negative = view.negative_vectors()
        negatives = {order[p]: negative.vectors[negative.people == p] for p in set(negative.people) if p in order}
        return _State(view.generation(), stamp, last_id, ids, people, names, by_label, exact, build, search, negatives)

    def _choose_build(self, size: int) -> AnnoyBuild | None:
        """The newest build on disk when the watchlist is big enough to want one."""
        if size < self.settings.exact_limit:
            return None
        current, path = self._state.build, newest_build(self.data_dir)
        if path is None or (current is not None and current.path == path):
            return current
        try:
            return AnnoyBuild(path)
        except (OSError, ValueError, KeyError) as exc:  # pruned or damaged under us: try again later
            log.warning("cannot open index %s: %s", path, exc)
            return current

    def _start_build_if_stale(self) -> None:
        """Build when the index is wanted and lacks embeddings or holds removed ones."""
        state, busy = self._state, self._builder is not None and self._builder.is_alive()
        if not self.settings.background_builds or busy or len(state.ids) < self.settings.exact_limit:
            return
        if state.generation == self._build_tried:
            return
        if state.build is None or len(state.exact.ids) or state.indexed != len(state.build):
            self._build_tried = state.generation
            self._builder = threading.Thread(target=self._build, name="streamrec-index-build", daemon=True)
            self._builder.start()

    def _build(self) -> None:
        try:
            with Watchlist(self.data_dir) as store:
                build_index(store, self.settings)
        except Exception:
            log.exception("index build failed")
            return
        with self._lock:
            self._build_done = True


def _vetoed(query: np.ndarray, negatives: np.ndarray | None, distance: float) -> bool:
    """Whether ``query`` is closer to one of a person's ``negatives`` than ``distance`` (to
    that person's nearest embedding)."""
    if negatives is None or not len(negatives):
        return False
    return bool(np.linalg.norm(negatives - query, axis=1).min() < distance)


def _locate(sorted_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` sits in ``sorted_ids``, and whether it is there at all."""
    if not len(sorted_ids):
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    at = np.searchsorted(sorted_ids, wanted).clip(max=len(sorted_ids) - 1)
    return at, sorted_ids[at] == wanted


def _gather(ids: np.ndarray, people: np.ndarray, pools: list[Vectors], view: WatchlistView) -> Vectors:
    """The vectors of ``ids`` (ascending): from the ``pools`` already in memory, else the store."""
    vectors = np.zeros((len(ids), EMBEDDING_SIZE), np.float32)
    missing = np.ones(len(ids), bool)
    for pool in pools:
        at, present = _locate(pool.ids, ids)
        hit = missing & present
        vectors[hit], missing = pool.vectors[at[hit]], missing & ~hit
    if missing.any():
        vectors[missing] = view.vectors_of(ids[missing]).vectors
    return Vectors(ids, people, vectors)


def _build_labels(build: AnnoyBuild | None, ids: np.ndarray, label_of: np.ndarray) -> np.ndarray | None:
    """The person label of each row of ``build``; -1 for rows no longer in the watchlist."""
    if build is None:
        return None
    at, present = _locate(ids, build.ids)
    labels = np.full(len(build), -1, np.int64)
    labels[present] = label_of[at[present]]
    return labels
