"""Message schemas and the sockets that carry them, over real ZeroMQ sockets."""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np
import pytest
import zmq
from pydantic import ValidationError

from streamrec.bus.messages import (
    DECISION_TYPES,
    EVENT_TYPES,
    MAX_NAME,
    SOURCE_STATES,
    Event,
    FrameHeader,
    JpegFrame,
    MessageError,
    Overlay,
    SourceStatus,
    StageStats,
    decode,
)
from streamrec.bus.sockets import (
    Endpoints,
    new_run_dir,
    pull_socket,
    push_socket,
    receive,
    send,
)
from streamrec.capture import State


@pytest.fixture()
def link():
    ctx = zmq.Context()
    run_dir = new_run_dir()
    address = Endpoints.for_run(run_dir, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2").frames
    pull = pull_socket(ctx, address, hwm=8)
    push = push_socket(ctx, address, hwm=8)
    yield push, pull
    ctx.destroy(linger=0)
    import shutil

    shutil.rmtree(run_dir)


def test_every_message_round_trips(link):
    push, pull = link
    pixels = np.random.default_rng(0).integers(0, 256, (36, 64, 3), dtype=np.uint8)
    messages = [
        (Overlay("cam", 7, 1.5, 36, 64, 24.5, [{"box": [1, 2, 3, 4], "track_id": 2, "label": "Ann", "score": 0.9, "known": True}]), pixels),
        (SourceStatus("cam", "lost", 2.0, "server closed the connection", 10, 1, 3), None),
        (Event("match", "cam", 3.0, track_id=1, person_id="ann", name="Ann", distance=0.7, score=0.9, box=[1, 2, 3, 4], frame_index=7, capture_ts=2.9), None),
        (Event("access", "door", 3.5, track_id=1, person_id="ann", name="Ann", result="denied", direction="left",
               reason="wrong_direction", detail="asked left from +2 deg: moved 3 deg that way, 16 the other"), None),
        (JpegFrame("cam", 7, 1.5, 36, 64, 24.5, ["Ann"]), b"\xff\xd8\xff fake jpeg"),
        (StageStats("inference", 123, 4.0, {"faces": 3}, {"fps[cam]": 25.0}, {"detect": [0.01, 0.02]}), None),
    ]
    for message, payload in messages:
        assert send(push, "caméra", message, payload)
        topic, received, got = receive(pull, expect=type(message))
        assert topic == "caméra" and received == message
        if isinstance(payload, np.ndarray):
            np.testing.assert_array_equal(got, payload)
        else:
            assert got == payload


_EVENT = b'"v": 1, "kind": "event", "type": "match", "source": "c", "ts": 1'
_OVERLAY = b'"v": 1, "kind": "overlay", "source": "c", "index": 1, "ts": 1, "fps": 1'


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([b"t"], "expected 2 or 3 frames"),
        ([b"t", b"not json"], "header: Invalid JSON"),
        ([b"t", b'{"v": 1, "kind": "nope"}'], "unknown message kind 'nope'"),
        ([b"t", b'{"v": 2, "kind": "event", "type": "match", "source": "c", "ts": 1}'], "schema version 2"),
        ([b"t", b'{"kind": "event", "type": "match", "source": "c", "ts": 1}'], "header: v: Field required"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "match", "ts": 1}'], "event: source: Field required"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "party", "source": "c", "ts": 1}'], "event: type: Input should be 'match'"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "match", "source": "c", "ts": "noon"}'], "event: ts: Input should be a valid number"),
        ([b"t", b"{" + _EVENT + b', "box": [1, 2]}'], "event: box: .*at least 4"),
        ([b"t", b'{"v": 1, "kind": "jpeg", "source": "c", "index": 1, "ts": 1, "height": 2, "width": 2, "fps": 1}'], "wrong number of frames"),
        ([b"t", b'{"v": 1, "kind": "frame", "source": "c", "index": 1, "ts": 1, "height": 2, "width": 2}'], "unknown message kind 'frame'"),
        ([b"t", b'{"v": 1, "kind": "source_status", "source": "c", "state": "sleepy", "ts": 1}'], "source_status: state"),
        ([b"t", b"{" + _EVENT + b', "track_id": true}'], "event: track_id: Input should be a valid integer"),
        ([b"t", b"{" + _EVENT + b', "score": NaN}'], "event: score: Input should be a finite number"),
        ([b"t", b"{" + _EVENT + b', "capture_ts": 1e300}'], "event: capture_ts: Input should be less than or equal"),
        ([b"t", b"{" + _EVENT + b', "seq": -1}'], "event: seq: Input should be greater than or equal to 0"),
        ([b"t", b"{" + _EVENT + b', "name": "' + b"n" * 201 + b'"}'], "event: name: String should have at most 200 characters"),
        ([b"t", b"{" + _EVENT + b', "result": "maybe"}'], "event: result: Input should be 'challenge', 'granted', 'denied' or 'action'"),
        ([b"t", b"{" + _EVENT + b', "direction": "up"}'], "event: direction: Input should be 'left' or 'right'"),
        ([b"t", b"{" + _EVENT + b', "reason": "' + b"r" * 201 + b'"}'], "event: reason: String should have at most 200 characters"),
        ([b"\xff", b"{" + _EVENT + b"}"], "topic is not UTF-8"),
        ([b"t" * 801, b"{" + _EVENT + b"}"], "topic of 801 bytes"),
        ([b"t", b"{" + _EVENT + b"}", b"payload"], "event: wrong number of frames"),
        ([b"t", b"{" + _OVERLAY + b', "height": 2, "width": 2, "faces": [{"box": [1, 2, 3, 4], "label": "x"}]}', b"\0" * 12], "overlay: faces.0.track_id: Field required"),
        ([b"t", b"{" + _OVERLAY + b', "height": 4000, "width": 4000}', b""], "overlay: Value error, 4000x4000 is more than 10000000 pixels"),
        ([b"t", b'{"v": 1, "kind": "jpeg", "source": "c", "index": 1, "ts": 1, "height": 2, "width": 2, "fps": 1}', b""], "jpeg: 0 bytes of JPEG"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(parts, reason):
    with pytest.raises(MessageError, match=reason):
        decode(parts)


def test_wrong_pixel_count_is_refused(link):
    push, pull = link
    push.send_multipart([b"t", Overlay("cam", 1, 1.0, 4, 4, 0.0).header(), b"\x00" * 10])
    with pytest.raises(MessageError, match="10 pixel bytes, expected 48"):
        receive(pull)


def test_unknown_fields_are_ignored_for_compatibility():
    body = json.loads(Event("unknown", "cam", 1.0).header())
    body["added_later"] = 42
    _, event = decode([b"unknown", json.dumps(body).encode()])
    assert event == Event("unknown", "cam", 1.0)


def test_frame_headers_round_trip_in_binary():
    header = FrameHeader("caméra 1", 7, 1.5, 480, 640, 2, "ring-0123456789ab-10-1", 3, 99)
    assert FrameHeader.unpack(header.pack()) == header
    fast = FrameHeader("cam", 8, 1.5, 480, 640, media_ts=9.25)  # a file read fast: its own time line
    assert FrameHeader.unpack(fast.pack()) == fast
    assert (header.motion_ts, fast.motion_ts) == (1.5, 9.25)


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda b: b[:5], "not a frame message"),
        (lambda b: b[:20], "shorter than the"),
        (lambda b: b"XXXX" + b[4:], "not a frame message"),
        (lambda b: b[:4] + (1).to_bytes(2, "little") + b[6:], "version 1"),
        # an older sender's header is shorter: its version is what is wrong
        (lambda b: b[:4] + (2).to_bytes(2, "little") + b[6:30], "version 2"),
        (lambda b: b + b"x", "the header says"),
        (lambda b: b[:-1] + b"\xff", "not UTF-8"),
    ],
)
def test_malformed_frame_headers_are_refused_with_the_reason(mangle, reason):
    packed = FrameHeader("cam", 1, 1.0, 4, 4, 0, "ring-0123456789ab-1-1", 0, 1).pack()
    with pytest.raises(MessageError, match=reason):
        FrameHeader.unpack(mangle(packed))


def _set(packed: bytes, fmt: str, offset: int, value: object) -> bytes:
    """``packed`` with one field of the documented layout replaced."""
    changed = bytearray(packed)
    struct.pack_into(fmt, changed, offset, value)
    return bytes(changed)


@pytest.mark.parametrize(
    "field, reason",
    [
        (("<I", 22, 9000), "frame: height: Input should be less than or equal to 8192"),  # height
        (("<q", 6, -1), "frame: index: Input should be greater than or equal to 0"),
        (("<d", 14, math.nan), "frame: ts: Input should be a finite number"),
        (("<I", 26, 0), "frame: width: Input should be greater than or equal to 1"),
        (("<B", 50, 7), "frame: pixels code 7, expected 0 to 2"),  # pixels
        (("<d", 51, math.nan), "frame: age: Input should be a finite number"),
        (("<d", 51, -0.5), "frame: age: Input should be greater than or equal to 0"),
        (("<d", 59, -1.0), "frame: media_ts: Input should be greater than or equal to 0"),
        (("<d", 59, math.inf), "frame: media_ts: Input should be a finite number"),
    ],
)
def test_frame_headers_out_of_range_are_refused(field, reason):
    packed = FrameHeader("cam", 1, 1.0, 4, 4, 0, "ring-0123456789ab-1-1", 0, 1).pack()
    with pytest.raises(MessageError, match=reason):
        FrameHeader.unpack(_set(packed, *field))


def test_non_blocking_send_drops_when_the_consumer_is_slow():
    ctx = zmq.Context()
    run_dir = new_run_dir()
    address = f"ipc://{run_dir}/slow"
    receiver = pull_socket(ctx, address, hwm=1)  # bound, never read: a stalled consumer
    push = push_socket(ctx, address, hwm=1)
    try:
        pixels = np.zeros((360, 640, 3), np.uint8)
        results = [send(push, "cam", Overlay("cam", i, 0.0, 360, 640, 0.0), pixels, block=False) for i in range(50)]
        assert results[0] and not all(results)  # the first frames fit, the rest are dropped, not queued
        assert receiver.poll(1000)
    finally:
        ctx.destroy(linger=0)
        import shutil

        shutil.rmtree(run_dir)


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([b"x", b"[" * 100_000], "recursion limit exceeded"),  # a RecursionError in the stage, before
        ([b"x", b'{"v": 1, "kind": "stats", "stage": "inference", "pid": 1, "ts": 1, "x": ' + b'{"a": ' * 300 + b"1" + b"}" * 301], "recursion limit"),
        ([b"stats", b'{"v": 1, "kind": "stats", "stage": "x", "pid": 1, "ts": 1, "counters": {"skipped[cam]": "x"}}'], r"stats: counters.skipped\[cam\]: Input should be a valid integer"),
        ([b"stats", b'{"v": 1, "kind": "stats", "stage": "x", "pid": 1, "ts": 1, "gauges": {"fps[cam]": [1]}}'], "stats: gauges"),
        ([b"stats", b'{"v": 1, "kind": "stats", "stage": "x", "pid": 1, "ts": 1, "latencies": {"detect": [0.1, "slow"]}}'], "stats: latencies.detect.1"),
        ([b"stats", b'{"v": 1, "kind": "stats", "stage": "x", "pid": 1, "ts": 1, "latencies": {"detect": 0.1}}'], "stats: latencies.detect"),
        ([b"c", b'{"v": 1, "kind": "overlay", "source": "c", "index": 1, "ts": 1, "height": -1, "width": -1, "fps": 1}', b"abc"], "overlay: height: Input should be greater than or equal to 1"),
        ([b"c", b'{"v": 1, "kind": "overlay", "source": "c", "index": 1, "ts": 1, "height": 0, "width": 5, "fps": 1}', b""], "overlay: height"),
        ([b"c", b'{"v": 1, "kind": "overlay", "source": "c", "index": 1, "ts": 1, "height": 2, "width": 2, "fps": 1}', b"abc"], "overlay: 3 pixel bytes, expected 12 for 2x2"),
        ([b"match", b'{"v": 1, "kind": "event", "type": "match", "source": "c", "ts": 1, "detail": "' + b"x" * 50_000 + b'"}'], "event: header of 50.* bytes, more than 16384"),
        ([b"match", b'{"v": 1, "kind": "event", "type": "match", "source": "c", "ts": 1, "detail": "' + b"x" * 1001 + b'"}'], "event: detail: String should have at most 1000 characters"),
    ],
)
def test_hostile_messages_are_refused_before_they_cost_anything(link, parts, reason):
    """Deep nesting, wrong types in nested values, impossible sizes and oversized fields, over a
    real socket: each is one MessageError, never another exception."""
    push, pull = link
    push.send_multipart(parts)
    with pytest.raises(MessageError, match=reason):
        receive(pull)


def test_a_message_with_too_many_frames_is_refused_and_the_next_one_still_arrives(link):
    push, pull = link
    push.send_multipart([b"t", Event("match", "cam", 1.0).header(), *[b"x"] * 10_000])
    send(push, "t", Event("unknown", "cam", 2.0))
    with pytest.raises(MessageError, match="10002 message frames, expected at most 3"):
        receive(pull)
    assert receive(pull)[1] == Event("unknown", "cam", 2.0)


def test_messages_are_frozen_and_checked_when_built():
    event = Event("match", "cam", 1.0, box=[1, 2, 3, 4])
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "someone"  # type: ignore[misc]
    assert event.box == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(ValidationError, match="name"):
        Event("match", "cam", 1.0, name="n" * (MAX_NAME + 1))
    with pytest.raises(ValidationError, match="counters"):
        StageStats("inference", 1, 1.0, counters={"faces": "many"})  # type: ignore[dict-item]


def test_the_source_states_are_the_readers_states():
    assert set(SOURCE_STATES) == {state.value for state in State} - {State.STOPPED.value}
    assert set(EVENT_TYPES) >= set(DECISION_TYPES)
