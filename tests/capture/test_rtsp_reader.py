"""The reader against a real RTSP server on loopback: live reading, then the faults cameras have.

Each test prints what it measured (run with ``-s`` to see it): time to first frame, how long a
loss took to notice, how long a reconnect took.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from streamrec.capture import Frame, FrameReader, LatestFrame, ReaderOptions, State, Status, parse_source
from tests.capture.recorder import StatusLog
from tests.support.rtsp import RtspServer
from tests.support.wait import wait_until

#: Short timeouts so that faults show within seconds; the defaults are for real networks.
QUICK = ReaderOptions(
    open_timeout=2.0, read_timeout=1.0, stall_timeout=1.5, backoff_base=0.2, backoff_max=1.0
)


def _udp_sockets() -> int:
    """UDP sockets this process holds (from Linux's /proc): RTP over UDP opens two."""
    tables = [Path("/proc/net/udp"), Path("/proc/net/udp6")]
    inodes = {
        row.split()[9] for table in tables if table.exists() for row in table.read_text().splitlines()[1:]
    }
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd closed since it was listed
            held += os.readlink(f"/proc/self/fd/{fd}").removeprefix("socket:[").rstrip("]") in inodes
    return held


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_reads_the_live_stream(shared_rtsp_server: RtspServer, transport: str) -> None:
    log = StatusLog()
    source = parse_source(f"{shared_rtsp_server.url}?transport={transport}")
    udp_before = _udp_sockets()
    started = time.time()
    stream = iter(FrameReader(source, on_status=log))
    assert isinstance(stream, Generator)  # closed below, which closes the stream
    frames = list(itertools.islice(stream, 60))
    udp_opened = _udp_sockets() - udp_before  # while the stream is still open
    stream.close()
    assert udp_opened == (0 if transport == "tcp" else 2)  # RTP and RTCP ports
    assert os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS") is None  # set only during the open
    print(f"\n{transport}: first frame {frames[0].wall_time - started:.2f} s after the reader started")
    assert frames[0].wall_time - started < 10
    assert all(frame.rgb.shape == (360, 640, 3) and frame.rgb.dtype == np.uint8 for frame in frames)
    assert [frame.index for frame in frames] == list(range(60))
    assert np.diff([frame.wall_time for frame in frames]).min() >= 0
    stream_times = [_stream_time(frame) for frame in frames]
    assert np.diff(stream_times).min() >= 0 and stream_times[-1] > stream_times[0] + 0.5
    assert frames[0].source == shared_rtsp_server.url
    assert log.of(State.OPEN)[0].reason.startswith("640x360")
    assert frames[-1].rgb.std() > 10  # real picture content, not a grey decoder placeholder


def _stream_time(frame: Frame | None) -> float:
    """A frame's position in the stream (an RTSP stream has one)."""
    assert frame is not None and frame.stream_time is not None
    return frame.stream_time


def _lag(frame: Frame | None) -> float:
    """How far behind the stream a frame was received."""
    assert frame is not None
    return frame.wall_time - _stream_time(frame)


def _live(latest: LatestFrame, timeout_s: float = 20.0) -> None:
    """Return once frames come at the camera's pace: past the burst of frames FFmpeg buffered
    while opening, which come faster than their stream time, so their lag (wall time less
    stream time) shrinks. At the camera's pace it holds still: within 50 ms over 0.3 s."""
    deadline = time.monotonic() + timeout_s
    start = latest.get(timeout=10)
    assert start is not None, "no first frame"
    while True:
        frame = latest.get(timeout=5)
        assert frame is not None and time.monotonic() < deadline, "the stream never reached the camera's pace"
        if _stream_time(frame) - _stream_time(start) >= 0.3:
            if _lag(start) - _lag(frame) < 0.05:
                return
            start = frame


def test_slow_consumer_of_a_live_stream_sees_no_growing_lag(shared_rtsp_server: RtspServer) -> None:
    reader = FrameReader(shared_rtsp_server.url)
    with LatestFrame(reader) as latest:
        _live(latest)
        frames: list[Frame] = []
        for _ in range(10):
            frame = latest.get(timeout=5)
            assert frame is not None
            frames.append(frame)
            time.sleep(0.3)  # a consumer at 3 fps, a tenth of the camera's rate
    lags = [_lag(frame) for frame in frames]
    # Reading the queue instead would fall 0.27 s further behind with every frame taken.
    assert max(lags) - min(lags) < 0.3
    indices = [frame.index for frame in frames]
    assert min(np.diff(indices)) >= 4
    assert latest.dropped >= indices[-1] - indices[0] - len(indices)


@dataclass
class Outage:
    """What a reader reported while its server was broken and then repaired."""

    log: StatusLog
    reader: FrameReader
    lost: Status  # the loss
    retry: Status  # the second reconnect attempt, made while the server was still broken
    noticed: float  # seconds from the fault to the loss
    back: float  # seconds from the repair to the next delivered frame
    frame: Frame | None  # the newest frame after the repair


def _outage(url: str, fault: Callable[[], object], repair: Callable[[], object]) -> Outage:
    log = StatusLog()
    reader = FrameReader(url, QUICK, on_status=log)
    with LatestFrame(reader) as latest:
        assert latest.get(timeout=10) is not None
        broken = time.time()
        fault()
        lost = log.wait_for(State.LOST, after=broken, timeout=10)
        retry = log.wait_for(State.RECONNECTING, after=lost.time, count=2, timeout=10)
        repaired = time.time()
        repair()
        log.wait_for(State.OPEN, after=repaired, timeout=10)
        wait_until(lambda: reader.counters.delivered > lost.counters.delivered, 10, "frames after the repair")
        back = time.time() - repaired
        frame = latest.get(timeout=5)
    print(f"\nloss noticed after {lost.time - broken:.2f} s; frames again {back:.2f} s after the repair")
    return Outage(log, reader, lost, retry, lost.time - broken, back, frame)


def test_killed_server_is_reconnected_when_it_is_back(rtsp_server: RtspServer) -> None:
    outage = _outage(rtsp_server.url, rtsp_server.kill, rtsp_server.restart)
    assert "connection lost" in outage.lost.reason
    assert "cannot open" in outage.retry.reason and "refused" in outage.retry.reason
    assert outage.frame is not None and outage.frame.index >= outage.lost.counters.delivered
    assert outage.reader.counters.reconnects >= 2
    assert outage.log.statuses[-1].state is State.STOPPED


def test_frozen_server_is_caught_by_the_watchdog(rtsp_server: RtspServer) -> None:
    outage = _outage(rtsp_server.url, rtsp_server.freeze, rtsp_server.thaw)
    assert "no fresh frame" in outage.lost.reason
    assert outage.noticed <= QUICK.stall_timeout + QUICK.read_timeout + 1.5
    assert "no answer within 2.0 s" in outage.retry.reason  # opening a hung server times out
    assert outage.frame is not None and outage.frame.index >= outage.lost.counters.delivered


def test_stop_is_prompt_while_a_read_hangs(rtsp_server: RtspServer) -> None:
    log = StatusLog()
    latest = LatestFrame(FrameReader(rtsp_server.url, QUICK, on_status=log)).start()
    assert latest.get(timeout=10) is not None
    rtsp_server.freeze()
    # the frames sent before the freeze are taken; then the reader waits inside OpenCV for one
    # that does not come (at 30 fps, 0.5 s without a frame is 15 missing)
    while latest.get(timeout=0.5) is not None:
        pass
    started = time.monotonic()
    latest.stop(timeout=10)
    took = time.monotonic() - started
    print(f"\nstop took {took:.2f} s with a read hanging (read timeout {QUICK.read_timeout} s)")
    # the hanging read ends within its timeout; a reopen of the frozen server would add the open
    # timeout, and a read without a timeout would hang for OpenCV's 30 s
    assert took < QUICK.read_timeout + QUICK.open_timeout
    assert log.statuses[-1].state is State.STOPPED


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dead_url_is_retried_with_growing_delays_until_stopped() -> None:
    log = StatusLog()
    options = ReaderOptions(backoff_base=0.05, backoff_max=10.0)
    reader = FrameReader(f"rtsp://user:pw@127.0.0.1:{_closed_port()}/cam", options, on_status=log)
    with LatestFrame(reader) as latest:
        log.wait_for(State.RECONNECTING, count=5, timeout=10)
        assert latest.get(timeout=0) is None
    retries = log.of(State.RECONNECTING)
    assert [status.attempt for status in retries[:5]] == [1, 2, 3, 4, 5]
    delays = [status.delay for status in retries]
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))
    assert all("cannot open" in status.reason for status in retries)
    assert all("pw" not in str(status) for status in log.statuses)
    assert log.statuses[-1].state is State.STOPPED
    assert reader.counters.reconnects == len(retries) and reader.counters.delivered == 0


def test_stop_cuts_a_long_backoff_short() -> None:
    log = StatusLog()
    reader = FrameReader(
        f"rtsp://127.0.0.1:{_closed_port()}/cam", ReaderOptions(backoff_base=20.0), on_status=log
    )
    latest = LatestFrame(reader).start()
    retry = log.wait_for(State.RECONNECTING, timeout=10)
    started = time.monotonic()
    latest.stop(timeout=10)
    assert retry.delay >= 15 and time.monotonic() - started < retry.delay / 3  # still cut short, by seconds
    assert log.statuses[-1].state is State.STOPPED
