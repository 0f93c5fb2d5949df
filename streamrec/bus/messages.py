"""Every message that crosses a process boundary: its schema, its limits, and the only codec.

A message on the wire is a ZeroMQ multipart message: a topic frame (UTF-8), a JSON header
frame, and, for messages that carry pixels or a JPEG, that payload as a third frame, sent
without copying. The exception is the captured frame, the one message sent for every frame of
every camera: a single binary frame (:class:`FrameHeader`, its own version ``FRAME_VERSION``),
whose pixels wait in shared memory (:mod:`streamrec.bus.ring`) or, between hosts, follow as a
second frame, raw or JPEG (:func:`encode_frame_pixels`, :func:`decode_frame_pixels`).

Schemas are pydantic dataclasses: frozen, built positionally or by keyword, checked when built
(so a stage never sends what a receiver would refuse) and when decoded. Decoding is strict
(``"1"`` is no number, ``true`` no count) and bounded before anything is parsed: a header
longer than its kind's ``HEADER_LIMITS`` entry, or a payload larger than the header says, is
refused unread; JSON nested deeper than pydantic's parser allows (200 levels) is refused by the
parser; every field has a type, finite numbers, sizes that are positive and match the payload,
and a bound on every string (``MAX_NAME``, ``MAX_TEXT``, ``MAX_FIGURE``) and list
(``MAX_FACES``, ``MAX_FIGURES``, ``MAX_SAMPLES``). Anything else raises :class:`MessageError`,
one line saying why; a receiving stage counts and drops such messages and keeps running.

Schema version 1 (JSON headers): ``{"v": 1, "kind": KIND, ...fields}``. Field meanings are
documented on each class (and, for events, in README.md). Fields a decoder does not know are
ignored, so a field can be added without breaking older subscribers; removing or changing one
bumps the version.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import time
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

import numpy as np
from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

__all__ = [
    "ACCESS_RESULTS",
    "DECISION_TYPES",
    "EVENT_TYPES",
    "FRAME_MESSAGE_MAX",
    "FRAME_VERSION",
    "HEADER_LIMITS",
    "MAX_FACES",
    "MAX_FIGURE",
    "MAX_FIGURES",
    "MAX_FRAME_PIXELS",
    "MAX_FRAME_SIDE",
    "MAX_JPEG",
    "MAX_NAME",
    "MAX_SAMPLES",
    "MAX_SOURCES",
    "MAX_TEXT",
    "MAX_TIME",
    "MAX_TOPIC",
    "SCHEMA_VERSION",
    "SOURCE_STATES",
    "AccessResult",
    "DecisionType",
    "Direction",
    "EndTracks",
    "Event",
    "EventType",
    "Expect",
    "FaceOverlay",
    "FrameHeader",
    "JpegFrame",
    "Message",
    "MessageError",
    "Overlay",
    "Serving",
    "SourceState",
    "SourceStatus",
    "StageStats",
    "decode",
    "decode_frame_pixels",
    "decode_header",
    "decode_pixels",
    "decode_topic",
    "encode_frame_pixels",
]

SCHEMA_VERSION = 1

#: what an event is about: a decision (``match``: a watchlist person, ``unknown``: a face that
#: matches nobody), the end of a decided track, a source's change of state, or a door's access
#: decision (``access``)
DecisionType = Literal["match", "unknown"]
EventType = Literal[DecisionType, "track_end", "source_status", "access"]
DECISION_TYPES: tuple[str, ...] = get_args(DecisionType)  #: the events that name who is at the door
EVENT_TYPES: tuple[str, ...] = (*DECISION_TYPES, "track_end", "source_status", "access")
#: an ``access`` event's step: the person is asked to turn their head, then granted or denied;
#: then, for each action configured for that answer, how it went (``reason`` done/failed/timeout)
AccessResult = Literal["challenge", "granted", "denied", "action"]
ACCESS_RESULTS: tuple[str, ...] = get_args(AccessResult)
#: which way a challenge asks the person to turn their head (their own left or right)
Direction = Literal["left", "right"]
#: a source's state as the capture stage reports it (the reader's own ``stopped`` is never sent)
SourceState = Literal["opening", "open", "lost", "reconnecting", "ended", "failed"]
SOURCE_STATES: tuple[str, ...] = get_args(SourceState)

MAX_NAME = 200  #: characters of a name: source, person, person id, label, stage, ring
MAX_TEXT = 1000  #: characters of free text: a status reason, an event's detail
MAX_FIGURE = 256  #: characters of a statistics figure's name (``capture_to_detect[<source>]``)
MAX_FIGURES = 1024  #: counters, gauges or latency series in one statistics report
MAX_SAMPLES = 2048  #: latency samples of one series in one report (about one second's worth)
MAX_FACES = 256  #: faces in one overlay, labels on one JPEG frame
MAX_SOURCES = 1024  #: cameras one inference stage says it serves
MAX_FRAME_SIDE = 8192  #: pixels of a frame's height or width
MAX_FRAME_PIXELS = 10_000_000  #: pixels of a frame (any 4K camera): 30 MB of RGB
MAX_JPEG = 3 * MAX_FRAME_PIXELS  #: bytes of a JPEG frame (never more than its raw pixels)
MAX_TOPIC = 4 * MAX_NAME  #: bytes of a topic frame (a source name, in UTF-8)
MAX_TIME = 253_402_300_799.0  #: the last second of year 9999, the latest time a message may carry

#: bytes of each kind's JSON header, checked before it is parsed: room for every string at its
#: limit in UTF-8 (escaped, for the free text), every list at its length
HEADER_LIMITS: dict[str, int] = {
    "source_status": 16 * 1024,
    "event": 16 * 1024,
    "end_tracks": 16 * 1024,
    "serving": 2 * 1024 * 1024,
    "overlay": 512 * 1024,
    "jpeg": 512 * 1024,
    "stats": 1024 * 1024,
}

class MessageError(ValueError):
    """A malformed message: wrong framing, size, version, field or type. One line."""


# -- field types ----------------------------------------------------------------------------------
Name = Annotated[str, StringConstraints(max_length=MAX_NAME)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Figure = Annotated[str, StringConstraints(max_length=MAX_FIGURE)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
#: Unix seconds, up to the end of year 9999 (what ``datetime`` and ``time.localtime`` can show)
Timestamp = Annotated[float, Field(ge=0, le=MAX_TIME, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
Side = Annotated[int, Field(ge=1, le=MAX_FRAME_SIDE)]
Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]  #: frames per second
Box = Annotated[tuple[Finite, ...], Field(min_length=4, max_length=4)]  #: ``[x1, y1, x2, y2]`` in frame pixels

#: lax when built in Python (a NumPy number is a number), strict when decoded (see _adapter)
_CONFIG = ConfigDict(extra="ignore")


@dataclass(frozen=True, config=_CONFIG)
class _Envelope:
    """What every JSON header starts with, read before its kind's schema is chosen."""

    v: int
    kind: str


_ENVELOPE = TypeAdapter(_Envelope)


def _one_line(what: str, error: ValidationError) -> MessageError:
    """The first problem pydantic found, as ``what: field.path: reason`` (a report may list many)."""
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return MessageError(f"{what}: {where + ': ' if where else ''}{first['msg']}{more}")


@dataclass(frozen=True, config=_CONFIG)
class Message:
    """Base of every message with a JSON header. ``kind`` names the schema on the wire."""

    kind: ClassVar[str] = ""

    def header(self) -> bytes:
        """The JSON header frame: ``{"v": 1, "kind": ..., fields...}``."""
        body = _adapter(type(self)).dump_json(self)
        return f'{{"v":{SCHEMA_VERSION},"kind":"{self.kind}",'.encode() + body[1:]

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON-ready dict (without the framing fields)."""
        return _adapter(type(self)).dump_python(self, mode="json")


FRAME_VERSION = 3
_FRAME_MAGIC = b"SRFH"
#: the signature and the version, which say how to read the rest
_FRAME_START = struct.Struct("<4sH")
_FRAME = struct.Struct(_FRAME_START.format + "qdIIqIQBddHH")
#: where a frame's pixels are: in a shared-memory ring, or after the header, raw RGB or JPEG
FramePixels = Literal["ring", "raw", "jpeg"]
_PIXEL_CODES: tuple[str, ...] = get_args(FramePixels)
FRAME_MESSAGE_MAX = _FRAME.size + 8 * MAX_NAME  #: bytes of a frame message with both names at their limit in UTF-8


@dataclass(frozen=True, config=_CONFIG)
class _Picture:
    """What every message about a frame starts with: whose frame, which, when it was captured
    and its size (``height`` x ``width``, at most ``MAX_FRAME_PIXELS``)."""

    source: Name
    index: Count
    ts: Timestamp
    height: Side
    width: Side

    @model_validator(mode="after")
    def _not_too_many_pixels(self) -> Any:
        if self.height * self.width > MAX_FRAME_PIXELS:
            raise ValueError(f"{self.width}x{self.height} is more than {MAX_FRAME_PIXELS} pixels")
        return self


@dataclass(frozen=True, config=_CONFIG)
class FrameHeader(_Picture):
    """A captured frame, whose pixels wait in the capture's shared-memory frame ring
    (:mod:`streamrec.bus.ring`), or follow it in the same message (``pixels`` raw or jpeg).

    ``index``: frames delivered by this source so far (gaps = frames dropped downstream).
    ``ts``: capture wall-clock time (Unix seconds): when the frame was read. ``media_ts``: for a
    file read as fast as frames are taken, the frame's time on the file's own time line,
    anchored at its first frame's read time and continued across loops (it runs ahead of the
    wall clock); None where the source's time line is the wall clock. ``dropped``: frames the capture stage
    dropped so far (rate cap, slow consumer). ``ring``, ``slot``, ``seq``: where the pixels are
    (ring file name, slot) and the sequence number the slot must still hold, when ``pixels`` is
    ``ring``; with ``raw`` (``height * width * 3`` bytes of RGB) or ``jpeg`` they are the
    message's second frame, and ``ring`` is empty. ``age``: seconds from the capture to the
    sending of this message, on the sender's own monotonic clock (no two hosts' clocks are
    subtracted; the time on the wire is not counted); ``received``: this process's
    ``time.monotonic()`` when the message was unpacked (never sent), so that
    :meth:`age_at` is the frame's age here.

    Unlike the other messages it travels as one binary ZeroMQ frame (:meth:`pack`,
    :meth:`unpack`): it is sent for every frame of every camera, and a fixed layout costs a
    fraction of JSON's encoding and decoding. Layout (little-endian): ``b"SRFH"``, ``u16``
    version (``FRAME_VERSION``), ``i64`` index, ``f64`` ts, ``u32`` height, ``u32`` width,
    ``i64`` dropped, ``u32`` slot, ``u64`` seq, ``u8`` pixels (0 ring, 1 raw, 2 jpeg), ``f64``
    age, ``f64`` media_ts (NaN for None), ``u16`` byte lengths of source and ring, then both as UTF-8.
    """

    kind: ClassVar[str] = "frame"
    dropped: Count = 0
    ring: Name = ""
    slot: Count = 0
    seq: Count = 0
    pixels: FramePixels = "ring"
    age: Annotated[float, Field(ge=0, le=MAX_TIME, allow_inf_nan=False)] = 0.0
    media_ts: Timestamp | None = None
    received: float = dataclasses.field(default=0.0, compare=False)

    @property
    def motion_ts(self) -> float:
        """The time tracking measures motion between frames on: ``media_ts`` where the frame has
        one (a file read fast moves at its own pace, not at the pace it is read), else ``ts``."""
        return self.ts if self.media_ts is None else self.media_ts

    def age_at(self, now: float) -> float:
        """Seconds since the capture at ``now`` (``time.monotonic()`` of this process)."""
        return self.age + (now - self.received if self.received else 0.0)

    def pack(self) -> bytes:
        """The binary frame message."""
        source, ring = self.source.encode(), self.ring.encode()
        return _FRAME.pack(
            _FRAME_MAGIC, FRAME_VERSION, self.index, self.ts, self.height, self.width, self.dropped, self.slot, self.seq,
            _PIXEL_CODES.index(self.pixels), self.age, math.nan if self.media_ts is None else self.media_ts,
            len(source), len(ring),
        ) + source + ring

    @classmethod
    def unpack(cls, data: bytes | memoryview) -> FrameHeader:
        """Decode and check a binary frame message; :class:`MessageError` says what is wrong."""
        if len(data) > FRAME_MESSAGE_MAX:
            raise MessageError(f"frame: {len(data)} bytes, more than the {FRAME_MESSAGE_MAX} a frame message can have")
        if len(data) < _FRAME_START.size or bytes(data[:4]) != _FRAME_MAGIC:
            raise MessageError(f"not a frame message ({len(data)} bytes without the frame header's signature)")
        _, version = _FRAME_START.unpack_from(data)  # before the size, which differs between versions
        if version != FRAME_VERSION:
            raise MessageError(f"frame: version {version}, expected {FRAME_VERSION}")
        if len(data) < _FRAME.size:
            raise MessageError(f"frame: {len(data)} bytes, shorter than the {_FRAME.size} of its header")
        received = time.monotonic()
        _, _, index, ts, height, width, dropped, slot, seq, pixels, age, media_ts, source_len, ring_len = _FRAME.unpack_from(data)
        if pixels >= len(_PIXEL_CODES):
            raise MessageError(f"frame: pixels code {pixels}, expected 0 to {len(_PIXEL_CODES) - 1}")
        if len(data) != _FRAME.size + source_len + ring_len:
            raise MessageError(f"frame: {len(data)} bytes, the header says {_FRAME.size + source_len + ring_len}")
        try:
            source = bytes(data[_FRAME.size:_FRAME.size + source_len]).decode()
            ring = bytes(data[_FRAME.size + source_len:]).decode()
        except UnicodeDecodeError:
            raise MessageError("frame: source or ring name is not UTF-8") from None
        try:
            return cls(
                source=source, index=index, ts=ts, height=height, width=width, dropped=dropped, ring=ring, slot=slot, seq=seq,
                pixels=_PIXEL_CODES[pixels], age=age, media_ts=None if math.isnan(media_ts) else media_ts, received=received,
            )
        except ValidationError as exc:
            raise _one_line("frame", exc) from None


@dataclass(frozen=True, config=_CONFIG)
class SourceStatus(Message):
    """A change in a source's state (``SOURCE_STATES``), with its counters. ``reason``: why
    (at most ``MAX_TEXT`` characters: the capture stage cuts longer ones)."""

    kind: ClassVar[str] = "source_status"
    source: Name
    state: SourceState
    ts: Timestamp
    reason: Text = ""
    frames: Count = 0
    dropped: Count = 0
    reconnects: Count = 0


@dataclass(frozen=True, config=_CONFIG)
class Event(Message):
    """A decision about a face track, or a source's change of state; what subscribers receive.

    ``type``: ``match`` (a watchlist person), ``unknown`` (a face that matches nobody),
    ``track_end`` (the face left), ``source_status``, ``access`` (a door's decision about the
    person on ``track_id``: ``result`` ``challenge``, asking them to turn their head ``direction``,
    then ``granted`` or ``denied``, with the denial's ``reason``; then ``action`` for each configured
    action that answer ran, ``reason`` ``done``, ``failed`` or ``timeout``, ``detail`` its line). ``distance``: best embedding distance to
    the named person (lower is closer); ``score``: confidence 0-1 of the decision.
    ``box``: ``[x1, y1, x2, y2]`` in frame pixels. ``ts``: when the decision was made;
    ``capture_ts``: when the frame it was made on was captured. ``seq``: position in the event
    journal (assigned by the events stage; 0 before that). ``detail``: free text.
    """

    kind: ClassVar[str] = "event"
    type: EventType
    source: Name
    ts: Timestamp
    track_id: Count | None = None
    person_id: Name | None = None
    name: Name | None = None
    distance: Finite | None = None
    score: Finite | None = None
    box: Box | None = None
    frame_index: Count | None = None
    capture_ts: Timestamp | None = None
    seq: Count = 0
    detail: Text = ""
    result: AccessResult | None = None
    direction: Direction | None = None
    reason: Name | None = None


@dataclass(frozen=True, config=_CONFIG)
class EndTracks(Message):
    """A request on the internal events link, from the supervisor to the events stage: the
    inference stage died without ending its tracks, so end every track of ``source`` that is
    still open, with ``detail`` saying why (:mod:`streamrec.events.tracks`). A kind of its own,
    so that no event, however it is made, can be taken for it; subscribers never see it."""

    kind: ClassVar[str] = "end_tracks"
    source: Name
    ts: Timestamp
    detail: Text = ""


@dataclass(frozen=True, config=_CONFIG)
class Serving(Message):
    """On the internal events link, from an inference stage to the events stage: this stage is
    alive, and the tracks of ``sources`` (the cameras whose frames it has taken) are its.
    ``instance``: the stage process's own id, new each time one starts. Sent when the stage
    starts, before its first decision about a camera it had not served, and every
    ``SERVING_EVERY_S``; the events stage ends the tracks that a stage which stopped sending it,
    or which another took over from, left open (:mod:`streamrec.events.tracks`). ``taken``: the
    cameras of ``sources`` it has just taken (new to it, or back after a break); only these
    take a camera from another stage, since a worker a camera left still names it for a while,
    and must not take it back from the worker it moved to. A kind of its own, like
    :class:`EndTracks`; subscribers never see it."""

    kind: ClassVar[str] = "serving"
    instance: Name
    sources: Annotated[tuple[Name, ...], Field(max_length=MAX_SOURCES)]
    ts: Timestamp
    taken: Annotated[tuple[Name, ...], Field(max_length=MAX_SOURCES)] = ()


@dataclass(frozen=True, config=_CONFIG)
class FaceOverlay:
    """What to draw for one face: its box, track, current decision (``label``: a name,
    ``unknown``, or ``...`` while undecided) and that decision's score."""

    box: Box
    track_id: Count
    label: Name
    score: Finite
    known: bool


@dataclass(frozen=True, config=_CONFIG)
class Overlay(Message, _Picture):
    """A frame's results for the renderer; the frame's ``height`` x ``width`` RGB pixels follow
    as the next frame (exactly ``height * width * 3`` bytes). ``fps``: the source's rate."""

    kind: ClassVar[str] = "overlay"
    fps: Rate
    faces: Annotated[tuple[FaceOverlay, ...], Field(max_length=MAX_FACES)] = ()


@dataclass(frozen=True, config=_CONFIG)
class JpegFrame(Message, _Picture):
    """An overlaid frame, JPEG-encoded; the JPEG bytes (at most ``MAX_JPEG``) follow as the next
    frame. Published with the source name as topic. ``labels``: the names (or "unknown", or "..." for a face not decided yet) drawn
    on it."""

    kind: ClassVar[str] = "jpeg"
    fps: Rate
    labels: Annotated[tuple[Name, ...], Field(max_length=MAX_FACES)] = ()


@dataclass(frozen=True, config=_CONFIG)
class StageStats(Message):
    """A stage's periodic report to the supervisor: counters and latency samples.

    ``counters``: monotonically increasing totals (name -> count). ``gauges``: current values.
    ``latencies``: seconds observed since the previous report, per measured step.
    """

    kind: ClassVar[str] = "stats"
    stage: Name
    pid: Count
    ts: Timestamp
    counters: Annotated[dict[Figure, Count], Field(max_length=MAX_FIGURES)] = Field(default_factory=dict)
    gauges: Annotated[dict[Figure, Finite], Field(max_length=MAX_FIGURES)] = Field(default_factory=dict)
    latencies: Annotated[
        dict[Figure, Annotated[tuple[Finite, ...], Field(max_length=MAX_SAMPLES)]], Field(max_length=MAX_FIGURES)
    ] = Field(default_factory=dict)


#: messages with a JSON header; frames travel in binary (:meth:`FrameHeader.unpack`)
_KINDS: dict[str, type[Message]] = {
    cls.kind: cls for cls in (SourceStatus, Event, EndTracks, Serving, Overlay, JpegFrame, StageStats)
}
_WITH_PAYLOAD = (Overlay, JpegFrame)
_ADAPTERS: dict[type, TypeAdapter[Any]] = {}
M = TypeVar("M")


def _adapter(cls: type[M]) -> TypeAdapter[M]:
    """One validator per message class, built on first use (building one takes milliseconds)."""
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


#: the kinds a receiver accepts: one message class, a tuple of them, or None for any
Expect = type[Message] | tuple[type[Message], ...] | None


def decode_topic(topic: bytes | memoryview) -> str:
    """The topic frame as text: UTF-8, at most ``MAX_TOPIC`` bytes."""
    if len(topic) > MAX_TOPIC:
        raise MessageError(f"topic of {len(topic)} bytes, more than {MAX_TOPIC}")
    try:
        return bytes(topic).decode()
    except UnicodeDecodeError:
        raise MessageError("topic is not UTF-8") from None


def decode_header(header: bytes | memoryview, expect: Expect = None) -> Message:
    """Decode a JSON header frame: of a kind ``expect`` names if given (one class, or a tuple of
    them), else of any kind. Checks its size against ``HEADER_LIMITS`` before parsing, then the
    version, kind and every field."""
    kinds = (expect,) if isinstance(expect, type) else expect
    limit = max(HEADER_LIMITS[k.kind] for k in kinds) if kinds else max(HEADER_LIMITS.values())
    what = "/".join(k.kind for k in kinds) if kinds else "header"
    if len(header) > limit:
        raise MessageError(f"{what}: header of {len(header)} bytes, more than {limit}")
    data = bytes(header)
    try:
        envelope = _ENVELOPE.validate_json(data, strict=True)
    except ValidationError as exc:
        raise _one_line(what, exc) from None
    if envelope.v != SCHEMA_VERSION:
        raise MessageError(f"{what}: schema version {envelope.v!r}, expected {SCHEMA_VERSION}")
    kind = envelope.kind
    cls = _KINDS.get(kind)
    if cls is None:
        raise MessageError(f"unknown message kind {kind[:40]!r}")
    if kinds and cls not in kinds:
        raise MessageError(f"expected a {what} message, got {kind!r}")
    if len(data) > HEADER_LIMITS[kind]:
        raise MessageError(f"{kind}: header of {len(data)} bytes, more than {HEADER_LIMITS[kind]}")
    try:
        return _adapter(cls).validate_json(data, strict=True)
    except ValidationError as exc:
        raise _one_line(kind, exc) from None


def decode(parts: list[bytes] | list[memoryview], expect: Expect = None) -> tuple[str, Message]:
    """Decode a multipart message ``[topic, header, *payload]`` into ``(topic, message)``.

    The payload frame of ``overlay`` messages (pixels, decoded with :func:`decode_pixels`) and of
    ``jpeg`` messages (JPEG bytes, at most ``MAX_JPEG``) is required and not decoded here;
    other kinds have none. ``expect``: the kinds accepted (any, if None; see :func:`decode_header`).
    """
    if not 2 <= len(parts) <= 3:
        raise MessageError(f"expected 2 or 3 frames (topic, header, payload), got {len(parts)}")
    topic = decode_topic(parts[0])
    message = decode_header(parts[1], expect)
    if isinstance(message, _WITH_PAYLOAD) != (len(parts) == 3):
        raise MessageError(f"{message.kind}: wrong number of frames ({len(parts)})")
    if isinstance(message, JpegFrame) and not 0 < len(parts[2]) <= MAX_JPEG:
        raise MessageError(f"jpeg: {len(parts[2])} bytes of JPEG, expected 1 to {MAX_JPEG}")
    return topic, message


def encode_frame_pixels(rgb: np.ndarray, pixels: FramePixels, quality: int) -> np.ndarray | bytes:
    """The second frame of a frame message whose ``pixels`` are ``raw`` (the RGB array itself,
    sent without copying) or ``jpeg`` (encoded at ``quality``)."""
    from streamrec.images.jpeg import encode_jpeg

    return np.ascontiguousarray(rgb) if pixels == "raw" else encode_jpeg(rgb, quality)


def decode_frame_pixels(header: FrameHeader, buffer: bytes | memoryview) -> np.ndarray:
    """The ``(height, width, 3)`` uint8 RGB image that followed ``header`` (``raw``: without
    copying; ``jpeg``: decoded only once its own header gives the size ``header`` says, so that
    a small file claiming a huge picture is never allocated)."""
    if header.pixels == "raw":
        expected = header.height * header.width * 3
        if len(buffer) != expected:
            raise MessageError(f"frame: {len(buffer)} pixel bytes, expected {expected} for {header.width}x{header.height}")
        return np.frombuffer(buffer, np.uint8).reshape(header.height, header.width, 3)
    from streamrec.images.header import HeaderError, read_header
    from streamrec.images.jpeg import decode_jpeg

    if not 0 < len(buffer) <= MAX_JPEG:
        raise MessageError(f"frame: {len(buffer)} bytes of JPEG, expected 1 to {MAX_JPEG}")
    try:
        found = read_header(bytes(buffer[:64 * 1024]))
    except HeaderError as exc:
        raise MessageError(f"frame: {exc}") from None
    if (found.format, found.width, found.height) != ("JPEG", header.width, header.height):
        raise MessageError(f"frame: a {found.width}x{found.height} {found.format}, the header says a "
                           f"{header.width}x{header.height} JPEG")
    rgb = decode_jpeg(buffer)
    if rgb is None or rgb.shape != (header.height, header.width, 3):
        raise MessageError(f"frame: a JPEG that does not decode to {header.width}x{header.height}")
    return rgb


def decode_pixels(header: Overlay, buffer: bytes | memoryview) -> np.ndarray:
    """The ``(height, width, 3)`` uint8 RGB image of an overlay message, without copying."""
    expected = header.height * header.width * 3
    if len(buffer) != expected:
        raise MessageError(f"{header.kind}: {len(buffer)} pixel bytes, expected {expected} for {header.width}x{header.height}")
    return np.frombuffer(buffer, np.uint8).reshape(header.height, header.width, 3)

