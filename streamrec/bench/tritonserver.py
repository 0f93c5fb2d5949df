"""A local Triton Inference Server: ``tritonserver`` from nvidia-pytriton, in the ``.venv-triton``
that ``make test`` creates from Debian's Python (docs/triton.md), for the tests of the triton
backend and for ``tools/run_benchmarks.sh``, which times the backend against it.

:class:`TritonServer` starts it on free ports over a model repository, waits until it and every
model are ready by polling its gRPC health API, and stops it with its Python-backend stubs (its
whole process group), or kills it on purpose and starts it again on the same ports.

``python -m streamrec.bench.tritonserver REPOSITORY LOG`` starts one on loopback and leaves it
running, printing its process id (also its process group's) and gRPC address once it is ready,
so a shell script can time against it and stop it by that id.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MISSING", "TRITON_VENV", "TritonServer", "find_server"]

#: where ``make test`` installs nvidia-pytriton (the project root's ``.venv-triton``)
TRITON_VENV = Path(__file__).resolve().parents[2] / ".venv-triton"
_SITE = TRITON_VENV / "lib" / "python3.11" / "site-packages"
_SERVER = _SITE / "pytriton" / "tritonserver"
_LIBS = _SITE / "nvidia_pytriton.libs"
#: what is said where the server is missing
MISSING = f"no tritonserver with its Python backend in {TRITON_VENV}: run make test (it makes it)"


def find_server() -> Path | None:
    """The ``tritonserver`` binary, when the Python-backend stub it runs models in is in place
    too (``make test`` copies it there); ``None`` otherwise."""
    binary, stub = _SERVER / "bin" / "tritonserver", _SERVER / "backends" / "python" / "triton_python_backend_stub"
    return binary if binary.is_file() and stub.is_file() else None


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
    ``prefix``: what runs it elsewhere (another host's ``ip netns exec``). ``FileNotFoundError``
    without the server (see :func:`find_server`)."""

    def __init__(self, repository: Path, log: Path, options: Sequence[str] = (), client: dict | None = None,
                 address: str = "127.0.0.1", prefix: Sequence[str] = ()) -> None:
        binary = find_server()
        if binary is None:
            raise FileNotFoundError(MISSING)
        self.binary = binary
        self.repository, self.log, self.address, self.prefix = repository, log, address, list(prefix)
        self.options, self.client = list(options), client or {}
        self.grpc_port, self.http_port, self.metrics_port = _free_ports(3)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.address}:{self.grpc_port}"

    def start(self, timeout: float = 180.0) -> None:
        """Launch the server in a session of its own and return once it and every model in the
        repository are ready."""
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
        """Poll the server's health until it and every model are ready; ``RuntimeError`` with the
        end of its log if it exits or is not ready within ``timeout`` seconds."""
        import tritonclient.grpc as grpcclient  # type: ignore[import-untyped]
        from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

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
        """The last lines of the server's log, on one line."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Start a server on loopback, print ``PID HOST:PORT`` once it is ready, and leave it running;
    on failure, stop it and say why in one line (exit status 1). ``--check`` starts nothing."""
    parser = argparse.ArgumentParser(prog="python -m streamrec.bench.tritonserver", description=main.__doc__)
    parser.add_argument("repository", type=Path, nargs="?", help="the model repository (streamrec engines export --triton DIR)")
    parser.add_argument("log", type=Path, nargs="?", help="the file the server's output is appended to")
    parser.add_argument("--timeout", type=float, default=180.0, metavar="S", help="seconds to wait for it (default: %(default)g)")
    parser.add_argument("--check", action="store_true", help="start nothing: exit 0 if the server is installed, else say so (exit 1)")
    args = parser.parse_args(argv)
    if find_server() is None:
        print(f"tritonserver: {MISSING}", file=sys.stderr)
        return 1
    if args.check:
        return 0
    if args.repository is None or args.log is None:
        parser.error("REPOSITORY and LOG are needed to start a server")
    if not args.repository.is_dir():
        print(f"tritonserver: {args.repository}: no such model repository (streamrec engines export --triton DIR writes one)",
              file=sys.stderr)
        return 1
    try:
        server = TritonServer(args.repository, args.log)
        try:
            server.start(args.timeout)
        except BaseException:
            server.kill()
            raise
    except (OSError, RuntimeError) as exc:
        print(f"tritonserver: {exc}", file=sys.stderr)
        return 1
    assert server.process is not None
    print(server.process.pid, server.url, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
