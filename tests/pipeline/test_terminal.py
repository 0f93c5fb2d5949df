"""``streamrec run`` on a real terminal (a pseudo-terminal): log lines never land inside the live
status line, and the status line is drawn again after them."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import cli_command
from tests.support.ports import free_port

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) ")


class Terminal:
    """The screen of a pseudo-terminal, as far as streamrec draws on it: printable text, ``\\r``,
    ``\\n`` and erase-to-end-of-line (``ESC [ K``). :attr:`lines` holds the finished lines and
    :attr:`current` the line the cursor is on."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.lines: list[str] = []
        self.current: list[str] = []
        self.raw = bytearray()
        self._cursor = 0
        self._lock = threading.Lock()

    def start(self) -> Terminal:
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer has closed its end
                return
            if not data:
                return
            with self._lock:
                self.raw += data
                self._draw(data.decode(errors="replace"))

    def _draw(self, text: str) -> None:
        for token in re.findall(r"\x1b\[K|\r|\n|[^\r\n\x1b]+|\x1b", text):
            if token == "\r":
                self._cursor = 0
            elif token == "\n":
                self.lines.append("".join(self.current))
                self.current, self._cursor = [], 0
            elif token == "\x1b[K":
                del self.current[self._cursor:]
            else:
                for char in token:
                    if self._cursor < len(self.current):
                        self.current[self._cursor] = char
                    else:
                        self.current.append(char)
                    self._cursor += 1

    def screen(self) -> tuple[list[str], str]:
        with self._lock:
            return list(self.lines), "".join(self.current)


def _wait(condition, timeout: float, what: str, terminal: Terminal) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        lines, current = terminal.screen()
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s; screen:\n" + "\n".join([*lines[-20:], current])
        time.sleep(0.2)


def _log_lines(terminal: Terminal, text: str) -> list[str]:
    return [line for line in terminal.screen()[0] if text in line]


def test_log_lines_never_land_in_the_status_line(hamilton_clip: Path, engine_dir: Path, tmp_path: Path):
    terminal = Terminal().start()
    run = subprocess.Popen(
        [*cli_command(), "run", "--source", str(hamilton_clip), "--loop", "--data-dir", str(tmp_path), "--http", "",
         "--events", f"tcp://127.0.0.1:{free_port()}", "--frames", f"tcp://127.0.0.1:{free_port()}"],
        stdin=subprocess.DEVNULL, stdout=terminal.slave, stderr=terminal.slave,
    )
    os.close(terminal.slave)
    try:
        _wait(lambda: " fps, " in terminal.screen()[1], 120, "a status line", terminal)
        render = int(re.findall(r"started render \(pid (\d+)\)", terminal.raw.decode(errors="replace"))[-1])
        os.kill(render, signal.SIGKILL)  # the supervisor and the new render stage log lines
        _wait(lambda: _log_lines(terminal, "rendering overlays") and len(_log_lines(terminal, "started render")) == 2, 60, "a restart", terminal)
        _wait(lambda: " fps, " in terminal.screen()[1], 10, "the status line drawn again", terminal)
    finally:
        run.send_signal(signal.SIGTERM)
        status = run.wait(60)
    assert status == 0
    lines, _ = terminal.screen()
    logged = [line for line in lines if LOG_LINE.search(line)]
    assert any("render died (signal 9)" in line for line in logged)
    assert all(LOG_LINE.match(line) for line in logged), [line for line in logged if not LOG_LINE.match(line)]
    assert " fps, " in lines[-1]  # the last status line, left on the screen
