"""ZeroMQ sockets named by role, and the only code that sends or receives messages.

Patterns, and why:

* frames, capture -> inference: PUSH/PULL (fan-in from every camera to one batcher), each
  message a binary :class:`~streamrec.bus.messages.FrameHeader` whose pixels wait in the
  camera's shared-memory frame ring (:mod:`streamrec.bus.ring`). Senders never block: a frame
  that finds no free slot or no room in the two-message queue is dropped and counted at the
  camera, and the batcher drains its socket and keeps only the newest frame of each source,
  so a slow consumer never makes latency grow. (A video file read with ``--fast`` waits for
  room instead, and the batcher keeps all its frames, in order.)
* events, inference -> events stage: PUSH/PULL with the default queue and blocking sends: an
  event is never dropped between stages.
* published events and JPEG frames: PUB/SUB, topic as the first frame (``match``,
  ``unknown``... or the source name), so subscribers filter in ZeroMQ. PUB drops for slow
  subscribers by design; the events journal is the lossless path.
* stage statistics -> supervisor: PUSH/PULL, sent without blocking (a missing report only
  delays a status line).

Internal addresses are ``ipc://`` endpoints in a private run directory (on ``/dev/shm`` where it
exists, as the frame rings live there too); published ones are ``tcp://127.0.0.1:PORT`` unless
the configuration binds elsewhere.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from streamrec.bus.messages import (
    FrameHeader,
    JpegFrame,
    Message,
    MessageError,
    Overlay,
    decode,
    decode_pixels,
)
from streamrec.bus.ring import RingReader, StaleFrame

__all__ = [
    "RUN_DIR_PREFIX",
    "Endpoints",
    "Received",
    "drain_frames",
    "new_run_dir",
    "pub_socket",
    "pull_socket",
    "push_socket",
    "receive",
    "receive_pending",
    "run_dirs_root",
    "send",
    "send_frame",
    "sub_socket",
]

DRAIN_LIMIT = 64  #: frame messages :func:`drain_frames` takes at most per call

#: ``(topic, message, payload)`` as :func:`receive` returns it.
Received = tuple[str, Message, "np.ndarray | bytes | None"]


@dataclass(frozen=True)
class Endpoints:
    """Addresses of one pipeline run."""

    rings: str  #: directory of the cameras' frame rings
    frames: str  #: capture -> inference, PUSH/PULL, frame headers
    status: str  #: capture -> inference, PUSH/PULL, source status changes
    overlays: str  #: inference -> render, PUSH/PULL, frames with their results
    events_in: str  #: inference -> events stage, PUSH/PULL, decisions
    stats: str  #: every stage -> supervisor, PUSH/PULL, StageStats
    monitor: str  #: supervisor -> web, PUB/SUB, every StageStats received (for /metrics)
    events_pub: str  #: events stage, PUB, published events (topic = event type)
    jpeg_pub: str  #: render stage, PUB, overlaid JPEG frames (topic = source name)

    @classmethod
    def for_run(cls, run_dir: Path, events_pub: str, jpeg_pub: str) -> Endpoints:
        ipc = lambda name: f"ipc://{run_dir / name}"
        return cls(
            rings=str(run_dir),
            frames=ipc("frames"),
            status=ipc("status"),
            overlays=ipc("overlays"),
            events_in=ipc("events"),
            stats=ipc("stats"),
            monitor=ipc("monitor"),
            events_pub=events_pub,
            jpeg_pub=jpeg_pub,
        )


def run_dirs_root() -> Path:
    """Where run directories are made: ``/dev/shm`` (memory) where it exists, else the temporary
    directory (a short path: ipc names are limited to about 100 bytes)."""
    shm = "/dev/shm"
    return Path(shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir())


#: the name of every run directory of this user starts with it
RUN_DIR_PREFIX = f"streamrec-{os.getuid()}-"


def new_run_dir() -> Path:
    """A private directory for this run's ipc endpoints and frame rings, in :func:`run_dirs_root`."""
    return Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=run_dirs_root()))


def _socket(ctx: zmq.Context, kind: int, hwm: int | None, linger_ms: int) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def push_socket(ctx: zmq.Context, address: str, hwm: int | None = None, linger_ms: int = 1000) -> zmq.Socket:
    """A PUSH socket connected to ``address`` (``hwm``: queue length before sends fail)."""
    sock = _socket(ctx, zmq.PUSH, hwm, linger_ms)
    sock.connect(address)
    return sock


def pull_socket(ctx: zmq.Context, address: str, hwm: int | None = None) -> zmq.Socket:
    """A PULL socket bound to ``address``."""
    sock = _socket(ctx, zmq.PULL, hwm, 0)
    sock.bind(address)
    return sock


def pub_socket(ctx: zmq.Context, address: str, hwm: int | None = None) -> zmq.Socket:
    """A PUB socket bound to ``address``."""
    sock = _socket(ctx, zmq.PUB, hwm, 0)
    sock.bind(address)
    return sock


def sub_socket(ctx: zmq.Context, address: str, topics: list[str] | None = None, hwm: int | None = None) -> zmq.Socket:
    """A SUB socket connected to ``address``, subscribed to ``topics`` (all when empty)."""
    sock = _socket(ctx, zmq.SUB, hwm, 0)
    for topic in topics or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    sock.connect(address)
    return sock


def send(
    sock: zmq.Socket, topic: str, message: Message, payload: np.ndarray | bytes | None = None, block: bool = True
) -> bool:
    """Send ``message`` and its payload (a frame's pixels, sent without copying, or JPEG bytes).
    Returns False when a non-blocking send found the queue full (the message was dropped)."""
    parts: list[bytes | np.ndarray] = [topic.encode("ascii"), message.header()]
    if isinstance(payload, np.ndarray):
        parts.append(np.ascontiguousarray(payload))
    elif payload is not None:
        parts.append(payload)
    try:
        sock.send_multipart(parts, flags=0 if block else zmq.NOBLOCK, copy=not isinstance(payload, np.ndarray))
    except zmq.Again:
        return False
    return True


def send_frame(sock: zmq.Socket, header: FrameHeader, block: bool = True) -> bool:
    """Send a frame message (its pixels are already in the ring it names). Returns False when a
    non-blocking send found the queue full (the message was dropped)."""
    try:
        sock.send(header.pack(), flags=0 if block else zmq.NOBLOCK)
    except zmq.Again:
        return False
    return True


def receive(sock: zmq.Socket, flags: int = 0) -> tuple[str, Message, np.ndarray | bytes | None]:
    """Receive one message with a JSON header: ``(topic, message, payload)``: an RGB array for
    overlays, JPEG bytes for JPEG frames, else ``None``. Raises :class:`MessageError` for a
    malformed message (the caller counts it and carries on) and ``zmq.Again`` when ``flags``
    has ``NOBLOCK`` and nothing is waiting."""
    parts = sock.recv_multipart(flags=flags, copy=False)
    raw = [part.buffer for part in parts]
    topic, message = decode([bytes(part) for part in raw[:2]] + raw[2:])
    if isinstance(message, Overlay):
        return topic, message, decode_pixels(message, raw[2])
    if isinstance(message, JpegFrame):
        return topic, message, bytes(raw[2])
    return topic, message, None


def receive_pending(sock: zmq.Socket, timeout_ms: int = 0) -> tuple[list[Received], int]:
    """Wait up to ``timeout_ms`` for a message, then take every message already waiting,
    without blocking. Returns them and how many were malformed (skipped, so one bad sender
    never stops a stage)."""
    messages: list[Received] = []
    malformed = 0
    if timeout_ms and not sock.poll(timeout_ms):
        return messages, malformed
    while True:
        try:
            messages.append(receive(sock, zmq.NOBLOCK))
        except zmq.Again:
            return messages, malformed
        except MessageError:
            malformed += 1


def drain_frames(
    sock: zmq.Socket, rings: RingReader, timeout_ms: int
) -> tuple[dict[str, list[tuple[FrameHeader, np.ndarray]]], int, int]:
    """Wait up to ``timeout_ms`` for frames, then take what is queued (at most ``DRAIN_LIMIT``
    messages, so that cameras sending without pause cannot keep the caller here), each frame's
    pixels read-only in place in its ring (the slot is the caller's until it lets go of the
    array). Returns each source's frames in arrival order (the caller keeps the newest, or all of
    a lossless source), how many messages were malformed, and how many frames were stale (their
    slot reused before they were read)."""
    frames: dict[str, list[tuple[FrameHeader, np.ndarray]]] = {}
    malformed = stale = 0
    if timeout_ms and not zmq.zmq_poll([(sock, zmq.POLLIN)], timeout_ms):
        return frames, malformed, stale
    for _ in range(DRAIN_LIMIT):
        if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            break
        parts = sock.recv_multipart()
        try:
            if len(parts) != 1:
                raise MessageError(f"frame: {len(parts)} message parts, expected 1")
            header = FrameHeader.unpack(parts[0])
            pixels = rings.take(header.source, header.ring, header.slot, header.seq, header.height, header.width)
        except StaleFrame:
            stale += 1
            continue
        except (ValueError, OSError):  # MessageError included: a bad header, ring name, slot or ring file
            malformed += 1
            continue
        frames.setdefault(header.source, []).append((header, pixels))
    return frames, malformed, stale
