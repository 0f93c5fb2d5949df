"""Opening and reading sources with OpenCV's FFmpeg backend, with timeouts on every network call.

Without explicit timeouts OpenCV waits 30 s to open a silent server and blocks a read on a frozen
one for about as long; both are set per capture here. The RTSP transport, though, can only be
chosen through the process-wide environment variable ``OPENCV_FFMPEG_CAPTURE_OPTIONS``, which
OpenCV reads while opening: RTSP opens therefore hold a lock while the variable is set, so two
readers in one process cannot open with each other's transport (opens of RTSP sources run one
at a time; file, HTTP and webcam opens do not wait).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from streamrec.capture.source import SourceKind, SourceSpec

__all__ = ["describe", "has_timestamps", "open_capture", "quiet_library_logs", "retrieve_rgb", "stream_time"]

_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
#: FFmpeg's log level (``av_log``) as OpenCV sets it from the environment when it opens its first
#: capture: -8 is AV_LOG_QUIET. Not 8 (AV_LOG_FATAL): FFmpeg's JPEG decoder says "No JPEG data
#: found in image" at that level, for a file named .jpg that holds no JPEG
_FFMPEG_LOG_ENV = "OPENCV_FFMPEG_LOGLEVEL"
_FFMPEG_QUIET = "-8"
_ENV_LOCK = threading.Lock()


def quiet_library_logs() -> None:
    """Keep OpenCV and FFmpeg from printing their own lines: a camera that cannot be reached
    makes both print several per attempt ("backend is generally available but can't be used to
    capture by name", "Connection to tcp://... failed"), where the reader reports each attempt
    once with its reason. :func:`open_capture` calls it before every open, so that it holds in
    every process that opens a capture (FFmpeg's level is read at the first open of a process).
    A level the user set (``OPENCV_LOG_LEVEL``, ``OPENCV_FFMPEG_LOGLEVEL``) is kept, to debug with."""
    with _ENV_LOCK:  # another reader's thread may be setting the transport variable
        os.environ.setdefault(_FFMPEG_LOG_ENV, _FFMPEG_QUIET)
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def open_capture(spec: SourceSpec, open_timeout: float, read_timeout: float) -> cv2.VideoCapture | None:
    """An opened capture for ``spec``, or None if it cannot be opened (OpenCV gives no reason)."""
    quiet_library_logs()
    if spec.kind is SourceKind.WEBCAM:
        capture = cv2.VideoCapture(spec.target)
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(read_timeout * 1000),
        ]  # fmt: skip
        with _transport(spec.transport):
            capture = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
    if capture.isOpened():
        return capture
    capture.release()
    return None


@contextmanager
def _transport(transport: str | None) -> Iterator[None]:
    """Set ``rtsp_transport`` in OpenCV's FFmpeg options for the duration of one open, keeping
    any other options the user put there."""
    if transport is None:
        yield
        return
    with _ENV_LOCK:
        previous = os.environ.get(_OPTIONS_ENV)
        options = [
            item for item in (previous or "").split("|") if item and not item.startswith("rtsp_transport;")
        ]
        os.environ[_OPTIONS_ENV] = "|".join([*options, f"rtsp_transport;{transport}"])
        try:
            yield
        finally:
            if previous is None:
                del os.environ[_OPTIONS_ENV]
            else:
                os.environ[_OPTIONS_ENV] = previous


def has_timestamps(spec: SourceSpec, capture: cv2.VideoCapture) -> bool:
    """False for MJPEG over HTTP: multipart streams carry no timestamps, and FFmpeg invents
    25 fps ones whatever the camera's rate, which would mislead anyone measuring latency."""
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")
    return not (spec.kind is SourceKind.HTTP and fourcc == b"MJPG")


def stream_time(capture: cv2.VideoCapture) -> float | None:
    """The timestamp of the last grabbed frame in seconds, where the source has one."""
    msec = capture.get(cv2.CAP_PROP_POS_MSEC)
    return msec / 1000.0 if math.isfinite(msec) and msec >= 0 else None


def retrieve_rgb(capture: cv2.VideoCapture, out: np.ndarray | None = None) -> np.ndarray | None:
    """Decode the last grabbed frame as ``(H, W, 3)`` RGB uint8 (None if OpenCV cannot), into
    ``out`` when it has that shape (a frame ring's slot: no copy later), else a new array."""
    ok, image = capture.retrieve()
    if not ok or image is None:
        return None
    code = cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB
    if out is not None and out.shape == (*image.shape[:2], 3):
        return cv2.cvtColor(image, code, dst=out)
    return cv2.cvtColor(image, code)


def describe(capture: cv2.VideoCapture, timed: bool) -> str:
    """``640x360 at 29.97 fps`` (frame rate left out where the source does not really say)."""
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    rate = f" at {fps:.2f} fps" if timed and math.isfinite(fps) and 0 < fps < 1000 else ""
    return f"{width}x{height}{rate}"
