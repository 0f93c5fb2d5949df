"""The face library: the ``/faces`` page and its JSON API, served by the web stage.

Routes (``PID``: a person id; ``EID``: an embedding id; ``FACE``: a kept face id):

* ``GET /faces``: the page (inline HTML and script, no external assets).
* ``GET /api/faces``: everyone, with their photos (embeddings), and negatives' count.
* ``POST /api/faces?name=NAME`` with a photo as the raw body: a new person (or more photos of the
  one called NAME); ``POST /api/faces/PID/photos``: a photo for PID. The photo gets the checks of
  ``streamrec enroll`` (:func:`~streamrec.match.enroll.choose_face`) and is stored as
  ``<data_dir>/photos/<random>.<format>``.
* ``GET /api/faces/PID/photos/EID``: a photo, when it is stored under ``<data_dir>/photos``
  (photos enrolled with ``streamrec enroll`` stay where they were and are not served).
* ``DELETE /api/faces/PID/photos/EID``: remove one photo; ``DELETE /api/faces/PID``: erase the
  person (:func:`~streamrec.match.erase.erase_person`).
* ``GET /api/unknown``: recent faces of tracks decided unknown; ``GET /api/unknown/FACE.jpg`` the
  crop; ``POST /api/unknown/FACE/assign`` ``{"person_id": PID}``: enroll its embedding for PID,
  the crop becoming PID's photo.
* ``GET /api/feedback``: recent faces of match decisions; ``GET /api/feedback/FACE.jpg`` the crop;
  ``POST /api/feedback`` ``{"face": FACE}`` (or ``{"source": CAMERA, "track_id": N}``: that track's
  latest match, as an event names it): "not this person", a negative for the person named.

Errors are ``{"error": "one line"}`` with a 4xx status. Uploads need the face engines, loaded in
the web stage on the first upload.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.faces import FaceModels
from streamrec.images.header import HeaderError, read_header
from streamrec.match.enroll import choose_face
from streamrec.match.erase import erase_person, photos_dir, stored_photo
from streamrec.match.kept import KeptFace, KeptFaces, KeptKind
from streamrec.match.store import NewEmbedding, Watchlist, WatchlistError
from streamrec.web.library_page import LIBRARY_PAGE

__all__ = ["LIBRARY_PREFIXES", "MAX_UPLOAD", "Library", "Response"]

#: the paths the library answers (the server forwards them here)
LIBRARY_PREFIXES = ("/faces", "/api/faces", "/api/unknown", "/api/feedback")
#: the largest photo accepted, in bytes
MAX_UPLOAD = 20 * 2**20
#: kept faces listed at most
RECENT = 60
_PERSON = r"(?P<pid>[a-z0-9][a-z0-9_-]{0,63})"
_FACE = r"(?P<face>\d{13}-[A-Za-z0-9_.-]{1,80}-\d{1,12})"
JSON = "application/json"


@dataclass(frozen=True)
class Response:
    """What the server sends: ``status``, ``body`` and its content type."""

    status: int
    body: bytes
    content_type: str = JSON


class LibraryError(Exception):
    """A request refused: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode())


def _body_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LibraryError(400, "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise LibraryError(400, "the request body must be a JSON object")
    return value


class Library:
    """The face library of ``data_dir``. ``models``: makes the face engines (called once, on the
    first upload). Thread-safe: the server runs one thread per connection."""

    def __init__(self, data_dir: Path, models: Callable[[], FaceModels]) -> None:
        self.data_dir = Path(data_dir)
        self.store = Watchlist(self.data_dir)
        self.kept = KeptFaces(self.data_dir)
        self._make_models = models
        self._models: FaceModels | None = None
        self._models_lock = threading.Lock()
        get, post, delete = "GET", "POST", "DELETE"
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = [
            (get, re.compile(r"/faces"), self._page),
            (get, re.compile(r"/api/faces"), self._people),
            (post, re.compile(r"/api/faces"), self._new_person),
            (post, re.compile(rf"/api/faces/{_PERSON}/photos"), self._add_photo),
            (get, re.compile(rf"/api/faces/{_PERSON}/photos/(?P<eid>\d+)"), self._photo),
            (delete, re.compile(rf"/api/faces/{_PERSON}/photos/(?P<eid>\d+)"), self._remove_photo),
            (delete, re.compile(rf"/api/faces/{_PERSON}"), self._erase),
            (get, re.compile(r"/api/unknown"), lambda **kw: self._recent("unknown", **kw)),
            (get, re.compile(rf"/api/unknown/{_FACE}\.jpg"), lambda **kw: self._crop("unknown", **kw)),
            (post, re.compile(rf"/api/unknown/{_FACE}/assign"), self._assign),
            (get, re.compile(r"/api/feedback"), lambda **kw: self._recent("match", **kw)),
            (get, re.compile(rf"/api/feedback/{_FACE}\.jpg"), lambda **kw: self._crop("match", **kw)),
            (post, re.compile(r"/api/feedback"), self._not_this_person),
        ]

    def close(self) -> None:
        self.store.close()

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is the library's."""
        return any(path == prefix or path.startswith(prefix + "/") for prefix in LIBRARY_PREFIXES)

    def respond(self, method: str, path: str, query: dict[str, str], body: bytes = b"") -> Response:
        """The answer to one request."""
        allowed = []
        for verb, pattern, route in self._routes:
            found = pattern.fullmatch(path)
            if found:
                allowed.append(verb)
                if verb == method:
                    try:
                        return route(query=query, body=body, **found.groupdict())
                    except LibraryError as exc:
                        return _json({"error": str(exc)}, exc.status)
                    except WatchlistError as exc:
                        return _json({"error": str(exc)}, 404 if "no person" in str(exc) or "no embedding" in str(exc) else 400)
        if allowed:
            return _json({"error": f"{method} is not allowed on {path} (use {', '.join(allowed)})"}, 405)
        return _json({"error": f"not found: {path}"}, 404)

    # -- people and photos ------------------------------------------------------------------
    def _page(self, **_: Any) -> Response:
        return Response(200, LIBRARY_PAGE.encode(), "text/html; charset=utf-8")

    def _people(self, **_: Any) -> Response:
        with self.store.read() as view:
            people = [
                {"id": p.id, "name": p.name, "embeddings": p.embeddings, "negatives": len(view.negatives(p.id)),
                 "photos": [{"id": e.id, "served": stored_photo(self.data_dir, e.image) is not None, "image": Path(e.image).name}
                            for e in view.embeddings(p.id)]}
                for p in view.persons()
            ]
        return _json({"people": people})

    def _new_person(self, query: dict[str, str], body: bytes, **_: Any) -> Response:
        name = query.get("name", "")
        self.store.resolve(name)  # a bad name fails before the photo is looked at
        return self._enroll(name, None, body)

    def _add_photo(self, pid: str, body: bytes, **_: Any) -> Response:
        with self.store.read() as view:
            person = view.person(pid)
        if person is None:
            raise LibraryError(404, f"no person with id {pid!r} in the watchlist")
        return self._enroll(person.name, pid, body)

    def _enroll(self, name: str, person_id: str | None, body: bytes) -> Response:
        """Judge the uploaded photo as ``streamrec enroll`` does and enroll it."""
        if not body:
            raise LibraryError(400, "no photo: send the image file as the request body")
        try:
            kind = read_header(body).format
        except HeaderError as exc:
            raise LibraryError(400, f"not a usable image: {exc}") from None
        folder = photos_dir(self.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.{kind.lower()}"
        path.write_bytes(body)
        try:
            (result,) = list(self._face_models().analyse([path], embed="main"))
            photo = choose_face(result)
            if photo.face is None:
                raise LibraryError(400, f"photo refused: {photo.refused}")
            enrolled = self.store.enroll(name, [photo.face], person_id)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        person = enrolled.person
        return _json({"person": {"id": person.id, "name": person.name, "embeddings": person.embeddings},
                      "created": enrolled.created, "embedding_ids": enrolled.embedding_ids}, 201)

    def _face_models(self) -> FaceModels:
        with self._models_lock:
            if self._models is None:
                self._models = self._make_models()
            return self._models

    def _embedding_image(self, pid: str, eid: str) -> str:
        with self.store.read() as view:
            found = [e for e in view.embeddings(pid) if e.id == int(eid)]
        if not found:
            raise LibraryError(404, f"{pid} has no photo {eid}")
        return found[0].image

    def _photo(self, pid: str, eid: str, **_: Any) -> Response:
        stored = stored_photo(self.data_dir, self._embedding_image(pid, eid))
        if stored is None:
            raise LibraryError(404, f"photo {eid} of {pid} was enrolled from a file outside the data directory")
        kind = stored.suffix.lstrip(".")
        return Response(200, stored.read_bytes(), f"image/{'jpeg' if kind == 'jpeg' else kind}")

    def _remove_photo(self, pid: str, eid: str, **_: Any) -> Response:
        image = self._embedding_image(pid, eid)
        self.store.remove_embedding(int(eid))
        stored = stored_photo(self.data_dir, image)
        if stored is not None:
            stored.unlink(missing_ok=True)
        return _json({"removed": int(eid), "person_id": pid})

    def _erase(self, pid: str, **_: Any) -> Response:
        erased = erase_person(self.store, pid)
        return _json({"removed": pid, "embeddings": erased.person.embeddings, "negatives": erased.negatives,
                      "photos": erased.photos, "kept_faces": erased.kept_faces, "events_renamed": erased.events_renamed})

    # -- kept faces -------------------------------------------------------------------------
    def _recent(self, kind: KeptKind, **_: Any) -> Response:
        return _json({"faces": [face.to_json() for face in self.kept.recent(kind, RECENT)]})

    def _crop(self, kind: KeptKind, face: str, **_: Any) -> Response:
        found = self.kept.get(face, kind)
        if found is None:
            raise LibraryError(404, f"no kept face {face}")
        try:
            return Response(200, found.jpeg.read_bytes(), "image/jpeg")
        except FileNotFoundError:
            raise LibraryError(404, f"no kept face {face}") from None

    def _assign(self, face: str, body: bytes, **_: Any) -> Response:
        pid = _body_json(body).get("person_id")
        found = self.kept.get(face, "unknown")
        if found is None:
            raise LibraryError(404, f"no unknown face {face}")
        with self.store.read() as view:
            person = view.person(str(pid)) if isinstance(pid, str) else None
        if person is None:
            raise LibraryError(404, f"no person with id {pid!r} in the watchlist")
        folder = photos_dir(self.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.jpeg"
        shutil.copyfile(found.jpeg, path)
        try:
            enrolled = self.store.enroll(person.name, [NewEmbedding(found.vector, str(path), (0.0, 0.0, 0.0, 0.0))], person.id)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.kept.remove(found)
        return _json({"person_id": person.id, "embedding_ids": enrolled.embedding_ids}, 201)

    def _not_this_person(self, body: bytes, **_: Any) -> Response:
        request = _body_json(body)
        face = self._match_face(request)
        if face.person_id is None:
            raise LibraryError(400, f"face {face.id} was not named")
        negative = self.store.add_negative(face.person_id, face.vector, f"{face.source} track {face.track_id}")
        self.kept.remove(face)
        return _json({"negative": negative, "person_id": face.person_id, "face": face.id}, 201)

    def _match_face(self, request: dict[str, Any]) -> KeptFace:
        """The kept match face a feedback request names: by id, or by camera and track."""
        if isinstance(request.get("face"), str):
            found = self.kept.get(request["face"], "match")
            if found is None:
                raise LibraryError(404, f"no kept face of a match {request['face']}")
            return found
        source, track = request.get("source"), request.get("track_id")
        if not isinstance(source, str) or not isinstance(track, int):
            raise LibraryError(400, 'expected {"face": ID} or {"source": CAMERA, "track_id": N}')
        for face in self.kept.recent("match", limit=10_000):
            if face.source == source and face.track_id == track:
                return face
        raise LibraryError(404, f"no kept face of a match of track {track} on {source}")
