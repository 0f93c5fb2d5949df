"""A real MJPEG-over-HTTP camera on loopback (``multipart/x-mixed-replace``, as IP cameras and
browsers speak it), serving a video file's frames in real time from a thread of the test process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

__all__ = ["serve_mjpeg"]

_BOUNDARY = "frame"


def _jpegs(video: Path) -> list[bytes]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", image)[1].tobytes())
    capture.release()
    return frames


def _handler(jpegs: list[bytes], fps: float, closing: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Camera(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.end_headers()
            started = time.monotonic()
            for count in range(10**9):
                if closing.is_set():
                    return
                jpeg = jpegs[count % len(jpegs)]
                head = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                try:
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                except OSError:  # the client went away
                    return
                time.sleep(max(0.0, started + (count + 1) / fps - time.monotonic()))

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            return

    return Camera


@contextmanager
def serve_mjpeg(video: Path, fps: float = 30.0) -> Iterator[str]:
    """Serve ``video`` (looping) at the returned ``http://127.0.0.1:<port>/video.mjpg`` URL."""
    closing = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(_jpegs(video), fps, closing))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="mjpeg server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    finally:
        closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
