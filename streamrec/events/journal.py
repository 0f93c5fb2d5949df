"""The event journal: every published event, durably, so a subscriber that was down loses nothing.

Layout: ``<data_dir>/events/events-YYYYMMDD.jsonl`` (UTC day of the event), one JSON object per
line, each with a ``seq`` number that grows by one across files. One process (the events stage)
writes; any number read.

A batch of events is written whole or not at all: a full disk makes ``write(2)`` write part of
its data and fail on the rest, so a write that does not finish is cut back to where it started
(in every file of the batch), and the caller keeps the events to write again later. What a crash
can still leave is a partial last line: readers skip it, and the writer cuts it off before it
appends anything to that file (at start and before every write), so a new line never continues
a broken one.

Two changes rewrite what is written, both under an exclusive ``flock`` of ``<folder>/.lock`` that
every write takes too, so none of them interleave: erasing a person replaces their name with
their id in every event about them (:func:`rename_person`; each file rewritten under a temporary
name and renamed into place), and retention removes the files of days past ``journal_days``
(:func:`prune_journal`).
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Journal", "JournalTail", "last_seq", "prune_journal", "read_journal", "rename_person", "replace_file"]

_PREFIX = "events-"
_LOCK = ".lock"
_TAIL_CHUNK = 4096
_LAST_LINE_CHUNK = 64 * 1024

log = logging.getLogger("events")


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{_PREFIX}*.jsonl"))


def _complete_lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # a write cut short by a crash
            try:
                item = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict) and isinstance(item.get("seq"), int):
                yield item


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the journal's lock (writers and rewriters take turns)."""
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _day_end(path: Path) -> float:
    return calendar.timegm(time.strptime(path.stem[len(_PREFIX) :], "%Y%m%d")) + 86400


def rename_person(folder: Path, person_id: str) -> int:
    """Replace the name in every event about ``person_id`` with the id (the person was erased);
    returns how many events changed. Each file changes all at once or not at all."""
    changed = 0
    if not folder.is_dir():
        return 0
    with _locked(folder):
        for path in _files(folder):
            lines, count = [], 0
            with open(path, "rb") as handle:
                for raw in handle:
                    item = _parse(raw)
                    if isinstance(item, dict) and item.get("person_id") == person_id and item.get("name") != person_id:
                        item["name"] = person_id
                        raw = json.dumps(item, separators=(",", ":"), allow_nan=False).encode() + b"\n"
                        count += 1
                    lines.append(raw)
            if count:
                replace_file(path, b"".join(lines))
                changed += count
    return changed


def _parse(raw: bytes) -> Any:
    """A whole line's JSON, else ``None`` (a partial or damaged line stays as it is)."""
    if not raw.endswith(b"\n"):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def replace_file(path: Path, data: bytes) -> None:
    """Make ``path`` hold ``data``, durably and all at once (a temporary file renamed over it), so
    that a crash or a full disk leaves either the old content or the new, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def prune_journal(folder: Path, days: float, now: float | None = None) -> list[Path]:
    """Remove the files of days whose last moment is more than ``days`` ago (0: none); returns them."""
    if days <= 0 or not folder.is_dir():
        return []
    limit = (time.time() if now is None else now) - days * 86400
    removed = []
    with _locked(folder):
        for path in _files(folder):
            if _day_end(path) < limit:
                path.unlink()
                removed.append(path)
    return removed


def read_journal(folder: Path, since_ts: float | None = None, after_seq: int = 0) -> Iterator[dict[str, Any]]:
    """Events with ``ts >= since_ts`` (all if ``None``) and ``seq > after_seq``, oldest first."""
    for path in _files(folder):
        if since_ts is not None and _day_end(path) < since_ts:
            continue
        for item in _complete_lines(path):
            if item["seq"] > after_seq and (since_ts is None or item.get("ts", 0) >= since_ts):
                yield item


def _last_line_seq(path: Path) -> int:
    """The ``seq`` of the last whole line of ``path`` (0: none, or no file), from its last
    ``_LAST_LINE_CHUNK`` bytes (an event is at most 16 KiB), else from the whole file."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - _LAST_LINE_CHUNK)
            handle.seek(start)
            lines = handle.read().split(b"\n")[1 if start else 0 : -1]  # whole lines only
    except OSError:
        return 0
    for raw in reversed(lines):
        item = _parse(raw + b"\n")
        if isinstance(item, dict) and isinstance(item.get("seq"), int):
            return item["seq"]
    return max((item["seq"] for item in _complete_lines(path)), default=0) if start else 0


def last_seq(folder: Path) -> int:
    """The ``seq`` of the newest event journaled in ``folder`` (0: none); the last two days'
    files are looked at, as a batch written around midnight ends in either."""
    files = _files(folder) if folder.is_dir() else []
    return max((_last_line_seq(path) for path in files[-2:]), default=0)


class JournalTail:
    """Follows the journal in ``folder`` as it is written: each :meth:`poll` returns the events
    journaled since the last one, oldest first, none twice, starting after ``after_seq``.

    It remembers how far it read each file, so a poll reads only what was appended, and it reads
    under the journal's lock, so that a batch written to two files (around midnight) is seen
    whole or not at all. A file rewritten since (a person erased) is read again from its start,
    without what was already returned; a file whose last event is older than ``after_seq`` is
    not read at all, so starting at the end of a long journal costs nothing."""

    def __init__(self, folder: Path, after_seq: int = 0) -> None:
        self.folder = Path(folder)
        self.seq = after_seq  #: the newest ``seq`` returned
        self._read: dict[Path, tuple[int, int]] = {}  #: file -> (its inode, bytes of it read)
        #: files read to their end before the last two days: never looked at again (a year of
        #: files is not opened every poll), as nothing is appended to them any more
        self._done: set[Path] = set()

    def poll(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The events journaled since the last poll (about ``limit`` at most: files are read in
        order, and the next one only once this one is read to its end)."""
        if not self.folder.is_dir():
            return []
        fresh: list[dict[str, Any]] = []
        with _locked(self.folder):
            files = _files(self.folder)
            for path in files:
                if path in self._done:
                    continue
                if not self._read_new(path, limit - len(fresh), fresh):
                    break
                if path not in files[-2:]:
                    self._done.add(path)
        fresh = sorted((item for item in fresh if item["seq"] > self.seq), key=lambda item: item["seq"])
        if fresh:
            self.seq = fresh[-1]["seq"]
        return fresh

    def _read_new(self, path: Path, limit: int, into: list[dict[str, Any]]) -> bool:
        """Append the whole lines of ``path`` not read yet to ``into``, at most ``limit``;
        whether the file was read to its end (or is gone: removed by retention meanwhile)."""
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            inode, size = status.st_ino, status.st_size
            known, offset = self._read.get(path, (0, -1))
            if known != inode or offset > size:
                offset = -1  # a new file, or one rewritten in place of the one read
            if offset < 0:
                offset = size if _last_line_seq(path) <= self.seq else 0
            handle.seek(offset)
            while limit > 0:
                raw = handle.readline()
                if not raw.endswith(b"\n"):
                    break  # the end, or a line still being written
                offset += len(raw)
                item = _parse(raw)
                if isinstance(item, dict) and isinstance(item.get("seq"), int) and item["seq"] > self.seq:
                    into.append(item)
                    limit -= 1
            self._read[path] = (inode, offset)
            return limit > 0
        return True


class Journal:
    """The single writer of ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        with contextlib.suppress(OSError):  # no room for the folder: the first write says so
            self.folder.mkdir(parents=True, exist_ok=True)
        self.seq = 0
        for path in reversed(_files(self.folder)):
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDWR)
                try:
                    _cut_partial_line(fd, path)
                finally:
                    os.close(fd)
            if not self.seq:
                self.seq = max((item["seq"] for item in _complete_lines(path)), default=0)

    def number(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Copies of ``events`` with the next ``seq`` numbers."""
        numbered = []
        for event in events:
            self.seq += 1
            numbered.append({**event, "seq": self.seq})
        return numbered

    def append(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Number ``events`` and write them durably; returns the numbered copies."""
        numbered = self.number(events)
        self.write(numbered)
        return numbered

    def write(self, numbered: list[dict[str, Any]]) -> None:
        """Write numbered events durably, all of them or none: raises ``OSError`` (a full disk,
        say) with every file cut back to its last whole line before the call, so the same
        events can be written again later."""
        by_file: dict[Path, list[bytes]] = {}
        for event in numbered:
            day = time.strftime("%Y%m%d", time.gmtime(event.get("ts", time.time())))
            line = json.dumps(event, separators=(",", ":"), allow_nan=False).encode() + b"\n"
            by_file.setdefault(self.folder / f"{_PREFIX}{day}.jsonl", []).append(line)
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder):
            _append(by_file)


def _append(by_file: dict[Path, list[bytes]]) -> None:
    """Append each file's lines, all or none (see :meth:`Journal.write`)."""
    descriptors: list[int] = []
    sizes: list[tuple[int, int]] = []  #: (fd, its size before this call, all whole lines)
    try:
        for path, lines in by_file.items():
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            descriptors.append(fd)
            sizes.append((fd, _cut_partial_line(fd, path)))
            _write_all(fd, b"".join(lines))
            os.fsync(fd)
    except OSError:
        for fd, size in sizes:
            with contextlib.suppress(OSError):  # if this fails too, the next write cuts it
                os.ftruncate(fd, size)
        raise
    finally:
        for fd in descriptors:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written: near a full disk it writes what fits and
    returns a short count, and only the next call raises (``ENOSPC``)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _cut_partial_line(fd: int, path: Path) -> int:
    """Cut a partial last line (an interrupted write) off the file; returns the file's size."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end == size:
        return size
    os.ftruncate(fd, end)
    log.warning("%s: removed a partial last line (%d bytes) left by an interrupted write", path.name, size - end)
    return end
