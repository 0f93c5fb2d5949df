"""Frame rings: a camera's pixels in shared memory, so a frame message carries only its header.

Moving a 640x480 frame through a ZeroMQ socket costs two kernel copies, I/O-thread work for
every socket buffer's worth of bytes, and a wake-up of pyzmq's garbage-collector thread when the
zero-copy buffer is released. Here each capture process owns a ring of frame slots in a file
under the run directory (on ``/dev/shm`` where it exists, so the file is memory): the capture
decodes a frame straight into a free slot, and the frame message (a binary
:class:`~streamrec.bus.messages.FrameHeader`) names the ring, the slot and the slot's sequence
number. The batcher uses the pixels in place; the slot is free again once the batcher has let
go of the frame (the array and every view of it, an overlay still being sent included). ZeroMQ
still carries every frame message and keeps its patterns (fan-in PUSH/PULL, non-blocking
sends); only the bulk bytes take the shortcut.

File layout (little-endian), one file per ring, named ``ring-<source hash>-<pid>-<n>``:

* bytes 0-63: ``b"streamrec-ring\0\0"``, then ``u32`` version (1), slots, height, width and
  ``u64`` slot stride (bytes);
* bytes 64 onward: per slot two ``u64``: ``seq``, written by the capture (0 while the slot is
  being written, else the sequence number of the frame it holds), and ``consumed``, written by
  the batcher when it lets go of a frame (that frame's ``seq``);
* from byte 4096: the slots, ``stride`` bytes apart (page-aligned), each ``height * width * 3``
  bytes of RGB.

Who may touch a slot, without waiting on each other: the capture writes a slot only when it is
free: not held by a frame of its own it has not sent, and its last frame released by the
batcher. A frame whose release never comes (its message was lost with a batcher that died) is
taken back after ``reclaim_s``, but only if the capture gets the slot's exclusive lock
(``fcntl`` record lock on byte ``slot`` of the file): the batcher holds a shared lock on every
slot it uses, and the kernel drops a dead process's locks. The batcher takes the lock, then
checks that ``seq`` still equals the header's (else :class:`StaleFrame`: counted, never used);
the capture zeroes ``seq`` under its lock before writing. The file is allocated in full when
created, so a full ``/dev/shm`` is a clear error then, not a crash later.

A ring file outlives its capture process (the batcher may still be reading its last frames);
the next process of the same source removes it, and the supervisor removes the run directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import re
import struct
import threading
import time
import weakref
from pathlib import Path

import numpy as np

__all__ = ["RING_SLOTS", "FrameRing", "RingReader", "StaleFrame"]

MAGIC = b"streamrec-ring\0\0"
VERSION = 1
RING_SLOTS = 12  #: frames of a camera in flight: being decoded, queued, and held by the batcher
_HEAD = struct.Struct("<16sIIIIQ")
_SLOTS_OFFSET = 64  #: per-slot (seq, consumed) words start here
_DATA_OFFSET = 4096
_PAGE = 4096
_NAME = re.compile(r"ring-[0-9a-f]{12}-[0-9]+-[0-9]+")


class StaleFrame(Exception):
    """A frame's slot was reused before the batcher read it (or its ring is gone): the frame is
    lost, and counted, but nothing is wrong with the message."""


def _source_tag(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:12]


class _Mapping:
    """One ring file mapped into this process, its control words, and the descriptor its slot
    locks are held through."""

    def __init__(self, path: Path, create: tuple[int, int, int] | None = None) -> None:
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                slots, height, width = create
                stride = -(-height * width * 3 // _PAGE) * _PAGE
                size = _DATA_OFFSET + slots * stride
                os.posix_fallocate(fd, 0, size)  # ENOSPC here, not SIGBUS on a later write
                os.pwrite(fd, _HEAD.pack(MAGIC, VERSION, slots, height, width, stride), 0)
            size = os.fstat(fd).st_size
            if size < _DATA_OFFSET:
                raise ValueError(f"{path.name}: not a frame ring (too short)")
            self.mm = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd  #: kept open: slot locks are held through it (and closing it would drop them)
        weakref.finalize(self, os.close, fd)
        magic, version, self.slots, self.height, self.width, self.stride = _HEAD.unpack_from(self.mm)
        if magic != MAGIC or version != VERSION or not 0 < self.slots <= (_DATA_OFFSET - _SLOTS_OFFSET) // 16:
            raise ValueError(f"{path.name}: not a version {VERSION} frame ring")
        if size < _DATA_OFFSET + self.slots * self.stride or self.stride < self.height * self.width * 3:
            raise ValueError(f"{path.name}: truncated frame ring")
        self.path = path
        #: ``words[2k]``: slot k's seq, ``words[2k + 1]``: its consumed (a memoryview: reading one
        #: word costs a fraction of a NumPy element access, and this runs for every frame)
        self.words = memoryview(self.mm)[_SLOTS_OFFSET:_SLOTS_OFFSET + 16 * self.slots].cast("Q")

    def lock(self, slot: int, shared: bool) -> bool:
        """Take slot ``slot``'s lock without waiting: shared by the batcher while it uses the
        frame in place, exclusive by the capture to take the slot back. False if held."""
        try:
            fcntl.lockf(self.fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB, 1, slot)
        except OSError:
            return False
        return True

    def unlock(self, slot: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, slot)

    def view(self, slot: int) -> np.ndarray:
        """A new array over slot ``slot``'s pixels (a new object each call, so each holder can be
        told apart)."""
        return np.ndarray((self.height, self.width, 3), np.uint8, buffer=self.mm, offset=_DATA_OFFSET + slot * self.stride)


class FrameRing:
    """The capture side: slots to decode into (:meth:`claim`) and to send from (:meth:`publish`).

    One per capture process; ``claim`` may be called from the reader's thread while ``publish``
    runs in the sending one. The ring is created at the first frame and again, as a new file,
    when the frame size changes."""

    def __init__(self, directory: Path, source: str, slots: int = RING_SLOTS, reclaim_s: float = 2.0) -> None:
        self.directory, self.slots, self.reclaim_s = Path(directory), slots, reclaim_s
        self._prefix = f"ring-{_source_tag(source)}-"
        self._lock = threading.Lock()
        self._ring: _Mapping | None = None
        self._created = 0
        self._seq = 0
        self._held: list[weakref.ref[np.ndarray] | None] = []
        self._sent: list[tuple[int, float]] = []  #: (seq, monotonic time) of each slot's last frame
        for stale in self.directory.glob(f"{self._prefix}*"):  # left by a previous process of this source
            stale.unlink(missing_ok=True)

    @property
    def name(self) -> str | None:
        """The current ring file's name (None before the first frame)."""
        return self._ring.path.name if self._ring else None

    def claim(self, height: int, width: int) -> np.ndarray | None:
        """A free slot for a ``height`` x ``width`` RGB frame, or None when every slot is busy
        (the caller decodes into an array of its own; :meth:`publish` copies it later). The slot
        stays taken while the returned array (or a view of it) is alive, and once published,
        until its frame is consumed."""
        with self._lock:
            ring = self._geometry(height, width)
            slot = self._free_slot(ring)
            if slot is None:
                return None
            return self._take(ring, slot)

    def publish(self, pixels: np.ndarray) -> tuple[str, int, int] | None:
        """Make ``pixels`` readable by the batcher: ``(ring name, slot, seq)`` for the frame
        header, or None when no slot is free (nothing was sent; drop the frame or retry). A
        claimed slot is published as is; any other array is copied into a free slot."""
        with self._lock:
            height, width = pixels.shape[:2]
            ring = self._geometry(height, width)
            slot = self._claimed(pixels)
            if slot is None:
                slot = self._free_slot(ring)
                if slot is None:
                    return None
                np.copyto(self._take(ring, slot), pixels)
            self._seq += 1
            ring.words[2 * slot] = self._seq
            self._sent[slot] = (self._seq, time.monotonic())
            return ring.path.name, slot, self._seq

    def withdraw(self, slot: int) -> None:
        """The frame just published in ``slot`` was not sent after all: the slot is free again
        once its pixels are no longer held here."""
        with self._lock:
            self._sent[slot] = (0, 0.0)

    def _geometry(self, height: int, width: int) -> _Mapping:
        ring = self._ring
        if ring is not None and (ring.height, ring.width) == (height, width):
            return ring
        if ring is not None:
            ring.path.unlink(missing_ok=True)
        self._created += 1
        path = self.directory / f"{self._prefix}{os.getpid()}-{self._created}"
        try:
            self._ring = _Mapping(path, create=(self.slots, height, width))
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise OSError(exc.errno, f"cannot create a frame ring in {self.directory}: {exc.strerror}") from None
        self._held = [None] * self.slots
        self._sent = [(0, 0.0)] * self.slots
        return self._ring

    def _claimed(self, pixels: np.ndarray) -> int | None:
        """The slot whose claimed array ``pixels`` is, if it is one."""
        for slot, held in enumerate(self._held):
            if held is not None and held() is pixels:
                return slot
        return None

    def _free_slot(self, ring: _Mapping) -> int | None:
        now = time.monotonic()
        words = ring.words
        for slot in range(ring.slots):
            held = self._held[slot]
            if held is not None and held() is not None:
                continue
            seq, sent_at = self._sent[slot]
            if words[2 * slot + 1] >= seq or (now - sent_at > self.reclaim_s and self._reclaim(ring, slot)):
                return slot
        return None

    @staticmethod
    def _reclaim(ring: _Mapping, slot: int) -> bool:
        """Take back a slot whose frame was never released: its message was lost (the batcher
        died before reading it) unless the batcher holds the slot's lock, using it."""
        if not ring.lock(slot, shared=False):
            return False
        ring.words[2 * slot] = 0
        ring.unlock(slot)
        return True

    def _take(self, ring: _Mapping, slot: int) -> np.ndarray:
        ring.words[2 * slot] = 0  # being written: a late reader of its old frame sees a mismatch
        self._sent[slot] = (0, 0.0)
        view = ring.view(slot)
        self._held[slot] = weakref.ref(view)
        return view


class RingReader:
    """The batcher side: copies frames out of the rings named in frame headers, in ``directory``
    only. Keeps the newest ring of each source mapped."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._rings: dict[str, _Mapping] = {}  #: by ring name
        self._newest: dict[str, str] = {}  #: source -> ring name

    def take(self, source: str, ring: str, slot: int, seq: int, height: int, width: int) -> np.ndarray:
        """The frame ``seq`` in ``slot`` of ``ring``, in place (read-only): the slot is the
        caller's until the array and every view of it are gone, then it is free again. Raises
        :class:`StaleFrame` when the slot was reused or the ring is gone, ``ValueError`` for a
        header that cannot be right (a bad ring name, slot or size)."""
        mapping = self._rings.get(ring) or self._open(source, ring)
        if not 0 <= slot < mapping.slots:
            raise ValueError(f"frame: slot {slot} out of range (ring has {mapping.slots})")
        if (height, width) != (mapping.height, mapping.width):
            raise ValueError(f"frame: {width}x{height} does not match its ring's {mapping.width}x{mapping.height}")
        if not mapping.lock(slot, shared=True):
            raise StaleFrame(f"frame {seq} of {source}: its slot is being taken back")
        if mapping.words[2 * slot] != seq:
            mapping.unlock(slot)
            raise StaleFrame(f"frame {seq} of {source}: its slot was reused before it was read")
        pixels = mapping.view(slot)
        pixels.flags.writeable = False
        weakref.finalize(pixels, _release, mapping, slot, seq)
        return pixels

    def _open(self, source: str, ring: str) -> _Mapping:
        if not _NAME.fullmatch(ring):
            raise ValueError(f"frame: {ring!r} is not a frame ring name")
        try:
            mapping = _Mapping(self.directory / ring)
        except FileNotFoundError:
            raise StaleFrame(f"frame of {source}: ring {ring} is gone") from None
        previous = self._newest.get(source)
        if previous is not None and previous != ring:
            self._rings.pop(previous, None)
        self._rings[ring] = mapping
        self._newest[source] = ring
        return mapping


def _release(mapping: _Mapping, slot: int, seq: int) -> None:
    """The batcher is done with frame ``seq``: its slot is free for the capture."""
    mapping.words[2 * slot + 1] = seq
    mapping.unlock(slot)
