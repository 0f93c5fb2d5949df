"""A real Triton Inference Server for the tests: ``tritonserver`` from nvidia-pytriton, in the
``.venv-triton`` that ``make test`` creates from Debian's Python (docs/triton.md).

:class:`TritonServer` starts it on free loopback ports over a model repository, waits until it
and every model are ready by polling its gRPC health API, and breaks it on purpose: kill -9 and
restart on the same ports. Without the venv the test skips, saying how to make it; under ``CI``
it fails instead, since CI runs ``make test``, which makes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

__all__ = ["TRITON_VENV", "TritonServer", "require_triton"]

TRITON_VENV = Path(__file__).resolve().parents[2] / ".venv-triton"
_SERVER = TRITON_VENV / "lib" / "python3.11" / "site-packages" / "pytriton" / "tritonserver"
_LIBS = TRITON_VENV / "lib" / "python3.11" / "site-packages" / "nvidia_pytriton.libs"


def require_triton() -> Path:
    """The ``tritonserver`` binary, with the Python-backend stub in place; else skip (fail under CI)."""
    binary, stub = _SERVER / "bin" / "tritonserver", _SERVER / "backends" / "python" / "triton_python_backend_stub"
    if binary.is_file() and stub.is_file():
        return binary
    message = f"no tritonserver with its Python backend in {TRITON_VENV}: run make test (it makes it)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must have it")
    pytest.skip(message)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class TritonServer:
    """``tritonserver --model-repository REPOSITORY`` on ``address`` (loopback by default); ``url``
    is its gRPC address. ``options``: more of the server's command-line options (TLS); ``client``:
    the keyword arguments of the gRPC client that polls it (the TLS files that reach it);
    ``prefix``: what runs it elsewhere (another host's ``ip netns exec``)."""

    def __init__(self, repository: Path, log: Path, options: Sequence[str] = (), client: dict | None = None,
                 address: str = "127.0.0.1", prefix: Sequence[str] = ()) -> None:
        self.binary = require_triton()
        self.repository, self.log, self.address, self.prefix = repository, log, address, list(prefix)
        self.options, self.client = list(options), client or {}
        self.grpc_port, self.http_port, self.metrics_port = _free_ports(3)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.address}:{self.grpc_port}"

    def start(self, timeout: float = 180.0) -> None:
        """Launch the server and return once it and every model in the repository are ready."""
        env = dict(os.environ, LD_LIBRARY_PATH=str(_LIBS), PATH=f"{TRITON_VENV / 'bin'}:{os.environ['PATH']}")
        command = [
            *self.prefix, str(self.binary), "--model-repository", str(self.repository),
            "--backend-directory", str(_SERVER / "backends"),
            "--grpc-address", self.address, "--grpc-port", str(self.grpc_port),
            "--http-address", self.address, "--http-port", str(self.http_port),
            "--metrics-port", str(self.metrics_port), "--allow-metrics", "false", "--allow-gpu-metrics", "false",
            *self.options,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        deadline = time.monotonic() + timeout
        models = [path.name for path in self.repository.iterdir() if (path / "config.pbtxt").is_file()]
        with grpcclient.InferenceServerClient(self.url, **self.client) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"tritonserver exited ({self.process.returncode}): {self.tail()}")
                with contextlib.suppress(InferenceServerException):  # not listening yet
                    if client.is_server_ready(client_timeout=2) and all(
                        client.is_model_ready(name, client_timeout=2) for name in models
                    ):
                        return
                time.sleep(0.2)  # polling interval of a deadline loop
        raise RuntimeError(f"tritonserver not ready within {timeout} s: {self.tail()}")

    def tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").splitlines()[-8:])

    def kill(self) -> None:
        """Kill the server and every process of its session (the Python-backend stubs) by PID."""
        if self.process is None:
            return
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.process = None

    def restart(self, timeout: float = 180.0) -> None:
        """Start it again on the same ports after :meth:`kill`."""
        self.start(timeout)
