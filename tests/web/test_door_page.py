"""The door page in a real headless Chromium, fed by real render and web stages: live video
that moves; a name only while its face is on screen and for the hold time after; "Checking"
while a new face is undecided, never the previous person's name; a clear message for a camera
that does not exist; the same on a portrait tablet.

The page's every change of what it shows is recorded in the page itself (a MutationObserver),
so a test can wait for the state it drives the feeds to, then check everything shown on the way.

Needs Debian's ``chromium`` and the ``playwright`` Python package (never ``playwright install``:
the system browser is used). Without them the tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytest

from streamrec.bus.messages import Event
from tests.render.frames import centre_box, face
from tests.support.browser import video_changes
from tests.web.conftest import HOLD_S, OBAMA, TICK_S, Web

if TYPE_CHECKING:  # only for types: without Playwright the browser fixture skips the tests
    from playwright.sync_api import Browser, FloatRect, Page, ViewportSize

WAIT_MS = 20_000  #: for anything the pipeline has to carry from the feeder to the page
UNDECIDED = face(centre_box(640, 360), "...", False, 0.0, track_id=2)
STRANGER = face(centre_box(640, 360), "unknown", False, 0.8, track_id=2)

_RECORD = """() => {
  window.shown = [];
  const panel = document.getElementById("decision");
  const record = () => {
    const entry = document.getElementById("name").textContent;
    if (window.shown[window.shown.length - 1] !== entry) window.shown.push(entry);
  };
  new MutationObserver(record).observe(panel, {attributes: true, childList: true, subtree: true, characterData: true});
  record();
}"""


@pytest.fixture
def door(browser, web: Web) -> Iterator[Web]:  # browser first: skip early
    """The web stage, with Barack Obama (track 1) on screen and decided; the feeder is put back
    as it was afterwards."""
    web.feeder.faces = [OBAMA]
    web.feeder.events = [Event("match", "front", time.time(), track_id=1, person_id="p1", name="Barack Obama", score=0.97)]
    yield web
    web.feeder.faces, web.feeder.events = [OBAMA], []


def _open(browser: Browser, web: Web, query: str, viewport: ViewportSize, first: str = "Barack Obama") -> Page:
    """A page of ``query`` showing the name ``first``, recording what it shows from then on."""
    page = browser.new_page(viewport=viewport)
    page.goto(web.url + "/" + query, wait_until="load")
    _showing(page, first)
    page.evaluate(_RECORD)
    return page


def _box(page: Page, selector: str) -> FloatRect:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not displayed"
    return box


def _shown(page: Page) -> list[str]:
    return page.evaluate("window.shown")


def _logged_page(browser: Browser) -> tuple[Page, list[str]]:
    """A landscape page, and the list of every URL it requests."""
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    return page, requested


def _video_plays(page: Page) -> None:
    page.wait_for_function("document.getElementById('video').naturalWidth === 640", timeout=WAIT_MS)


def _showing(page: Page, name: str) -> None:
    """Wait until the page shows ``name`` in large type."""
    page.wait_for_function(f"document.getElementById('name').textContent === {json.dumps(name)}", timeout=WAIT_MS)


def test_the_door_page_shows_live_video_and_who_is_at_the_door(door: Web, browser):
    page, requested = _logged_page(browser)
    try:
        page.goto(door.url + "/?source=front", wait_until="load")
        _video_plays(page)
        _showing(page, "Barack Obama")
        assert page.get_attribute("#decision", "data-state") == "match"
        assert "front" in page.inner_text("#detail")
        first, second = video_changes(page.locator("#video"))
        assert first.std() > 20, "the video region is blank"
        assert second.shape == first.shape and np.abs(second - first).mean() > 5, "the video did not change"
    finally:
        page.close()
    assert requested and all(url.startswith(door.url + "/") for url in requested), "the page must load nothing from elsewhere"


def test_a_new_face_is_checked_never_greeted_with_the_last_name(door: Web, browser):
    page = _open(browser, door, "?source=front", {"width": 1024, "height": 768})
    try:
        door.feeder.faces = [UNDECIDED]  # Obama walks out as someone walks in
        _showing(page, "Checking\u2026")
        assert page.get_attribute("#decision", "data-state") == "checking"
        door.feeder.events = [*door.feeder.events, Event("unknown", "front", time.time(), track_id=2, score=0.8)]
        door.feeder.faces = [STRANGER]
        _showing(page, "Unknown")
        assert page.get_attribute("#decision", "data-state") == "unknown"
        assert _shown(page) == ["Barack Obama", "Checking\u2026", "Unknown"]
    finally:
        page.close()


def test_a_name_lasts_as_long_as_its_face_then_the_hold_time(door: Web, browser):
    page = _open(browser, door, "?source=front", {"width": 1024, "height": 768})
    try:
        # 3 x the hold time of frames with him on screen (the frame index counts them), and the
        # page done with a poll after that (polls follow one another): his name all along
        index = _frame_index(door)
        door.wait_for("/api/state", lambda _, body: _frame_index_in(body) >= index + round(3 * HOLD_S / TICK_S))
        for _ in range(2):
            page.wait_for_event("response", lambda response: "/api/state" in response.url, timeout=WAIT_MS)
        assert _shown(page) == ["Barack Obama"]
        left = time.monotonic()
        door.feeder.faces = []
        _showing(page, "Waiting for a face")
        assert time.monotonic() - left < HOLD_S + 10, "the name stayed long after the face left"
        assert _shown(page) == ["Barack Obama", "Waiting for a face"]
    finally:
        page.close()


def _frame_index_in(body: bytes) -> int:
    frame = json.loads(body)["sources"][0]["frame"]
    return -1 if frame is None else int(frame["index"])


def _frame_index(web: Web) -> int:
    return _frame_index_in(web.wait_for("/api/state", lambda status, body: status == 200 and _frame_index_in(body) >= 0))


def test_an_unknown_camera_gets_a_list_of_the_cameras(door: Web, browser):
    page, requested = _logged_page(browser)
    try:
        page.goto(door.url + "/?source=nope", wait_until="load")
        _showing(page, "No such camera")
        assert page.inner_text("#missing") == "There is no camera named \u201cnope\u201d. Cameras:"
        assert page.locator("#cameras a").all_inner_texts() == ["front", "side"]
        assert page.locator("#video").is_hidden() and page.locator("#message").is_visible()
        assert not [url for url in requested if "stream.mjpg" in url], "no video asked of a camera that is not there"
        page.click("#cameras a >> text=front")
        _video_plays(page)
        assert page.url.endswith("/?source=front") and page.locator("#message").is_hidden()
    finally:
        page.close()


def test_a_portrait_tablet_shows_video_and_a_long_name_whole(door: Web, browser):
    long_name = "Maria del Carmen Fernández-Rodríguez de la Concepción"
    door.feeder.faces = [face(centre_box(640, 360), long_name, True, 0.97, track_id=3)]
    door.feeder.events = [Event("match", "front", time.time(), track_id=3, person_id="p3", name=long_name, score=0.97)]
    width, height = 800, 1280
    page = _open(browser, door, "?source=front", {"width": width, "height": height}, first=long_name)
    try:
        _video_plays(page)
        video, name, detail = (_box(page, selector) for selector in ("#video", "#name", "#detail"))
        assert video["width"] == width and video["height"] > 400, video
        for box in (name, detail):
            assert 0 <= box["x"] and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, box
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
        assert page.evaluate("document.documentElement.scrollHeight") <= height, "the page scrolls"
    finally:
        page.close()


def _access(result: str, **fields: object) -> Event:
    """An access event about Barack Obama's track 1 at the door ``front``, asking him to turn left."""
    return Event("access", "front", time.time(), track_id=1, person_id="p1", name="Barack Obama", result=result,  # type: ignore[arg-type]
                 direction="left", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("viewport", [{"width": 1024, "height": 768}, {"width": 800, "height": 1280}], ids=["landscape", "portrait tablet"])
def test_a_challenge_asks_with_an_arrow_shows_no_name_then_the_answer(door: Web, browser, viewport: ViewportSize):
    page = _open(browser, door, "?source=front", viewport)
    try:
        challenge = _access("challenge")
        # someone else is named while Obama is challenged: the page must not show it
        biden = face(centre_box(640, 360), "Joe Biden", True, 0.95, track_id=4)
        door.feeder.faces = [OBAMA, biden]
        door.feeder.events = [*door.feeder.events, challenge, Event("match", "front", time.time(), track_id=4, person_id="p4", name="Joe Biden", score=0.95)]
        _showing(page, "Turn your head left")
        assert page.get_attribute("#decision", "data-state") == "challenge"
        assert page.inner_text("#arrow") == "\u2190" and page.inner_text("#detail") == ""
        width, height = viewport["width"], viewport["height"]
        for selector in ("#arrow", "#name", "#video"):
            box = _box(page, selector)
            assert 0 <= box["x"] and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (selector, box)
        assert _box(page, "#arrow")["height"] > height / 10, "the arrow is not large"
        assert page.evaluate("document.documentElement.scrollHeight") <= height, "the page scrolls"
        # two polls later, still the challenge: Biden's match arrived and is not shown
        for _ in range(2):
            page.wait_for_event("response", lambda response: "/api/state" in response.url, timeout=WAIT_MS)
        door.feeder.events = [*door.feeder.events, _access("granted", detail="asked left from +1 deg: moved 22 deg that way")]
        _showing(page, "GRANTED")
        assert page.get_attribute("#decision", "data-state") == "granted"
        assert page.inner_text("#detail") == "Barack Obama" and page.locator("#arrow").is_hidden()
        # (after the hold time the door shows who is on screen again: Biden, the challenge being over)
        assert _shown(page)[:3] == ["Barack Obama", "Turn your head left", "GRANTED"]
    finally:
        page.close()


def test_a_denial_gives_the_reason_and_no_name(door: Web, browser):
    page = _open(browser, door, "?source=front", {"width": 1024, "height": 768})
    try:
        door.feeder.events = [*door.feeder.events, _access("challenge"), _access("denied", reason="no_movement")]
        _showing(page, "DENIED")
        assert page.get_attribute("#decision", "data-state") == "denied"
        assert page.inner_text("#detail") == "no head movement"
        assert "Obama" not in page.inner_text("#decision")
    finally:
        page.close()
