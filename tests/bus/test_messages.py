"""Message schemas and the sockets that carry them, over real ZeroMQ sockets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import zmq

from streamrec.bus.messages import (
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
        (Overlay("cam", 7, 1.5, 36, 64, 24.5, [{"box": [1, 2, 3, 4], "label": "Ann"}]), pixels),
        (SourceStatus("cam", "lost", 2.0, "server closed the connection", 10, 1, 3), None),
        (Event("match", "cam", 3.0, track_id=1, person_id="ann", name="Ann", distance=0.7, score=0.9, box=[1, 2, 3, 4], frame_index=7, capture_ts=2.9), None),
        (JpegFrame("cam", 7, 1.5, 36, 64, 24.5, ["Ann"]), b"\xff\xd8\xff fake jpeg"),
        (StageStats("inference", 123, 4.0, {"faces": 3}, {"fps[cam]": 25.0}, {"detect": [0.01, 0.02]}), None),
    ]
    for message, payload in messages:
        assert send(push, "t", message, payload)
        topic, received, got = receive(pull)
        assert topic == "t" and received == message
        if isinstance(payload, np.ndarray):
            np.testing.assert_array_equal(got, payload)
        else:
            assert got == payload


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([b"t"], "at least 2 frames"),
        ([b"t", b"not json"], "undecodable"),
        ([b"t", b'{"v": 1, "kind": "nope"}'], "unknown message kind"),
        ([b"t", b'{"v": 2, "kind": "event", "type": "match", "source": "c", "ts": 1}'], "schema version 2"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "match", "ts": 1}'], "missing field 'source'"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "party", "source": "c", "ts": 1}'], "event.type"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "match", "source": "c", "ts": "noon"}'], "event.ts: expected"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "match", "source": "c", "ts": 1, "box": [1, 2]}'], "box"),
        ([b"t", b'{"v": 1, "kind": "jpeg", "source": "c", "index": 1, "ts": 1, "height": 2, "width": 2, "fps": 1}'], "wrong number of frames"),
        ([b"t", b'{"v": 1, "kind": "frame", "source": "c", "index": 1, "ts": 1, "height": 2, "width": 2}'], "unknown message kind 'frame'"),
        ([b"t", b'{"v": 1, "kind": "source_status", "source": "c", "state": "sleepy", "ts": 1}'], "source_status.state"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "match", "source": "c", "ts": 1, "track_id": true}'], "boolean"),
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


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda b: b[:20], "not a frame message"),
        (lambda b: b"XXXX" + b[4:], "not a frame message"),
        (lambda b: b[:4] + (2).to_bytes(2, "little") + b[6:], "version 2"),
        (lambda b: b + b"x", "the header says"),
        (lambda b: b[:-1] + b"\xff", "not UTF-8"),
    ],
)
def test_malformed_frame_headers_are_refused_with_the_reason(mangle, reason):
    packed = FrameHeader("cam", 1, 1.0, 4, 4, 0, "ring-0123456789ab-1-1", 0, 1).pack()
    with pytest.raises(MessageError, match=reason):
        FrameHeader.unpack(mangle(packed))


@pytest.mark.parametrize(
    "header, reason",
    [(FrameHeader("cam", 1, 1.0, 9000, 4), "out of range"), (FrameHeader("cam", -1, 1.0, 4, 4), "negative index"), (FrameHeader("cam", 1, math.nan, 4, 4), "not a number")],
)
def test_frame_headers_out_of_range_are_refused(header, reason):
    with pytest.raises(MessageError, match=reason):
        FrameHeader.unpack(header.pack())


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
