"""WebState on its own: what it holds and serves is bounded whatever the feeds bring.

A 50 MB event once made ``/api/state`` 52 MB (fetched twice a second by the door page); the
schema now refuses such an event, and the state keeps a bounded number of sources."""

from __future__ import annotations

import json

from streamrec.bus.messages import MAX_FACES, MAX_NAME, MAX_TEXT, Event, JpegFrame
from streamrec.web.state import MAX_OTHER_SOURCES, WebState


def test_what_the_state_holds_and_serves_is_bounded():
    state = WebState(["front"], hold_s=3.0)
    name, detail = "名" * MAX_NAME, "x" * MAX_TEXT  # JSON writes each of these as six bytes
    for index in range(1000):
        source = f"stranger {index}"
        state.add_event(Event("match", source, float(index), name=name, person_id=name, detail=detail))
        state.add_picture(JpegFrame(source, index, 1.0, 2, 2, 1.0, (name,) * MAX_FACES), b"\xff\xd8")
    state.add_picture(JpegFrame("front", 1, 1.0, 2, 2, 1.0, (name,) * MAX_FACES), b"\xff\xd8")
    served = json.dumps(state.snapshot())
    assert state.sources() == ["front"] + sorted(f"stranger {index}" for index in range(MAX_OTHER_SOURCES))
    assert state.refused == {"pictures_unknown_source": 1000 - MAX_OTHER_SOURCES, "decisions_unknown_source": 1000 - MAX_OTHER_SOURCES}
    sources = 1 + MAX_OTHER_SOURCES
    assert len(served) < sources * MAX_FACES * (6 * MAX_NAME + 4) + (20 + 2 * sources + 1) * 16 * 1024  # recent events, a decision and a door per source, the last
    assert len(json.loads(served)["events"]) == 20
