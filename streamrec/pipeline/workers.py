"""A capture's links to several inference workers, and which worker serves its camera.

Every capture connects to every worker (one frames and one status socket each) and sends its
camera to one of them only, so that the camera's tracks stay whole on one worker. The worker is
chosen by rendezvous (highest random weight) hashing of the camera's label over the workers it
is linked to now: every capture agrees without talking to the others, the cameras spread evenly,
and when a worker goes only its cameras move (and come back when it returns).

Whether a worker is there is what ZeroMQ itself knows: a socket monitor on each status socket
reports the handshake with the worker (linked) and the end of the connection (gone), and ZMTP
heartbeats end a connection whose peer stopped answering (a host that vanished sends nothing
at all), within ``HEARTBEAT_MS`` x 3. At the start a capture waits (``STARTUP_WAIT_S`` at most)
until every worker is linked, so that its camera goes to its own worker from the first frame.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

from streamrec.bus.sockets import push_socket

__all__ = ["HEARTBEAT_MS", "STARTUP_WAIT_S", "Move", "WorkerLinks", "rendezvous"]

#: how often a capture pings each worker; one silent for three pings is taken for gone
HEARTBEAT_MS = 1000
#: at the start, how long a capture waits for every worker (they load their models) before it
#: sends its camera to those that are there: else it would move as soon as the others came up
STARTUP_WAIT_S = 30.0


def rendezvous(label: str, workers: Iterable[int]) -> int | None:
    """The worker (a number) among ``workers`` that serves camera ``label``: the one whose hash
    with the label is highest; None when there is none."""
    weight = lambda worker: hashlib.blake2b(f"{worker}/{label}".encode(), digest_size=8).digest()
    return max(workers, key=weight, default=None)


@dataclass(frozen=True)
class Move:
    """The camera's worker changed: from ``old`` to ``new`` (None: none), and whether ``old``
    is gone (else a worker it prefers came back)."""

    old: int | None
    new: int | None
    old_gone: bool

    def describe(self, label: str) -> str:
        now = f"now served by worker {self.new}" if self.new is not None else "no worker is linked: frames wait"
        if self.old is None:
            return f"{label}: {now}"
        return f"{label}: {now}; worker {self.old} is {'gone' if self.old_gone else 'still linked'}"


class WorkerLinks:
    """A frames and a status PUSH socket to each worker (numbered from 1, in the order of
    ``addresses``: ``(frames, status)`` pairs), and the worker serving camera ``label``."""

    def __init__(self, ctx: zmq.Context, label: str, addresses: Sequence[tuple[str, str]], status_linger_ms: int) -> None:
        self.label = label
        self.frames: dict[int, zmq.Socket] = {}
        self.status: dict[int, zmq.Socket] = {}
        self._monitors: dict[int, zmq.Socket] = {}
        for worker, (frames, status) in enumerate(addresses, 1):
            self.frames[worker] = push_socket(ctx, frames, hwm=2, linger_ms=0)
            self.status[worker] = push_socket(ctx, status, linger_ms=status_linger_ms, heartbeat_ms=HEARTBEAT_MS,
                                              monitor=zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
            self._monitors[worker] = self.status[worker].get_monitor_socket()
        self.linked: set[int] = set()  #: the workers whose status link is up now
        self.serving: int | None = None  #: the worker the camera is sent to
        self._started = time.monotonic()

    def update(self) -> Move | None:
        """Read what the monitors saw; the move, if the camera's worker changed."""
        gone: set[int] = set()
        for worker, monitor in self._monitors.items():
            while monitor.poll(0):
                event = recv_monitor_message(monitor)["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.linked.add(worker)
                else:
                    self.linked.discard(worker)
                    gone.add(worker)
        starting = self.serving is None and time.monotonic() - self._started < STARTUP_WAIT_S
        if starting and len(self.linked) < len(self.status):
            return None
        chosen = rendezvous(self.label, self.linked)
        if chosen == self.serving:
            return None
        move = Move(self.serving, chosen, self.serving in gone or self.serving not in self.linked)
        self.serving = chosen
        return move

    def wait(self, timeout_ms: int) -> None:
        """Wait until a monitor has news, at most ``timeout_ms``."""
        poller = zmq.Poller()
        for monitor in self._monitors.values():
            poller.register(monitor, zmq.POLLIN)
        poller.poll(timeout_ms)

    def close(self) -> None:
        for worker, sock in self.status.items():
            sock.disable_monitor()
            self._monitors[worker].close(linger=0)
