"""A small real filesystem that a test fills up and frees again: a tmpfs mounted for the test.

Mounting needs root; elsewhere the tests that use it skip with that reason (and fail under
``CI``, which runs as root, so that a skip there cannot hide a broken set-up).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["SmallDisk", "small_disk"]


class SmallDisk:
    """A mounted tmpfs at :attr:`path`; :meth:`fill` takes every free byte, :meth:`free` gives
    them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / ".filler"

    def fill(self) -> None:
        """Write a filler file until the filesystem has not one byte left."""
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            chunk = 1 << 20
            while chunk:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    chunk //= 2
        finally:
            os.close(fd)

    def fill_last_page(self, path: Path) -> None:
        """Take the room left in the last page of ``path`` too (a full disk still lets a file
        grow to the end of its last page): a line of ``#`` that ends where the page does."""
        room = -path.stat().st_size % os.sysconf("SC_PAGE_SIZE")
        if room:
            with open(path, "ab") as handle:
                handle.write(b"#" * (room - 1) + b"\n")

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def available(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize


def _refuse(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI runs as root and must be able to")
    pytest.skip(reason)


@contextmanager
def small_disk(where: Path, size: str = "2m") -> Iterator[SmallDisk]:
    """Mount a ``size`` tmpfs at ``where/disk`` for the duration of the block."""
    if os.geteuid() != 0:
        _refuse("mounting a small tmpfs to fill up needs root")
    mount = where / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        _refuse(f"cannot mount a tmpfs at {mount}: {result.stderr.strip() or result.returncode}")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False, capture_output=True)
