"""Headless Chromium for page tests, driven by Playwright with Debian's own browser.

Needs Debian's ``chromium`` (``tools/system-deps`` installs it) and the ``playwright`` Python
package (never ``playwright install``: the system browser is used). Without them a test skips,
or fails when ``CI`` is set (:mod:`tests.support.needs`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from tests.support.needs import missing, require

__all__ = ["CHROMIUM_ARGS", "browser", "pixels", "video_changes"]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium (Playwright gives it a fresh temporary profile, --user-data-dir)."""
    require("chromium")
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed (make setup installs it; the system Chromium is used)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def pixels(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable screenshot"
    return image.astype(int)


def video_changes(video, tries: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Two screenshots of the video some time apart, the second taken once it differs."""
    first = pixels(video.screenshot())
    for _ in range(tries):
        time.sleep(0.25)
        second = pixels(video.screenshot())
        if second.shape == first.shape and np.abs(second - first).mean() > 5:
            break
    return first, second


