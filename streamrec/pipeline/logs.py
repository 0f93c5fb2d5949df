"""Logging for the pipeline's processes: one line format, to stderr and to the shared log file,
beside the supervisor's live status line.

Every process of a run (the supervisor and each stage) logs ``time level stage[pid]: message``
to its stderr, which they share, and appends the same lines to one log file. Two things must
never happen:

* A log line written into the status line. On a terminal the supervisor redraws its status
  line in place (``\\r``, no newline), so a line written after it by any process would continue
  it. Each log line therefore starts by clearing the terminal's current line; the supervisor's
  own handler then draws the status line again at once, and after the stages' lines its next
  update (within a second) does.
* A log file that cannot be written (a full disk) taking a process down or flooding stderr with
  a traceback per line. A line that cannot be appended is reported once, in a log line on
  stderr (which every line still reaches), and the file is used again as soon as it takes one.
  Each line is one ``write(2)`` on a file opened for appending, so the lines of several
  processes never interleave.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

__all__ = ["ConsoleHandler", "LogFileHandler", "configure_logging", "console"]

_CLEAR_LINE = "\r\x1b[K"

_console: ConsoleHandler | None = None


class ConsoleHandler(logging.StreamHandler):
    """Log lines to ``stream`` (stderr), and the status line (:meth:`status`). On a terminal,
    a log line replaces the status line shown, which is drawn again below it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        try:
            self.live = self.stream.isatty()
        except (AttributeError, ValueError):  # a stream without a file, or a closed one
            self.live = False
        self._status = ""  #: the status line being shown (terminal only)

    def emit(self, record: logging.LogRecord) -> None:
        if not self.live:
            super().emit(record)
            return
        try:
            self.stream.write(f"{_CLEAR_LINE}{self.format(record)}\n{self._status}")
            self.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: report and go on
            self.handleError(record)

    def status(self, line: str, final: bool = False) -> None:
        """Show ``line`` as the status line: in place on a terminal (``final`` leaves it there
        as an ordinary line), else as a line of its own. A stream that cannot be written (a
        redirection to a full disk) loses the line, not the run."""
        with self.lock:  # type: ignore[union-attr]
            if self.live:
                self._status = "" if final else f"\r{line}\x1b[K"
                text = f"\r{line}\x1b[K\n" if final else self._status
            else:
                text = f"{line}\n"
            try:
                self.stream.write(text)
                self.flush()
            except (OSError, ValueError):
                pass


class LogFileHandler(logging.Handler):
    """Appends each line to ``path`` (its folder created when needed) with one ``write(2)``;
    a failure is logged once on the other handlers (stderr), not raised, and not repeated until
    the file has taken a line again."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._fd: int | None = None
        self._failing = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - a record that cannot be formatted: logging's own report
            self.handleError(record)
            return
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if os.write(self._fd, line) < len(line):
                raise OSError(28, os.strerror(28))  # the rest did not fit: the next write says why
        except OSError as exc:
            if not self._failing:
                self._failing = True  # set first: the report below comes back through this handler
                logging.getLogger(record.name).error(
                    "cannot write the log file %s (%s); log lines go to stderr only until it can",
                    self.path, exc.strerror or exc,
                )
            return
        if self._failing:
            self._failing = False
            logging.getLogger(record.name).info("writing the log file %s again", self.path)

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        super().close()


def configure_logging(stage: str, log_file: Path | None) -> logging.Logger:
    """Log lines ``time level stage[pid]: message`` to stderr and, if given, to ``log_file``."""
    global _console
    root = logging.getLogger()
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()
    formatter = logging.Formatter(f"%(asctime)s %(levelname)s {stage}[%(process)d]: %(message)s")
    _console = ConsoleHandler()
    handlers: list[logging.Handler] = [_console]
    if log_file is not None:
        handlers.append(LogFileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    return logging.getLogger(stage)


def console() -> ConsoleHandler:
    """The stderr handler :func:`configure_logging` installed (the status line must share it),
    or a new one on stderr if logging was not configured."""
    return _console if _console is not None else ConsoleHandler()
