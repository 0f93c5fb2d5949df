"""What the tests need besides the project: system packages, as ``tools/system-deps`` checks and
installs them (``make test`` runs it first): GStreamer's RTSP server under ``/usr/bin/python3``,
ffmpeg, Chromium, Mosquitto, ``ip`` (iproute2) and openssl; and the Python packages of the
extras that ``make setup`` installs (tritonclient, OpenVINO, torchvision, facenet-pytorch).

A test that finds one missing skips, saying what is missing and the command that installs it;
under ``CI`` it fails instead, since CI runs ``make test``, which installs them: a skip there
would hide a broken set-up.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["SYSTEM_DEPS", "missing", "need_module", "require", "unavailable"]

SYSTEM_DEPS = Path(__file__).resolve().parents[2] / "tools" / "system-deps"


def unavailable(message: str) -> NoReturn:
    """Skip the test (or, called at import, the module) for ``message``; fail it under ``CI``,
    which must have everything the tests need."""
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must have it")
    pytest.skip(message, allow_module_level=True)


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason`` (fail it under ``CI``), naming the command that fixes it."""
    unavailable(f"{reason}; tools/system-deps installs what is missing (make test runs it)")


def need_module(name: str, reason: str) -> ModuleType:
    """``import name``, for a test that needs a Python package of an extra; when it cannot be
    imported, :func:`unavailable` for ``reason`` (what the package is for), naming the fix."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"{reason}: cannot import {name} ({exc}); make setup installs every extra the tests use")


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
