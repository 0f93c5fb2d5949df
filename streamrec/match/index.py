"""Annoy builds of the watchlist: an approximate nearest-neighbour index, built in the background.

Annoy's ``angular`` distance is ``sqrt(2 - 2 cos)``, which for unit vectors is exactly their
Euclidean distance, the one FaceNet thresholds use (``tests/match/test_index.py`` checks it), so
Annoy ranks as the matcher must. An Annoy index cannot change after ``build()``; the matcher
therefore searches new embeddings exactly until the next build, and filters removed ones out.

Each build is a folder ``<data_dir>/index/build-<generation>/`` (the watchlist generation it was
read at, 12 digits) holding ``annoy.ann`` (item ``i`` is row ``i``), ``ids.npy`` (int64 embedding
id of each row), ``vectors.npy`` (float32 ``(n, 512)``, for exact re-ranking of the candidates)
and ``build.json``. It is written under a temporary name, fsync-ed, and renamed into place, so a
folder with that name is always complete; the newest two are kept (a reader may still map the
older one). Builds are only a cache: the watchlist file stays the truth.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from streamrec.embed.facenet import EMBEDDING_SIZE
from streamrec.match.store import Watchlist

__all__ = ["AnnoyBuild", "IndexSettings", "build_index", "index_dir", "index_stamp", "newest_build"]

log = logging.getLogger(__name__)

_PREFIX = "build-"
_TMP_PREFIX = ".tmp-build-"
_STALE_TMP_S = 3600.0
_SEED = 1234


@dataclass(frozen=True)
class IndexSettings:
    """How the watchlist is searched; the defaults are measured in docs/watchlist.md.

    ``exact_limit``: below this many embeddings, exact numpy search only (as fast there, and
    exact). ``n_trees``: Annoy trees per build. Each query inspects ``search_k`` index nodes, or
    ``search_share`` of the indexed items if more (at a fixed ``search_k``, recall falls as the
    watchlist grows). ``candidates``: nearest rows taken from Annoy per query and re-ranked
    with exact distances. ``jobs``: build threads (1 leaves the other cores to inference).
    ``background_builds``: whether a matcher builds the index itself when it is stale (turn off
    where another process, e.g. ``streamrec watchlist rebuild``, builds for several matchers).
    """

    exact_limit: int = 100_000
    n_trees: int = 50
    search_k: int = 20_000
    search_share: float = 0.2
    candidates: int = 100
    jobs: int = 1
    background_builds: bool = True

    def __post_init__(self) -> None:
        for name in ("n_trees", "search_k", "candidates", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"IndexSettings.{name}: must be >= 1 (got {getattr(self, name)})")
        if self.exact_limit < 0:
            raise ValueError(f"IndexSettings.exact_limit: must be >= 0 (got {self.exact_limit})")
        if not 0.0 <= self.search_share <= 1.0:
            raise ValueError(f"IndexSettings.search_share: must be in [0, 1] (got {self.search_share})")


def index_dir(data_dir: Path) -> Path:
    """Where the builds of ``data_dir``'s watchlist live."""
    return Path(data_dir) / "index"


def index_stamp(data_dir: Path) -> int:
    """Changes whenever a build is installed or pruned (the folder's mtime): one cheap ``stat``
    tells a matcher that another process has built a newer index."""
    try:
        return os.stat(index_dir(data_dir)).st_mtime_ns
    except FileNotFoundError:
        return 0


def newest_build(data_dir: Path) -> Path | None:
    """The folder of the newest complete build, or ``None``."""
    folder = index_dir(data_dir)
    builds = sorted(folder.glob(f"{_PREFIX}*")) if folder.is_dir() else []
    return builds[-1] if builds else None


class AnnoyBuild:
    """One finished build, opened for search (the files are memory-mapped, not read)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        info = json.loads((self.path / "build.json").read_text())
        self.generation = int(info["generation"])
        self.ids = np.load(self.path / "ids.npy")
        self.vectors = np.load(self.path / "vectors.npy", mmap_mode="r")
        self.annoy = AnnoyIndex(EMBEDDING_SIZE, "angular")
        self.annoy.load(str(self.path / "annoy.ann"))
        sizes = {len(self.ids), len(self.vectors), self.annoy.get_n_items(), int(info["count"])}
        if len(sizes) != 1:
            raise ValueError(f"{self.path}: inconsistent build (row counts {sorted(sizes)})")

    def __len__(self) -> int:
        return len(self.ids)

    def candidates(self, query: np.ndarray, settings: IndexSettings) -> np.ndarray:
        """Rows (int64) of the ``settings.candidates`` nearest items Annoy finds for ``query``."""
        search_k = max(settings.search_k, int(settings.search_share * len(self)))
        rows = self.annoy.get_nns_by_vector(query.tolist(), settings.candidates, search_k=search_k)
        return np.asarray(rows, np.int64)


def build_index(store: Watchlist, settings: IndexSettings | None = None) -> Path:
    """Build the index of the watchlist as it is now and install it; returns its folder.

    Reads every vector in one read transaction, so the build is one consistent generation. If a
    build of that generation exists already (another process made it), that one is kept.
    """
    settings = settings or IndexSettings()
    with store.read() as view:
        generation = view.generation()
        data = view.vectors()
    folder = index_dir(store.path.parent)
    final = folder / f"{_PREFIX}{generation:012d}"
    if final.exists():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=folder))
    try:
        started = time.monotonic()
        _write_annoy(tmp / "annoy.ann", data.vectors, settings)
        np.save(tmp / "ids.npy", data.ids)
        np.save(tmp / "vectors.npy", data.vectors)
        info = {"generation": generation, "count": len(data.ids), "n_trees": settings.n_trees,
                "metric": "angular", "seconds": round(time.monotonic() - started, 3), "created": time.time()}
        (tmp / "build.json").write_text(json.dumps(info, indent=2))
        _fsync_folder(tmp)
        os.rename(tmp, final)
        _fsync(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    log.info("index %s: %d embeddings", final.name, len(data.ids))
    _prune(folder, keep=2)
    return final


def _write_annoy(path: Path, vectors: np.ndarray, settings: IndexSettings) -> None:
    annoy = AnnoyIndex(EMBEDDING_SIZE, "angular")
    annoy.set_seed(_SEED)
    for row, vector in enumerate(vectors):
        annoy.add_item(row, vector)
    annoy.build(settings.n_trees, n_jobs=settings.jobs)
    annoy.save(str(path))
    annoy.unload()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush every file and the folder itself, so the rename never exposes unwritten data."""
    for item in folder.iterdir():
        _fsync(item)
    _fsync(folder)


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` builds, and temporary folders left by crashed builds."""
    for old in sorted(folder.glob(f"{_PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in folder.glob(f"{_TMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):  # another process may clean up at the same time
            if time.time() - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
