"""The newest-frame holder: a slow consumer gets fresh frames, never a queue of old ones."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from streamrec.capture import CaptureError, FrameReader, LatestFrame, ReaderOptions, State
from tests.capture.recorder import StatusLog
from tests.support.wait import wait_until

CLIP_S = 275 / 29.97  #: how long the hamilton clip plays, paced


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(hamilton_clip: Path) -> None:
    reader = FrameReader(hamilton_clip)  # paced like a camera: 30 fps
    with LatestFrame(reader) as latest:
        taken = []
        for _ in range(8):
            frame = latest.get(timeout=5)
            assert frame is not None
            behind = reader.counters.delivered - 1 - frame.index
            taken.append((frame.index, time.time() - frame.wall_time, behind, latest.dropped))
            time.sleep(0.25)  # a consumer at 4 fps
    indices = [index for index, *_ in taken]
    assert all(later - earlier >= 3 for earlier, later in itertools.pairwise(indices))
    assert max(age for _, age, _, _ in taken) < 0.5
    assert max(behind for _, _, behind, _ in taken) <= 1
    drops = [dropped for *_, dropped in taken]
    assert drops[-1] > drops[0] and drops[-1] >= indices[-1] - len(indices) - 1


def test_a_frame_is_handed_out_once_and_the_end_is_seen(hamilton_clip: Path) -> None:
    with LatestFrame(FrameReader(hamilton_clip, ReaderOptions(fast=True))) as latest:
        # the whole file is read (none taken meanwhile): only its last frame is kept
        wait_until(lambda: latest.reader.status.state is State.ENDED, 30, "the reader reaching the end of the file")
        last = latest.get(timeout=5)
        assert latest.get(timeout=0.2) is None
        assert latest.finished
    assert last is not None and last.index == 274
    assert latest.dropped == 274
    assert latest.reader.status.state is State.ENDED


def test_lossless_hands_out_every_frame_of_a_fast_file_in_order(hamilton_clip: Path) -> None:
    with LatestFrame(FrameReader(hamilton_clip, ReaderOptions(fast=True)), lossless=True) as latest:
        # a consumer that starts late: the reader gets as far ahead as it may (a frame in the slot,
        # the next one read and waiting) and stops there; one racing on would drop frames meanwhile
        wait_until(lambda: latest.reader.counters.delivered >= 2, 30, "the reader reading ahead")
        frames = []
        while (frame := latest.get(timeout=5)) is not None:
            frames.append(frame)
    assert [f.index for f in frames] == list(range(275)) and latest.dropped == 0
    stamps = [f.media_time for f in frames]
    assert None not in stamps
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert abs(min(gaps) - 1 / 29.97) < 0.005 and abs(max(gaps) - 1 / 29.97) < 0.005  # the file's time line
    # while the capture times are when each frame was read: faster than the file's own pace
    assert frames[-1].wall_time - frames[0].wall_time < stamps[-1] - stamps[0]


def test_failure_reaches_the_consumer() -> None:
    with LatestFrame(FrameReader(9)) as latest, pytest.raises(CaptureError, match="webcam:9"):
        latest.get(timeout=5)


def test_stop_is_prompt_while_a_file_is_paced(hamilton_clip: Path) -> None:
    log = StatusLog()
    latest = LatestFrame(FrameReader(hamilton_clip, on_status=log)).start()
    assert latest.get(timeout=5) is not None
    started = time.monotonic()
    latest.stop(timeout=5)
    # playing out the rest of the clip would take over 9 s: the stop cut the pacing short
    assert time.monotonic() - started < CLIP_S / 2
    assert log.statuses[-1].state is State.STOPPED
    latest.get(timeout=0)  # the frame left in the slot, if any
    assert latest.finished
