"""The inference stage, driven step by step in this process on real sockets, a real frame ring
and the real models: a person erased while one of their tracks is open is not named again when
that track ends, and the face that named them is kept for the face library, then erased."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2

from streamrec.bus import sockets
from streamrec.bus.messages import Event, FrameHeader, SourceStatus
from streamrec.config.model import RunConfig, SourceConfig
from streamrec.match.erase import erase_person
from streamrec.match.kept import KeptFaces
from streamrec.match.store import Watchlist
from tests.pipeline.conftest import enroll_people, stepped_inference


def test_a_track_of_a_person_erased_meanwhile_ends_under_their_id(faces_dir: Path, models, engine_dir: Path, tmp_path: Path):
    person = faces_dir / "barack_obama"
    data_dir = tmp_path / "data"
    shutil.copytree(person, tmp_path / "faces" / person.name)
    enroll_people(tmp_path / "faces", data_dir, models)
    bgr = cv2.imread(str(min(person.iterdir())))
    assert bgr is not None
    photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    events: list[Event] = []

    def step_until(test, what: str) -> Event:
        deadline = time.monotonic() + 30
        while not [e for e in events if test(e)]:
            assert time.monotonic() < deadline, f"{what}: not within 30 s; got {events}"
            stepped.stage.step()
            messages, _ = sockets.receive_pending(stepped.events_in, 50)
            events.extend(message for _, message, _ in messages if isinstance(message, Event))
        return next(e for e in events if test(e))

    with stepped_inference(RunConfig(sources=[SourceConfig(url="0", name="cam")]), data_dir, engine_dir) as stepped:
        status_out, frames_out, ring = stepped.status_out, stepped.frames_out, stepped.ring
        sockets.send(status_out, "status", SourceStatus("cam", "open", time.time(), "640x480"))
        place = ring.publish(photo)
        assert place is not None
        sockets.send_frame(frames_out, FrameHeader("cam", 0, time.time(), *photo.shape[:2], ring=place[0], slot=place[1], seq=place[2]))
        match = step_until(lambda e: e.type == "match", "a match")
        assert (match.person_id, match.name) == ("barack-obama", "barack_obama")
        kept = KeptFaces(data_dir)
        (face,) = kept.recent("match")
        assert (face.track_id, face.person_id) == (match.track_id, "barack-obama") and face.jpeg.exists()
        with Watchlist(data_dir) as store:
            erased = erase_person(store, "barack-obama")
        assert erased.kept_faces == 1 and not face.jpeg.exists()
        sockets.send(status_out, "status", SourceStatus("cam", "ended", time.time(), "end of file"))
        ended = step_until(lambda e: e.type == "track_end", "the track's end")
    assert (ended.track_id, ended.person_id, ended.name) == (match.track_id, "barack-obama", "barack-obama")
