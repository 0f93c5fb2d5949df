"""MJPEG over HTTP, as IP cameras serve it: read through the same reader, and lose the server."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from streamrec.capture import FrameReader, LatestFrame, ReaderOptions, State
from tests.capture.recorder import StatusLog
from tests.support.mjpeg import serve_mjpeg


def test_reads_mjpeg_over_http(hamilton_clip: Path) -> None:
    log = StatusLog()
    with serve_mjpeg(hamilton_clip) as url:
        started = time.monotonic()
        frames = list(itertools.islice(FrameReader(url.replace("//", "//viewer:pw@"), on_status=log), 30))
        elapsed = time.monotonic() - started
    assert [frame.index for frame in frames] == list(range(30))
    assert frames[0].rgb.shape == (360, 640, 3) and frames[0].rgb.dtype == np.uint8
    assert frames[0].source == url  # no credentials in the label
    assert elapsed > 0.5  # served live at 30 fps, not as fast as it can be read
    # Multipart streams carry no timestamps (FFmpeg would invent 25 fps ones): none are given.
    assert all(frame.stream_time is None for frame in frames)
    assert log.of(State.OPEN)[0].reason == "640x360"


def test_lost_http_camera_is_reported_and_retried(hamilton_clip: Path) -> None:
    log = StatusLog()
    options = ReaderOptions(read_timeout=1.0, backoff_base=0.1, backoff_max=0.5)
    with serve_mjpeg(hamilton_clip) as url:
        latest = LatestFrame(FrameReader(url, options, on_status=log)).start()
        assert latest.get(timeout=10) is not None
    try:
        lost = log.wait_for(State.LOST, timeout=5)
        retry = log.wait_for(State.RECONNECTING, after=lost.time, count=2, timeout=5)
    finally:
        latest.stop(timeout=5)
    assert "cannot open" in retry.reason
    assert log.statuses[-1].state is State.STOPPED
