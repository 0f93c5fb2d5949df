"""The access decision of one door, fed as the inference stage feeds it: every outcome and reason.

Faces here are landmarks made for a given yaw (the real estimate is tested on real faces in
test_yaw.py, and the whole decision on real footage in test_door_pipeline.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from streamrec.config.model import DoorConfig, MatcherConfig
from streamrec.door.access import AccessOutcome, DoorAccess, Evidence, OpenChallenges
from streamrec.door.yaw import NOSE_DEPTH, yaw_degrees
from streamrec.track.identity import Observation

FPS = 10.0


def face(yaw: float, dx: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Landmarks of an upright face turned ``yaw`` degrees (positive: the person's left)."""
    nose = 50 + 40 * NOSE_DEPTH * math.sin(math.radians(yaw))
    points = np.array([[30, 40], [70, 40], [nose, 60], [35, 80], [65, 80]], np.float64)
    return points * scale + dx


class Door:
    """A door with one face on track 1, driven frame by frame at ``FPS``."""

    def __init__(self, **settings: object) -> None:
        config = DoorConfig.model_validate({"challenge": "left", **settings})
        self.access = DoorAccess("front", config, MatcherConfig())
        self.ts = 0.0
        self.outcomes: list[AccessOutcome] = []

    def show(self, yaw: float, track: int = 1, **move: float) -> None:
        self.outcomes += self.access.frame(self.ts, {track: face(yaw, **move)}, now=self.ts)
        self.ts += 1 / FPS

    def embed(self, person: str | None = "ann", distance: float = 0.7, track: int = 1) -> None:
        evidence = Evidence(track, self.ts, Observation(person, person, distance, 1.0, 1.3))
        self.outcomes += self.access.evidence(evidence)

    def recognise(self, yaw: float = 0.0) -> None:
        for _ in range(2):
            self.show(yaw)
            self.embed()
        assert [o.result for o in self.outcomes] == ["challenge"]

    def results(self) -> list[tuple[str, str | None]]:
        return [(o.result, o.reason) for o in self.outcomes]


def test_yaw_helper_makes_the_yaw_asked() -> None:
    assert yaw_degrees(face(20)) == pytest.approx(20)


def test_a_turn_the_asked_way_confirmed_by_an_embedding_is_granted() -> None:
    door = Door()
    door.recognise()
    challenge = door.outcomes[0].challenge
    assert (challenge.person_id, challenge.direction, challenge.track_id) == ("ann", "left", 1)
    for yaw in (0, 5, 12, 20, 22):
        door.show(yaw)
    assert door.results() == [("challenge", None)]  # turned, but nothing confirmed who turned
    door.embed(distance=0.88)  # a turned face is farther from its photos: the camera's rules apply
    door.show(22)
    assert door.results() == [("challenge", None), ("granted", None)]


def test_an_embedding_before_the_turn_confirms_nothing() -> None:
    """The face may be swapped between its last embedding and the turn (a photo of the person,
    then someone else's head): only an embedding of the turned face confirms who turned."""
    door = Door()
    door.recognise()
    door.embed()
    for yaw in (0, 10, 20, 25):
        door.show(yaw)
    assert door.results() == [("challenge", None)]
    door.embed(person=None, distance=1.3)  # the turned face is nobody enrolled
    for _ in range(40):
        door.show(25)
    assert door.results()[-1] == ("denied", "unconfirmed")


def test_a_turn_the_other_way_is_denied() -> None:
    door = Door(challenge="right")
    door.recognise()
    door.embed()
    for yaw in (0, 8, 16, 24):
        door.show(yaw)
    assert door.results()[-1] == ("denied", "wrong_direction")


def test_a_photo_moved_and_scaled_is_denied_for_not_moving() -> None:
    door = Door()
    door.recognise(yaw=3)
    for step in range(60):
        door.show(3, dx=step * 4.0, scale=1 + step / 30)
        door.embed()
    assert door.results()[-1] == ("denied", "no_movement")


@pytest.mark.parametrize(
    "yaw, embedded, reason",
    [(10, True, "timeout"), (30, False, "unconfirmed")],
    ids=["a small turn", "a turn nobody confirmed"],
)
def test_time_running_out_denies(yaw: float, embedded: bool, reason: str) -> None:
    door = Door()
    door.recognise()
    for _ in range(50):
        door.show(yaw)
        if embedded:
            door.embed()
    assert door.results()[-1] == ("denied", reason)


def test_an_embedding_naming_someone_else_denies() -> None:
    door = Door()
    door.recognise()
    door.embed(person="bob")
    door.show(30)
    assert door.results()[-1] == ("denied", "identity_changed")
    assert door.access.running is None


def test_the_track_ending_denies_and_the_next_track_is_challenged_afresh() -> None:
    door = Door()
    door.recognise()
    door.outcomes += door.access.ended([1])
    assert door.results()[-1] == ("denied", "track_lost")
    for _ in range(2):
        door.show(0, track=2)
        door.embed(track=2)
    assert door.results()[-1] == ("challenge", None)


def test_a_denied_track_is_not_challenged_again() -> None:
    door = Door()
    door.recognise()
    door.embed(person="bob")
    for _ in range(5):
        door.show(0)
        door.embed()
    assert door.results() == [("challenge", None), ("denied", "identity_changed")]


def test_frames_that_stop_coming_deny() -> None:
    door = Door()
    door.recognise()
    assert door.access.stalled(door.ts + 1.0) == []
    assert [(o.result, o.reason) for o in door.access.stalled(door.ts + 2.5)] == [("denied", "stalled")]


def test_a_lost_camera_denies_and_the_answered_track_is_not_challenged_again() -> None:
    door = Door()
    door.recognise()
    door.outcomes += door.access.source_lost("ended")
    assert door.results()[-1] == ("denied", "source_lost")
    for _ in range(3):  # the file's last frames, still on their way
        door.show(0)
        door.embed()
    assert door.results() == [("challenge", None), ("denied", "source_lost")]


def test_no_challenge_without_enough_strict_votes() -> None:
    door = Door(votes=3)
    for distance in (0.7, 0.87, 0.86, 0.7):  # under the camera's threshold, not all under the door's
        door.show(0)
        door.embed(distance=distance)
    assert door.results() == []
    door.show(0)
    door.embed()
    assert door.results() == [("challenge", None)]


def test_no_challenge_when_the_track_named_two_people() -> None:
    door = Door()
    door.show(0)
    door.embed(person="bob")
    for _ in range(2):
        door.show(0)
        door.embed()
    assert door.results() == []


def test_a_random_challenge_asks_both_ways() -> None:
    asked = set()
    for _ in range(64):
        door = Door(challenge="random")
        door.recognise()
        asked.add(door.outcomes[0].challenge.direction)
    assert asked == {"left", "right"}


def test_a_restarted_stage_denies_the_challenges_left_open(tmp_path: Path) -> None:
    door = Door()
    door.recognise()
    record = tmp_path / "open-challenges"
    OpenChallenges(record).record(door.outcomes[0])
    successor = OpenChallenges(record)
    left = successor.leftovers()
    assert [(o.result, o.reason, o.challenge) for o in left] == [("denied", "restarted", door.outcomes[0].challenge)]
    assert OpenChallenges(record).leftovers() == []


def test_an_unreadable_record_of_open_challenges_is_one_line(tmp_path: Path) -> None:
    record = tmp_path / "open-challenges"
    record.write_text("[{")
    with pytest.raises(ValueError, match="unreadable record of open challenges"):
        OpenChallenges(record).leftovers()
