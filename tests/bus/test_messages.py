"""Message schemas and the sockets that carry them, over real ZeroMQ sockets."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

from streamrec.bus.messages import (
    Event,
    FrameHeader,
    JpegFrame,
    MessageError,
    SourceStatus,
    StageStats,
    decode,
)
from streamrec.bus.sockets import (
    Endpoints,
    drain_frames,
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
        (FrameHeader("cam", 7, 1.5, 36, 64, 2), pixels),
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
        ([b"t", b'{"v": 1, "kind": "frame", "source": "c", "index": 1, "ts": 1, "height": 2, "width": 2}'], "wrong number of frames"),
        ([b"t", b'{"v": 1, "kind": "source_status", "source": "c", "state": "sleepy", "ts": 1}'], "source_status.state"),
        ([b"t", b'{"v": 1, "kind": "event", "type": "match", "source": "c", "ts": 1, "track_id": true}'], "boolean"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(parts, reason):
    with pytest.raises(MessageError, match=reason):
        decode(parts)


def test_wrong_pixel_count_is_refused(link):
    push, pull = link
    push.send_multipart([b"t", FrameHeader("cam", 1, 1.0, 4, 4).header(), b"\x00" * 10])
    with pytest.raises(MessageError, match="10 pixel bytes, expected 48"):
        receive(pull)


def test_unknown_fields_are_ignored_for_compatibility():
    body = json.loads(Event("unknown", "cam", 1.0).header())
    body["added_later"] = 42
    _, event = decode([b"unknown", json.dumps(body).encode()])
    assert event == Event("unknown", "cam", 1.0)


def test_drain_sorts_frames_by_source_in_arrival_order(link):
    push, pull = link
    pixels = np.zeros((2, 2, 3), np.uint8)
    # Eight messages: all fit within the receiver's high-water mark of 8, so every one is
    # already waiting when the drain starts (more would still be in flight on the sender).
    for i in range(3):
        for source in ("a", "b"):
            assert send(push, "frame", FrameHeader(source, i, float(i), 2, 2), pixels + i)
    push.send_multipart([b"frame", b"garbage"])
    push.send_multipart([b"one frame only"])
    time.sleep(0.2)
    frames, malformed = drain_frames(pull, 500)
    assert {name: [header.index for header, _ in items] for name, items in frames.items()} == {"a": [0, 1, 2], "b": [0, 1, 2]}
    assert [int(pixels[0, 0, 0]) for _, pixels in frames["a"]] == [0, 1, 2]
    assert malformed == 2


def test_non_blocking_send_drops_when_the_consumer_is_slow():
    ctx = zmq.Context()
    run_dir = new_run_dir()
    address = f"ipc://{run_dir}/slow"
    receiver = pull_socket(ctx, address, hwm=1)  # bound, never read: a stalled consumer
    push = push_socket(ctx, address, hwm=1)
    try:
        pixels = np.zeros((360, 640, 3), np.uint8)
        results = [send(push, "frame", FrameHeader("cam", i, 0.0, 360, 640), pixels, block=False) for i in range(50)]
        assert results[0] and not all(results)  # the first frames fit, the rest are dropped, not queued
        assert receiver.poll(1000)
    finally:
        ctx.destroy(linger=0)
        import shutil

        shutil.rmtree(run_dir)
