"""The time rules of a reader, kept apart from OpenCV so that each is small and testable alone:
reconnect backoff, the frame-rate cap, real-time pacing of files and the frame-arrival watchdog.
"""

from __future__ import annotations

import random
import threading
import time

__all__ = ["Backoff", "Pacer", "RateCap", "StallWatch"]


class Backoff:
    """Exponential reconnect delays: ``base``, ``2*base``, ``4*base``... up to ``maximum``.

    Each delay is shortened by a random fraction up to ``jitter`` (< 0.5, so the delays still grow
    strictly until the maximum): readers of one camera that lost it together then do not hammer
    it in lockstep when it comes back.
    """

    def __init__(self, base: float, maximum: float, jitter: float, rng: random.Random | None = None) -> None:
        if not (0 < base <= maximum and 0 <= jitter < 0.5):
            raise ValueError("backoff needs 0 < base <= maximum and 0 <= jitter < 0.5")
        self.base, self.maximum, self.jitter = base, maximum, jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        """Count one more attempt and return how long to wait before it."""
        self.attempt += 1
        raw = min(self.maximum, self.base * 2.0 ** min(self.attempt - 1, 62))
        return raw * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """The source works again: the next loss starts from ``base``."""
        self.attempt = 0


class RateCap:
    """Admits at most ``max_fps`` frames per second and drops the rest.

    It keeps a schedule rather than a minimum gap, so that the jitter of a 30 fps camera does not
    turn a 10 fps cap into 7.5 fps; the schedule never runs more than half an interval behind
    real time, so two frames are never closer than half an interval, even after a slow spell.
    """

    def __init__(self, max_fps: float | None) -> None:
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be positive (or None for no cap)")
        self._interval = 0.0 if max_fps is None else 1.0 / max_fps
        self._next = float("-inf")

    def admit(self, now: float) -> bool:
        """Whether a frame arriving at ``now`` (monotonic seconds) may pass."""
        if now < self._next:
            return False
        self._next = max(self._next, now - self._interval / 2) + self._interval
        return True


class Pacer:
    """Holds file frames back until their presentation time, so a file plays like a camera.

    The stream clock is anchored to the first frame. When the stream time goes backwards (a
    looping file starts again) the clock goes on: the first frame is due one frame interval (the
    file's latest) after the last, as the next frame of a camera would be, not at once beside
    it. If the consumer fell more than ``max_lag`` seconds behind, it re-anchors instead of
    bursting frames out to catch up: a camera does not deliver the past faster either.
    """

    def __init__(self, max_lag: float = 0.25) -> None:
        self._max_lag = max_lag
        self._anchor: float | None = None
        self._last = float("-inf")
        self._interval = 0.0  #: the stream's latest frame interval

    def wait(self, stream_time: float, stop: threading.Event) -> None:
        """Sleep until ``stream_time`` is due; returns early when ``stop`` is set."""
        now = time.monotonic()
        if self._anchor is not None and stream_time < self._last:
            self._anchor += self._last + self._interval - stream_time
        elif self._anchor is not None:
            self._interval = stream_time - self._last
        due = None if self._anchor is None else self._anchor + stream_time
        if due is None or now - due > self._max_lag:
            self._anchor, due = now - stream_time, now
        self._last = stream_time
        if due > now:
            stop.wait(due - now)


class StallWatch:
    """Watchdog on frame arrival: notices a source that stops delivering without an error.

    A frozen server does not make reads fail: each read blocks for the read timeout and OpenCV
    then hands out one stale buffered frame. So a frame only counts as fresh when its read
    returned before ``min(stall_timeout, 0.9 * read_timeout)``; the time spent in reads since
    the last fresh frame is the stall. Time the consumer spends between reads does not count.
    """

    def __init__(self, stall_timeout: float, read_timeout: float | None) -> None:
        self.stall_timeout = stall_timeout
        self._slow = stall_timeout if read_timeout is None else min(stall_timeout, 0.9 * read_timeout)
        self.waited = 0.0

    def note(self, took: float) -> None:
        """Record a successful read that took ``took`` seconds."""
        self.waited = self.waited + took if took >= self._slow else 0.0

    @property
    def stalled(self) -> bool:
        return self.waited >= self.stall_timeout
