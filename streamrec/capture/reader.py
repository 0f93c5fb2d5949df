"""``FrameReader``: frames from a webcam, file or stream, surviving what real cameras do.

Real sources fail in three ways, and each is handled: a server that dies (reads fail; OpenCV's
capture never recovers, so it is released and reopened), a server that freezes with its sockets
open (no error at all: the watchdog in :class:`~streamrec.capture.timing.StallWatch` notices),
and a source that is not there (a webcam index fails at once; a URL is retried with exponential
backoff until it answers or the caller stops the reader). Every change is reported as a
:class:`~streamrec.capture.events.Status`.

Reads block inside OpenCV for at most the read timeout (an open for at most the open timeout),
so :meth:`FrameReader.stop` takes effect within that time; backoff sleeps and file pacing wake
at once.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import NoReturn

import cv2
import numpy as np

from streamrec.capture.events import CaptureError, Counters, Frame, State, Status
from streamrec.capture.opencv import describe, has_timestamps, open_capture, retrieve_rgb, stream_time
from streamrec.capture.source import SourceKind, SourceSpec, parse_source
from streamrec.capture.timing import Backoff, Pacer, RateCap, StallWatch
from streamrec.images.header import image_format

__all__ = ["FrameBuffer", "FrameReader", "ReaderOptions", "StatusCallback", "check_file"]

#: time between a fast-read file's last frame and its first again, when it loops
FILE_LOOP_GAP_S = 0.04
#: why a file that OpenCV cannot read as a video fails
NOT_A_VIDEO = "not a readable video (unsupported format or corrupt file)"
#: why a photo fails as a source (after "a" or "a JPEG")
STILL_IMAGE = "still image, not a video: use `streamrec detect` or `streamrec enroll` for photos"
#: enough of a file's first bytes to recognise every image format by its signature
_SIGNATURE_BYTES = 16
#: image formats that may be animations, which FFmpeg plays: a single picture in one of them
#: still fails, as a file that ends after its only frame
_PLAYABLE_IMAGES = frozenset({"GIF"})

StatusCallback = Callable[[Status], None]
#: ``(height, width) -> array`` to decode the next frame into, or None for a new array
FrameBuffer = Callable[[int, int], np.ndarray | None]


@dataclass(frozen=True)
class ReaderOptions:
    """How a reader opens, reads and reconnects (seconds and frames per second).

    ``read_timeout`` must exceed the source's frame interval (a 0.5 fps snapshot camera needs
    more than 2 s). ``stall_timeout``: a live source that brings no fresh frame for this long is
    treated as lost. ``max_fps``: deliver at most this many frames per second, dropping the rest (None: no
    cap). ``fast``: read a file as fast as the consumer takes frames instead of at its own frame
    rate. ``loop``: start a file again at its end instead of ending.
    """

    open_timeout: float = 5.0
    read_timeout: float = 2.0
    stall_timeout: float = 3.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.25
    max_fps: float | None = None
    fast: bool = False
    loop: bool = False

    def __post_init__(self) -> None:
        for name in ("open_timeout", "read_timeout", "stall_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        Backoff(self.backoff_base, self.backoff_max, self.backoff_jitter)
        RateCap(self.max_fps)


class FrameReader:
    """Iterate over it (in one thread) to get :class:`Frame` objects until the source ends, fails
    or :meth:`stop` is called; status changes go to ``on_status``, called in that thread.
    ``frame_buffer``, when given, supplies the array each frame is decoded into (the capture
    stage hands out frame-ring slots, so a frame is written once, where the batcher reads it).

    Raises :class:`CaptureError` (after a ``FAILED`` status) for a source that can never work:
    a webcam index that does not open, a file that is not a video (a photo, a file OpenCV opens
    at 0x0 pixels or that ends before its first frame). Network sources are retried
    forever; a webcam that opened once and is lost later is retried too (it may be plugged in
    again).
    """

    def __init__(
        self,
        source: str | int | os.PathLike | SourceSpec,
        options: ReaderOptions | None = None,
        on_status: StatusCallback | None = None,
        stop_event: threading.Event | None = None,
        frame_buffer: FrameBuffer | None = None,
    ) -> None:
        self.spec = source if isinstance(source, SourceSpec) else parse_source(source)
        self.options = options = options or ReaderOptions()
        self._on_status = on_status
        self._stop = stop_event or threading.Event()  # shared with the caller's own, if given
        self._counters = Counters()
        self._backoff = Backoff(options.backoff_base, options.backoff_max, options.backoff_jitter)
        self._rate = RateCap(options.max_fps)
        self._pacer = Pacer()
        self._clock: tuple[float, float] | None = None  #: (anchor, last timestamp) of a fast file
        self._ever_opened = False
        self._timed = True  # whether the open capture's timestamps are real
        self._frame_buffer = frame_buffer
        self._last_size: tuple[int, int] | None = None  #: (height, width) of the last frame
        self.status = Status(State.OPENING, self.spec.label, Counters())

    @property
    def counters(self) -> Counters:
        """A snapshot of the running totals."""
        return self._counters.snapshot()

    def stop(self) -> None:
        """Ask the reader to stop; safe from any thread. Iteration ends after a ``STOPPED`` status."""
        self._stop.set()

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self) -> Generator[Frame, None, None]:
        """Open, read and reconnect until the source ends, fails or the reader is stopped."""
        try:
            while not self._stop.is_set():
                capture = self._open()
                if capture is None:
                    continue
                try:
                    lost = yield from self._stream(capture)
                finally:
                    capture.release()
                if self._stop.is_set():
                    break
                if lost is None:
                    self._end_of_file()
                    return
                self._report(State.LOST, lost)
                self._retry(lost)
        finally:
            if self._stop.is_set():
                self._report(State.STOPPED)

    def _open(self) -> cv2.VideoCapture | None:
        """Open the source; on failure fail for good or wait out a backoff delay (returns None)."""
        self._report(State.OPENING)
        if self.spec.kind is SourceKind.FILE and os.path.isfile(self.spec.target):  # a pipe is read once, by the player
            self._refuse_photo()
        started = time.monotonic()
        capture = open_capture(self.spec, self.options.open_timeout, self.options.read_timeout)
        if capture is not None:
            if self.spec.kind is SourceKind.FILE and not (
                capture.get(cv2.CAP_PROP_FRAME_WIDTH) > 0 and capture.get(cv2.CAP_PROP_FRAME_HEIGHT) > 0
            ):  # FFmpeg's image2 demuxer, chosen by a photo's extension, opens any file so named
                capture.release()
                self._fail(NOT_A_VIDEO)
            self._ever_opened = True
            self._timed = has_timestamps(self.spec, capture)
            self._report(State.OPEN, describe(capture, self._timed))
            return capture
        took = time.monotonic() - started
        if not self._worth_retrying():
            self._fail(self._unopenable())
        if took >= 0.9 * self.options.open_timeout:
            self._retry(f"cannot open: no answer within {self.options.open_timeout:.1f} s")
        else:
            self._retry(f"cannot open: failed after {took:.2f} s (refused, not found or not a video stream)")
        return None

    def _refuse_photo(self) -> None:
        """Fail for a photo, recognised by its content (whatever its name): OpenCV would play it
        as a video of one frame, which ends at once with nothing said."""
        try:
            with open(self.spec.target, "rb") as file:
                found = image_format(file.read(_SIGNATURE_BYTES))
        except OSError as exc:
            self._fail(f"cannot read it ({exc.strerror or exc})")
        if found is not None and found not in _PLAYABLE_IMAGES:
            self._fail(f"a {found} {STILL_IMAGE}")

    def _worth_retrying(self) -> bool:
        """Streams come back; a file does not, and a webcam index that never opened is absent."""
        return self.spec.kind is not SourceKind.FILE and (
            self.spec.kind is not SourceKind.WEBCAM or self._ever_opened
        )

    def _unopenable(self) -> str:
        if self.spec.kind is SourceKind.WEBCAM:
            return f"cannot open camera index {self.spec.target} (no such camera, or it is in use)"
        return NOT_A_VIDEO

    def _stream(self, capture: cv2.VideoCapture) -> Generator[Frame, None, str | None]:
        """Deliver frames from an open capture; returns why a live source was lost, or None when a
        file ended or the reader was stopped."""
        read_timeout = None if self.spec.kind is SourceKind.WEBCAM else self.options.read_timeout
        watch = StallWatch(self.options.stall_timeout, read_timeout)
        grabbed_this_pass = 0
        while not self._stop.is_set():
            started = time.monotonic()
            grabbed = capture.grab()
            took = time.monotonic() - started
            if not grabbed and grabbed_this_pass and self._rewound(capture):
                grabbed_this_pass = 0
                continue
            if not grabbed:
                return f"read failed after {took:.2f} s (connection lost)" if self.spec.live else None
            grabbed_this_pass += 1
            if self.spec.live:
                watch.note(took)
                if watch.stalled:
                    return f"no fresh frame for {watch.waited:.1f} s (source frozen?)"
            self._backoff.reset()
            frame = self._deliverable(capture)
            if frame is not None:
                yield frame
        return None

    def _rewound(self, capture: cv2.VideoCapture) -> bool:
        """At the end of a looping file, seek back to its first frame."""
        looping = self.spec.kind is SourceKind.FILE and self.options.loop
        return looping and capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def _deliverable(self, capture: cv2.VideoCapture) -> Frame | None:
        """Pace, rate-cap and decode the grabbed frame; None if it was dropped."""
        timestamp = stream_time(capture) if self._timed else None
        if self.spec.kind is SourceKind.FILE and not self.options.fast and timestamp is not None:
            self._pacer.wait(timestamp, self._stop)
        if not self._rate.admit(time.monotonic()):
            self._counters.dropped += 1
            return None
        fast_file = self.spec.kind is SourceKind.FILE and self.options.fast
        media_time = self._file_clock(timestamp) if fast_file and timestamp is not None else None
        wall_time = time.time()
        out = self._frame_buffer(*self._last_size) if self._frame_buffer and self._last_size else None
        rgb = retrieve_rgb(capture, out)
        if rgb is None:
            return None
        self._last_size = rgb.shape[:2]
        frame = Frame(self.spec.label, self._counters.delivered, wall_time, timestamp, rgb, media_time)
        self._counters.delivered += 1
        return frame

    def _file_clock(self, timestamp: float) -> float:
        """The media time of a frame of a file read ``fast`` (:attr:`Frame.media_time`): the
        file's own time line, anchored at its first frame's read time and continued across loops."""
        if self._clock is None:
            self._clock = (time.time() - timestamp, timestamp)
        anchor, last = self._clock
        if timestamp < last:  # the file looped: continue one frame after its last one
            anchor += last + FILE_LOOP_GAP_S - timestamp
        self._clock = (anchor, timestamp)
        return anchor + timestamp

    def _end_of_file(self) -> None:
        """Report that a file ended, or fail for one that played no video: it ended before its
        first frame, or after its only one (a photo in a format FFmpeg reads and the signatures
        here do not know, such as JPEG 2000 or TGA)."""
        read = self._counters.delivered + self._counters.dropped
        if read == 0:
            self._fail("not a readable video (it ends before its first frame)")
        if read == 1:
            self._fail(f"a {STILL_IMAGE}")
        self._report(State.ENDED, "end of file")

    def _retry(self, reason: str) -> None:
        """Report the coming reconnect and sleep its backoff delay (cut short by :meth:`stop`)."""
        delay = self._backoff.next_delay()
        self._counters.reconnects += 1
        self._report(State.RECONNECTING, reason, self._backoff.attempt, delay)
        self._stop.wait(delay)

    def _fail(self, reason: str) -> NoReturn:
        self._report(State.FAILED, reason)
        raise CaptureError(f"{self.spec.label}: {reason}")

    def _report(self, state: State, reason: str = "", attempt: int = 0, delay: float = 0.0) -> None:
        self.status = Status(state, self.spec.label, self._counters.snapshot(), reason, attempt, delay)
        if self._on_status is not None:
            self._on_status(self.status)


def check_file(spec: SourceSpec) -> None:
    """Read a file source's first two frames as fast as they decode, raising :class:`CaptureError`
    where playing it would: a command then refuses a file that is no video (a photo, an empty or
    unreadable file) in one line before it starts anything, instead of a run that ends empty.
    A pipe or a device is not read ahead: what it gives, it gives once, to the player."""
    if not os.path.isfile(spec.target):
        return
    frames = FrameReader(spec, ReaderOptions(fast=True)).frames()
    try:
        for _ in itertools.islice(frames, 2):
            pass
    finally:
        frames.close()
