"""The face library's API over real HTTP: a real server, the real engines, a real watchlist and
kept faces on disk."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.config.model import AuthConfig
from streamrec.match.kept import KeptFaces
from streamrec.match.matcher import Matcher
from streamrec.match.store import Watchlist
from streamrec.web.auth import Gate
from streamrec.web.library import MAX_UPLOAD, Library
from streamrec.web.metrics import StageMetrics
from streamrec.web.server import WebServer, serve_http
from streamrec.web.state import WebState


@pytest.fixture
def server(tmp_path: Path, models) -> Iterator[WebServer]:
    library = Library(tmp_path, lambda: models)
    gate = Gate.for_server(AuthConfig(), tmp_path / "users.json", beyond_loopback=False, secure=False)  # open: loopback
    server = serve_http("127.0.0.1:0", WebState([], hold_s=3.0), StageMetrics(), gate, library=library)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    library.close()


def _call(server: WebServer, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes, str]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, reply.read(), reply.getheader("Content-Type") or ""
    finally:
        connection.close()


def _json(server: WebServer, method: str, path: str, body: bytes = b"", status: int = 200) -> dict:
    got, data, kind = _call(server, method, path, body)
    assert (got, kind) == (status, "application/json"), data
    value = json.loads(data)
    if status >= 400:
        assert list(value) == ["error"] and "\n" not in value["error"]
    return value


def test_people_are_added_by_upload_with_the_checks_of_enroll(server: WebServer, faces_dir: Path, scenes: Path,
                                                              tmp_path: Path):
    obama = faces_dir / "barack_obama"
    added = _json(server, "POST", "/api/faces?name=Barack%20Obama", (obama / "1.jpg").read_bytes(), 201)
    assert added["created"] and added["person"] == {"id": "barack-obama", "name": "Barack Obama", "embeddings": 1}
    more = _json(server, "POST", "/api/faces/barack-obama/photos", (obama / "2.jpg").read_bytes(), 201)
    assert not more["created"] and more["person"]["embeddings"] == 2
    corrupt = (obama / "3.jpg").read_bytes()[:2000]
    assert _json(server, "POST", "/api/faces/barack-obama/photos", corrupt, 400)["error"].startswith("not a usable image: truncated JPEG")
    assert _json(server, "POST", "/api/faces/barack-obama/photos", b"name,photo\n", 400)["error"].startswith("not a usable image")
    two = (scenes / "fr_two_people.jpg").read_bytes()
    assert "faces of similar size" in _json(server, "POST", "/api/faces/barack-obama/photos", two, 400)["error"]
    assert "must not be empty" in _json(server, "POST", "/api/faces?name=", (obama / "3.jpg").read_bytes(), 400)["error"]
    assert _json(server, "POST", "/api/faces/nobody/photos", (obama / "3.jpg").read_bytes(), 404)["error"]
    (person,) = _json(server, "GET", "/api/faces")["people"]
    assert [p["served"] for p in person["photos"]] == [True, True] and person["negatives"] == 0
    first = person["photos"][0]["id"]
    status, photo, kind = _call(server, "GET", f"/api/faces/barack-obama/photos/{first}")
    assert (status, kind, photo) == (200, "image/jpeg", (obama / "1.jpg").read_bytes())
    assert len(list((tmp_path / "photos").iterdir())) == 2  # refused uploads leave nothing behind
    assert _json(server, "DELETE", f"/api/faces/barack-obama/photos/{first}") == {"removed": first, "person_id": "barack-obama"}
    assert len(list((tmp_path / "photos").iterdir())) == 1
    assert _json(server, "DELETE", f"/api/faces/barack-obama/photos/{first}", status=404)


def test_a_body_over_the_limit_is_refused_unread(server: WebServer):
    status, data, _ = _call(server, "POST", "/api/faces?name=Big", b"x", {"Content-Length": str(MAX_UPLOAD + 1)})
    assert status == 413 and json.loads(data)["error"].startswith("the request body must be at most 20 MiB")
    assert _json(server, "PUT", "/api/faces", status=405)["error"] == "PUT is not allowed on /api/faces (use GET, POST)"
    assert _json(server, "DELETE", "/api/unknown", status=405)["error"] == "DELETE is not allowed on /api/unknown (use GET)"


def test_an_unknown_face_is_assigned_and_a_wrong_match_is_marked_not_this_person(
    server: WebServer, face_photos, tmp_path: Path
):
    _json(server, "POST", "/api/faces?name=Kit", Path(face_photos["kit_harington"][0][0]).read_bytes(), 201)
    kept = KeptFaces(tmp_path)
    crop = np.full((40, 30, 3), 128, np.uint8)
    kit_again = face_photos["kit_harington"][1][1]
    unknown = kept.keep("unknown", "door", 5, time.time(), crop, kit_again, 0.7)
    (listed,) = _json(server, "GET", "/api/unknown")["faces"]
    assert listed == unknown.to_json()
    assert _call(server, "GET", f"/api/unknown/{unknown.id}.jpg")[1] == unknown.jpeg.read_bytes()
    assigned = _json(server, "POST", f"/api/unknown/{unknown.id}/assign", json.dumps({"person_id": "kit"}).encode(), 201)
    assert assigned["person_id"] == "kit" and kept.get(unknown.id) is None
    (person,) = _json(server, "GET", "/api/faces")["people"]
    assert person["embeddings"] == 2 and all(p["served"] for p in person["photos"])
    assert _json(server, "POST", f"/api/unknown/{unknown.id}/assign", b'{"person_id": "kit"}', 404)

    rose = face_photos["rose_leslie"][0][1]  # named Kit by a lax matcher, as a look-alike would be
    lax = Matcher(tmp_path, threshold=1.5)
    assert lax.match(rose[None])[0].person_id == "kit"
    match = kept.keep("match", "door", 9, time.time(), crop, rose, 0.8, "kit", "Kit")
    assert [f["id"] for f in _json(server, "GET", "/api/feedback")["faces"]] == [match.id]
    marked = _json(server, "POST", "/api/feedback", json.dumps({"source": "door", "track_id": 9}).encode(), 201)
    assert (marked["person_id"], marked["face"]) == ("kit", match.id)
    found = lax.match(rose[None])[0]
    assert found.person_id is None and found.vetoed == "kit"
    assert lax.match(kit_again[None])[0].person_id == "kit"
    assert _json(server, "POST", "/api/feedback", b'{"face": "nope"}', 404)
    assert _json(server, "POST", "/api/feedback", b"[1]", 400)["error"] == "the request body must be a JSON object"


def test_deleting_a_person_erases_them(server: WebServer, faces_dir: Path, tmp_path: Path):
    _json(server, "POST", "/api/faces?name=Joe", (faces_dir / "joe_biden" / "1.jpg").read_bytes(), 201)
    erased = _json(server, "DELETE", "/api/faces/joe")
    assert (erased["removed"], erased["embeddings"], erased["photos"]) == ("joe", 1, 1)
    assert not list((tmp_path / "photos").iterdir())
    with Watchlist(tmp_path) as store, store.read() as view:
        assert view.persons() == []
    assert _json(server, "DELETE", "/api/faces/joe", status=404)["error"] == "no person with id 'joe' in the watchlist"


def test_the_page_is_self_contained_and_puts_names_in_as_text(server: WebServer):
    status, page, kind = _call(server, "GET", "/faces")
    text = page.decode()
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert "innerHTML" not in text and "http://" not in text and "https://" not in text
    assert "X-CSRF-Token" in text and "streamrec_csrf" in text


_PATHS = st.sampled_from([
    "/faces", "/api/faces", "/api/faces/ann", "/api/faces/ann/photos", "/api/faces/ann/photos/1", "/api/faces/../x",
    "/api/unknown", "/api/unknown/0000000000001-cam-1.jpg", "/api/unknown/0000000000001-cam-1/assign", "/api/feedback",
    "/api/feedback/x.jpg", "/api/faces/ANN", "/api/unknown/%2e%2e",
])


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "DELETE"]), path=_PATHS, name=st.text(max_size=80),
       body=st.one_of(st.binary(max_size=300), st.builds(lambda v: json.dumps(v).encode(), st.recursive(
           st.none() | st.booleans() | st.integers() | st.text(max_size=20),
           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["person_id", "face", "source", "track_id"]), inner, max_size=4),
           max_leaves=8))))
def test_every_request_gets_an_answer_and_every_refusal_is_one_json_line(library_dir: Path, models, method, path, name, body):
    library = Library(library_dir, lambda: models)
    try:
        answer = library.respond(method, path, {"name": name}, body)
    finally:
        library.close()
    assert 200 <= answer.status < 500
    if answer.status >= 400:
        error = json.loads(answer.body)["error"]
        assert error and "\n" not in error


@pytest.fixture(scope="module")
def library_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with one person and one kept face of each kind, for the fuzzing."""
    folder = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    vectors = [v / np.linalg.norm(v) for v in rng.standard_normal((2, 512)).astype(np.float32)]
    from streamrec.match.store import NewEmbedding

    with Watchlist(folder) as store:
        store.enroll("Ann", [NewEmbedding(vectors[0], "ann.jpg", (0, 0, 1, 1))])
    kept = KeptFaces(folder)
    kept.keep("unknown", "cam", 1, 0.001, np.zeros((8, 8, 3), np.uint8), vectors[1], 0.5)
    kept.keep("match", "cam", 2, 0.002, np.zeros((8, 8, 3), np.uint8), vectors[0], 0.5, "ann", "Ann")
    return folder
