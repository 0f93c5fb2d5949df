"""Frame rings: pixels in shared memory between a real capture-like process and the batcher."""

from __future__ import annotations

import gc
import multiprocessing
import resource
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from streamrec.bus.messages import FrameHeader
from streamrec.bus.ring import RING_SLOTS, FrameRing, RingReader, StaleFrame
from streamrec.bus.sockets import Endpoints, drain_frames, new_run_dir, pull_socket, push_socket, send_frame

SIZE = (48, 64)


@pytest.fixture()
def run_dir():
    path = new_run_dir()
    yield path
    shutil.rmtree(path)


def _frame(value: int) -> np.ndarray:
    return np.full((*SIZE, 3), value % 256, np.uint8)


def _publisher(address: str, directory: str, count: int) -> None:
    """A capture process in miniature: decode into claimed slots, publish, send the header."""
    ctx = zmq.Context()
    push = push_socket(ctx, address)
    ring = FrameRing(Path(directory), "cam")
    for index in range(count):
        slot = ring.claim(*SIZE)
        pixels = slot if slot is not None else np.empty((*SIZE, 3), np.uint8)
        pixels[...] = _frame(index)
        while (place := ring.publish(pixels)) is None:  # wait for the reader to free a slot
            time.sleep(0.001)
        send_frame(push, FrameHeader("cam", index, time.time(), *SIZE, 0, *place))
        del pixels, slot
    ctx.destroy(linger=5000)


def test_frames_cross_processes_through_the_ring(run_dir: Path):
    endpoints = Endpoints.for_run(run_dir, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    ctx = zmq.Context()
    pull = pull_socket(ctx, endpoints.frames)
    count = 5 * RING_SLOTS  # the ring is reused several times over
    process = multiprocessing.get_context("spawn").Process(target=_publisher, args=(endpoints.frames, endpoints.rings, count))
    process.start()
    try:
        reader = RingReader(Path(endpoints.rings))
        received: list[tuple[FrameHeader, np.ndarray]] = []
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            frames, errors, stale, unknown = drain_frames(pull, reader, 500, ["cam"])
            assert (errors, stale, unknown) == ([], 0, 0)
            # keep copies: a frame used in place holds its slot, and the publisher waits for slots
            received += [(header, pixels.copy()) for header, pixels in frames.get("cam", [])]
            del frames
        assert [h.index for h, _ in received] == list(range(count))
        for header, pixels in received:
            assert pixels.shape == (*SIZE, 3) and np.all(pixels == header.index % 256)
        process.join(30)
        assert process.exitcode == 0
    finally:
        process.kill()
        ctx.destroy(linger=0)


def test_a_slot_is_not_reused_before_it_is_read(run_dir: Path):
    ring, reader = FrameRing(run_dir, "cam"), RingReader(run_dir)
    places = [ring.publish(_frame(i)) for i in range(RING_SLOTS)]
    assert all(places) and ring.publish(_frame(99)) is None  # every slot waits for the reader
    name, slot, seq = places[3]
    assert np.all(reader.take("cam", name, slot, seq, *SIZE) == 3)
    assert ring.publish(_frame(100))[1] == slot  # the slot that was read is the one free


def test_a_frame_used_in_place_keeps_its_slot_until_it_is_let_go(run_dir: Path):
    ring, reader = FrameRing(run_dir, "cam", slots=1), RingReader(run_dir)
    pixels = reader.take("cam", *ring.publish(_frame(7)), *SIZE)
    view = pixels[10:20]  # a view keeps it too
    del pixels
    assert ring.publish(_frame(8)) is None
    assert np.all(view == 7) and not view.flags.writeable
    del view
    assert ring.publish(_frame(8)) is not None


def _hold(directory: str, place: tuple[str, int, int], taken: Any, release: Any, released: Any, again: Any) -> None:
    pixels = RingReader(Path(directory)).take("cam", *place, *SIZE)
    taken.set()
    release.wait(60)
    del pixels
    released.set()
    again.wait(60)  # the next frame is in the slot
    _holding = RingReader(Path(directory)).take("cam", *place[:2], place[2] + 1, *SIZE)
    taken.set()
    time.sleep(60)  # killed while holding this one


def test_a_slot_is_taken_back_only_from_a_batcher_that_died(run_dir: Path):
    ring = FrameRing(run_dir, "cam", slots=1, reclaim_s=0.0)
    place = ring.publish(_frame(1))
    mp = multiprocessing.get_context("spawn")
    taken, release, released, again = mp.Event(), mp.Event(), mp.Event(), mp.Event()
    process = mp.Process(target=_hold, args=(str(run_dir), place, taken, release, released, again))
    process.start()
    try:
        assert taken.wait(60)
        time.sleep(0.01)
        assert ring.publish(_frame(2)) is None  # in use: not taken back, however long ago it was sent
        taken.clear()
        release.set()
        assert released.wait(30)
        assert ring.publish(_frame(2)) == (place[0], place[1], place[2] + 1)  # let go: free at once
        again.set()
        assert taken.wait(60)
        time.sleep(0.01)
        assert ring.publish(_frame(3)) is None
    finally:
        process.kill()
        process.join(30)
    assert ring.publish(_frame(3)) is not None  # its lock went with it


def test_a_claimed_slot_stays_taken_while_its_array_lives(run_dir: Path):
    ring = FrameRing(run_dir, "cam")
    claimed = [ring.claim(*SIZE) for _ in range(RING_SLOTS)]
    assert all(c is not None for c in claimed) and ring.claim(*SIZE) is None
    claimed.pop()
    assert ring.claim(*SIZE) is not None


def test_a_withdrawn_frame_frees_its_slot(run_dir: Path):
    ring = FrameRing(run_dir, "cam")
    for _ in range(3 * RING_SLOTS):
        place = ring.publish(_frame(1))
        assert place is not None
        ring.withdraw(place[1])  # as when the send found the queue full


def test_a_frame_whose_slot_was_reclaimed_is_stale(run_dir: Path):
    ring, reader = FrameRing(run_dir, "cam", slots=1, reclaim_s=0.0), RingReader(run_dir)
    name, slot, seq = ring.publish(_frame(1))
    time.sleep(0.01)
    ring.publish(_frame(2))  # the reader took too long: the slot was reclaimed
    with pytest.raises(StaleFrame, match="reused"):
        reader.take("cam", name, slot, seq, *SIZE)


def test_a_new_frame_size_makes_a_new_ring(run_dir: Path):
    ring, reader = FrameRing(run_dir, "cam"), RingReader(run_dir)
    first = ring.publish(_frame(1))
    second = ring.publish(np.zeros((20, 30, 3), np.uint8))
    assert first[0] != second[0] and [p.name for p in run_dir.glob("ring-*")] == [second[0]]
    assert reader.take("cam", *second, 20, 30).shape == (20, 30, 3)
    with pytest.raises(StaleFrame, match="gone"):
        reader.take("cam", *first, *SIZE)


def test_a_new_process_of_a_source_removes_its_old_ring(run_dir: Path):
    FrameRing(run_dir, "cam").publish(_frame(1))
    FrameRing(run_dir, "other").publish(_frame(1))
    FrameRing(run_dir, "cam")
    assert len(list(run_dir.glob("ring-*"))) == 1


@pytest.mark.parametrize(
    "ring, slot, size, reason",
    [
        ("../../etc/passwd", 0, SIZE, "not a frame ring name"),
        (None, RING_SLOTS, SIZE, "out of range"),
        (None, 0, (10, 10), "does not match"),
    ],
)
def test_impossible_headers_are_refused(run_dir: Path, ring, slot, size, reason):
    name, _, seq = FrameRing(run_dir, "cam").publish(_frame(1))
    with pytest.raises(ValueError, match=reason):
        RingReader(run_dir).take("cam", ring or name, slot, seq, *size)


def _create_ring_with_small_file_limit(directory: str, queue: multiprocessing.Queue) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        FrameRing(Path(directory), "cam").publish(np.zeros((480, 640, 3), np.uint8))
        queue.put("created")
    except OSError as exc:
        queue.put(str(exc))


def test_no_room_for_a_ring_is_a_clear_error(run_dir: Path):
    mp = multiprocessing.get_context("spawn")
    queue = mp.Queue()
    process = mp.Process(target=_create_ring_with_small_file_limit, args=(str(run_dir), queue))
    process.start()
    try:
        message = queue.get(timeout=60)
    finally:
        process.join(30)
    assert message.startswith("[Errno") and f"cannot create a frame ring in {run_dir}" in message
    assert not list(run_dir.glob("ring-*"))


def test_a_malformed_message_beside_a_frame_does_not_keep_its_slot(run_dir: Path):
    """The batcher lets go of a frame as soon as it drops the array, even when a malformed
    message came in the same call (its error must not keep the call's frames alive until
    Python's cycle collector runs: a camera once ran out of slots that way)."""
    endpoints = Endpoints.for_run(run_dir, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    ring, reader = FrameRing(run_dir, "cam"), RingReader(run_dir)
    ctx = zmq.Context()
    gc.disable()
    try:
        pull = pull_socket(ctx, endpoints.frames, accepts=FrameHeader)
        push = push_socket(ctx, endpoints.frames)
        place = ring.publish(_frame(1))
        assert place is not None
        send_frame(push, FrameHeader("cam", 1, time.time(), *SIZE, 0, *place))
        push.send(b"not a frame")
        taken, errors = 0, 0
        deadline = time.monotonic() + 10
        while (taken, errors) != (1, 1) and time.monotonic() < deadline:
            drained = drain_frames(pull, reader, 500, ["cam"])
            taken, errors = taken + len(drained.frames.get("cam", [])), errors + len(drained.errors)
            del drained
        assert (taken, errors) == (1, 1)
        assert all(ring.publish(_frame(i)) is not None for i in range(RING_SLOTS))  # the first slot is free again
    finally:
        gc.enable()
        ctx.destroy(linger=0)
