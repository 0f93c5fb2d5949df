"""The door page in a real headless Chromium: live video that moves, and the last decision
shown by name, without reloading the page.

Needs Debian's ``chromium`` and the ``playwright`` Python package (never ``playwright install``:
the system browser is used). Without them the test skips, or fails when ``CI`` is set.
"""

from __future__ import annotations

import time

import numpy as np

from streamrec.bus.messages import Event
from tests.support.browser import video_changes
from tests.web.conftest import Web


def test_the_door_page_shows_live_video_and_who_is_at_the_door(browser, web: Web):  # browser first: skip early
    now = time.time()
    web.feeder.events = [Event("match", "front", now - 1, track_id=9, person_id="p1", name="Barack Obama", score=0.97, seq=11)]
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(web.url + "/?source=front", wait_until="load")
        page.wait_for_function("document.getElementById('video').naturalWidth === 640", timeout=20_000)
        page.wait_for_function("document.getElementById('name').textContent === 'Barack Obama'", timeout=20_000)
        assert "front" in page.inner_text("#detail")
        assert "known" in page.get_attribute("#decision", "class")
        first, second = video_changes(page.locator("#video"))
        assert first.std() > 20, "the video region is blank"
        assert second.shape == first.shape and np.abs(second - first).mean() > 5, "the video did not change"
        # a later decision replaces the name, without reloading
        web.feeder.events = [*web.feeder.events, Event("unknown", "front", now, track_id=10, score=0.8, seq=12)]
        page.wait_for_function("document.getElementById('name').textContent === 'Unknown'", timeout=20_000)
        assert page.get_attribute("#decision", "class").split() == ["unknown"]
    finally:
        page.close()
    assert requested and all(url.startswith(web.url + "/") for url in requested), "the page must load nothing from elsewhere"
