"""What one camera's door shows, step by step, at chosen times (hold time 3 s): the browser
tests (test_door_page.py) show the same on the real page, without control of the clock."""

from __future__ import annotations

from streamrec.bus.messages import AccessResult, Event, JpegFrame
from streamrec.web.door import Door, DoorView


def _frame(door: Door, at: float, *labels: str, received: float | None = None) -> None:
    """A frame captured at ``at`` with these labels, received then (or at ``received``)."""
    door.saw_frame(JpegFrame("front", int(at * 10), at, 360, 640, 10.0, list(labels)), received=received or at)


def _decide(door: Door, track: int, at: float, name: str | None = None, seen_on: float | None = None) -> Event:
    """A decision about ``track`` made at ``at`` on a frame captured at ``seen_on`` (default:
    ``at``): the name, or unknown."""
    event = Event("match" if name else "unknown", "front", at, track_id=track, name=name, capture_ts=seen_on or at, seq=track)
    door.saw_event(event)
    return event


def test_waiting_while_no_face_is_there():
    door = Door(hold_s=3.0)
    assert door.view(100.0) == DoorView("waiting")
    _frame(door, 100.0)
    assert door.view(100.5) == DoorView("waiting")


def test_a_new_face_is_checked_not_greeted_with_the_previous_name():
    door = Door(hold_s=3.0)
    _frame(door, 10.0, "...")
    assert door.view(10.0) == DoorView("checking")
    ann = _decide(door, 1, 10.2, "Ann")
    _frame(door, 10.3, "Ann")
    assert door.view(10.4) == DoorView("match", ann, on_screen=True)
    _frame(door, 11.0, "...")  # Ann walked out as the next person walked in
    assert door.view(11.1) == DoorView("checking")  # Ann's decision is 0.9 s old, but not hers
    stranger = _decide(door, 2, 12.0)
    assert door.view(12.0) == DoorView("unknown", stranger, on_screen=True)
    _frame(door, 12.1, "unknown")
    assert door.view(12.2) == DoorView("unknown", stranger, on_screen=True)


def test_a_name_stays_while_its_face_does_then_for_the_hold_time():
    door = Door(hold_s=3.0)
    ann = _decide(door, 1, 0.0, "Ann")
    for second in range(21):
        _frame(door, float(second), "Ann")
    assert door.view(20.5) == DoorView("match", ann, on_screen=True)  # 20 s: far past the hold time
    _frame(door, 21.0)  # she left: the last frame with her face was at 20.0
    assert door.view(21.0) == DoorView("match", ann, on_screen=False)
    assert door.view(23.0) == DoorView("match", ann, on_screen=False)
    assert door.view(23.1) == DoorView("waiting")


def test_a_decision_ahead_of_its_frame_is_on_screen():
    """Events and frames come by different stages: a decision made on a frame newer than the
    newest frame received is shown at once, not after the frame."""
    door = Door(hold_s=3.0)
    _frame(door, 5.0, "...")
    ann = _decide(door, 1, 5.4, "Ann", seen_on=5.3)
    assert door.view(5.4) == DoorView("match", ann, on_screen=True)
    _frame(door, 5.2, "...", received=5.5)  # a frame from before the decision, late: still her
    assert door.view(5.5) == DoorView("match", ann, on_screen=True)


def test_frames_that_stop_coming_say_nothing_after_the_hold_time():
    door = Door(hold_s=3.0)
    _frame(door, 5.0, "...")
    assert door.view(8.0) == DoorView("checking")
    assert door.view(8.1) == DoorView("waiting")
    ann = _decide(door, 1, 9.0, "Ann")
    _frame(door, 9.0, "Ann")
    assert door.view(12.0) == DoorView("match", ann, on_screen=True)
    assert door.view(12.1) == DoorView("waiting")


def test_an_ended_track_is_not_on_screen_even_if_its_label_is():
    door = Door(hold_s=3.0)
    first = _decide(door, 1, 1.0, "Ann")
    _frame(door, 1.0, "Ann")
    door.saw_event(Event("track_end", "front", 1.5, track_id=1, name="Ann"))
    _frame(door, 2.0, "Ann", "...")  # "Ann" again, on a track that is not decided yet
    assert door.view(2.0) == DoorView("checking")
    assert door.view(4.1) == DoorView("checking")  # her decision has expired; the face is still there
    second = _decide(door, 2, 4.5, "Ann")
    assert door.view(4.5) == DoorView("match", second, on_screen=True) != DoorView("match", first, on_screen=True)


def test_the_same_decision_again_keeps_nothing_alive():
    door = Door(hold_s=3.0)
    ann = _decide(door, 1, 0.0, "Ann")
    _frame(door, 0.5)
    door.saw_event(ann)  # published again
    assert door.view(3.1) == DoorView("waiting")


def test_the_newest_decision_on_screen_is_shown():
    door = Door(hold_s=3.0)
    ann = _decide(door, 1, 1.0, "Ann")
    bob = _decide(door, 2, 2.0, "Bob")
    _frame(door, 2.5, "Bob", "Ann")
    assert door.view(2.5) == DoorView("match", bob, on_screen=True)
    _frame(door, 3.0, "Ann")
    assert door.view(3.0) == DoorView("match", ann, on_screen=True)


def _access(door: Door, track: int, at: float, result: AccessResult, reason: str | None = None) -> Event:
    event = Event("access", "front", at, track_id=track, person_id="ann", name="Ann", result=result, direction="left",
                  reason=reason)
    door.saw_event(event)
    return event


def test_a_challenge_shows_no_name_then_its_answer_stays_for_the_hold_time():
    door = Door(hold_s=3.0, challenge_s=6.0)
    _decide(door, 1, 10.0, "Ann")
    _frame(door, 10.1, "Ann")
    challenge = _access(door, 1, 10.2, "challenge")
    bob = _decide(door, 2, 10.5, "Bob")  # someone else named meanwhile: not shown while Ann is challenged
    _frame(door, 10.6, "Ann", "Bob")
    assert door.view(11.0) == DoorView("challenge", challenge, on_screen=True)
    granted = _access(door, 1, 12.0, "granted")
    assert door.view(12.1) == DoorView("granted", granted)
    _access(door, 1, 10.2, "challenge")  # the challenge again, late or repeated: answered already
    assert door.view(14.9) == DoorView("granted", granted)
    _frame(door, 15.0, "Bob")
    assert door.view(15.1) == DoorView("match", bob, on_screen=True)


def test_an_unanswered_challenge_is_shown_no_longer_than_a_challenge_can_last():
    door = Door(hold_s=3.0, challenge_s=6.0)
    challenge = _access(door, 1, 10.0, "challenge")
    assert door.view(16.0) == DoorView("challenge", challenge, on_screen=True)
    assert door.view(16.1) == DoorView("waiting")


def test_a_denial_is_shown_with_its_reason():
    door = Door(hold_s=3.0)
    _access(door, 1, 10.0, "challenge")
    denied = _access(door, 1, 11.0, "denied", "no_movement")
    assert door.view(11.5) == DoorView("denied", denied)
    assert door.view(14.1) == DoorView("waiting")
