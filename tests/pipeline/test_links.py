"""Stages linked over TCP, as they would be on several hosts: ``streamrec run`` with every
internal link on a loopback port and the frames' pixels in the frame messages, on a real RTSP
camera, with the people of ../shared/data/faces enrolled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pipeline.conftest import enroll_people, free_port, start_pipeline

LIN = "lin_manuel_miranda"
LINKS = ("frames", "status", "overlays", "events_in", "stats", "monitor", "events_feed", "jpeg_feed")


def _is_lin(event: dict) -> bool:
    return event["type"] == "match" and event["name"] == LIN


def links_config(path: Path, pixels: str, extra: str = "") -> Path:
    """A configuration file with every link on its own loopback port and ``pixels`` frames."""
    lines = ["[links]", *(f'{link} = "tcp://127.0.0.1:{free_port()}"' for link in LINKS), f'frame_pixels = "{pixels}"']
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture(scope="module")
def enrolled(faces_dir: Path, models, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """A new data directory with the people of ../shared/data/faces enrolled (copied from one
    enrolment)."""
    import shutil

    first = tmp_path_factory.mktemp("enrolled") / "data"
    enroll_people(faces_dir, first, models)

    def copy(folder: Path) -> Path:
        return Path(shutil.copytree(first, folder / "data"))

    return copy


@pytest.mark.parametrize("pixels", ["raw", "jpeg"])
def test_every_link_on_tcp_with_the_pixels_in_the_messages_names_the_person(
    rtsp_clip: Path, enrolled: Callable[[Path], Path], tmp_path: Path, pixels: str
):
    config = links_config(tmp_path / "links.toml", pixels)
    pipeline = start_pipeline(rtsp_clip, enrolled(tmp_path), tmp_path, ["--config", str(config)])
    try:
        found = pipeline.events.wait_for(_is_lin, timeout=120)
        assert 0 < found["ts"] - found["capture_ts"] < 5
        run_dir = Path(pipeline.state()["run_dir"])
        assert not list(run_dir.glob("ring-*")), "the frames went through a ring"
        assert not {"frames", "status", "events", "overlays", "stats"} & {p.name for p in run_dir.iterdir()}
    finally:
        pipeline.close()
    assert pipeline.process.returncode == 0, pipeline.log.read_text()[-3000:]
