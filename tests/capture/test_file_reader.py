"""Files and webcams through the real reader: pacing, fast mode, loop, end, rate cap, failures."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamrec.capture import CaptureError, Frame, FrameReader, ReaderOptions, State, check_file, parse_source
from tests.capture.recorder import StatusLog

CLIP_FRAMES = 275
CLIP_FPS = 29.97


def _take(reader: FrameReader, count: int) -> list[Frame]:
    return list(itertools.islice(reader, count))


def test_file_plays_at_its_own_rate_unless_fast(hamilton_clip: Path) -> None:
    """Paced frames are delivered over more than half the time they span in the file (their
    capture times say so); a fast read takes less than half of it. A fast read's frames carry the
    file's time line, not their delivery time, so it is timed here; the bound is the clip's own
    span, not a speed: decoding 60 small frames takes a fraction of it even on a loaded machine."""
    paced = _take(FrameReader(hamilton_clip), 60)
    started = time.monotonic()
    fast = _take(FrameReader(hamilton_clip, ReaderOptions(fast=True)), 60)
    fast_time = time.monotonic() - started
    duration = 59 / CLIP_FPS
    assert paced[-1].wall_time - paced[0].wall_time > duration / 2
    assert fast_time < duration / 2
    for frames in (paced, fast):
        assert [frame.index for frame in frames] == list(range(60))
        assert frames[0].rgb.shape == (360, 640, 3) and frames[0].rgb.dtype == np.uint8
        assert np.diff([frame.stream_time for frame in frames]).min() > 0
    assert np.array_equal(paced[30].rgb, fast[30].rgb)


def test_end_of_file_is_reported_and_stops(hamilton_clip: Path) -> None:
    log = StatusLog()
    reader = FrameReader(hamilton_clip, ReaderOptions(fast=True), on_status=log)
    frames = list(reader)
    assert len(frames) == CLIP_FRAMES and frames[-1].index == CLIP_FRAMES - 1
    assert [status.state for status in log.statuses] == [State.OPENING, State.OPEN, State.ENDED]
    assert log.of(State.OPEN)[0].reason == "640x360 at 29.97 fps"
    assert log.statuses[-1].counters.delivered == CLIP_FRAMES
    assert frames[0].source == str(hamilton_clip)


def test_loop_mode_wraps_around(hamilton_clip: Path) -> None:
    log = StatusLog()
    reader = FrameReader(hamilton_clip, ReaderOptions(fast=True, loop=True), on_status=log)
    stream = iter(reader)
    frames = list(itertools.islice(stream, CLIP_FRAMES + 100))
    reader.stop()
    assert next(stream, None) is None
    assert log.statuses[-1].state is State.STOPPED
    assert [frame.index for frame in frames] == list(range(CLIP_FRAMES + 100))
    times = [frame.stream_time for frame in frames]
    wraps = [i for i in range(1, len(times)) if times[i] < times[i - 1]]
    assert wraps == [CLIP_FRAMES]
    assert times[CLIP_FRAMES] < 0.05
    assert np.array_equal(frames[CLIP_FRAMES].rgb, frames[0].rgb)
    assert State.ENDED not in [status.state for status in log.statuses]


def test_rate_cap_delivers_no_more_than_the_cap(hamilton_clip: Path) -> None:
    reader = FrameReader(hamilton_clip, ReaderOptions(max_fps=10))
    frames = []
    started = time.monotonic()
    for frame in reader:
        frames.append(frame)
        if time.monotonic() - started > 1.5:
            break
    elapsed = time.monotonic() - started
    assert 2 <= len(frames) <= 10 * elapsed + 2  # the cap bounds the count; a loaded machine delivers fewer
    assert reader.counters.dropped >= len(frames)  # a 30 fps file capped at 10: two of three go
    assert reader.counters.delivered == len(frames)
    assert min(np.diff([frame.wall_time for frame in frames])) >= 0.04


def test_missing_webcam_fails_fast_and_clearly() -> None:
    """No retry (the states show none) and no wait for an open timeout: the bound is half of it,
    seconds more than failing takes, so only a wait for the timeout itself can break it."""
    log = StatusLog()
    started = time.monotonic()
    with pytest.raises(CaptureError, match=r"^webcam:9: cannot open camera index 9 \(no such camera"):
        list(FrameReader("9", on_status=log))
    assert time.monotonic() - started < ReaderOptions().open_timeout / 2
    assert [status.state for status in log.statuses] == [State.OPENING, State.FAILED]


def test_a_file_that_is_not_a_video_fails(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    with pytest.raises(CaptureError, match="notes.mp4: not a readable video"):
        list(FrameReader(notes))


def test_a_photo_fails_before_it_is_opened_whatever_its_name(faces_dir: Path, tmp_path: Path) -> None:
    named_as_video = tmp_path / "photo.mp4"
    named_as_video.write_bytes((faces_dir / "barack_obama" / "1.jpg").read_bytes())
    log = StatusLog()
    with pytest.raises(CaptureError, match=r"photo.mp4: a JPEG still image, not a video: use `streamrec detect`"):
        list(FrameReader(named_as_video, on_status=log))
    assert [status.state for status in log.statuses] == [State.OPENING, State.FAILED]


def test_a_file_named_like_a_photo_that_holds_none_fails_instead_of_opening_at_0x0(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"  # FFmpeg's image2 demuxer, chosen by the extension, opens it at 0x0
    notes.write_text("not a photo\n")
    log = StatusLog()
    with pytest.raises(CaptureError, match=r"notes.jpg: not a readable video \(unsupported format"):
        list(FrameReader(notes, on_status=log))
    assert [status.state for status in log.statuses] == [State.OPENING, State.FAILED]


def test_a_photo_of_a_format_not_recognised_by_content_fails_after_its_only_frame(faces_dir: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jp2"  # JPEG 2000: FFmpeg reads it as a video of one frame
    assert cv2.imwrite(str(photo), cv2.imread(str(faces_dir / "barack_obama" / "1.jpg")))
    log = StatusLog()
    with pytest.raises(CaptureError, match=r"photo.jp2: a still image, not a video"):
        list(FrameReader(photo, ReaderOptions(fast=True), on_status=log))
    assert [status.state for status in log.statuses] == [State.OPENING, State.OPEN, State.FAILED]
    with pytest.raises(CaptureError, match=r"photo.jp2: a still image, not a video"):
        check_file(parse_source(photo))


def test_check_file_passes_a_video(hamilton_clip: Path) -> None:
    check_file(parse_source(hamilton_clip))  # raises for anything that is no video


def _gif(path: Path, frames: int) -> Path:
    """A GIF of ``frames`` pictures, each a shade of grey, written by Pillow (OpenCV writes none)."""
    from PIL import Image

    pictures = [Image.fromarray(np.full((48, 64, 3), 60 * i, np.uint8)) for i in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    return path


def test_an_animated_gif_plays_and_a_gif_of_one_picture_is_a_still_image(tmp_path: Path) -> None:
    animation = _gif(tmp_path / "wave.gif", 4)
    check_file(parse_source(animation))
    assert len(list(FrameReader(animation, ReaderOptions(fast=True)))) == 4
    with pytest.raises(CaptureError, match=r"still.gif: a still image, not a video"):
        check_file(parse_source(_gif(tmp_path / "still.gif", 1)))


@pytest.mark.skipif(not Path("/dev/video0").exists(), reason="no camera on this machine (/dev/video0)")
def test_real_webcam_delivers_frames() -> None:
    frames = list(itertools.islice(FrameReader(0, ReaderOptions(max_fps=5)), 3))
    assert [frame.index for frame in frames] == [0, 1, 2]
    assert frames[0].rgb.ndim == 3 and frames[0].rgb.shape[2] == 3


def test_a_shared_stop_event_ends_iteration(hamilton_clip: Path) -> None:
    """Set by its owner (e.g. a process's signal handler) while frames are being taken, the
    event ends the iteration before another frame is delivered."""
    shutdown = threading.Event()
    log = StatusLog()
    frames = []
    for frame in FrameReader(hamilton_clip, on_status=log, stop_event=shutdown):
        frames.append(frame)
        if len(frames) == 3:
            shutdown.set()
    assert [frame.index for frame in frames] == [0, 1, 2]
    assert log.statuses[-1].state is State.STOPPED
