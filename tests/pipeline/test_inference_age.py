"""The inference stage's latencies on one clock: a frame's age comes with its header, measured
by the capture on its own monotonic clock, so a capture host whose wall clock is off (by an
hour here) cannot make a frame look an hour old, or younger than it is."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from streamrec.bus import sockets
from streamrec.bus.messages import FrameHeader, SourceStatus
from streamrec.config.model import RunConfig, SourceConfig
from tests.pipeline.conftest import stepped_inference

AGE_S = 0.25  #: what the capture measured from the capture to the sending


def test_capture_to_detect_adds_the_age_the_header_brought_to_the_time_spent_here(
    faces_dir: Path, engine_dir: Path, tmp_path: Path
):
    bgr = cv2.imread(str(min((faces_dir / "barack_obama").iterdir())))
    assert bgr is not None
    photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    config = RunConfig(sources=[SourceConfig(url="0", name="cam")])
    with stepped_inference(config, tmp_path / "data", engine_dir) as stepped:
        stage = stepped.stage
        sockets.send(stepped.status_out, "status", SourceStatus("cam", "open", time.time(), "640x480"))
        place = stepped.ring.publish(photo)
        assert place is not None
        skewed = time.time() - 3600  # the capture host's wall clock, an hour behind this one's
        sent = time.monotonic()
        header = FrameHeader("cam", 0, skewed, *photo.shape[:2], ring=place[0], slot=place[1], seq=place[2], age=AGE_S)
        sockets.send_frame(stepped.frames_out, header)
        deadline = time.monotonic() + 60
        while not stage.latencies["capture_to_result[cam]"] and time.monotonic() < deadline:
            stage.step()
        spent = time.monotonic() - sent
        [detect] = stage.latencies["capture_to_detect[cam]"]
        [result] = stage.latencies["capture_to_result[cam]"]
    assert AGE_S <= detect <= result <= AGE_S + spent


def test_a_frame_header_counts_its_age_on_from_its_arrival():
    header = FrameHeader.unpack(FrameHeader("cam", 1, 1.0, 4, 4, age=0.5).pack())
    assert header.age == 0.5 and header.age_at(header.received + 2.0) == 2.5
