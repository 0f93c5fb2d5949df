"""The inference stage's batches across cameras, without processes or sockets: the newest frame
of a camera, every frame of a file read ``fast``, and when a batch leaves."""

from __future__ import annotations

from collections import Counter

import numpy as np

from streamrec.bus.messages import FrameHeader
from streamrec.pipeline.batching import LOSSLESS_BACKLOG, Frame, FrameBatcher


def _frames(source: str, *indices: int) -> list[Frame]:
    return [(FrameHeader(source, i, 1000.0 + i, 4, 4), np.zeros((4, 4, 3), np.uint8)) for i in indices]


def _batcher(lossless: dict[str, bool], max_frames: int = 8) -> tuple[FrameBatcher, Counter[str]]:
    skipped: Counter[str] = Counter()

    def note(name: str, frames: int) -> None:
        skipped[name] += frames

    return FrameBatcher(lossless, max_frames, 0.05, note), skipped


def _indices(batch: dict[str, Frame]) -> dict[str, int]:
    return {name: header.index for name, (header, _) in batch.items()}


def test_a_camera_gives_its_newest_frame_and_the_older_ones_are_counted_as_skipped():
    batcher, skipped = _batcher({"door": False, "hall": False})
    batcher.add("door", _frames("door", 0, 1, 2))
    batcher.fill(0.0)
    batcher.add("door", _frames("door", 3))  # replaces the one in the open batch
    batcher.fill(0.01)
    assert skipped == {"door": 3} and not batcher.ready(0.01)  # "hall" is live and has sent nothing
    batcher.add("hall", _frames("hall", 7))
    batcher.fill(0.02)
    assert batcher.ready(0.02)
    assert _indices(batcher.take()) == {"door": 3, "hall": 7}
    assert not batcher.frames and not batcher.ready(0.02)


def test_a_file_read_fast_gives_every_frame_in_order_one_per_batch():
    batcher, skipped = _batcher({"file": True, "door": False})
    batcher.add("file", _frames("file", 0, 1, 2))
    batches = []
    for now in (0.0, 0.1, 0.2):
        batcher.fill(now)
        assert not batcher.ready(now) and batcher.ready(now + 0.1)  # the camera sent nothing: the deadline sends it
        batches.append(_indices(batcher.take()))
    assert batches == [{"file": 0}, {"file": 1}, {"file": 2}] and not skipped


def test_a_batch_leaves_at_its_deadline_at_max_frames_or_when_a_fast_file_backs_up():
    batcher, _ = _batcher({"a": False, "b": False, "c": False}, max_frames=2)
    batcher.add("a", _frames("a", 0))
    batcher.fill(10.0)
    assert abs(batcher.wait_s(10.02) - 0.03) < 1e-9
    assert not batcher.ready(10.04) and batcher.ready(10.05)
    batcher.add("b", _frames("b", 0))
    batcher.fill(10.01)
    assert batcher.ready(10.01)  # two frames: max_frames
    batcher.take()
    assert batcher.wait_s(20.0) == 0.05  # no batch open: a whole wait

    backed_up, _ = _batcher({"file": True, "door": False})
    backed_up.add("file", _frames("file", *range(LOSSLESS_BACKLOG + 1)))
    backed_up.fill(0.0)
    assert backed_up.backlogged() and backed_up.ready(0.0)


def test_an_ended_source_is_not_waited_for_and_hands_back_what_it_left_in_order():
    batcher, _ = _batcher({"file": True, "door": False})
    batcher.add("file", _frames("file", 0, 1, 2))
    batcher.fill(0.0)
    assert not batcher.ready(0.0)
    batcher.set_live("door", False)
    assert batcher.ready(0.0) and batcher.live
    assert [header.index for header, _ in batcher.leftovers("file")] == [0, 1, 2]
    assert not batcher.frames and batcher.leftovers("file") == []
    batcher.set_live("file", False)
    assert not batcher.live
