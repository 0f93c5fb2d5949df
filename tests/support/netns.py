"""Another host on a real network, for tests of what a server shows to other machines: a network
namespace joined to this one by a veth pair (a /30 of its own: this side ``server_ip``, the
other ``client_ip``). Needs root (and ``ip`` from iproute2); skips without them, or fails
when ``CI`` is set.

:meth:`RemoteHost.connect` opens a TCP connection from inside the namespace: a helper thread
joins it (``setns`` changes only the calling thread's namespace) and opens the socket there; a
socket stays in the namespace it was made in, so the test uses it from any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.needs import missing

__all__ = ["RemoteHost", "remote_host"]

CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _wait_up(namespace: str, link: str, timeout_s: float = 10.0) -> None:
    """Until the link carries traffic (both ends up), so that the first connection is not refused."""
    deadline = time.monotonic() + timeout_s
    while "state UP" not in subprocess.run(["ip", "-n", namespace, "-o", "link", "show", link], check=True,
                                           capture_output=True, text=True, timeout=30).stdout:
        assert time.monotonic() < deadline, f"{link} in {namespace} is not up after {timeout_s} s"
        time.sleep(0.05)


@dataclass(frozen=True)
class RemoteHost:
    """The namespace ``name``; it reaches this machine at ``server_ip`` and comes from ``client_ip``."""

    name: str
    server_ip: str
    client_ip: str

    def connect(self, port: int, timeout: float) -> socket.socket:
        """A TCP connection from the namespace to ``server_ip:port``."""
        made: list[socket.socket | BaseException] = []

        def join_and_connect() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/var/run/netns/{self.name}") as namespace:
                    if libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.name} failed")
                made.append(socket.create_connection((self.server_ip, port), timeout=timeout))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                made.append(exc)

        thread = threading.Thread(target=join_and_connect, name=f"in {self.name}")
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        return made[0]


@contextlib.contextmanager
def remote_host() -> Iterator[RemoteHost]:
    """A namespace with a veth link to this one, removed (link and namespace) afterwards."""
    if os.geteuid() != 0:
        missing("a network namespace for another host needs root")
    if shutil.which("ip") is None:
        missing("a network namespace for another host needs ip (iproute2)")
    tag = f"sr{os.getpid() % 100000}"
    subnet = f"10.231.{os.getpid() % 250}"  # /30s of a private range, one per test process
    host = RemoteHost(f"{tag}-ns", f"{subnet}.1", f"{subnet}.2")
    _ip("netns", "add", host.name)
    try:
        _ip("link", "add", f"{tag}-h", "type", "veth", "peer", "name", f"{tag}-c")
        _ip("link", "set", f"{tag}-c", "netns", host.name)
        _ip("addr", "add", f"{host.server_ip}/30", "dev", f"{tag}-h")
        _ip("link", "set", f"{tag}-h", "up")
        _ip("-n", host.name, "addr", "add", f"{host.client_ip}/30", "dev", f"{tag}-c")
        _ip("-n", host.name, "link", "set", f"{tag}-c", "up")
        _ip("-n", host.name, "link", "set", "lo", "up")
        _wait_up(host.name, f"{tag}-c")
        yield host
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", f"{tag}-h")  # takes its peer with it
        _ip("netns", "del", host.name)
