"""Free loopback ports for the servers the tests start."""

from __future__ import annotations

import socket

#: ports already handed out in this test process: the kernel may offer a closed probe's port
#: again, and two servers of one test told the same port would fail to start
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on now and no earlier call of this process returned."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
