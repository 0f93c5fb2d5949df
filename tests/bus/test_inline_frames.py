"""Frames whose pixels travel in the frame message (``[links] frame_pixels`` raw or jpeg), over
real TCP sockets: what arrives is the picture sent, and a malformed or oversized message is
refused with its reason, never decoded into something else."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import zmq

from streamrec.bus.messages import MAX_JPEG, FrameHeader, encode_frame_pixels
from streamrec.bus.ring import RingReader
from streamrec.bus.sockets import Drained, drain_frames, pull_socket, push_socket, send_frame
from tests.support.ports import free_port

HEIGHT, WIDTH = 48, 64


@pytest.fixture()
def link(tmp_path) -> Iterator[tuple[zmq.Socket, zmq.Socket, RingReader]]:
    """A capture's frames socket and a batcher's, on a loopback TCP port."""
    ctx = zmq.Context()
    address = f"tcp://127.0.0.1:{free_port()}"
    try:
        receiver = pull_socket(ctx, address, hwm=16, accepts=FrameHeader, inline_pixels=True)
        yield push_socket(ctx, address, hwm=16), receiver, RingReader(tmp_path)
    finally:
        ctx.destroy(linger=0)


def _picture() -> np.ndarray:
    """A smooth gradient (JPEG keeps it within a few levels)."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([rows * 4, cols * 3, (rows + cols) * 2], axis=-1).astype(np.uint8)


def _drain(receiver: zmq.Socket, rings: RingReader, messages: int) -> Drained:
    """What the batcher takes once ``messages`` messages have arrived (or 10 s have passed)."""
    taken = Drained({}, [], 0, 0)
    deadline = time.monotonic() + 10
    while sum(map(len, taken.frames.values())) + len(taken.errors) < messages and time.monotonic() < deadline:
        more = drain_frames(receiver, rings, 200, ["cam"])
        for source, frames in more.frames.items():
            taken.frames.setdefault(source, []).extend(frames)
        taken.errors.extend(more.errors)
    return taken


@pytest.mark.parametrize("pixels, tolerance", [("raw", 0), ("jpeg", 12)])
def test_a_frame_with_its_pixels_arrives_as_the_picture_sent(link, pixels, tolerance):
    sender, receiver, rings = link
    picture = _picture()
    header = FrameHeader("cam", 3, time.time(), HEIGHT, WIDTH, pixels=pixels)
    assert send_frame(sender, header, pixels=encode_frame_pixels(picture, pixels, 90))
    taken = _drain(receiver, rings, 1)
    assert not taken.errors
    [(got_header, got)] = taken.frames["cam"]
    assert got_header == header and got.shape == picture.shape
    assert np.abs(got.astype(int) - picture.astype(int)).max() <= tolerance


def _jpeg(height: int, width: int) -> bytes:
    return cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize(
    "pixels, payload, reason",
    [
        ("raw", b"\0" * (HEIGHT * WIDTH * 3 - 1), f"frame: {HEIGHT * WIDTH * 3 - 1} pixel bytes, expected {HEIGHT * WIDTH * 3}"),
        ("jpeg", _jpeg(HEIGHT * 2, WIDTH), f"frame: a {WIDTH}x{HEIGHT * 2} JPEG, the header says a {WIDTH}x{HEIGHT} JPEG"),
        ("jpeg", cv2.imencode(".png", np.zeros((HEIGHT, WIDTH, 3), np.uint8))[1].tobytes(), "frame: a 64x48 PNG"),
        ("jpeg", b"no picture at all", "frame: not a readable image"),
        ("jpeg", _jpeg(HEIGHT, WIDTH)[:300], "frame: a JPEG that does not decode to 64x48"),
        ("jpeg", b"", "frame: 0 bytes of JPEG"),
        ("ring", b"pixels nobody asked for", "frame: 2 message frames, expected 1 with ring pixels"),
    ],
)
def test_malformed_pixels_are_refused_with_the_reason_and_the_next_frame_still_arrives(link, pixels, payload, reason):
    sender, receiver, rings = link
    sender.send_multipart([FrameHeader("cam", 1, time.time(), HEIGHT, WIDTH, pixels=pixels).pack(), payload])
    good = FrameHeader("cam", 2, time.time(), HEIGHT, WIDTH, pixels="raw")
    send_frame(sender, good, pixels=_picture())
    taken = _drain(receiver, rings, 2)
    assert len(taken.errors) == 1 and str(taken.errors[0]).startswith(reason), taken.errors
    assert [h for h, _ in taken.frames["cam"]] == [good]


def test_a_frame_without_its_pixels_is_refused(link):
    sender, receiver, rings = link
    sender.send(FrameHeader("cam", 1, time.time(), HEIGHT, WIDTH, pixels="jpeg").pack())
    taken = _drain(receiver, rings, 1)
    assert [str(e) for e in taken.errors] == ["frame: 1 message frames, expected 2 with jpeg pixels"]


def test_pixels_larger_than_any_frame_end_the_connection_before_they_are_held(link):
    sender, receiver, _ = link
    sender.send_multipart([FrameHeader("cam", 1, time.time(), HEIGHT, WIDTH, pixels="jpeg").pack(), b"\0" * (MAX_JPEG + 1)])
    assert not receiver.poll(1000)  # ZeroMQ refused the frame: nothing is delivered
    assert receiver.getsockopt(zmq.MAXMSGSIZE) == MAX_JPEG
