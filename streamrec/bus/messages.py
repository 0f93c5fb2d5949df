"""Every message that crosses a process boundary, with its schema version and validation.

A message on the wire is a ZeroMQ multipart message: a topic frame (ASCII), a JSON header
frame, and, for messages that carry pixels, the raw pixel buffer as a third frame, sent without
copying and received into a NumPy array without pickling. The exception is the captured frame,
the one message sent for every frame of every camera: a single binary frame
(:class:`FrameHeader`, its own version ``FRAME_VERSION``), whose pixels wait in shared memory
(:mod:`streamrec.bus.ring`). Decoders check the schema version, required fields and types, and
raise :class:`MessageError` with the reason; a receiving stage counts and drops such messages
and keeps running.

Schema version 1 (JSON headers). Field meanings are documented on each class (and, for events, in README.md).
Fields a decoder does not know are ignored, so a field can be added without breaking older
subscribers; removing or changing one bumps the version.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = [
    "SCHEMA_VERSION",
    "FRAME_VERSION",
    "EVENT_TYPES",
    "SOURCE_STATES",
    "MessageError",
    "Message",
    "FrameHeader",
    "SourceStatus",
    "Event",
    "FaceOverlay",
    "Overlay",
    "JpegFrame",
    "StageStats",
    "decode",
    "decode_pixels",
]

SCHEMA_VERSION = 1
EVENT_TYPES = ("match", "unknown", "track_end", "source_status")
SOURCE_STATES = ("opening", "open", "lost", "reconnecting", "ended", "failed")

M = TypeVar("M", bound="Message")


class MessageError(ValueError):
    """A malformed message: wrong framing, version, field or type."""


#: one encoder for every header: ``json.dumps`` with options builds a new encoder per call, a
#: cost paid for every overlay and event
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


@functools.cache
def _layout(cls: type) -> tuple[tuple[str, ...], frozenset[str]]:
    """A message class's field names and the required ones, looked up once per class: an overlay
    header is encoded and decoded for every rendered frame, so the per-message work is kept to a
    dict and the JSON codec (it arrives after an idle wait, when little of that code is cached)."""
    names = tuple(spec.name for spec in fields(cls))
    required = frozenset(spec.name for spec in fields(cls) if spec.default is MISSING and spec.default_factory is MISSING)
    return names, required


@functools.cache
def _checks(cls: type) -> tuple[tuple[str, tuple[type, ...], bool], ...]:
    """``(field, accepted types, nullable)`` per typed field of a message class, from its ``TYPES``."""
    return tuple((name, tuple(t for t in types if t is not None), None in types) for name, types in cls.TYPES.items())


def _expect(kind: str, name: str, value: Any, types: tuple[type, ...], nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if isinstance(value, bool) and bool not in types:
        raise MessageError(f"{kind}.{name}: expected {'/'.join(t.__name__ for t in types)}, got a boolean")
    if not isinstance(value, types):
        raise MessageError(f"{kind}.{name}: expected {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise MessageError(f"{kind}.{name}: not a finite number")


_NUMBER = (int, float)


def _expect_box(kind: str, name: str, box: Any) -> None:
    if not (isinstance(box, list) and len(box) == 4):
        raise MessageError(f"{kind}.{name}: expected [x1, y1, x2, y2]")
    for value in box:
        _expect(kind, name, value, _NUMBER)


@dataclass(frozen=True)
class Message:
    """Base of every message. ``TYPES`` maps field names to the JSON types they accept (a
    trailing ``None`` entry makes the field nullable); :meth:`validate` checks them."""

    kind: ClassVar[str] = ""
    TYPES: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def header(self) -> bytes:
        """The JSON header frame."""
        body: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": self.kind}
        for name in _layout(type(self))[0]:
            body[name] = getattr(self, name)
        return _ENCODER.encode(body).encode()

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON-ready dict (without the framing fields)."""
        return asdict(self)

    @classmethod
    def from_json(cls: type[M], body: Any) -> M:
        """Build and validate a message from a decoded JSON object."""
        if not isinstance(body, dict):
            raise MessageError(f"{cls.kind}: header is not a JSON object")
        if body.get("v") != SCHEMA_VERSION:
            raise MessageError(f"{cls.kind}: schema version {body.get('v')!r}, expected {SCHEMA_VERSION}")
        if body.get("kind") != cls.kind:
            raise MessageError(f"expected a {cls.kind} message, got {body.get('kind')!r}")
        names, required = _layout(cls)
        if not required.issubset(body):
            missing = next(name for name in names if name in required and name not in body)
            raise MessageError(f"{cls.kind}: missing field {missing!r}")
        message = cls(**{name: body[name] for name in names if name in body})
        message.validate()
        return message

    def validate(self) -> None:
        """Raise :class:`MessageError` when a field has the wrong type or value."""
        for name, types, nullable in _checks(type(self)):
            _expect(self.kind, name, getattr(self, name), types, nullable)


FRAME_VERSION = 1
_FRAME_MAGIC = b"SRFH"
_FRAME = struct.Struct("<4sHqdIIqIQHH")


@dataclass(frozen=True)
class FrameHeader(Message):
    """A captured frame, whose pixels wait in the capture's shared-memory frame ring
    (:mod:`streamrec.bus.ring`).

    ``index``: frames delivered by this source so far (gaps = frames dropped downstream).
    ``ts``: capture wall-clock time (Unix seconds). ``dropped``: frames the capture stage
    dropped so far (rate cap, slow consumer). ``ring``, ``slot``, ``seq``: where the pixels are
    (ring file name, slot) and the sequence number the slot must still hold.

    Unlike the other messages it travels as one binary ZeroMQ frame (:meth:`pack`,
    :meth:`unpack`): it is sent for every frame of every camera, and a fixed layout costs a
    fraction of JSON's encoding, decoding and type checks. Layout (little-endian):
    ``b"SRFH"``, ``u16`` version (``FRAME_VERSION``), ``i64`` index, ``f64`` ts, ``u32``
    height, ``u32`` width, ``i64`` dropped, ``u32`` slot, ``u64`` seq, ``u16`` byte lengths of
    source and ring, then both as UTF-8.
    """

    kind: ClassVar[str] = "frame"
    TYPES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "source": (str,), "index": (int,), "ts": _NUMBER, "height": (int,), "width": (int,), "dropped": (int,),
        "ring": (str,), "slot": (int,), "seq": (int,),
    }
    source: str
    index: int
    ts: float
    height: int
    width: int
    dropped: int = 0
    ring: str = ""
    slot: int = 0
    seq: int = 0

    def validate(self) -> None:
        super().validate()
        self._check_ranges()

    def _check_ranges(self) -> None:
        if not (0 < self.height <= 8192 and 0 < self.width <= 8192):
            raise MessageError(f"frame: size {self.width}x{self.height} out of range")
        if self.index < 0 or self.dropped < 0 or not math.isfinite(self.ts):
            raise MessageError("frame: negative index or dropped count, or a time that is not a number")

    def pack(self) -> bytes:
        """The binary frame message."""
        source, ring = self.source.encode(), self.ring.encode()
        return _FRAME.pack(
            _FRAME_MAGIC, FRAME_VERSION, self.index, self.ts, self.height, self.width, self.dropped, self.slot, self.seq,
            len(source), len(ring),
        ) + source + ring

    @classmethod
    def unpack(cls, data: bytes) -> FrameHeader:
        """Decode and check a binary frame message; :class:`MessageError` says what is wrong."""
        if len(data) < _FRAME.size or data[:4] != _FRAME_MAGIC:
            raise MessageError(f"not a frame message ({len(data)} bytes without the frame header's signature)")
        magic, version, index, ts, height, width, dropped, slot, seq, source_len, ring_len = _FRAME.unpack_from(data)
        if version != FRAME_VERSION:
            raise MessageError(f"frame: version {version}, expected {FRAME_VERSION}")
        if len(data) != _FRAME.size + source_len + ring_len:
            raise MessageError(f"frame: {len(data)} bytes, the header says {_FRAME.size + source_len + ring_len}")
        try:
            source = data[_FRAME.size:_FRAME.size + source_len].decode()
            ring = data[_FRAME.size + source_len:].decode()
        except UnicodeDecodeError:
            raise MessageError("frame: source or ring name is not UTF-8") from None
        header = cls(source, index, ts, height, width, dropped, ring, slot, seq)
        header._check_ranges()
        return header


@dataclass(frozen=True)
class SourceStatus(Message):
    """A change in a source's state (``SOURCE_STATES``), with its counters."""

    kind: ClassVar[str] = "source_status"
    TYPES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "source": (str,), "state": (str,), "reason": (str,), "ts": _NUMBER,
        "frames": (int,), "dropped": (int,), "reconnects": (int,),
    }
    source: str
    state: str
    ts: float
    reason: str = ""
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0

    def validate(self) -> None:
        super().validate()
        if self.state not in SOURCE_STATES:
            raise MessageError(f"source_status.state: {self.state!r} is not one of {', '.join(SOURCE_STATES)}")


@dataclass(frozen=True)
class Event(Message):
    """A decision about a face track, or a source's change of state; what subscribers receive.

    ``type``: ``match`` (a watchlist person), ``unknown`` (a face that matches nobody),
    ``track_end`` (the face left), ``source_status``. ``distance``: best embedding distance to
    the named person (lower is closer); ``score``: confidence 0-1 of the decision.
    ``box``: ``[x1, y1, x2, y2]`` in frame pixels. ``ts``: when the decision was made;
    ``capture_ts``: when the frame it was made on was captured. ``seq``: position in the event
    journal (assigned by the events stage; 0 before that).
    """

    kind: ClassVar[str] = "event"
    TYPES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "type": (str,), "source": (str,), "track_id": (int, None), "person_id": (str, None), "name": (str, None),
        "distance": (*_NUMBER, None), "score": (*_NUMBER, None), "ts": _NUMBER, "frame_index": (int, None),
        "capture_ts": (*_NUMBER, None), "seq": (int,), "detail": (str,),
    }
    type: str
    source: str
    ts: float
    track_id: int | None = None
    person_id: str | None = None
    name: str | None = None
    distance: float | None = None
    score: float | None = None
    box: list[float] | None = None
    frame_index: int | None = None
    capture_ts: float | None = None
    seq: int = 0
    detail: str = ""

    def validate(self) -> None:
        super().validate()
        if self.type not in EVENT_TYPES:
            raise MessageError(f"event.type: {self.type!r} is not one of {', '.join(EVENT_TYPES)}")
        if self.box is not None:
            _expect_box(self.kind, "box", self.box)


@dataclass(frozen=True)
class FaceOverlay:
    """What to draw for one face: its box, track, and current decision."""

    box: list[float]
    track_id: int
    label: str
    score: float
    known: bool


@dataclass(frozen=True)
class Overlay(Message):
    """A frame's results for the renderer; the frame's pixels follow as the next frame."""

    kind: ClassVar[str] = "overlay"
    TYPES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "source": (str,), "index": (int,), "ts": _NUMBER, "height": (int,), "width": (int,), "fps": _NUMBER,
    }
    source: str
    index: int
    ts: float
    height: int
    width: int
    fps: float
    faces: list[dict[str, Any]] = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.faces, list):
            raise MessageError("overlay.faces: expected a list")
        for face in self.faces:
            if not isinstance(face, dict):
                raise MessageError("overlay.faces: expected objects")
            _expect_box(self.kind, "faces.box", face.get("box"))
            _expect(self.kind, "faces.label", face.get("label"), (str,))

    def face_overlays(self) -> list[FaceOverlay]:
        """The faces as :class:`FaceOverlay` objects."""
        return [FaceOverlay(**face) for face in self.faces]


@dataclass(frozen=True)
class JpegFrame(Message):
    """An overlaid frame, JPEG-encoded; the JPEG bytes follow as the next frame. Published with
    the source name as topic. ``labels``: the names (or "unknown") drawn on it."""

    kind: ClassVar[str] = "jpeg"
    TYPES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "source": (str,), "index": (int,), "ts": _NUMBER, "height": (int,), "width": (int,), "fps": _NUMBER,
    }
    source: str
    index: int
    ts: float
    height: int
    width: int
    fps: float
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StageStats(Message):
    """A stage's periodic report to the supervisor: counters and latency samples.

    ``counters``: monotonically increasing totals (name -> count). ``gauges``: current values.
    ``latencies``: seconds observed since the previous report, per measured step.
    """

    kind: ClassVar[str] = "stats"
    TYPES: ClassVar[dict[str, tuple[Any, ...]]] = {"stage": (str,), "pid": (int,), "ts": _NUMBER}
    stage: str
    pid: int
    ts: float
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        for name in ("counters", "gauges", "latencies"):
            if not isinstance(getattr(self, name), dict):
                raise MessageError(f"stats.{name}: expected an object")


_KINDS: dict[str, type[Message]] = {
    cls.kind: cls for cls in (SourceStatus, Event, Overlay, JpegFrame, StageStats)
}  #: messages with a JSON header; frames travel in binary (:meth:`FrameHeader.unpack`)
_WITH_PAYLOAD = (Overlay, JpegFrame)


def decode(parts: list[bytes]) -> tuple[str, Message]:
    """Decode a multipart message ``[topic, header, *payload]`` into ``(topic, message)``.

    The payload frame of ``frame`` and ``overlay`` messages (pixels, decoded separately with
    :func:`decode_pixels`) and of ``jpeg`` messages (JPEG bytes) is required and not decoded here.
    """
    if len(parts) < 2:
        raise MessageError(f"expected at least 2 frames (topic, header), got {len(parts)}")
    try:
        topic = bytes(parts[0]).decode("ascii")
        body = json.loads(bytes(parts[1]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"undecodable topic or header ({exc})") from None
    kind = body.get("kind") if isinstance(body, dict) else None
    if kind not in _KINDS:
        raise MessageError(f"unknown message kind {kind!r}")
    cls = _KINDS[kind]
    if (cls in _WITH_PAYLOAD) != (len(parts) == 3) or len(parts) > 3:
        raise MessageError(f"{kind}: wrong number of frames ({len(parts)})")
    try:
        return topic, cls.from_json(body)
    except TypeError as exc:
        raise MessageError(f"{kind}: {exc}") from None


def decode_pixels(header: Overlay, buffer: bytes | memoryview) -> np.ndarray:
    """The ``(height, width, 3)`` uint8 RGB image of an overlay message, without copying."""
    expected = header.height * header.width * 3
    if len(buffer) != expected:
        raise MessageError(f"{header.kind}: {len(buffer)} pixel bytes, expected {expected} for {header.width}x{header.height}")
    return np.frombuffer(buffer, np.uint8).reshape(header.height, header.width, 3)
