"""Capture: frames from webcams, video files and RTSP/HTTP streams, with reconnects and a watchdog.

``parse_source`` checks what the user typed; ``FrameReader`` turns it into stamped RGB frames and
status changes (``check_file`` reads a file's first frames to refuse one that is no video at
once); ``LatestFrame`` runs a reader in a thread and hands a slow consumer only the
newest frame. Free of ZeroMQ and multiprocessing: the process that publishes frames wraps this.
"""

from streamrec.capture.events import CaptureError, Counters, Frame, State, Status
from streamrec.capture.latest import LatestFrame
from streamrec.capture.reader import FrameReader, ReaderOptions, StatusCallback, check_file
from streamrec.capture.source import RTSP_TRANSPORTS, SourceError, SourceKind, SourceSpec, parse_source

__all__ = [
    "RTSP_TRANSPORTS",
    "CaptureError",
    "Counters",
    "Frame",
    "FrameReader",
    "LatestFrame",
    "ReaderOptions",
    "SourceError",
    "SourceKind",
    "SourceSpec",
    "State",
    "Status",
    "StatusCallback",
    "check_file",
    "parse_source",
]
