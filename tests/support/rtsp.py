"""Run the test RTSP server (``rtsp_server.py`` beside this file) as a real process on loopback,
and break it on purpose: kill -9 and restart on the same port, freeze with SIGSTOP, thaw.

The server needs GStreamer's RTSP library through Debian's ``/usr/bin/python3`` (``gi`` does not
import in the project's venv), and its clip is re-encoded by ffmpeg; where either is missing,
:func:`require_rtsp_server` skips the test (fails it under ``CI``) with the command that installs
them (:mod:`tests.support.needs`).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tests.support.needs import require

__all__ = ["RtspServer", "camera_clip", "require_rtsp_server"]

SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def require_rtsp_server() -> None:
    """Skip (fail under ``CI``) when the RTSP server or ffmpeg cannot run on this machine."""
    require("rtsp")
    require("ffmpeg")


def camera_clip(video: Path, folder: Path) -> Path:
    """``video`` re-encoded by ffmpeg with a keyframe every 30 frames, so that an RTSP client's
    first picture comes within ~1 s of joining (the server passes H.264 through, and a decoder
    must wait for a keyframe)."""
    out = folder / f"{video.stem}_gop30.mp4"
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-an", "-fps_mode", "passthrough"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30"]
    command += ["-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return out


class RtspServer:
    """One server process serving ``video`` at :attr:`url`, started and stopped by PID.

    The first :meth:`start` lets the server pick a free loopback port; :meth:`restart` reuses it,
    as a camera that reboots keeps its address.
    """

    def __init__(self, video: Path, log: Path, path: str = "/cam", prefix: Sequence[str] = ()) -> None:
        self.video, self.log, self.path = video, log, path
        self.prefix = list(prefix)  #: what runs it elsewhere: another host's ``ip netns exec``
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def _process(self) -> subprocess.Popen:
        """The server's process (started)."""
        assert self.process is not None, "the server was never started"
        return self.process

    def start(self, timeout: float = 20.0) -> RtspServer:
        """Launch the server and return once it listens (it prints ``READY <port>``)."""
        command = [*self.prefix, str(SYSTEM_PYTHON), str(SERVER_SCRIPT), str(self.video), "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--path", self.path], stdout=subprocess.PIPE, stderr=log
            )
        line = self._first_line(timeout)
        self._output().close()  # the server writes nothing else there
        if not line.startswith(b"READY "):
            self.stop()
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"RTSP server did not start: {line!r}; log: {' | '.join(tail)}")
        self.port = int(line.split()[1])
        return self

    def _output(self) -> IO[bytes]:
        output = self._process.stdout
        assert output is not None, "started with stdout=PIPE"
        return output

    def _first_line(self, timeout: float) -> bytes:
        with selectors.DefaultSelector() as selector:
            selector.register(self._output(), selectors.EVENT_READ)
            if not selector.select(timeout):
                return b"(no answer within %.0f s)" % timeout
        return self._output().readline().strip()

    def kill(self) -> None:
        """Crash it: SIGKILL, no goodbye to the clients."""
        self._signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def restart(self) -> RtspServer:
        """Start it again on the same port after :meth:`kill`."""
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: the sockets stay open but nothing is sent, like a hung camera."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the process if it still runs (thawing it first: a stopped process does not
        act on SIGTERM), then kill it if it does not exit within 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.thaw()
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, number: signal.Signals) -> None:
        if self._process.poll() is None:
            os.kill(self._process.pid, number)
