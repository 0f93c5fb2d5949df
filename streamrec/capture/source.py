"""Turn what a user types as a video source into a checked, typed :class:`SourceSpec`.

Sources come from command lines and config files, so mistakes must surface as one clear line
before anything is opened: a missing file, an unsupported scheme, an empty string. Network URLs
often carry passwords (``rtsp://admin:secret@cam/stream``); every spec therefore has a ``label``
without credentials or query string, and only ``label`` may appear in logs and messages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["MAX_WEBCAM_INDEX", "RTSP_TRANSPORTS", "SourceError", "SourceKind", "SourceSpec", "parse_source"]

#: Lower transports FFmpeg can use for RTSP. TCP is the default: UDP loses packets (grey smears
#: in decoded frames) on busy networks and does not pass NAT or most firewalls.
RTSP_TRANSPORTS = ("tcp", "udp")

#: OpenCV reads a camera index of 100 or more as a capture backend plus a camera (200: V4L2's 0).
MAX_WEBCAM_INDEX = 99
_INDEX = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses

_HINT = "give a webcam index (0, 1...), a video file, or an rtsp://, rtsps://, http:// or https:// URL"


class SourceError(ValueError):
    """A source string that cannot be used; the message is one line and free of credentials."""


class SourceKind(str, Enum):
    WEBCAM = "webcam"
    FILE = "file"
    RTSP = "rtsp"
    HTTP = "http"


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source. ``target`` is what OpenCV opens (it may hold credentials, so it is kept
    out of ``repr``); ``label`` is safe to log; ``transport`` is ``"tcp"``/``"udp"`` for RTSP."""

    kind: SourceKind
    target: str | int = field(repr=False)
    label: str
    transport: str | None = None

    @property
    def live(self) -> bool:
        """Live sources (cameras, streams) are reconnected when lost; files end."""
        return self.kind is not SourceKind.FILE


def parse_source(source: str | int | os.PathLike, *, transport: str = "tcp", check_files: bool = True) -> SourceSpec:
    """Parse a webcam index, file path or URL; raise :class:`SourceError` if it is unusable.

    ``transport`` is the RTSP transport used when the URL does not choose one itself with
    ``?transport=udp`` (that parameter is removed before the URL is opened). ``check_files=False``
    checks only what is written, not whether a file is there: a configuration is checked that way,
    possibly on another machine than the one that runs it.
    """
    if isinstance(source, bool):
        raise SourceError(f"{source!r} is not a video source; {_HINT}")
    if isinstance(source, int):
        return _webcam(source)
    if isinstance(source, os.PathLike):
        return _file(Path(source), check_files)
    text = source.strip()
    if not text:
        raise SourceError(f"empty video source; {_HINT}")
    if _INDEX.fullmatch(text):
        digits = text.lstrip("-").lstrip("0") or "0"
        index = int(digits) if len(digits) <= 3 else MAX_WEBCAM_INDEX + 1  # never converts a huge number
        return _webcam(-index if text.startswith("-") else index)
    if "://" not in text:
        return _file(Path(text).expanduser(), check_files)
    return _url(text, transport, check_files)


def _webcam(index: int) -> SourceSpec:
    if index < 0:
        raise SourceError(f"webcam index {index} is negative; indices count from 0")
    if index > MAX_WEBCAM_INDEX:
        raise SourceError(f"webcam index too large: OpenCV counts cameras from 0 to {MAX_WEBCAM_INDEX}")
    return SourceSpec(SourceKind.WEBCAM, index, f"webcam:{index}")


def _file(path: Path, check: bool = True) -> SourceSpec:
    if not check:
        return SourceSpec(SourceKind.FILE, str(path), str(path))
    if path.is_dir():
        raise SourceError(f"{path}: is a directory, not a video file")
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: permission denied")
    return SourceSpec(SourceKind.FILE, str(path), str(path))


def _url(text: str, transport: str, check_files: bool) -> SourceSpec:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _file(Path(unquote(parts.path)), check_files)
    if scheme not in ("rtsp", "rtsps", "http", "https"):
        raise SourceError(f"unsupported scheme {scheme}:// in video source; {_HINT}")
    label = _label(parts, scheme)
    if scheme in ("http", "https"):
        return SourceSpec(SourceKind.HTTP, text, label)
    query = parse_qsl(parts.query, keep_blank_values=True)
    chosen = [value.lower() for key, value in query if key.lower() == "transport"]
    transport = chosen[-1] if chosen else transport
    if transport not in RTSP_TRANSPORTS:
        raise SourceError(f"{label}: unknown RTSP transport {transport!r} (use tcp or udp)")
    kept = urlencode([(key, value) for key, value in query if key.lower() != "transport"])
    return SourceSpec(SourceKind.RTSP, urlunsplit(parts._replace(query=kept)), label, transport)


def _label(parts: SplitResult, scheme: str) -> str:
    """``scheme://host:port/path``: no user, password, query or fragment."""
    host = parts.hostname
    if not host:
        raise SourceError(f"{scheme}://{parts.path}: no host in URL")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise SourceError(f"{scheme}://{host}{parts.path}: invalid port in URL") from None
    return f"{scheme}://{host}{'' if port is None else f':{port}'}{parts.path}"
