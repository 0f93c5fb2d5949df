"""The render stage: turns the inference stage's overlays into annotated JPEG frames.

It pulls ``Overlay`` messages (results + RGB pixels) with a short queue, drains everything
waiting and renders only the newest frame of each source: drawing and encoding are the slow
part, and a viewer wants the present, not a backlog. Frames skipped that way are counted as
``frames_dropped``; overlays of a source that is not configured, as ``frames_unknown_source``.
Each rendered frame is published as a ``JpegFrame`` + JPEG bytes with the source name as topic,
on the public address (so a subscriber, such as a recorder, can pick cameras in ZeroMQ itself)
and on the web stage's feed.

Counters: ``frames_rendered``, ``frames_dropped``, ``frames_unknown_source``,
``malformed_overlays`` (all of them also in ``malformed_messages``), and its publishers' figures
(``frames``: public, ``frames_feed``: to the web stage). Latencies: ``annotate`` (drawing) and
``encode`` (JPEG), seconds per frame.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamrec.bus.messages import JpegFrame, Overlay
from streamrec.bus.sockets import Endpoints, pull_socket, receive_pending
from streamrec.config.model import OutputsConfig
from streamrec.images.jpeg import encode_jpeg
from streamrec.pipeline.stage import Stage
from streamrec.render.annotate import annotate

__all__ = ["RenderStage", "encode_jpeg"]

POLL_MS = 200  #: how long a step waits for input; bounds how late a stop request is seen
INPUT_HWM = 4  #: overlays queued per direction; older ones are dropped by ZeroMQ
OUTPUT_HWM = 4  #: JPEG frames queued per subscriber before publishing drops for it (a viewer wants the newest)

class RenderStage(Stage):
    """Overlays in (PULL, bound at ``endpoints.overlays``), JPEG frames out (bound at
    ``endpoints.jpeg_pub`` and ``endpoints.jpeg_feed``); statistics go to ``endpoints.stats``.
    ``sources``: the configured camera names, the only ones it renders and publishes."""

    name = "render"

    def __init__(
        self, outputs: OutputsConfig, endpoints: Endpoints, log_file: Path | None = None, sources: Sequence[str] = ()
    ) -> None:
        super().__init__(endpoints.stats, log_file, endpoints.curve)
        self.outputs, self.endpoints = outputs, endpoints
        self.sources = frozenset(sources)

    def setup(self) -> None:
        assert self.ctx is not None
        self.inbox = pull_socket(self.ctx, self.endpoints.overlays, hwm=INPUT_HWM, accepts=Overlay)
        self.outboxes = [
            self.publisher("frames", self.endpoints.jpeg_pub, self.sources, OUTPUT_HWM),
            self.publisher("frames_feed", self.endpoints.jpeg_feed, self.sources, OUTPUT_HWM),
        ]
        self.log.info("rendering overlays to %s (JPEG quality %d)", self.endpoints.jpeg_pub, self.outputs.jpeg_quality)

    def step(self) -> bool:
        if self.inbox.poll(POLL_MS):
            for overlay, pixels in self._newest().values():
                self._render(overlay, pixels)
        return True

    def _newest(self) -> dict[str, tuple[Overlay, np.ndarray]]:
        """The newest overlay of each configured source among those waiting; the rest count as
        dropped."""
        messages, errors = receive_pending(self.inbox, expect=Overlay)
        self.refuse("overlays", errors)
        newest: dict[str, tuple[Overlay, np.ndarray]] = {}
        for _, message, pixels in messages:
            assert isinstance(message, Overlay) and isinstance(pixels, np.ndarray)  # what receive gives for overlays
            if message.source not in self.sources:
                self.count("frames_unknown_source")
                continue
            if message.source in newest:
                self.count("frames_dropped")
            newest[message.source] = (message, pixels)
        return newest

    def _render(self, overlay: Overlay, pixels: np.ndarray) -> None:
        start = time.monotonic()
        image = annotate(pixels, overlay)
        drawn = time.monotonic()
        jpeg = encode_jpeg(image, self.outputs.jpeg_quality)
        self.observe("annotate", drawn - start)
        self.observe("encode", time.monotonic() - drawn)
        labels = tuple(face.label for face in overlay.faces)  # "..." too: a face on screen, undecided
        header = JpegFrame(overlay.source, overlay.index, overlay.ts, overlay.height, overlay.width, overlay.fps, labels)
        for outbox in self.outboxes:
            outbox.send(overlay.source, header, jpeg)
        self.count("frames_rendered")
