"""The watchlist: people and their FaceNet embeddings, durably, in one SQLite file.

On disk: ``<data_dir>/watchlist.sqlite3``, in WAL mode with ``synchronous=FULL``. Every change is
one transaction, so a crash mid-write leaves the file as it was before that change, and a reader
in another process always sees a consistent state (WAL readers never block the writer). Schema
version ``2``, kept in ``PRAGMA user_version`` (a file with a higher one is refused; a version-1
file, which lacks ``negatives``, gets the table added in one transaction when it is opened)::

    meta(key TEXT PRIMARY KEY, value INTEGER)       -- 'generation': +1 in every write transaction
    persons(id TEXT PRIMARY KEY, name TEXT, metadata TEXT /* JSON object of strings */,
            created REAL /* unix time */)
    embeddings(id INTEGER PRIMARY KEY AUTOINCREMENT /* never reused */,
               person_id TEXT REFERENCES persons(id) ON DELETE CASCADE,
               vector BLOB /* 512 little-endian float32, L2 norm 1 */,
               image TEXT, x1 REAL, y1 REAL, x2 REAL, y2 REAL /* face box in the image's pixels */,
               created REAL)
    negatives(id INTEGER PRIMARY KEY AUTOINCREMENT,
              person_id TEXT REFERENCES persons(id) ON DELETE CASCADE,
              vector BLOB /* a face marked "not this person" */, image TEXT, created REAL)

The ``generation`` counter lets other processes notice a change with one cheap query; embedding
ids only grow, so "added since" is ``id > last seen`` (see docs/watchlist.md). ``meta`` also
holds ``'model'``: the FaceNet the embeddings came from (absent: the published ``facenet``, all a
watchlist could hold before models could be trained). Distances between embeddings of two models
mean nothing, so enrolling with another model, or matching with one, is refused while any
embedding is stored.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import Self

from streamrec.bus.messages import MAX_NAME
from streamrec.embed.facenet import EMBEDDING_SIZE
from streamrec.engines import PUBLISHED_MODEL

__all__ = [
    "DB_NAME", "SCHEMA_VERSION", "EmbeddingInfo", "Enrolled", "NegativeInfo", "NewEmbedding", "Person", "Vectors",
    "Watchlist", "WatchlistError", "WatchlistView", "slugify",
]

DB_NAME = "watchlist.sqlite3"
SCHEMA_VERSION = 2
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('generation', 0);
CREATE TABLE persons (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{{}}', created REAL NOT NULL
);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    vector BLOB NOT NULL CHECK (length(vector) = {4 * EMBEDDING_SIZE}),
    image TEXT NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX embeddings_by_person ON embeddings(person_id);
"""
#: what version 2 adds to version 1: faces marked "not this person"
_NEGATIVES = f"""
CREATE TABLE negatives (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id TEXT NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    vector BLOB NOT NULL CHECK (length(vector) = {4 * EMBEDDING_SIZE}),
    image TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX negatives_by_person ON negatives(person_id);
"""


class WatchlistError(Exception):
    """A request the watchlist cannot honour (bad name or id, unknown person, unreadable file)."""


@dataclass(frozen=True)
class Person:
    """One enrolled person; ``embeddings`` counts their stored vectors."""

    id: str
    name: str
    metadata: dict[str, str]
    created: float
    embeddings: int


@dataclass(frozen=True)
class NewEmbedding:
    """An embedding to enroll: a 512-d unit vector, the image it came from and the face box."""

    vector: np.ndarray
    image: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class EmbeddingInfo:
    """A stored embedding, without its vector."""

    id: int
    person_id: str
    image: str
    box: tuple[float, float, float, float]
    created: float


@dataclass(frozen=True)
class NegativeInfo:
    """A face marked "not this person" for ``person_id``, without its vector; ``image`` says
    where it came from (a kept face crop, a photo)."""

    id: int
    person_id: str
    image: str
    created: float


@dataclass(frozen=True)
class Enrolled:
    """What :meth:`Watchlist.enroll` did: the person (after the change), whether it was created,
    and the ids of the new embeddings."""

    person: Person
    created: bool
    embedding_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Vectors:
    """Embeddings in bulk: ``ids`` ``(n,)`` int64 ascending, ``people`` ``(n,)`` person ids,
    ``vectors`` ``(n, 512)`` float32."""

    ids: np.ndarray
    people: np.ndarray
    vectors: np.ndarray


def slugify(name: str) -> str:
    """A short id from a name: ASCII, lower case, words joined by ``-`` (``person`` if empty)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-")
    return slug or "person"


def _clean_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise WatchlistError("a person's name must not be empty")
    if len(cleaned) > MAX_NAME:  # it travels in every event and overlay about them
        raise WatchlistError(f"a person's name must be at most {MAX_NAME} characters (got {len(cleaned)})")
    return cleaned


def _blob(vector: np.ndarray) -> bytes:
    """Little-endian float32 bytes of a unit vector; refuses anything that is not one."""
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    if v.shape != (EMBEDDING_SIZE,) or not np.isfinite(v).all():
        raise WatchlistError(f"an embedding must be {EMBEDDING_SIZE} finite numbers (got shape {np.shape(vector)})")
    norm = float(np.linalg.norm(v))
    if abs(norm - 1.0) > 1e-2:
        raise WatchlistError(f"an embedding must be L2-normalised (norm {norm:.4f})")
    return (v / norm).astype("<f4").tobytes()


def _resolve(view: WatchlistView, name: str, person_id: str | None) -> Person | None:
    """See :meth:`Watchlist.resolve`."""
    if person_id is not None:
        if not _ID.match(person_id):
            raise WatchlistError(f"bad person id {person_id!r}: use 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit")
        person = view.person(person_id)
        if person and person.name.casefold() != name.casefold():
            raise WatchlistError(f"id {person_id!r} belongs to {person.name!r}, not {name!r}")
        return person
    same = view.named(name)
    if len(same) > 1:
        raise WatchlistError(f"{len(same)} people are named {name!r} (ids {', '.join(p.id for p in same)}): choose one with --id")
    return same[0] if same else None


def _bump(db: sqlite3.Connection) -> None:
    """Every write transaction ends here: other processes poll this counter to notice changes."""
    db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")


def _vectors(rows: list[tuple[int, str, bytes]]) -> Vectors:
    return Vectors(
        np.array([r[0] for r in rows], np.int64),
        np.array([r[1] for r in rows], dtype=object),
        np.frombuffer(b"".join(r[2] for r in rows), "<f4").reshape(len(rows), EMBEDDING_SIZE).astype(np.float32),
    )


class WatchlistView:
    """Reads inside one read transaction: they all see the same state, whatever others write."""

    _PERSONS = (
        "SELECT p.id, p.name, p.metadata, p.created, count(e.id) FROM persons p "
        "LEFT JOIN embeddings e ON e.person_id = p.id {where} GROUP BY p.id ORDER BY p.name COLLATE NOCASE, p.id"
    )

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def generation(self) -> int:
        """The change counter: it grows by one with every committed change."""
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def count(self) -> int:
        """How many embeddings are stored."""
        return int(self._db.execute("SELECT count(*) FROM embeddings").fetchone()[0])

    def model(self) -> str:
        """The FaceNet model the stored embeddings came from (see the module's notes)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        return str(row[0]) if row else PUBLISHED_MODEL

    def check_model(self, model: str) -> None:
        """Raise :class:`WatchlistError` if embeddings of another model than ``model`` are stored."""
        stored = self.model()
        if stored != model and self.count():
            raise WatchlistError(
                f"the watchlist holds embeddings of model {stored!r}, not {model!r}: use --model {stored}, "
                "or another watchlist (--data-dir) for this model"
            )

    def persons(self) -> list[Person]:
        """Everyone, by name."""
        return self._persons("", ())

    def person(self, person_id: str) -> Person | None:
        """The person with this id, or ``None``."""
        found = self._persons("WHERE p.id = ?", (person_id,))
        return found[0] if found else None

    def named(self, name: str) -> list[Person]:
        """People with this name (ignoring ASCII case and repeated spaces)."""
        return self._persons("WHERE p.name = ? COLLATE NOCASE", (_clean_name(name),))

    def names(self) -> dict[str, str]:
        """Person id -> name, for everyone."""
        return dict(self._db.execute("SELECT id, name FROM persons").fetchall())

    def embeddings(self, person_id: str) -> list[EmbeddingInfo]:
        """A person's embeddings (without vectors), oldest first."""
        rows = self._db.execute(
            "SELECT id, person_id, image, x1, y1, x2, y2, created FROM embeddings WHERE person_id = ? ORDER BY id",
            (person_id,),
        ).fetchall()
        return [EmbeddingInfo(r[0], r[1], r[2], (r[3], r[4], r[5], r[6]), r[7]) for r in rows]

    def negatives(self, person_id: str | None = None) -> list[NegativeInfo]:
        """The faces marked "not this person" (a person's, or everyone's), oldest first."""
        where, params = ("WHERE person_id = ?", (person_id,)) if person_id is not None else ("", ())
        sql = f"SELECT id, person_id, image, created FROM negatives {where} ORDER BY id"
        return [NegativeInfo(*row) for row in self._db.execute(sql, params).fetchall()]

    def negative_vectors(self) -> Vectors:
        """Every negative with its vector (``people``: whom each face is not)."""
        return _vectors(self._db.execute("SELECT id, person_id, vector FROM negatives ORDER BY id").fetchall())

    def vectors(self, after_id: int = 0) -> Vectors:
        """Every embedding with ``id > after_id``, vectors included."""
        sql = "SELECT id, person_id, vector FROM embeddings WHERE id > ? ORDER BY id"
        return _vectors(self._db.execute(sql, (after_id,)).fetchall())

    def vectors_of(self, ids: np.ndarray) -> Vectors:
        """The embeddings with these ids (those that still exist)."""
        sql = "SELECT id, person_id, vector FROM embeddings WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"
        return _vectors(self._db.execute(sql, (json.dumps([int(i) for i in ids]),)).fetchall())

    def catalogue(self) -> tuple[np.ndarray, np.ndarray]:
        """Every embedding id (ascending, int64) and its person id, without vectors."""
        rows = self._db.execute("SELECT id, person_id FROM embeddings ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], dtype=object)

    def _persons(self, where: str, params: tuple[Any, ...]) -> list[Person]:
        rows = self._db.execute(self._PERSONS.format(where=where), params).fetchall()
        return [Person(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]


class Watchlist:
    """The watchlist of ``data_dir`` (created on first use unless ``create`` is false: a verb that
    only reads it must not turn a mistyped folder into a new, empty watchlist). Safe to share
    between threads; any number of processes may open the same one."""

    def __init__(self, data_dir: Path, create: bool = True) -> None:
        self.path = Path(data_dir) / DB_NAME
        self._lock = threading.Lock()
        if not create and not self.path.is_file():
            raise WatchlistError(f"no watchlist in {data_dir}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise WatchlistError(f"{self.path}: cannot open the watchlist ({exc})") from None
        try:
            # secure_delete: a removed person's rows are overwritten, not left in free pages
            for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "secure_delete = ON"):
                self._db.execute(f"PRAGMA {pragma}")
            self._create_schema()
        except (sqlite3.Error, WatchlistError) as exc:
            self._db.close()
            if isinstance(exc, WatchlistError):
                raise
            raise WatchlistError(f"{self.path}: not a readable watchlist ({exc})") from None

    def _create_schema(self) -> None:
        if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with self._transaction() as db:  # re-read under the write lock: another process may create it first
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise WatchlistError(
                    f"{self.path}: watchlist schema {version} is newer than this streamrec's ({SCHEMA_VERSION})"
                )
            script = (_SCHEMA if version == 0 else "") + (_NEGATIVES if version < 2 else "")
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the connection (further use raises)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction (a write one takes the write lock at once), rolled back on any exception.
        Locked for over 30 s by another writer, read-only, or out of disk: a :class:`WatchlistError`."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise WatchlistError(f"{self.path}: {exc}") from None

    @contextlib.contextmanager
    def read(self) -> Iterator[WatchlistView]:
        """A consistent view for several reads: ``with watchlist.read() as view: ...``."""
        with self._transaction(write=False) as db:
            yield WatchlistView(db)

    def generation(self) -> int:
        """The change counter, in one cheap query (for polling)."""
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def resolve(self, name: str, person_id: str | None = None) -> Person | None:
        """The person an enrollment as ``name`` (and ``person_id``) would add to, ``None`` if it
        would create one; raises :class:`WatchlistError` if it would be refused. Lets a caller
        fail before the slow part (detecting and embedding faces)."""
        with self.read() as view:
            return _resolve(view, _clean_name(name), person_id)

    def enroll(
        self,
        name: str,
        embeddings: Iterable[NewEmbedding],
        person_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        model: str = PUBLISHED_MODEL,
    ) -> Enrolled:
        """Add ``embeddings`` to a person, in one transaction: all of them or (on any error) none.

        The person is ``person_id`` if given (created with ``name`` if new; an existing one must
        have that name), else the one person called ``name`` (ignoring ASCII case), else a new
        person whose id is the name's slug, suffixed ``-2``, ``-3``... if taken. ``metadata``
        keys are added to (or replace) the person's. At least one embedding is required.
        ``model``: the FaceNet that made the embeddings; refused if others are stored.
        """
        name = _clean_name(name)
        with self._transaction() as db:
            view = WatchlistView(db)
            view.check_model(model)
            db.execute("INSERT INTO meta VALUES ('model', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (model,))
            person = _resolve(view, name, person_id)
            merged = {**(person.metadata if person else {}), **{str(k): str(v) for k, v in (metadata or {}).items()}}
            target = person.id if person else self._free_id(view, person_id or slugify(name))
            db.execute(
                "INSERT INTO persons (id, name, metadata, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET metadata = excluded.metadata",
                (target, name, json.dumps(merged, sort_keys=True), time.time()),
            )
            ids = [self._insert(db, target, item) for item in embeddings]
            if not ids:
                raise WatchlistError("nothing to enroll: no embeddings given")
            final = view.person(target)
            _bump(db)
        assert final is not None
        return Enrolled(final, person is None, ids)

    @staticmethod
    def _free_id(view: WatchlistView, wanted: str) -> str:
        candidate, n = wanted, 1
        while view.person(candidate) is not None:
            n += 1
            candidate = f"{wanted}-{n}"
        return candidate

    @staticmethod
    def _insert(db: sqlite3.Connection, person_id: str, item: NewEmbedding) -> int:
        x1, y1, x2, y2 = (float(v) for v in item.box)
        cursor = db.execute(
            "INSERT INTO embeddings (person_id, vector, image, x1, y1, x2, y2, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (person_id, _blob(item.vector), str(item.image), x1, y1, x2, y2, time.time()),
        )
        return int(cursor.lastrowid or 0)

    def remove(self, person_id: str) -> Person:
        """Remove a person, all their embeddings and their negatives; returns the person as they were."""
        with self._transaction() as db:
            person = self._existing(db, person_id)
            db.execute("DELETE FROM negatives WHERE person_id = ?", (person_id,))
            db.execute("DELETE FROM embeddings WHERE person_id = ?", (person_id,))
            db.execute("DELETE FROM persons WHERE id = ?", (person_id,))
            _bump(db)
        return person

    def remove_embedding(self, embedding_id: int) -> EmbeddingInfo:
        """Remove one embedding (one photo of a person); returns it as it was. The person stays,
        even with no embedding left (they can be given new photos)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, person_id, image, x1, y1, x2, y2, created FROM embeddings WHERE id = ?", (embedding_id,)
            ).fetchone()
            if row is None:
                raise WatchlistError(f"no embedding with id {embedding_id} in the watchlist")
            db.execute("DELETE FROM embeddings WHERE id = ?", (embedding_id,))
            _bump(db)
        return EmbeddingInfo(row[0], row[1], row[2], (row[3], row[4], row[5], row[6]), row[7])

    def checkpoint(self, tries: int = 50) -> bool:
        """Move every change into the main file and empty the write-ahead log, so that no old
        copy of a removed row stays in it. A reader in another process (a matcher catching up)
        can hold part of the log for a moment: tried up to ``tries`` times, 20 ms apart;
        ``False`` if it never finished (the next checkpoint does)."""
        for attempt in range(tries):
            with self._lock:
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return True
            if attempt + 1 < tries:
                time.sleep(0.02)
        return False

    def add_negative(self, person_id: str, vector: np.ndarray, image: str) -> int:
        """Mark a face as not ``person_id``: the matcher no longer names that person for faces
        closer to it than to the person's own nearest embedding. Returns the negative's id."""
        with self._transaction() as db:
            self._existing(db, person_id)
            cursor = db.execute(
                "INSERT INTO negatives (person_id, vector, image, created) VALUES (?, ?, ?, ?)",
                (person_id, _blob(vector), str(image), time.time()),
            )
            _bump(db)
        return int(cursor.lastrowid or 0)

    @staticmethod
    def _existing(db: sqlite3.Connection, person_id: str) -> Person:
        person = WatchlistView(db).person(person_id)
        if person is None:
            raise WatchlistError(f"no person with id {person_id!r} in the watchlist")
        return person
