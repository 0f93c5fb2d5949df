"""A real Triton Inference Server for the tests: :class:`~streamrec.bench.tritonserver.TritonServer`
(nvidia-pytriton's ``tritonserver`` in ``.venv-triton``, which ``make test`` creates), which the
tests also break on purpose: kill -9 and restart on the same ports. Without the venv the test
skips, saying how to make it; under ``CI`` it fails instead, since CI runs ``make test``, which
makes it.

Each model instance of the Python backend runs in a stub process that shares a region of
``/dev/shm`` with the server; the stub unlinks it when it stops cleanly, never when it is killed.
So the tests stop a server with SIGTERM (:meth:`TritonServer.stop`), and after a kill on purpose
remove the regions themselves: each server names its regions with a prefix of its own, so only
its own are removed, never those of another server on the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from streamrec.bench import tritonserver
from streamrec.bench.tritonserver import MISSING, find_server

__all__ = ["TritonServer", "require_triton"]

SHM = Path("/dev/shm")
REGION_PREFIX = "triton_python_backend_shm_region_"  #: the Python backend's own prefix, which ours extend


def require_triton() -> Path:
    """The ``tritonserver`` binary, with the Python-backend stub in place; else skip (fail under CI)."""
    binary = find_server()
    if binary is not None:
        return binary
    if os.environ.get("CI"):
        pytest.fail(MISSING + "; CI must have it")
    pytest.skip(MISSING)


class TritonServer(tritonserver.TritonServer):
    """The server of :mod:`streamrec.bench.tritonserver`, leaving nothing in ``/dev/shm``: its
    Python-backend regions are named ``REGION_PREFIX`` + a token of its own + the backend's UUID."""

    def __init__(self, repository: Path, log: Path, options: Sequence[str] = (), client: dict | None = None,
                 address: str = "127.0.0.1", prefix: Sequence[str] = ()) -> None:
        self.regions = f"{REGION_PREFIX}streamrec-test-{uuid.uuid4().hex[:12]}_"
        options = [*options, f"--backend-config=python,shm-region-prefix-name={self.regions}"]
        super().__init__(repository, log, options, client, address, prefix)

    def shm_regions(self) -> list[Path]:
        """This server's regions in ``/dev/shm``, however it ended."""
        return sorted(SHM.glob(f"{self.regions}*"))

    def kill(self) -> None:
        """SIGKILL the server and its stubs (a crash, on purpose), then remove the regions that
        the killed stubs could not."""
        super().kill()
        self._remove_regions()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the server, which unloads its models and so stops its stubs cleanly; SIGKILL
        what is left of its process group if it has not ended within ``timeout_s``."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        self.kill()  # what is left of its group, and the regions of stubs that did not stop cleanly

    def _remove_regions(self) -> None:
        for region in self.shm_regions():
            region.unlink(missing_ok=True)
