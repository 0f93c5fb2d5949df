"""What a reader hands out: frames, status changes and counters.

Frames carry their own stamps (source, delivered index, wall-clock capture time, the stream's
timestamp) because downstream stages run in other processes and batch frames from many cameras:
a frame must say where and when it came from without asking the reader.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

__all__ = ["CaptureError", "Counters", "Frame", "State", "Status"]


class CaptureError(RuntimeError):
    """A source that cannot be used at all (no such camera, not a video file); retrying would not
    help. The message is one line that names the source by its label."""


class State(str, Enum):
    OPENING = "opening"
    OPEN = "open"
    LOST = "lost"  # an open stream failed or froze; a reconnect follows
    RECONNECTING = "reconnecting"  # waiting ``delay`` seconds before attempt ``attempt``
    ENDED = "ended"  # a file reached its end (not looping); the reader stops
    FAILED = "failed"  # unusable source; the reader stops and raises CaptureError
    STOPPED = "stopped"  # the caller asked the reader to stop


@dataclass
class Counters:
    """Running totals of one reader. ``dropped`` counts frames the rate cap threw away;
    ``reconnects`` counts reconnect attempts (one per ``RECONNECTING`` status)."""

    delivered: int = 0
    dropped: int = 0
    reconnects: int = 0

    def snapshot(self) -> Counters:
        return replace(self)


@dataclass(frozen=True)
class Status:
    """One status change. ``reason`` says why (loss, failure, stream format when opened);
    ``attempt`` and ``delay`` are set for ``RECONNECTING``."""

    state: State
    source: str
    counters: Counters
    reason: str = ""
    attempt: int = 0
    delay: float = 0.0
    time: float = field(default_factory=time.time)

    def __str__(self) -> str:
        text = f"{self.source}: {self.state.value}"
        if self.state is State.RECONNECTING:
            text += f" (attempt {self.attempt} in {self.delay:.2f} s)"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass(frozen=True, eq=False)
class Frame:
    """One delivered frame. ``rgb``: ``(H, W, 3)`` uint8. ``index`` counts delivered frames of
    this reader from 0, across reconnects and file loops. ``wall_time`` is ``time.time()`` when
    the frame was captured (for a paced file: when it became due; for a file read ``fast``: when
    it was read). ``stream_time`` is the stream's own timestamp in seconds where the container or
    protocol gives one (None for MJPEG over HTTP); it restarts when a stream is reopened or a
    file loops. ``media_time``, for a file read ``fast`` only: its first frame's read time plus
    the file's own timestamp, continued across loops, so that tracking sees the true motion
    between frames however fast they are read (it runs ahead of the wall clock, so it is no
    capture time); None elsewhere. ``monotonic_time`` is ``time.monotonic()`` when it was
    delivered, to measure its age in this process."""

    source: str
    index: int
    wall_time: float
    stream_time: float | None
    rgb: np.ndarray
    media_time: float | None = None
    monotonic_time: float = field(default_factory=time.monotonic)
