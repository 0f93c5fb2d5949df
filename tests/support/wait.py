"""Waiting in a test for a condition that another process or thread makes true."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], timeout: float, what: str | Callable[[], str], every: float = 0.02
) -> float:
    """Poll ``condition`` every ``every`` seconds until it is true; returns the seconds it took,
    fails the test after ``timeout``. A slower ``every`` suits a costly condition (an HTTP
    request, a log read) on a machine the processes under test need. ``what`` says what was
    awaited; as a function it is called only when the wait fails, so the message can show the
    state of that moment (a log's end) at no cost while waiting."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what if isinstance(what, str) else what()}: not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - started
