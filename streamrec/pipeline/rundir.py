"""Who owns a run directory, and cleaning up after runs that were killed.

A run directory (:func:`streamrec.bus.sockets.new_run_dir`, in memory on ``/dev/shm``) holds a
run's ipc endpoints, its frame rings (8.3 MB per 640x360 camera, 75 MB at 1080p) and its track
id counter; the supervisor removes it when the run ends. A supervisor killed with SIGKILL cannot,
nor can it remove ``run.json`` from the data directory, so the next ``streamrec run`` does, once
it is sure that nothing of that run is alive:

* Every process of a run holds a shared ``flock`` on the file ``owner`` in its run directory for
  as long as it lives (the kernel drops it when the process dies, however it dies). The
  supervisor takes it first, and only then writes its pid into the file; a directory without an
  ``owner`` file (one being created this instant, or one made by something else) is never
  touched. A directory is removed only under an exclusive lock on ``owner``, which no process
  of the run can then hold or take.
* The supervisor holds an exclusive ``flock`` on the data directory itself: a second pipeline
  on the same data directory (they would write one journal) is refused, and a ``run.json``
  whose supervisor is gone is known to be stale. Pipelines on different data directories run
  side by side, and never touch each other's run directories.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamrec.bus.sockets import RUN_DIR_PREFIX, run_dirs_root

__all__ = ["OWNER", "Leftover", "RunCounter", "alive", "hold", "lock_data_dir", "own", "remove_leftovers", "wait_for_end"]

OWNER = "owner"  #: the lock file in a run directory
_COUNTER = struct.Struct("<Q")

log = logging.getLogger("supervisor")


class RunCounter:
    """A number that outlives the process keeping it, for the rest of the run: 8 bytes in the
    run directory (memory), allocated once and then rewritten in place, so that no write can
    fail for want of room and a process killed at any moment has recorded every value it
    handed out. ``path`` None, or a file that cannot be made (logged), keeps it in this process
    only. :attr:`value` is 0 until first set."""

    def __init__(self, path: Path | None, what: str) -> None:
        self.value = 0
        self._fd: int | None = None
        if path is None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("%s may be reused after a restart: cannot open %s (%s)", what, path, exc.strerror)
            return
        try:
            stored = os.pread(fd, _COUNTER.size, 0)
            if len(stored) == _COUNTER.size:
                self.value = _COUNTER.unpack(stored)[0]
            else:
                os.posix_fallocate(fd, 0, _COUNTER.size)
        except OSError as exc:
            os.close(fd)
            log.warning("%s may be reused after a restart: cannot use %s (%s)", what, path, exc.strerror)
            return
        self._fd = fd

    def set(self, value: int) -> None:
        self.value = value
        if self._fd is not None:
            os.pwrite(self._fd, _COUNTER.pack(value), 0)



@dataclass(frozen=True)
class Leftover:
    """A run directory removed because every process of its run was gone."""

    path: Path
    pid: int | None  #: its supervisor's
    size: int  #: bytes it held

    def describe(self) -> str:
        return f"{self.path} ({_size_text(self.size)})"


def own(run_dir: Path) -> int:
    """The supervisor's claim on its new run directory: ``owner`` is made under another name,
    locked, given this process's pid, and only then renamed into place, so that no one can see
    it unlocked. Returns the descriptor, to keep open for the run's lifetime."""
    draft = run_dir / f".{OWNER}"
    fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    with contextlib.suppress(OSError):  # a full /dev/shm: the pid stays unknown, the claim holds
        os.write(fd, f"{os.getpid()}\n".encode())
    os.rename(draft, run_dir / OWNER)
    return fd


def hold(run_dir: Path) -> int | None:
    """A stage's share of the claim, for its process's lifetime; None when the directory has no
    ``owner`` (nothing then protects it, and nothing removes it either)."""
    try:
        fd = os.open(run_dir / OWNER, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def lock_data_dir(data_dir: Path) -> int | None:
    """The supervisor's exclusive lock on its data directory (kept for the run's lifetime), or
    None when another live supervisor holds it."""
    fd = os.open(data_dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def alive(run_dir: Path) -> bool:
    """Whether a process of the run in ``run_dir`` is alive (False too for a directory that is
    gone or that no run owns)."""
    with _exclusive(run_dir) as owner:
        return owner is None and (run_dir / OWNER).exists()


def wait_for_end(run_dir: Path, timeout: float) -> bool:
    """Wait until no process of the run in ``run_dir`` is alive (the stages of a killed
    supervisor take a few seconds to stop); False if some still are after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while alive(run_dir):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def remove_leftovers() -> list[Leftover]:
    """Remove every run directory of this user whose run is entirely gone; returns them."""
    removed = []
    for path in sorted(run_dirs_root().glob(f"{RUN_DIR_PREFIX}*")):
        with _exclusive(path) as owner:
            if owner is None:
                continue
            pid = _pid(owner)
            size = _size(path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(Leftover(path, pid, size))
    return removed


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[int | None]:
    """The open ``owner`` file of ``run_dir``, locked exclusively (so no process of the run is
    alive), or None: a process is alive, or the directory has no owner."""
    try:
        fd = os.open(run_dir / OWNER, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def _pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _size(path: Path) -> int:
    """Bytes the files under ``path`` occupy (ring files are allocated in full)."""
    total = 0
    for entry in path.rglob("*"):
        with contextlib.suppress(OSError):
            total += entry.lstat().st_blocks * 512
    return total


def _size_text(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"
