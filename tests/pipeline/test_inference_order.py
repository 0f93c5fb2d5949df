"""The inference stage, driven step by step in this process on real sockets, a real frame ring
and the real models: a source's status reaches the journal before the decisions made on the
frames that followed it, although statuses and frames travel on different sockets."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import cv2

from streamrec.bus import sockets
from streamrec.bus.messages import Event, FrameHeader, SourceStatus
from streamrec.config.model import RunConfig, SourceConfig
from tests.pipeline.conftest import enroll_people, stepped_inference


def _waiting_for_frames(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside the stage's wait for frames."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == "drain_frames":
            return True
        frame = frame.f_back
    return False


def test_a_status_sent_before_a_frame_is_journaled_before_its_decision(faces_dir: Path, models, engine_dir: Path, tmp_path: Path):
    person = faces_dir / "barack_obama"
    data_dir = tmp_path / "data"
    watchlist = tmp_path / "faces"
    shutil.copytree(person, watchlist / person.name)
    enroll_people(watchlist, data_dir, models)
    bgr = cv2.imread(str(min(person.iterdir())))
    assert bgr is not None
    photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # an enrolled face: a sure match

    config = RunConfig(sources=[SourceConfig(url="0", name="cam")])
    # the stage waits for frames long enough for the test to send while it does: ten times longer
    # than a configuration may ask for (a second), hence a copy that is not checked again
    config = config.model_copy(update={"batch": config.batch.model_copy(update={"max_wait_ms": 10_000})})
    with stepped_inference(config, data_dir, engine_dir) as stepped:
        stage, events_in, frames_out, status_out, ring = (
            stepped.stage, stepped.events_in, stepped.frames_out, stepped.status_out, stepped.ring)

        worker = threading.Thread(target=stage.step)
        worker.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_frames(worker):
            assert worker.is_alive() and time.monotonic() < deadline, "the stage never waited for frames"
            time.sleep(0.01)
        # what a capture does when its camera opens: the status, then the first frame
        sockets.send(status_out, "status", SourceStatus("cam", "open", time.time(), "640x480"))
        place = ring.publish(photo)
        assert place is not None
        height, width = photo.shape[:2]
        sockets.send_frame(frames_out, FrameHeader("cam", 0, time.time(), height, width, ring=place[0], slot=place[1], seq=place[2]))
        worker.join(30)
        assert not worker.is_alive()
        events: list[Event] = []
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            stage.step()  # a status still waiting is handled now, at the latest
            messages, _ = sockets.receive_pending(events_in, 100)
            events += [message for _, message, _ in messages if isinstance(message, Event)]
    assert [(e.type, e.name) for e in events[:2]] == [("source_status", None), ("match", person.name)], events
