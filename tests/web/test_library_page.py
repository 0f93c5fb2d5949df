"""The face library page in Debian's Chromium, against a running pipeline: ``streamrec run`` as a
real process on a real RTSP camera playing the hamilton clip, starting with an empty watchlist.

One story, in order: log in (when the server asks for it), enroll people by uploading photos,
see an unknown face from the camera appear and enroll it in one click, mark a match "not this
person" and see the next decision on that face change, and delete a person and find nothing of
theirs left on disk. It runs open, as on loopback by default, and behind a login
(``[auth] require_on_loopback``), where every change the page makes carries the CSRF token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from streamrec.config.model import MatcherConfig
from streamrec.events.journal import read_journal
from streamrec.match.kept import KeptFaces
from streamrec.match.matcher import Matcher
from streamrec.match.store import Watchlist
from tests.conftest import run_cli
from tests.pipeline.conftest import Pipeline, start_pipeline
from tests.support.wait import wait_until

if TYPE_CHECKING:  # only for types: without Playwright the browser fixture skips the tests
    from playwright.sync_api import Browser, Page

LIN, LIN_ID = "Lin-Manuel Miranda", "lin-manuel-miranda"
VISITOR, VISITOR_ID = "Visitor Kit", "visitor-kit"


#: a face kept by an earlier run, past [privacy] unknown_days (30)
OLD_FACE_DAYS = 31


USER, PASSWORD = "ann", "library-keeper-2026"


@pytest.fixture(params=["open", "login"])
def running(request: pytest.FixtureRequest, browser, rtsp_clip: Path, tmp_path: Path) -> Iterator[Pipeline]:  # browser first: skip early
    options: list[str] = []
    if request.param == "login":
        added = run_cli("users", "add", USER, "--data-dir", str(tmp_path / "data"), "--password-stdin",
                        input=f"{PASSWORD}\n", timeout=60)
        assert added.returncode == 0, added.stderr
        config = tmp_path / "login.toml"
        config.write_text("[auth]\nrequire_on_loopback = true\n")
        options = ["--config", str(config)]
    old = np.zeros(512, np.float32)
    old[0] = 1.0
    kept = KeptFaces(tmp_path / "data").keep("unknown", "cam", 1, time.time() - OLD_FACE_DAYS * 86400,
                                              np.zeros((8, 8, 3), np.uint8), old, 0.5)
    assert kept is not None and kept.jpeg.exists()
    pipeline = start_pipeline(rtsp_clip, tmp_path / "data", tmp_path, options)
    try:
        yield pipeline
    finally:
        pipeline.close()


def log_in(page: Page, base: str) -> None:
    """Open ``/faces``, through the login form when the server shows it (status 401)."""
    opened = page.goto(base + "/faces", wait_until="load")
    assert opened is not None
    if opened.status == 401:
        page.fill("#user", USER)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/faces", timeout=20_000)
        assert page.evaluate("document.cookie").count("streamrec_csrf=") == 1
    else:
        assert opened.status == 200


def _with_log(what: str, pipeline: Pipeline) -> Callable[[], str]:
    """``what`` was awaited, and how the pipeline's log ends, read when a wait fails."""
    return lambda: f"{what} (the log ends:\n{pipeline.log.read_text()[-3000:]}\n)"


def _said(page: Page, text: str) -> None:
    status = page.locator("#status")
    status.filter(has_text=text).wait_for(timeout=120_000)
    assert "error" not in (status.get_attribute("class") or "")


def _person(page: Page, person_id: str):
    return page.locator(f'[data-person="{person_id}"]')


def _enroll_by_upload(page: Page, faces_dir: Path) -> None:
    page.fill("#new-name", LIN)
    page.set_input_files("#new-photo", str(faces_dir / "lin_manuel_miranda" / "1.png"))
    page.click("#add-person")
    _said(page, f"Added {LIN}")
    page.fill("#new-name", VISITOR)
    page.set_input_files("#new-photo", str(faces_dir / "kit_harington" / "1.jpg"))
    page.click("#add-person")
    _said(page, f"Added {VISITOR}")
    _person(page, VISITOR_ID).locator(".add-photo").set_input_files(str(faces_dir / "kit_harington" / "2.jpg"))
    _said(page, f"Added a photo of {VISITOR}")
    assert _person(page, VISITOR_ID).locator("img").count() == 2
    assert _person(page, LIN_ID).locator("img").count() == 1


def _assign_an_unknown_face(page: Page, pipeline: Pipeline) -> None:
    """Enroll, as the visitor, an unknown face of someone in the clip other than Lin."""
    kept, matcher = KeptFaces(pipeline.data_dir), Matcher(pipeline.data_dir, threshold=1.0)

    def a_stranger() -> str | None:
        faces = kept.recent("unknown")
        found = [f for f in faces if matcher.match(f.vector[None])[0].person_id is None]
        return found[0].id if found else None

    wait_until(a_stranger, 120, _with_log("an unknown face of someone not enrolled", pipeline), every=0.2)
    face = a_stranger()  # one of those found: any will do
    assert face is not None
    card = page.locator(f'#unknown [data-face="{face}"]')
    card.wait_for(timeout=30_000)  # the page shows it (it refreshes itself)
    card.locator("select").select_option(VISITOR_ID)
    card.locator(".assign").click()
    _said(page, f"Enrolled the face for {VISITOR}")
    assert page.locator(f'#unknown [data-face="{face}"]').count() == 0
    _person(page, VISITOR_ID).locator("img").nth(2).wait_for()
    assert kept.get(face) is None


def _mark_not_this_person(page: Page, pipeline: Pipeline) -> None:
    """Mark the matches of Lin on the page "not this person", round after round as a user would
    while he is still named: soon a new track of his face is decided unknown, and it is a
    negative that made it so. One negative reaches only the views that look more like it than
    like his photo (docs/watchlist.md), and which views start a track depends on the frames the
    machine had time for, so how many rounds that takes varies; a track named stays named."""
    cards = page.locator("#matches .card", has_text=LIN)
    # the threshold the pipeline matches at
    matcher, kept = Matcher(pipeline.data_dir, MatcherConfig().threshold), KeptFaces(pipeline.data_dir)
    marked, rounds = 0, []
    deadline = time.monotonic() + 300

    def vetoed_track(after: int) -> int | None:
        for face in kept.recent("unknown"):
            if face.track_id > after and matcher.match(face.vector[None])[0].vetoed == LIN_ID:
                return face.track_id
        return None

    cards.first.wait_for(timeout=120_000)
    last_track, track = 0, None
    while track is None:
        if cards.count():  # he was named (again): a round of marking
            last_track = max(((e.get("track_id") or 0) for e in pipeline.events.drain()), default=0)
            rounds.append(0)
            while cards.count() and rounds[-1] < 10:
                cards.first.locator(".not-this-person").click()
                rounds[-1] += 1
                _said(page, f"Marked: not {LIN}")
                page.locator("#status").evaluate("node => node.textContent = ''")
            marked += rounds[-1]
            with Watchlist(pipeline.data_dir) as store, store.read() as view:
                assert len(view.negatives(LIN_ID)) == marked
        track = vetoed_track(last_track)  # tracks begun before the latest round do not count
        assert track or time.monotonic() < deadline, (
            f"no new track of Lin's face decided unknown by a negative; marked in rounds: {rounds}; "
            f"log:\n{pipeline.log.read_text()[-3000:]}")
        time.sleep(0.2)
    decisions = [e["type"] for e in pipeline.events.drain()
                 if e.get("track_id") == track and e["type"] in ("match", "unknown")]
    assert decisions[0] == "unknown" and "match" not in decisions, decisions


def _delete_and_find_nothing(page: Page, pipeline: Pipeline) -> None:
    with Watchlist(pipeline.data_dir) as store, store.read() as view:
        photos = [Path(e.image) for e in view.embeddings(LIN_ID)]
        lin = view.vectors_of(np.array([e.id for e in view.embeddings(LIN_ID)])).vectors
    assert photos and all(p.exists() for p in photos)
    named = {e["track_id"] for e in pipeline.events.drain()
             if e["type"] == "match" and e["person_id"] == LIN_ID}
    page.once("dialog", lambda dialog: dialog.accept())
    _person(page, LIN_ID).locator(".delete-person").click()
    _said(page, f"Deleted {LIN}")
    assert _person(page, LIN_ID).count() == 0

    def ended() -> bool:  # tracks named Lin still open when he was erased end with his id only
        return named <= {e["track_id"] for e in pipeline.events.drain() if e["type"] == "track_end"}

    wait_until(ended, 60, _with_log("the tracks named Lin ended", pipeline), every=0.2)
    with Watchlist(pipeline.data_dir) as store, store.read() as view:
        assert view.person(LIN_ID) is None and view.negatives(LIN_ID) == []
    assert not [p for p in photos if p.exists()]
    kept = KeptFaces(pipeline.data_dir)
    assert not [f for f in kept.recent("match", 10_000) if f.person_id == LIN_ID]
    near = [f.id for f in kept.recent("unknown", 10_000) if np.linalg.norm(lin - f.vector, axis=1).min() < MatcherConfig().threshold]
    assert not near, "unknown crops of Lin's face are left"
    journal = [e for e in read_journal(pipeline.data_dir / "events") if e.get("person_id") == LIN_ID]
    assert journal and {e["name"] for e in journal} == {LIN_ID}
    traces = [LIN.encode(), *(v.astype("<f4").tobytes()[:64] for v in lin)]
    for path in pipeline.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [t for t in traces if t in data], f"{path} still holds {LIN}'s name or embedding"
    state = json.loads((pipeline.data_dir / "run.json").read_text())
    assert state["stages"]  # the pipeline ran throughout


def test_the_face_library_against_a_running_pipeline(running: Pipeline, browser: Browser, faces_dir: Path):
    base = f"http://{running.http}"
    page = browser.new_page()
    try:
        log_in(page, base)

        def old_face_pruned() -> bool:
            """The running pipeline removed the face an earlier run kept past its days."""
            month_ago = time.time() - 30 * 86400
            return not any(f.ts < month_ago for f in KeptFaces(running.data_dir).recent("unknown", 10_000))

        wait_until(old_face_pruned, 60, _with_log("the old face pruned", running), every=0.2)
        _enroll_by_upload(page, faces_dir)
        _assign_an_unknown_face(page, running)
        _mark_not_this_person(page, running)
        _delete_and_find_nothing(page, running)
    finally:
        page.close()
