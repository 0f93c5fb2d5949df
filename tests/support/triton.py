"""A real Triton Inference Server for the tests: :class:`~streamrec.bench.tritonserver.TritonServer`
(nvidia-pytriton's ``tritonserver`` in ``.venv-triton``, which ``make test`` creates), which the
tests also break on purpose: kill -9 and restart on the same ports. Without the venv the test
skips, saying how to make it; under ``CI`` it fails instead, since CI runs ``make test``, which
makes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamrec.bench.tritonserver import MISSING, TritonServer, find_server

__all__ = ["TritonServer", "require_triton"]


def require_triton() -> Path:
    """The ``tritonserver`` binary, with the Python-backend stub in place; else skip (fail under CI)."""
    binary = find_server()
    if binary is not None:
        return binary
    if os.environ.get("CI"):
        pytest.fail(MISSING + "; CI must have it")
    pytest.skip(MISSING)
