"""The render stage: turns the inference stage's overlays into annotated JPEG frames.

It pulls ``Overlay`` messages (results + RGB pixels) with a short queue, drains everything
waiting and renders only the newest frame of each source: drawing and encoding are the slow
part, and a viewer wants the present, not a backlog. Frames skipped that way are counted as
``frames_dropped``. Each rendered frame is published as a ``JpegFrame`` + JPEG bytes on a PUB
socket with the source name as topic, so a subscriber (the web stage, a recorder) can pick
cameras in ZeroMQ itself.

Counters: ``frames_rendered``, ``frames_dropped``, ``malformed_messages``. Latencies:
``annotate`` (drawing) and ``encode`` (JPEG), seconds per frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from streamrec.bus.messages import JpegFrame, Overlay
from streamrec.bus.sockets import Endpoints, pub_socket, pull_socket, receive_pending, send
from streamrec.config.model import OutputsConfig
from streamrec.pipeline.stage import Stage
from streamrec.render.annotate import annotate

__all__ = ["RenderStage", "encode_jpeg"]

POLL_MS = 200  #: how long a step waits for input; bounds how late a stop request is seen
INPUT_HWM = 4  #: overlays queued per direction; older ones are dropped by ZeroMQ
OUTPUT_HWM = 8  #: JPEG frames queued per subscriber before PUB drops for it

def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB image (OpenCV encodes BGR, hence the conversion)."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as JPEG")
    return buffer.tobytes()


class RenderStage(Stage):
    """Overlays in (PULL, bound at ``endpoints.overlays``), JPEG frames out (PUB, bound at
    ``endpoints.jpeg_pub``); statistics go to ``endpoints.stats``."""

    name = "render"

    def __init__(self, outputs: OutputsConfig, endpoints: Endpoints, log_file: Path | None = None) -> None:
        super().__init__(endpoints.stats, log_file)
        self.outputs, self.endpoints = outputs, endpoints

    def setup(self) -> None:
        assert self.ctx is not None
        self.inbox = pull_socket(self.ctx, self.endpoints.overlays, hwm=INPUT_HWM)
        self.outbox = pub_socket(self.ctx, self.endpoints.jpeg_pub, hwm=OUTPUT_HWM)
        self.log.info("rendering overlays to %s (JPEG quality %d)", self.endpoints.jpeg_pub, self.outputs.jpeg_quality)

    def step(self) -> bool:
        if self.inbox.poll(POLL_MS):
            for overlay, pixels in self._newest().values():
                self._render(overlay, pixels)
        return True

    def _newest(self) -> dict[str, tuple[Overlay, np.ndarray]]:
        """The newest overlay of each source among those waiting; the rest count as dropped."""
        messages, malformed = receive_pending(self.inbox)
        newest: dict[str, tuple[Overlay, np.ndarray]] = {}
        for _, message, pixels in messages:
            if not isinstance(message, Overlay) or not isinstance(pixels, np.ndarray):
                malformed += 1
                continue
            if message.source in newest:
                self.count("frames_dropped")
            newest[message.source] = (message, pixels)
        if malformed:
            self.count("malformed_messages", malformed)
            self.log.warning("dropped %d malformed message(s)", malformed)
        return newest

    def _render(self, overlay: Overlay, pixels: np.ndarray) -> None:
        start = time.monotonic()
        try:
            image = annotate(pixels, overlay)
        except (TypeError, ValueError) as exc:  # a face the schema let through without score, known...
            self.count("malformed_messages")
            self.log.warning("dropped an overlay of %s that cannot be drawn: %s", overlay.source, exc)
            return
        drawn = time.monotonic()
        jpeg = encode_jpeg(image, self.outputs.jpeg_quality)
        self.observe("annotate", drawn - start)
        self.observe("encode", time.monotonic() - drawn)
        labels = [face.label for face in overlay.face_overlays()]  # "..." too: a face on screen, undecided
        header = JpegFrame(overlay.source, overlay.index, overlay.ts, overlay.height, overlay.width, overlay.fps, labels)
        send(self.outbox, overlay.source, header, jpeg, block=False)
        self.count("frames_rendered")
