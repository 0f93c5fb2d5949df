"""Other hosts on a real network, made of network namespaces. Needs root (and ``ip`` from
iproute2); skips without them, or fails when ``CI`` is set.

:func:`remote_host`: another host for tests of what a server shows to other machines: a network
namespace joined to this one by a veth pair (a /30 of its own: this side ``server_ip``, the
other ``client_ip``).

:func:`site`: several hosts on one segment of their own: a namespace per host, each joined by a
veth pair to a bridge in a namespace of the site's (its switch), with a /24 of the site's
choosing; this machine joins it too (:attr:`Site.here`), as an operator's laptop on that network
would, so the test reaches every host. Programs run on a host with :meth:`SiteHost.command`
(``ip netns exec``, which becomes the program: its PID is the program's); each host has its own
loopback, so a host's own services stay on it.

:meth:`RemoteHost.connect` opens a TCP connection from inside the namespace: a helper thread
joins it (``setns`` changes only the calling thread's namespace) and opens the socket there; a
socket stays in the namespace it was made in, so the test uses it from any thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.needs import missing, require

__all__ = ["RemoteHost", "Site", "SiteHost", "remote_host", "site"]

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


def _require() -> None:
    if os.geteuid() != 0:
        missing("a network namespace for another host needs root")
    require("netns")


@contextlib.contextmanager
def remote_host() -> Iterator[RemoteHost]:
    """A namespace with a veth link to this one, removed (link and namespace) afterwards."""
    _require()
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


@dataclass(frozen=True)
class SiteHost:
    """One host of a :func:`site`: the namespace ``namespace``, at ``ip`` on the site's segment."""

    name: str
    namespace: str
    ip: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` as run on this host (for ``subprocess``)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass(frozen=True)
class Site:
    """The hosts of a :func:`site` by name, and ``here``: this machine's address on it."""

    hosts: dict[str, SiteHost]
    here: str


@contextlib.contextmanager
def site(*names: str) -> Iterator[Site]:
    """Hosts ``names`` (at most 200) on a segment of their own, and this machine on it; removed
    afterwards (the test stops the processes it started on them first, by PID)."""
    _require()
    assert 0 < len(names) <= 200 and len(set(names)) == len(names)
    tag = f"st{os.getpid() % 100000}"
    subnet = f"10.232.{os.getpid() % 250}"  # a /24 of a private range, one per test process
    switch = f"{tag}-sw"
    hosts = {name: SiteHost(name, f"{tag}-{i}", f"{subnet}.{i + 1}") for i, name in enumerate(names)}
    made: list[str] = []
    try:
        _ip("netns", "add", switch)
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for i, host in enumerate(hosts.values()):
            _ip("netns", "add", host.namespace)
            made.append(host.namespace)
            port, nic = f"{tag}p{i}", f"{tag}n{i}"
            _ip("link", "add", port, "type", "veth", "peer", "name", nic)
            _ip("link", "set", port, "netns", switch)
            _ip("link", "set", nic, "netns", host.namespace)
            _ip("-n", switch, "link", "set", port, "master", "br0")
            _ip("-n", switch, "link", "set", port, "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.ip}/24", "dev", nic)
            _ip("-n", host.namespace, "link", "set", nic, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("link", "add", f"{tag}h", "type", "veth", "peer", "name", f"{tag}p")  # this machine's leg
        _ip("link", "set", f"{tag}p", "netns", switch)
        _ip("-n", switch, "link", "set", f"{tag}p", "master", "br0")
        _ip("-n", switch, "link", "set", f"{tag}p", "up")
        _ip("addr", "add", f"{subnet}.254/24", "dev", f"{tag}h")
        _ip("link", "set", f"{tag}h", "up")
        for i, host in enumerate(hosts.values()):
            _wait_up(host.namespace, f"{tag}n{i}")
        yield Site(hosts, f"{subnet}.254")
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", f"{tag}h")  # takes its peer with it
        for namespace in reversed(made):  # a namespace takes its ends of the veth pairs with it
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", namespace)
