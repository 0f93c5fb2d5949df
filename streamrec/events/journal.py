"""The event journal: every published event, durably, so a subscriber that was down loses nothing.

Layout: ``<data_dir>/events/events-YYYYMMDD.jsonl`` (UTC day of the event), one JSON object per
line, each with a ``seq`` number that grows by one across files. Lines are written whole and
``fsync``-ed per batch; a crash can leave at most a partial last line, which readers skip and the
next writer starts after. One process (the events stage) writes; any number read.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Journal", "read_journal"]

_PREFIX = "events-"


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


def read_journal(folder: Path, since_ts: float | None = None, after_seq: int = 0) -> Iterator[dict[str, Any]]:
    """Events with ``ts >= since_ts`` (all if ``None``) and ``seq > after_seq``, oldest first."""
    for path in _files(folder):
        day_end = calendar.timegm(time.strptime(path.stem[len(_PREFIX) :], "%Y%m%d")) + 86400
        if since_ts is not None and day_end < since_ts:
            continue
        for item in _complete_lines(path):
            if item["seq"] > after_seq and (since_ts is None or item.get("ts", 0) >= since_ts):
                yield item


class Journal:
    """The single writer of ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seq = 0
        for path in reversed(_files(self.folder)):
            for item in _complete_lines(path):
                self.seq = max(self.seq, item["seq"])
            if self.seq:
                break

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
        """Write numbered events. Raises ``OSError`` (a full disk, say) with nothing written
        past the last whole line, so the same events can be written again later."""
        by_file: dict[Path, list[bytes]] = {}
        for event in numbered:
            day = time.strftime("%Y%m%d", time.gmtime(event.get("ts", time.time())))
            line = json.dumps(event, separators=(",", ":"), allow_nan=False).encode() + b"\n"
            by_file.setdefault(self.folder / f"{_PREFIX}{day}.jsonl", []).append(line)
        for path, lines in by_file.items():
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    os.write(fd, b"".join(lines))
                    os.fsync(fd)
                except OSError:
                    with contextlib.suppress(OSError):  # leave no partial line behind
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
