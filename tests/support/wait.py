"""Waiting in a test for a condition that another process or thread makes true."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``condition`` every ``every`` seconds until it is true; returns the seconds it took,
    fails the test after ``timeout``. A slower ``every`` suits a costly condition (an HTTP
    request, a log read) on a machine the processes under test need."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - started
