"""The doors of an inference stage: which tracks are embedded eagerly, the events of a challenge
and its answer, and the record of open challenges they keep."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from streamrec.bus.messages import Event, FrameHeader
from streamrec.config.model import DoorConfig, RunConfig, SourceConfig
from streamrec.door.doors import Doors
from streamrec.track.identity import Observation
from streamrec.track.tracker import Track
from tests.door.test_access import face


def _doors(tmp_path: Path) -> tuple[Doors, list[Event]]:
    config = RunConfig(
        sources=[SourceConfig(url="0", name="front", role="door"), SourceConfig(url="1", name="hall")],
        door=DoorConfig(challenge="right"),
    )
    sent: list[Event] = []
    return Doors(config, tmp_path / "door-challenges", sent.append, logging.getLogger("test")), sent


def _track(track_id: int, ts: float, yaw: float = 0.0) -> Track:
    return Track(track_id, np.array([20, 30, 80, 90], np.float32), face(yaw), 0.99, 0.0, ts)


def test_a_door_embeds_its_unanswered_tracks_eagerly_and_a_camera_never(tmp_path: Path) -> None:
    doors, _ = _doors(tmp_path)
    track = _track(1, 0.0)
    assert doors.eager("front", track) and not doors.eager("hall", track)
    track.state.embeddings = 12  # [tracker] max_embeddings: a stranger is not embedded for ever
    assert not doors.eager("front", track)


def test_a_challenge_and_its_answer_are_events_and_the_record_follows_them(tmp_path: Path) -> None:
    doors, sent = _doors(tmp_path)
    ann = Observation("ann", "Ann", 0.7, 1.0, 1.3)
    for index in range(2):
        ts = index / 10
        track = _track(1, ts)
        doors.frame(FrameHeader("front", index, ts, 360, 640), [track])
        doors.embedded("front", track, FrameHeader("front", index, ts, 360, 640), ann)
    assert [(e.type, e.result, e.direction, e.name, e.track_id) for e in sent] == [("access", "challenge", "right", "Ann", 1)]
    assert [c["track_id"] for c in json.loads((tmp_path / "door-challenges").read_text())] == [1]
    assert doors.eager("front", _track(2, 0.2))  # a face waiting for its turn keeps recent embeddings
    doors.ended("front", track)
    assert [(e.result, e.reason) for e in sent[1:]] == [("denied", "track_lost")]
    assert json.loads((tmp_path / "door-challenges").read_text()) == []


def test_a_predecessors_open_challenge_is_denied_and_an_unreadable_record_replaced(tmp_path: Path, caplog) -> None:
    doors, sent = _doors(tmp_path)
    record = tmp_path / "door-challenges"
    record.write_text(json.dumps([{"source": "front", "track_id": 7, "person_id": "ann", "name": "Ann", "direction": "left",
                                   "baseline": 2.0, "started": 1.0, "deadline": 5.0}]))
    doors.start()
    assert [(e.result, e.reason, e.track_id) for e in sent] == [("denied", "restarted", 7)]
    assert json.loads(record.read_text()) == []
    record.write_text("[{")  # a damaged record: its challenges can only stay unanswered, never granted
    again, sent_again = _doors(tmp_path)
    again.start()
    assert sent_again == [] and json.loads(record.read_text()) == []
    assert "unreadable record of open challenges" in caplog.text
