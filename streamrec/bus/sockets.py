"""ZeroMQ sockets named by role, and the only code that sends or receives messages.

Patterns, and why:

* frames, capture -> inference: PUSH/PULL (fan-in from every camera to one batcher), each
  message a binary :class:`~streamrec.bus.messages.FrameHeader` whose pixels wait in the
  camera's shared-memory frame ring (:mod:`streamrec.bus.ring`), or follow it, raw or JPEG,
  when the two stages may not share a host (``[links] frame_pixels``). Senders never block: a frame
  that finds no free slot or no room in the two-message queue is dropped and counted at the
  camera, and the batcher drains its socket and keeps only the newest frame of each source,
  so a slow consumer never makes latency grow. (A video file read with ``--fast`` waits for
  room instead, and the batcher keeps all its frames, in order.)
* events, inference -> events stage: PUSH/PULL with the default queue and blocking sends: an
  event is never dropped between stages.
* published events and JPEG frames: :class:`Publisher` (an XPUB), topic as the first frame
  (``match``, ``unknown``... or the source name), so subscribers filter in ZeroMQ. It drops for
  slow subscribers by design; the events journal is the lossless path. Each output is published
  twice, on its public address and on an ``ipc://`` feed in the run directory that only the web
  stage reads, so whatever a stranger does to the public port never reaches the door page.
* stage statistics -> supervisor: PUSH/PULL, sent without blocking (a missing report only
  delays a status line); the supervisor forwards each on the monitor :class:`Publisher`.

Internal addresses are ``ipc://`` endpoints in a private run directory (mode 0700, on
``/dev/shm`` where it exists, as the frame rings live there too); published ones are
``tcp://127.0.0.1:PORT`` unless the configuration binds elsewhere.

What a sender can make a receiver hold, and why it is bounded (docs/reliability.md has the
figures per socket):

* Receiving sockets (PULL, SUB) set ``ZMQ_MAXMSGSIZE`` (:func:`part_limit`): ZeroMQ refuses a
  frame larger than what the socket accepts before allocating it, and ends that connection
  (the sender's ZeroMQ reconnects by itself; ZeroMQ does not say why a connection ended, so
  such frames cannot be counted). Below that, :func:`receive` keeps at most three frames of a
  message and checks every size against the schema before parsing (see
  :mod:`streamrec.bus.messages`); a message that fails is counted by the stage that received
  it. A receiver queues ``hwm`` messages, so it holds at most ``hwm`` x ``part_limit`` bytes per
  frame, whoever sends. (ZeroMQ delivers a message only once all its frames have arrived, and
  does not bound their number: the internal sockets are reachable only by this user, through
  the run directory. And a sender that closes its socket while the receiver's queue is full
  loses what it had queued, whatever its ``ZMQ_LINGER``: 269 of 1,000 small messages in a test
  here; the receiver never sees them.)
* A :class:`Publisher` is where strangers connect. libzmq 4.3.5 (pyzmq 27) keeps every
  subscription in a trie that allocates per byte and per subscriber: measured here, one
  10 MB subscription grew a PUB from 16 MB to 474 MB, kept after the subscriber left, and
  100,000 random 200-byte subscriptions grew it to 817 MB even with ``ZMQ_MAXMSGSIZE`` at
  256. ``ZMQ_XPUB_MANUAL`` does not help: libzmq stores each manual subscription in a second
  trie (to unsubscribe on disconnect) before the application sees it (493 MB and 974 MB in the
  same two attacks), and it can neither cap one subscriber's subscriptions nor drop one
  subscriber. So the publisher bounds them itself:

  - size: ``ZMQ_MAXMSGSIZE`` of 256 bytes (more if a topic is longer), so an oversized
    subscription ends its connection before it is allocated (one of 10 MB left the publisher
    at 16 MB);
  - count: ``ZMQ_XPUB_VERBOSER`` hands every subscription to :meth:`Publisher.service`,
    which counts those that can match no topic this publisher sends (``refused``): a prefix of
    an event type or a source name costs at most one trie entry per byte of the topics, which
    are few and short; any other costs up to 256 trie nodes (each ~50 bytes, plus a table of
    up to 256 pointers where prefixes branch), about 15 KB. After ``REFUSED_BUDGET`` of them,
    or with more than ``MAX_SUBSCRIBERS`` connections (each 25-50 KB of buffers and queue), the
    publisher closes its socket and binds a new one: every subscriber is dropped, the
    well-behaved ones reconnect and resubscribe by themselves within a few hundred
    milliseconds (missing what was published meanwhile), and the memory is freed. So
    subscriptions and connections hold at most about ``REFUSED_BUDGET`` x 15 KB +
    ``MAX_SUBSCRIBERS`` x 50 KB (about 30 MB), plus what arrives between two calls of
    ``service`` (on every send and every stage step; each subscriber's queue of
    subscriptions holds ``SUBSCRIPTION_HWM``). An events stage grew by 0 MB under a 10 MB
    subscription, 25 MB under 60,000 random ones and 23 MB under 356 connections. A stranger
    who keeps subscribing to nothing, or keeps connecting, keeps every subscriber of that
    address reconnecting: the web stage reads its own feeds, never the public addresses;
  - queues: a subscriber that stops reading pins the last ``hwm`` messages sent to it (a
    message is shared among subscribers, not copied), so at most ``MAX_SUBSCRIBERS`` x ``hwm``
    messages.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from streamrec.bus.curve import LinkContext, LinkCurve
from streamrec.bus.messages import (
    FRAME_MESSAGE_MAX,
    HEADER_LIMITS,
    MAX_JPEG,
    Expect,
    FrameHeader,
    JpegFrame,
    Message,
    MessageError,
    Overlay,
    decode,
    decode_frame_pixels,
    decode_pixels,
)
from streamrec.bus.ring import RingReader, StaleFrame

__all__ = [
    "RUN_DIR_PREFIX",
    "Drained",
    "DropLog",
    "Endpoints",
    "Publisher",
    "Received",
    "drain_frames",
    "new_run_dir",
    "part_limit",
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
RECEIVE_LIMIT = 256  #: messages :func:`receive_pending` takes at most per call
MAX_PARTS = 3  #: frames of a message: topic, header, payload
PART_FLOOR = 256 * 1024  #: bytes of a frame any receiving socket reads (and counts, if malformed)
PULL_HWM = 100  #: messages a PULL socket queues unless told otherwise: with ``part_limit``, what a sender can make it hold
REFUSED_BUDGET = 1000  #: subscriptions matching no topic a :class:`Publisher` holds before it starts afresh
MAX_SUBSCRIBERS = 256  #: connections a :class:`Publisher` holds before it starts afresh
SUBSCRIPTION_LIMIT = 256  #: bytes of a subscription (or any frame) a subscriber may send
CURVE_HANDSHAKE_LIMIT = 1024  #: bytes a secured publisher reads: a CURVE INITIATE command (257 + metadata)
SUBSCRIPTION_HWM = 16  #: subscriptions queued per subscriber before ZeroMQ stops reading its connection
DROP_LOG_INTERVAL_S = 10.0  #: at most one warning per source of trouble this often

log = logging.getLogger("streamrec.bus")

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
    monitor: str  #: supervisor -> web, XPUB/SUB, every StageStats received (for /metrics)
    events_pub: str  #: events stage, XPUB, published events (topic = event type)
    jpeg_pub: str  #: render stage, XPUB, overlaid JPEG frames (topic = source name)
    events_feed: str  #: events stage -> web, XPUB/SUB, the published events again
    jpeg_feed: str  #: render stage -> web, XPUB/SUB, the published JPEG frames again
    curve: LinkCurve | None = None  #: CURVE on the links given an address (:mod:`streamrec.bus.curve`)
    #: ``(frames, status)`` of each inference worker, when several share the cameras (none: one
    #: inference stage binds ``frames`` and ``status``)
    workers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def for_run(
        cls, run_dir: Path, events_pub: str, jpeg_pub: str, links: Mapping[str, str] | None = None,
        curve: LinkCurve | None = None, workers: Sequence[tuple[str, str]] = (),
    ) -> Endpoints:
        """The endpoints of a run whose private folder is ``run_dir``: each internal link at the
        address ``links`` gives it (``[links]``), else an ipc socket in that folder; ``curve``
        secures those given an address. ``workers``: each inference worker's ``(frames, status)``
        addresses, ``""`` for ipc sockets of its own in that folder."""
        given = {name: address for name, address in (links or {}).items() if address}
        ipc = lambda name, file: given.get(name) or f"ipc://{run_dir / file}"
        own = tuple((frames or f"ipc://{run_dir / f'frames-{k}'}", status or f"ipc://{run_dir / f'status-{k}'}")
                    for k, (frames, status) in enumerate(workers, 1))
        return cls(
            rings=str(run_dir),
            frames=ipc("frames", "frames"),
            status=ipc("status", "status"),
            overlays=ipc("overlays", "overlays"),
            events_in=ipc("events_in", "events"),
            stats=ipc("stats", "stats"),
            monitor=ipc("monitor", "monitor"),
            events_pub=events_pub,
            jpeg_pub=jpeg_pub,
            events_feed=ipc("events_feed", "events-feed"),
            jpeg_feed=ipc("jpeg_feed", "jpeg-feed"),
            curve=curve,
            workers=own,
        )

    def for_worker(self, worker: int) -> Endpoints:
        """The endpoints inference worker ``worker`` (from 1) binds: its own frames and status."""
        frames, status = self.workers[worker - 1]
        return dataclasses.replace(self, frames=frames, status=status)


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


def part_limit(accepts: type[Message | FrameHeader] | None = None) -> int:
    """``ZMQ_MAXMSGSIZE`` for a socket that receives ``accepts`` (any kind, if None): the
    largest payload for kinds that carry one, else twice the header limit and at least
    ``PART_FLOOR``, so that a message well over its limit is still read, counted and refused."""
    if accepts is None or accepts in (Overlay, JpegFrame):
        return MAX_JPEG
    base = FRAME_MESSAGE_MAX if accepts is FrameHeader else HEADER_LIMITS[accepts.kind]
    return max(PART_FLOOR, 2 * base)


def _socket(ctx: zmq.Context, kind: int, hwm: int | None, linger_ms: int) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def _connect(sock: zmq.Socket, address: str, monitor: int) -> zmq.Socket:
    """Connect ``sock``, watching the ``monitor`` socket events (none: 0) from before the
    connection starts: a monitor attached after ``connect()`` misses the handshake with a peer
    that is already there. The monitor's PAIR socket is ``sock.get_monitor_socket()``, which
    returns the one attached here."""
    if monitor:
        sock.get_monitor_socket(monitor)
    sock.connect(address)
    return sock


def push_socket(
    ctx: zmq.Context, address: str, hwm: int | None = None, linger_ms: int = 1000, heartbeat_ms: int = 0,
    monitor: int = 0,
) -> zmq.Socket:
    """A PUSH socket connected to ``address`` (``hwm``: queue length before sends fail). With
    ``heartbeat_ms``, ZeroMQ pings the peer that often and drops the connection after three
    unanswered (a peer whose host vanished sends no FIN, so nothing else would end it).
    ``monitor``: socket events to watch, see :func:`_connect`."""
    sock = _socket(ctx, zmq.PUSH, hwm, linger_ms)
    if heartbeat_ms:
        sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * heartbeat_ms)
    return _connect(sock, address, monitor)


def pull_socket(
    ctx: zmq.Context, address: str, hwm: int = PULL_HWM, accepts: type[Message | FrameHeader] | None = None,
    inline_pixels: bool = False,
) -> zmq.Socket:
    """A PULL socket bound to ``address``, refusing frames larger than :func:`part_limit`
    of ``accepts`` (or than a frame's pixels, with ``inline_pixels``); it holds at most ``hwm``
    messages (senders wait when it is full)."""
    sock = _socket(ctx, zmq.PULL, hwm, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_JPEG if inline_pixels else part_limit(accepts))
    sock.bind(address)
    return sock


def sub_socket(
    ctx: zmq.Context, address: str, topics: Sequence[str] | None = None, hwm: int | None = None,
    accepts: type[Message] | None = None, monitor: int = 0,
) -> zmq.Socket:
    """A SUB socket connected to ``address``, subscribed to ``topics`` (all when empty),
    refusing frames larger than :func:`part_limit` of ``accepts``. ``monitor``: socket events
    to watch, see :func:`_connect`."""
    sock = _socket(ctx, zmq.SUB, hwm, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, part_limit(accepts))
    for topic in topics or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    return _connect(sock, address, monitor)


def send(
    sock: zmq.Socket, topic: str, message: Message, payload: np.ndarray | bytes | None = None, block: bool = True
) -> bool:
    """Send ``message`` and its payload (a frame's pixels, sent without copying, or JPEG bytes).
    Returns False when a non-blocking send found the queue full (the message was dropped)."""
    parts: list[bytes | memoryview] = [topic.encode(), message.header()]
    if isinstance(payload, np.ndarray):
        parts.append(np.ascontiguousarray(payload).data)
    elif payload is not None:
        parts.append(payload)
    try:
        sock.send_multipart(parts, flags=0 if block else zmq.NOBLOCK, copy=not isinstance(payload, np.ndarray))
    except zmq.Again:
        return False
    return True


def send_frame(
    sock: zmq.Socket, header: FrameHeader, block: bool = True, pixels: np.ndarray | bytes | None = None
) -> bool:
    """Send a frame message: its header alone when its pixels are in the ring it names, else
    with ``pixels`` (:func:`~streamrec.bus.messages.encode_frame_pixels`). Returns False when a
    non-blocking send found the queue full (the message was dropped)."""
    parts: list[bytes | memoryview] = [header.pack()]
    if pixels is not None:
        parts.append(pixels.data if isinstance(pixels, np.ndarray) else pixels)
    try:
        sock.send_multipart(parts, flags=0 if block else zmq.NOBLOCK, copy=pixels is None or isinstance(pixels, bytes))
    except zmq.Again:
        return False
    return True


def _receive_parts(sock: zmq.Socket, flags: int) -> list[zmq.Frame]:
    """One whole message, without copying; :class:`MessageError` if it has more than
    ``MAX_PARTS`` frames (the rest are read and let go, never kept)."""
    parts = [sock.recv(flags, copy=False)]
    extra = 0
    more = parts[-1].more
    while more:
        part = sock.recv(copy=False)
        more = part.more
        if len(parts) < MAX_PARTS:
            parts.append(part)
        else:
            extra += 1
    if extra:
        raise MessageError(f"{MAX_PARTS + extra} message frames, expected at most {MAX_PARTS}")
    return parts


def receive(sock: zmq.Socket, flags: int = 0, expect: Expect = None) -> Received:
    """Receive one message with a JSON header: ``(topic, message, payload)``: an RGB array for
    overlays, JPEG bytes for JPEG frames, else ``None``. ``expect``: the kinds accepted (one
    class, a tuple of them, or None for any). Raises :class:`MessageError` for a malformed
    message (the caller counts it and carries on) and ``zmq.Again`` when ``flags`` has
    ``NOBLOCK`` and nothing is waiting."""
    raw = [part.buffer for part in _receive_parts(sock, flags)]
    topic, message = decode(raw, expect)
    if isinstance(message, Overlay):
        return topic, message, decode_pixels(message, raw[2])
    if isinstance(message, JpegFrame):
        return topic, message, bytes(raw[2])
    return topic, message, None


def _detached(error: Exception) -> MessageError:
    """The error without its traceback: a raised exception refers to the frame that caught it,
    whose locals (the messages received so far, frames in their rings) would then live on in a
    reference cycle until Python's cycle collector ran, holding ring slots the camera needs."""
    return MessageError(str(error))


def receive_pending(
    sock: zmq.Socket, timeout_ms: int = 0, expect: Expect = None, limit: int = RECEIVE_LIMIT
) -> tuple[list[Received], list[MessageError]]:
    """Wait up to ``timeout_ms`` for a message, then take the messages already waiting, at most
    ``limit`` (so that a flood cannot keep the caller here), without blocking. Returns them and
    the errors of those that were malformed (skipped, so one bad sender never stops a stage)."""
    messages: list[Received] = []
    errors: list[MessageError] = []
    if timeout_ms and not sock.poll(timeout_ms):
        return messages, errors
    for _ in range(limit):
        try:
            messages.append(receive(sock, zmq.NOBLOCK, expect))
        except zmq.Again:
            break
        except MessageError as exc:
            errors.append(_detached(exc))
    return messages, errors


class Drained(NamedTuple):
    """What :func:`drain_frames` took: each source's frames in arrival order, the errors of the
    malformed messages, how many frames were stale (their slot reused before they were read)
    and how many came from a source not in the caller's list."""

    frames: dict[str, list[tuple[FrameHeader, np.ndarray]]]
    errors: list[MessageError]
    stale: int
    unknown: int


def drain_frames(
    sock: zmq.Socket, rings: RingReader, timeout_ms: int, sources: Iterable[str] | None = None
) -> Drained:
    """Wait up to ``timeout_ms`` for frames, then take what is queued (at most ``DRAIN_LIMIT``
    messages, so that cameras sending without pause cannot keep the caller here), each frame's
    pixels read-only in place in its ring (the slot is the caller's until it lets go of the
    array), or decoded from the message when they came with it. Frames of sources not in ``sources`` (when given) are counted, never mapped. The
    caller keeps the newest frame of each source, or all of a lossless source."""
    frames: dict[str, list[tuple[FrameHeader, np.ndarray]]] = {}
    errors: list[MessageError] = []
    known = None if sources is None else set(sources)
    unknown = stale = 0
    if timeout_ms and not zmq.zmq_poll([(sock, zmq.POLLIN)], timeout_ms):
        return Drained(frames, errors, stale, unknown)
    for _ in range(DRAIN_LIMIT):
        if not int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            break
        try:
            parts = _receive_parts(sock, 0)
            header = FrameHeader.unpack(parts[0].buffer)
            expected = 1 if header.pixels == "ring" else 2
            if len(parts) != expected:
                raise MessageError(f"frame: {len(parts)} message frames, expected {expected} with {header.pixels} pixels")
            if known is not None and header.source not in known:
                unknown += 1
                continue
            if header.pixels == "ring":
                pixels = rings.take(header.source, header.ring, header.slot, header.seq, header.height, header.width)
            else:
                pixels = decode_frame_pixels(header, parts[1].buffer)
        except StaleFrame:
            stale += 1
            continue
        except MessageError as exc:
            errors.append(_detached(exc))
            continue
        except (ValueError, OSError) as exc:  # a ring name, slot, size or ring file that cannot be right
            errors.append(MessageError(f"frame: {exc}"))
            continue
        frames.setdefault(header.source, []).append((header, pixels))
    return Drained(frames, errors, stale, unknown)


@dataclass
class _Trouble:
    count: int = 0  #: drops since the last line
    last: str = ""  #: why the last one was dropped
    logged: float = field(default=-float("inf"))  #: monotonic time of the last line


class DropLog:
    """Warnings about dropped messages, at most one line per source of trouble (a socket, a
    reason) every ``interval_s``, saying how many since the previous line and why the last
    one was dropped: a flood of bad messages must not become a flood of log lines."""

    def __init__(self, logger: logging.Logger, interval_s: float = DROP_LOG_INTERVAL_S) -> None:
        self.logger, self.interval_s = logger, interval_s
        self._troubles: dict[str, _Trouble] = {}

    def dropped(self, what: str, count: int, why: str) -> None:
        """``count`` more ``what`` (e.g. "malformed message(s) on status") were dropped."""
        if count <= 0:
            return
        trouble = self._troubles.setdefault(what, _Trouble())
        trouble.count += count
        trouble.last = why
        self.flush(what)

    def flush(self, only: str | None = None) -> None:
        """Write the lines that are due (the counts of drops that came after the last line)."""
        now = time.monotonic()
        for what, trouble in self._troubles.items():
            if (only is None or what == only) and trouble.count and now - trouble.logged >= self.interval_s:
                since = "" if trouble.logged == -float("inf") else f" in the last {now - trouble.logged:.0f} s"
                self.logger.warning("dropped %d %s%s; the last: %s", trouble.count, what, since, trouble.last)
                trouble.count, trouble.logged = 0, now


class Publisher:
    """An XPUB bound at ``address`` that publishes topics among ``topics`` (event types, source
    names) and bounds what its subscribers can make it hold (see the module docstring).

    ``refused`` counts subscriptions that can match none of ``topics``, and messages from
    subscribers that are no subscription at all; ``resets`` counts the times it dropped every
    subscriber to free them; ``subscribers`` is the connections now.
    Sends never block: a slow subscriber loses messages beyond ``hwm``."""

    def __init__(self, ctx: zmq.Context, address: str, topics: Iterable[str], hwm: int) -> None:
        encoded = [topic.encode() for topic in topics]
        self.ctx, self.address, self.hwm = ctx, address, hwm
        self._prefixes = frozenset(topic[:end] for topic in encoded for end in range(len(topic) + 1)) | {b""}
        secured = isinstance(ctx, LinkContext) and ctx.secured(address) is not None
        # a CURVE handshake's INITIATE command is a message too, and ZeroMQ holds it to the limit
        floor = CURVE_HANDSHAKE_LIMIT if secured else SUBSCRIPTION_LIMIT
        self._limit = max([floor, *(16 + len(topic) for topic in encoded)])
        self.refused = 0
        self.resets = 0
        self.subscribers = 0
        self._refused_now = 0
        self._drops = DropLog(log)
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._open(must=True)

    def send(self, topic: str, message: Message, payload: bytes | None = None) -> bool:
        """Publish ``message`` (with its JPEG payload); False if it could not be (the socket is
        being bound again after a reset)."""
        self.service()
        return self._sock is not None and send(self._sock, topic, message, payload, block=False)

    def service(self) -> None:
        """Read the subscriptions and connections that arrived, and start afresh if they pass
        the bounds. Call it at least once per step of the owner's loop."""
        if self._sock is None and not self._open(must=False):
            return
        assert self._sock is not None and self._monitor is not None
        for _ in range(REFUSED_BUDGET + RECEIVE_LIMIT):
            try:
                note = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if note[:1] in (b"\x00", b"\x01") and note[1:] in self._prefixes or note[:1] == b"\x00":
                continue  # one that can match, or an unsubscription (which frees, never costs)
            self.refused += 1
            if note[:1] == b"\x01":  # in the trie now; anything else was only this message
                self._refused_now += 1
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            self.subscribers += 1 if event == zmq.EVENT_ACCEPTED else -1
        if self._refused_now > REFUSED_BUDGET or self.subscribers > MAX_SUBSCRIBERS:
            self._reset()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.disable_monitor()
            self._sock.close(linger=0)
        if self._monitor is not None:
            self._monitor.close(linger=0)
        self._sock = self._monitor = None

    def _reset(self) -> None:
        why = f"{self.subscribers} connections, {self._refused_now} subscriptions matching nothing published here"
        what = f"subscriber(s) of {self.address} to free what they held (they reconnect by themselves)"
        self._drops.dropped(what, max(self.subscribers, 1), why)
        self.resets += 1
        self.close()
        self._open(must=False)

    def _open(self, must: bool) -> bool:
        """Bind a new socket; after a reset the old one's port may take a moment to be free."""
        sock = _socket(self.ctx, zmq.XPUB, None, 0)
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.RCVHWM, SUBSCRIPTION_HWM)
        sock.setsockopt(zmq.MAXMSGSIZE, self._limit)
        sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        # watched from before it binds, so that no subscriber connects uncounted
        self._sock, self._monitor = sock, sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        try:
            sock.bind(self.address)
        except zmq.ZMQError:
            self.close()
            if must:
                raise
            return False
        self._refused_now, self.subscribers = 0, 0
        return True
