"""The time rules on their own: backoff growth, the rate cap's schedule, pacing, the watchdog."""

from __future__ import annotations

import itertools
import random
import threading
import time

import pytest

from streamrec.capture.timing import Backoff, Pacer, RateCap, StallWatch


def test_backoff_grows_to_its_maximum_with_bounded_jitter() -> None:
    backoff = Backoff(base=0.5, maximum=8.0, jitter=0.25, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    assert all(later > earlier for earlier, later in itertools.pairwise(delays[:5]))
    # doubling from 0.5 s up to 8 s, each cut by up to a quarter
    for delay, full in zip(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0], strict=True):
        assert 0.75 * full <= delay <= full
    assert len({round(d, 6) for d in delays[5:]}) == 3  # jittered even at the cap
    backoff.reset()
    assert backoff.next_delay() <= 0.5 and backoff.attempt == 1


@pytest.mark.parametrize(("base", "maximum", "jitter"), [(0, 1, 0.1), (2, 1, 0.1), (1, 2, 0.5)])
def test_backoff_refuses_settings_that_would_not_grow(base: float, maximum: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, maximum, jitter)


def test_rate_cap_keeps_the_cap_despite_jitter_and_never_bursts() -> None:
    rng = random.Random(3)
    arrivals = [i / 30 + rng.uniform(-0.008, 0.008) for i in range(300)]  # 10 s of a jittery 30 fps camera
    cap = RateCap(10)
    passed = [t for t in arrivals if cap.admit(t)]
    assert 98 <= len(passed) <= 101  # a minimum-gap rule would let only ~75 through
    window = [sum(1 for t in passed if start <= t < start + 1) for start in range(9)]
    assert max(window) <= 11
    slow_then_fast = RateCap(10)
    assert slow_then_fast.admit(0.0) and slow_then_fast.admit(5.0)
    assert (
        sum(slow_then_fast.admit(5.0 + i / 100) for i in range(1, 10)) == 1
    )  # half an interval on, not sooner


def test_no_cap_admits_everything() -> None:
    cap = RateCap(None)
    assert all(cap.admit(t / 1000) for t in range(100))


def test_pacer_waits_for_stream_time_and_goes_on_one_interval_after_a_wrap() -> None:
    pacer, stop = Pacer(), threading.Event()
    started = time.monotonic()
    for stream_time in (0.0, 0.1, 0.2, 0.3):
        pacer.wait(stream_time, stop)
    assert time.monotonic() - started >= 0.28
    wrapped = time.monotonic()
    pacer.wait(0.0, stop)  # a looping file starts again: one interval (0.1 s) after its last frame
    assert time.monotonic() - wrapped >= 0.08
    pacer.wait(0.05, stop)
    assert 0.14 <= time.monotonic() - wrapped < 0.6


def test_a_pacer_that_fell_behind_starts_again_from_now() -> None:
    pacer, stop = Pacer(max_lag=0.05), threading.Event()
    pacer.wait(0.0, stop)
    stop.wait(0.2)  # the consumer is busy: stream time 0.01 is long past due
    late = time.monotonic()
    pacer.wait(0.01, stop)  # handed out at once, and the clock starts from it
    pacer.wait(0.11, stop)
    assert 0.09 <= time.monotonic() - late < 0.5


def test_pacer_wakes_when_stopped() -> None:
    pacer, stop = Pacer(), threading.Event()
    pacer.wait(0.0, stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    pacer.wait(30.0, stop)
    assert time.monotonic() - started < 5


def test_stall_watch_counts_only_stale_reads() -> None:
    watch = StallWatch(stall_timeout=3.0, read_timeout=2.0)
    for took in (0.03, 1.0, 0.03):  # a hiccup that ends with a fresh frame resets the count
        watch.note(took)
    assert watch.waited == 0.0
    watch.note(2.0)  # a frame handed out when the read timed out: stale
    assert not watch.stalled
    watch.note(2.0)
    assert watch.stalled and watch.waited == 4.0
