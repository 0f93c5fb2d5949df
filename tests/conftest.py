"""Shared fixtures: the real data in ../shared/data, built engines, the loaded models.

Tests that need ``../shared/data`` skip with the reason when it is absent, and fail instead when
the ``CI`` environment variable is set: CI always has the data, so a skip there would hide a
broken set-up.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.browser import browser  # noqa: F401 - a shared fixture
from tests.support.needs import unavailable
from tests.support.rtsp import RtspServer, camera_clip, require_rtsp_server

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _need(path: Path, what: str) -> Path:
    """``path`` when it exists, else skip saying where the data should be (fail under ``CI``)."""
    if path.exists():
        return path
    unavailable(f"{what} not found at {path} "
                "(the shared test data sits beside the project as ../shared/data)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real face photos, the hamilton clip, LFW View 1."""
    return _need(SHARED_DATA, "shared test data")


def _shared_folder(fixture: str, folder: str, what: str) -> Callable[[Path], Path]:
    """The session fixture ``fixture``: ``folder`` of ``../shared/data``, through :func:`_need`, so
    that a test skips (fails under ``CI``) saying that ``what`` is missing."""

    def find(shared_data: Path) -> Path:
        return _need(shared_data / folder, what)

    find.__doc__ = f"``../shared/data/{folder}``: {what}."
    return pytest.fixture(scope="session", name=fixture)(find)


faces_dir = _shared_folder("faces_dir", "faces", "face photos, one folder a person")
lfw_view1 = _shared_folder("lfw_view1", "lfw_view1", "LFW View 1")
faces_cropped = _shared_folder("faces_cropped", "faces_cropped", "face photos cropped to the face")
scenes = _shared_folder("scenes", "scenes", "photos of several people, small and large faces")
nonfaces = _shared_folder("nonfaces", "nonfaces", "photos with no face in them")
edge_cases = _shared_folder("edge_cases", "edge_cases", "partial or tiny faces, odd formats, broken files")


@pytest.fixture(scope="session")
def engine_dir() -> Path:
    """The project's engines, built on first use exactly as the commands do."""
    from streamrec.engines import ensure_engines

    return ensure_engines(report=lambda line: print(line, file=sys.stderr))


@pytest.fixture(scope="session")
def models(engine_dir: Path):
    """Detector and embedder with every default, as the CLI uses them."""
    from streamrec.faces import FaceModels

    return FaceModels(engine_dir=engine_dir)


def cli_command() -> list[str]:
    """How to start ``streamrec``: the installed script if it is on PATH, else this Python."""
    exe = shutil.which("streamrec")
    return [exe] if exe else [sys.executable, "-m", "streamrec"]


def run_cli(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run the ``streamrec`` command as a real process; returns the finished process."""
    return subprocess.run([*cli_command(), *args], check=False, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def hamilton_clip(shared_data: Path) -> Path:
    """10 s of real footage, 640x360 H.264 at 29.97 fps, 275 frames."""
    return _need(shared_data / "video" / "short_hamilton_clip.mp4", "the hamilton clip")


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
