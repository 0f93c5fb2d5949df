"""Fixtures for the capture tests: the hamilton clip, a camera-like copy of it, RTSP servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rtsp import RtspServer, camera_clip, require_rtsp_server


@pytest.fixture(scope="session")
def hamilton_clip(shared_data: Path) -> Path:
    """10 s of real footage, 640x360 H.264 at 29.97 fps, 275 frames."""
    return shared_data / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="session")
def rtsp_clip(hamilton_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hamilton clip with a 1 s GOP, as the RTSP server serves it."""
    require_rtsp_server()
    return camera_clip(hamilton_clip, tmp_path_factory.mktemp("rtsp_clip"))


@pytest.fixture
def rtsp_server(rtsp_clip: Path, tmp_path: Path) -> Iterator[RtspServer]:
    """A server of this test's own, free to be killed, frozen and restarted."""
    server = RtspServer(rtsp_clip, tmp_path / "rtsp_server.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_rtsp_server(rtsp_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    """One server for the tests of a module that only read from it."""
    server = RtspServer(rtsp_clip, tmp_path_factory.mktemp("rtsp") / "rtsp_server.log").start()
    yield server
    server.stop()
