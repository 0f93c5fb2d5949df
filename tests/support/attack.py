"""Hostile ZeroMQ clients in processes of their own, and the memory of the processes they attack.

Run as ``python -m tests.support.attack ADDRESS MODE COUNT``, a client connects real ZeroMQ
sockets to ``ADDRESS``, attacks, prints ``ready`` and waits to be killed (by PID: its own
sockets hold what it sent, and letting go of a subscription trie of millions of bytes would
take longer than the test); meanwhile it keeps polling its sockets, so that ZeroMQ reconnects
them and sends every subscription again whenever the publisher drops them. Modes:

* ``big``: one SUB subscribing with a prefix of COUNT bytes;
* ``many``: one XSUB sending COUNT subscriptions of 1 to 200 random bytes (the same every run);
* ``connections``: COUNT SUB sockets, each subscribed to a prefix no topic has.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[2]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@contextmanager
def peak_rss(pids: list[int]) -> Iterator[dict[int, float]]:
    """The peak resident memory (MB) of each of ``pids`` while the block runs, sampled every
    50 ms in a thread."""
    peaks = {pid: rss_mb(pid) for pid in pids}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            for pid in pids:
                peaks[pid] = max(peaks[pid], rss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        done.set()
        thread.join()


def start_attacker(address: str, mode: str, count: int) -> subprocess.Popen:
    """An attacking process, once it says it has sent everything."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.attack", address, mode, str(count)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready", f"attacker {mode} failed"
    return process


def stop_attacker(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(30)


def _attack(address: str, mode: str, count: int) -> list[zmq.Socket]:
    ctx = zmq.Context()
    sockets = []
    if mode == "big":
        sock = ctx.socket(zmq.SUB)
        sock.connect(address)
        sock.setsockopt(zmq.SUBSCRIBE, b"m" * count)
        sockets.append(sock)
    elif mode == "many":
        sock = ctx.socket(zmq.XSUB)
        sock.connect(address)
        rng = random.Random(count)
        for _ in range(count):
            sock.send(b"\x01" + rng.randbytes(rng.randint(1, 200)))
        sockets.append(sock)
    elif mode == "connections":
        contexts = [zmq.Context() for _ in range(count // 1000 + 1)]  # a context holds at most 1023 sockets
        for index in range(count):
            sock = contexts[index // 1000].socket(zmq.SUB)
            sock.setsockopt(zmq.SUBSCRIBE, f"no such topic {index}".encode())
            sock.connect(address)
            sockets.append(sock)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return sockets


if __name__ == "__main__":
    poller = zmq.Poller()
    for held in _attack(sys.argv[1], sys.argv[2], int(sys.argv[3])):
        poller.register(held, zmq.POLLIN)
    print("ready", flush=True)
    while True:  # until killed
        for ready, _ in poller.poll(100):
            ready.recv_multipart()
