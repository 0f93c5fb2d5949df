"""Track ids that stay unique for a whole run, across restarts of the inference stage.

A restarted inference stage starts with empty trackers; if it also started counting from 1, its
tracks would take the ids of tracks the journal has already announced. So the next free id lives
in a file in the run directory (in memory, removed with the run): 8 bytes, allocated once and
then rewritten in place before each id is handed out. A process killed at any moment has
therefore already recorded every id it used, and its successor continues after them.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

__all__ = ["TrackIds"]

_COUNTER = struct.Struct("<Q")

log = logging.getLogger("inference")


class TrackIds:
    """Call it for the next track id. ``path``: the counter file (None, or one that cannot be
    made, keeps the count in this process only, which is enough for a run of one process)."""

    def __init__(self, path: Path | None) -> None:
        self._next = 1
        self._fd: int | None = None
        if path is None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("track ids may repeat after a restart of this stage: cannot open %s (%s)", path, exc.strerror)
            return
        try:
            stored = os.pread(fd, _COUNTER.size, 0)
            if len(stored) == _COUNTER.size:
                self._next = max(1, _COUNTER.unpack(stored)[0])
            else:
                os.posix_fallocate(fd, 0, _COUNTER.size)  # no ENOSPC later, when the count is rewritten
        except OSError as exc:
            os.close(fd)
            log.warning("track ids may repeat after a restart of this stage: cannot use %s (%s)", path, exc.strerror)
            return
        self._fd = fd

    def __call__(self) -> int:
        track_id = self._next
        self._next += 1
        if self._fd is not None:
            os.pwrite(self._fd, _COUNTER.pack(self._next), 0)
        return track_id
