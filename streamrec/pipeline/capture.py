"""The capture stage: one process per source, publishing its newest frames to the batcher.

A :class:`~streamrec.capture.LatestFrame` reads the source in a thread at the source's own pace,
decoding each frame into a free slot of this camera's frame ring (:mod:`streamrec.bus.ring`), or,
when the inference stage may be on another host (``[links] frame_pixels`` raw or jpeg), into
an array of its own whose pixels travel in the frame message;
this process takes the newest frame whenever it can send, and sends its header without blocking
(a frame that finds no free slot or no room in the two-message queue is dropped and counted), so
a slow batcher never makes latency grow. Status changes (opened, lost, reconnecting, ended, failed) go to the batcher on a
separate, lossless socket. With several inference workers (``Endpoints.workers``), the capture
links to each and sends to the one that serves its camera now (:mod:`~streamrec.pipeline.workers`),
telling a worker the camera moves to its newest status before any frame.

A video file read with ``fast`` is the exception: it is read no faster than the batcher takes
its frames, and none is dropped. A file that ends exits 0; a source that can never work (no such
camera) exits with ``EXIT_SOURCE_FAILED`` after reporting why, and is not restarted.
"""

from __future__ import annotations

import functools
import logging
import queue
import time
from pathlib import Path

import zmq

from streamrec.bus.messages import MAX_TEXT, FrameHeader, SourceStatus, encode_frame_pixels
from streamrec.bus.ring import FrameRing
from streamrec.bus.sockets import Endpoints, push_socket, send, send_frame
from streamrec.capture import (
    CaptureError,
    Frame,
    FrameReader,
    LatestFrame,
    ReaderOptions,
    State,
    Status,
    parse_source,
)
from streamrec.config.model import LinksConfig, SourceConfig
from streamrec.pipeline.stage import Stage
from streamrec.pipeline.workers import WorkerLinks

__all__ = ["EXIT_SOURCE_FAILED", "STATUS_LINGER_MS", "CaptureStage"]

EXIT_SOURCE_FAILED = 3
#: how long a capture that ends waits for its last statuses to reach the inference stage, which
#: binds its sockets only once its models are loaded (a camera that does not exist fails sooner)
STATUS_LINGER_MS = 30_000


class CaptureStage(Stage):
    def __init__(
        self, source: SourceConfig, endpoints: Endpoints, log_file: Path | None = None, links: LinksConfig | None = None
    ) -> None:
        super().__init__(endpoints.stats, log_file, endpoints.curve)
        self.source, self.endpoints, self.links = source, endpoints, links or LinksConfig()
        self.label = source.label
        self.name = f"capture:{self.label}"
        self.send_dropped = 0
        self.unsent: Frame | None = None  #: a ``fast`` file's frame that did not fit yet
        self.opened_before = False  #: an open was logged: later ones are told by their ``reconnecting`` line

    def setup(self) -> None:
        assert self.ctx is not None
        self.statuses: queue.Queue[Status] = queue.Queue()  # filled by the reader's thread
        options = ReaderOptions(max_fps=self.source.fps or None, fast=self.source.fast, loop=self.source.loop)
        spec = parse_source(self.source.url)
        self.ring = FrameRing(Path(self.endpoints.rings), self.label) if self.links.frame_pixels == "ring" else None
        claim = self.ring.claim if self.ring is not None else None
        self.reader = FrameReader(spec, options, on_status=self.statuses.put, frame_buffer=claim)
        self.last_status: SourceStatus | None = None  #: the newest status, for a worker the camera moves to
        self.workers: WorkerLinks | None = None
        self.status_out: zmq.Socket | None = None  #: to the worker serving the camera, when several share them
        if self.endpoints.workers:
            self.workers = WorkerLinks(self.ctx, self.label, self.endpoints.workers, STATUS_LINGER_MS)
        else:
            self.frames_out = push_socket(self.ctx, self.endpoints.frames, hwm=2, linger_ms=0)
            self.status_out = push_socket(self.ctx, self.endpoints.status, linger_ms=STATUS_LINGER_MS,
                                          monitor=zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self.link_events = self.status_out.get_monitor_socket()
        self.linked = False  #: the status link to the batcher has been made (see :meth:`_status_linked`)
        self.latest = LatestFrame(self.reader, lossless=self.source.fast).start()

    def step(self) -> bool:
        try:
            frame = self.unsent or self.latest.get(timeout=0.1)
        except CaptureError as exc:
            self._forward_statuses()
            self.log.error("%s", exc)
            self.exit_code = EXIT_SOURCE_FAILED
            return False
        self._forward_statuses()
        if frame is None:
            return not self.latest.finished
        counters = self.reader.counters
        dropped = counters.dropped + self.latest.dropped + self.send_dropped
        self.unsent = None
        linked = self._status_linked()
        sent, no_slot = self._send(frame, dropped) if linked else (False, False)
        if sent:
            self.count("frames_sent")
        elif self.source.fast:  # keep it and wait (briefly, to keep hearing SIGTERM) for room
            self.unsent = frame
            if not linked:
                self._wait_for_link(100)
            elif not no_slot:
                self.frames_out.poll(100, zmq.POLLOUT)
            else:
                time.sleep(0.005)  # for the batcher to read a slot
        else:
            self.send_dropped += 1
        self.counters["frames_dropped"] = dropped
        self.counters["reconnects"] = counters.reconnects
        self.gauges["capture_age_s"] = time.monotonic() - frame.monotonic_time
        return True

    def _send(self, frame: Frame, dropped: int) -> tuple[bool, bool]:
        """Send ``frame`` without blocking. Returns whether it was sent, and whether it found no
        free ring slot (its pixels then never reached the socket)."""
        height, width = frame.rgb.shape[:2]
        header = functools.partial(FrameHeader, self.label, frame.index, frame.wall_time, height, width, dropped,
                                   age=time.monotonic() - frame.monotonic_time, media_ts=frame.media_time)
        if self.ring is None:
            pixels = encode_frame_pixels(frame.rgb, self.links.frame_pixels, self.links.frame_quality)
            return send_frame(self.frames_out, header(pixels=self.links.frame_pixels), block=False, pixels=pixels), False
        place = self.ring.publish(frame.rgb)
        if place is None:
            return False, True
        sent = send_frame(self.frames_out, header(*place), block=False)
        if not sent:
            self.ring.withdraw(place[1])
        return sent, False

    def _wait_for_link(self, timeout_ms: int) -> None:
        if self.workers is not None:
            self.workers.wait(timeout_ms)
        else:
            self.link_events.poll(timeout_ms)

    def _worker_linked(self, workers: WorkerLinks) -> bool:
        """Whether a worker serves the camera now. When that changes, the new worker is told the
        camera's newest status (it opened) before any frame, as a batcher is at the start."""
        move = workers.update()
        if move is not None:
            self.log.log(logging.WARNING if move.old is not None else logging.INFO, "%s", move.describe(self.label))
            self.count("worker_moves", move.old is not None)
            self.gauges["worker"] = float(move.new or 0)
            if move.new is not None:
                self.frames_out, self.status_out = workers.frames[move.new], workers.status[move.new]
                if self.last_status is not None:
                    send(self.status_out, "status", self.last_status)
            else:
                self.status_out = None
        return workers.serving is not None

    def _status_linked(self) -> bool:
        """Whether the status link to the batcher has been made (with several workers: to the one
        serving the camera now, see :meth:`_worker_linked`). Frames are sent only from then
        on: statuses and frames travel on separate sockets, which the batcher binds once its
        models are loaded, and a frame that got there first could be decided about before the
        batcher heard that its source had opened. Once made, the link stays counted as made (a
        restarted batcher has the source's earlier statuses in the journal already)."""
        if self.workers is not None:
            return self._worker_linked(self.workers)
        if not self.linked and self.link_events.poll(0):
            self.linked = True
            assert self.status_out is not None  # one inference stage: always linked to it
            self.status_out.disable_monitor()
            self.link_events.close(linger=0)
        return self.linked

    def _forward_statuses(self) -> None:
        while True:
            try:
                status = self.statuses.get_nowait()
            except queue.Empty:
                return
            if status.state is State.STOPPED:  # our own shutdown: nothing to tell
                continue
            state = status.state.value
            if status.state is not State.OPENING or not self.opened_before:
                level = self.log.warning if state in ("lost", "failed") else self.log.info
                level("%s", status)
            self.opened_before |= status.state is State.OPENING
            reason = status.reason[:MAX_TEXT] if status.state is not State.RECONNECTING else f"attempt {status.attempt} in {status.delay:.1f} s"
            c = status.counters
            self.last_status = SourceStatus(self.label, state, status.time, reason, c.delivered, c.dropped, c.reconnects)
            if self.status_out is not None:  # else the worker the camera goes to gets the newest
                send(self.status_out, "status", self.last_status)

    def teardown(self) -> None:
        if hasattr(self, "latest"):  # setup() got that far
            self.latest.stop(timeout=3.0)
            self._forward_statuses()
        workers: WorkerLinks | None = getattr(self, "workers", None)
        if workers is not None:
            workers.close()
