"""System packages the tests need, as ``tools/system-deps`` checks and installs them (``make test``
runs it first): GStreamer's RTSP server under ``/usr/bin/python3``, ffmpeg, Chromium, Mosquitto,
``ip`` (iproute2) and openssl.

A test that finds one missing skips, saying what is missing and the command that installs it;
under ``CI`` it fails instead, since CI runs ``make test``, which installs them: a skip there
would hide a broken set-up.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["SYSTEM_DEPS", "missing", "require"]

SYSTEM_DEPS = Path(__file__).resolve().parents[2] / "tools" / "system-deps"


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason`` (fail it under ``CI``), naming the command that fixes it."""
    message = f"{reason}; tools/system-deps installs what is missing (make test runs it)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must have it")
    pytest.skip(message)


@functools.cache
def _check(need: str) -> str | None:
    """None when ``need`` is met, else what ``tools/system-deps --check`` says about it."""
    result = subprocess.run([str(SYSTEM_DEPS), "--check", need], check=False, capture_output=True, text=True, timeout=120)
    return None if result.returncode == 0 else " ".join(result.stdout.split())


def require(need: str) -> None:
    """Go on when ``need`` (``rtsp``, ``ffmpeg``, ``chromium``, ``mqtt``, ``netns``, ``openssl``) is met,
    else :func:`missing`."""
    reason = _check(need)
    if reason is not None:
        missing(reason)
