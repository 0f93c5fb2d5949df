"""Kept faces: a crop and the embedding of faces the pipeline decided about, for the face library.

The inference stage keeps one face per decision: for a track called ``unknown``, the
best-quality face it embedded (so that someone can look at who was not recognised and enroll
them with one click); for a ``match``, the face whose embedding made the decision (so that a
wrong one can be marked "not this person"). They live under the data directory::

    <data_dir>/unknown/<id>.jpg, <id>.json      faces of tracks decided unknown
    <data_dir>/matched/<id>.jpg, <id>.json      faces of match decisions

``<id>`` is ``<milliseconds since 1970, 13 digits>-<camera>-<track id>``, so names sort by time.
The JSON record holds the time, camera, track, decision (person id and name for a match), face
quality and the 512-d embedding (base64 of little-endian float32). Each file is written under a
temporary name, flushed and renamed into place, the JPEG before the record: a record always has
its JPEG, and a JPEG without a record (a crash between the two) is removed by the next prune.

They are bounded: each folder keeps at most ``max_faces`` faces and ``max_bytes`` bytes, the
oldest going first, and faces older than ``days`` are removed by :meth:`KeptFaces.prune`, which
the running pipeline calls. A full disk costs the face being kept, with one warning until a face
can be kept again; nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from streamrec.embed.facenet import EMBEDDING_SIZE

__all__ = ["FOLDERS", "KeptFace", "KeptFaces", "KeptKind", "face_crop"]

KeptKind = Literal["unknown", "match"]
FOLDERS: dict[KeptKind, str] = {"unknown": "unknown", "match": "matched"}
#: a crop's longer side at most (a face library shows thumbnails)
CROP_SIDE = 256
#: the crop reaches this share of the face box's size beyond each side
CROP_MARGIN = 0.25
_ID = re.compile(r"\d{13}-[A-Za-z0-9_.-]{1,80}-\d{1,12}\Z")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeptFace:
    """One kept face: ``vector`` ``(512,)`` float32; ``jpeg`` the crop's file."""

    id: str
    kind: KeptKind
    ts: float
    source: str
    track_id: int
    person_id: str | None
    name: str | None
    quality: float
    vector: np.ndarray
    jpeg: Path

    def to_json(self) -> dict[str, object]:
        """The record without the embedding (what a page shows)."""
        return {"id": self.id, "kind": self.kind, "ts": round(self.ts, 3), "source": self.source,
                "track_id": self.track_id, "person_id": self.person_id, "name": self.name,
                "quality": round(self.quality, 3)}


def face_crop(pixels: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face of ``box`` ``(x1, y1, x2, y2)`` in ``pixels`` ``(H, W, 3)`` RGB, with a margin,
    clipped to the frame and scaled down to at most ``CROP_SIDE`` px a side (a copy)."""
    h, w = pixels.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = CROP_MARGIN * (x2 - x1), CROP_MARGIN * (y2 - y1)
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    crop = pixels[top:max(bottom, top + 1), left:max(right, left + 1)]
    factor = CROP_SIDE / max(crop.shape[:2])
    if factor < 1:
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the name only ever holds all of it."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class KeptFaces:
    """The kept faces of ``data_dir``; one process writes (the inference stage), any number read
    and remove."""

    def __init__(self, data_dir: Path, max_faces: int = 1000, max_bytes: int = 100 * 2**20, days: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.max_faces, self.max_bytes, self.days = max_faces, max_bytes, days
        self._failing = False

    def folder(self, kind: KeptKind) -> Path:
        return self.data_dir / FOLDERS[kind]

    def keep(
        self, kind: KeptKind, source: str, track_id: int, ts: float, crop: np.ndarray, vector: np.ndarray,
        quality: float, person_id: str | None = None, name: str | None = None,
    ) -> KeptFace | None:
        """Keep a face (``crop``: RGB uint8); ``None`` when it cannot be written (a full disk:
        logged once until a face can be kept again) or faces are not kept (``days`` is 0)."""
        if self.days <= 0 or self.max_faces <= 0:
            return None
        camera = re.sub(r"[^A-Za-z0-9_.-]", "_", source)[:80] or "_"
        face_id = f"{int(ts * 1000):013d}-{camera}-{track_id}"
        folder = self.folder(kind)
        _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        vector = np.asarray(vector, "<f4").reshape(EMBEDDING_SIZE)
        record = {"kind": kind, "ts": ts, "source": source, "track_id": int(track_id), "person_id": person_id,
                  "name": name, "quality": float(quality), "vector": base64.b64encode(vector.tobytes()).decode()}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(folder / f"{face_id}.jpg", jpeg.tobytes())
            _write_atomic(folder / f"{face_id}.json", json.dumps(record).encode())
        except OSError as exc:
            with contextlib.suppress(OSError):
                (folder / f"{face_id}.jpg").unlink()
            if not self._failing:
                log.warning("cannot keep face crops in %s (%s): faces are not kept until it can be written",
                            folder, exc.strerror or exc)
            self._failing = True
            return None
        if self._failing:
            log.info("face crops are kept in %s again", folder)
            self._failing = False
        with contextlib.suppress(OSError):  # the next prune tries again
            self._bound(kind)
        return self.get(face_id, kind)

    def get(self, face_id: str, kind: KeptKind | None = None) -> KeptFace | None:
        """The kept face ``face_id`` (of either kind unless given), or ``None``."""
        if not _ID.match(face_id):
            return None
        for each in ([kind] if kind else list(FOLDERS)):
            path = self.folder(each) / f"{face_id}.json"
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                return self._load(path)
        return None

    def recent(self, kind: KeptKind, limit: int = 50) -> list[KeptFace]:
        """The newest kept faces of ``kind``, newest first."""
        found = []
        for path in sorted(self._records(kind), reverse=True)[:limit]:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.append(self._load(path))
        return found

    def remove(self, face: KeptFace) -> None:
        """Remove a kept face (record first: a JPEG alone is pruned)."""
        for suffix in (".json", ".jpg"):
            with contextlib.suppress(FileNotFoundError):
                (face.jpeg.with_suffix(suffix)).unlink()

    def remove_person(self, person_id: str) -> int:
        """Remove every kept face decided as ``person_id``; returns how many."""
        removed = 0
        for kind in FOLDERS:
            for path in self._records(kind):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    face = self._load(path)
                    if face.person_id == person_id:
                        self.remove(face)
                        removed += 1
        return removed

    def remove_near(self, vectors: np.ndarray, threshold: float, kind: KeptKind = "unknown") -> int:
        """Remove every kept face of ``kind`` closer than ``threshold`` to one of ``vectors``
        ``(n, 512)`` (a person's faces, kept while they were unknown); returns how many."""
        removed = 0
        if not len(vectors):
            return 0
        for path in list(self._records(kind)):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                face = self._load(path)
                if float(np.linalg.norm(vectors - face.vector, axis=1).min()) < threshold:
                    self.remove(face)
                    removed += 1
        return removed

    def prune(self, now: float | None = None) -> int:
        """Remove faces older than ``days``, crops left without a record, and what is over the
        bounds; returns how many faces went."""
        now = time.time() if now is None else now
        removed = 0
        for kind in FOLDERS:
            folder = self.folder(kind)
            if not folder.is_dir():
                continue
            records = {p.stem for p in self._records(kind)}
            for path in folder.iterdir():
                stale_tmp = path.name.startswith(".tmp-") and now - _mtime(path) > 3600
                orphan = path.suffix == ".jpg" and path.stem not in records and now - _mtime(path) > 60
                old = path.suffix == ".json" and _id_time(path.stem) < now - self.days * 86400
                if stale_tmp or orphan or old:
                    removed += old
                    for each in ([path, path.with_suffix(".jpg")] if old else [path]):
                        with contextlib.suppress(FileNotFoundError):
                            each.unlink()
            removed += self._bound(kind)
        return removed

    def _bound(self, kind: KeptKind) -> int:
        """Remove the oldest faces of ``kind`` beyond ``max_faces`` and ``max_bytes``."""
        records = sorted(self._records(kind))
        sizes = [_size(p) + _size(p.with_suffix(".jpg")) for p in records]
        total, removed = sum(sizes), 0
        for path, size in zip(records, sizes):
            if len(records) - removed <= self.max_faces and total <= self.max_bytes:
                break
            for each in (path, path.with_suffix(".jpg")):
                with contextlib.suppress(FileNotFoundError):
                    each.unlink()
            total -= size
            removed += 1
        return removed

    def _records(self, kind: KeptKind) -> Iterator[Path]:
        folder = self.folder(kind)
        if folder.is_dir():
            yield from (p for p in folder.glob("*.json") if _ID.match(p.stem))

    @staticmethod
    def _load(path: Path) -> KeptFace:
        item = json.loads(path.read_bytes())
        vector = np.frombuffer(base64.b64decode(item["vector"]), "<f4").astype(np.float32)
        if vector.shape != (EMBEDDING_SIZE,):
            raise ValueError(f"{path}: not a {EMBEDDING_SIZE}-d embedding")
        return KeptFace(path.stem, item["kind"], float(item["ts"]), str(item["source"]), int(item["track_id"]),
                        item.get("person_id"), item.get("name"), float(item.get("quality", 0.0)), vector,
                        path.with_suffix(".jpg"))


def _id_time(face_id: str) -> float:
    return int(face_id[:13]) / 1000.0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
