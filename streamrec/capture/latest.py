"""``LatestFrame``: a reader in a background thread that keeps only the newest frame.

The classic RTSP complaint is lag that grows over time: a consumer slower than the camera reads
frame after frame out of FFmpeg's buffers and the socket, each older than the last. Here a
thread reads continuously at the source's pace and overwrites one slot; a slow consumer polls
the slot and always gets the newest frame, and the frames it never saw are counted as dropped.

With ``lossless=True`` (a video file read with ``--fast``) the thread instead waits until the
slot's frame is taken before reading the next: every frame is handed out, as fast as the
consumer takes them.
"""

from __future__ import annotations

import threading
from types import TracebackType

from typing_extensions import Self

from streamrec.capture.events import Frame
from streamrec.capture.reader import FrameReader

__all__ = ["LatestFrame"]


class LatestFrame:
    """Runs ``reader`` in a daemon thread; :meth:`get` hands out each frame at most once, and only
    the newest (or, if ``lossless``, every frame in order). Use it as a context manager, or call
    :meth:`start` and :meth:`stop`."""

    def __init__(self, reader: FrameReader, lossless: bool = False) -> None:
        self.reader = reader
        self.lossless = lossless
        self._stopping = False
        self._ready = threading.Condition()
        self._frame: Frame | None = None
        self._taken = -1
        self._dropped = 0
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._run, name=f"capture {reader.spec.label}", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the reader and wait for its thread (at most ``timeout`` seconds; a read in progress
        finishes first, which takes up to the reader's read timeout)."""
        self.reader.stop()
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def dropped(self) -> int:
        """Frames the reader delivered that were overwritten before anyone took them."""
        return self._dropped

    @property
    def finished(self) -> bool:
        """The reader has stopped (ended, failed or was stopped) and every frame was taken."""
        with self._ready:
            return self._done and not self._fresh()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not handed out yet, waiting up to ``timeout`` seconds for one.

        Returns None on timeout or once the reader has finished. If the reader failed (e.g. no
        such camera), its exception is raised here, so a failure is never mistaken for silence.
        """
        with self._ready:
            self._ready.wait_for(lambda: self._fresh() or self._done, timeout)
            frame = self._frame
            if frame is not None and self._fresh():
                self._taken = frame.index
                self._ready.notify_all()  # a lossless reader waits for this
                return frame
            if self._done and self._error is not None:
                raise self._error
            return None

    def _fresh(self) -> bool:
        return self._frame is not None and self._frame.index > self._taken

    def _run(self) -> None:
        try:
            for frame in self.reader:
                with self._ready:
                    if self.lossless:
                        self._ready.wait_for(lambda: not self._fresh() or self._stopping)
                    if self._fresh():
                        self._dropped += 1
                    self._frame = frame
                    self._ready.notify_all()
        except Exception as exc:  # noqa: BLE001 - whatever ended the reader is handed to the consumer by get()
            self._error = exc
        finally:
            with self._ready:
                self._done = True
                self._ready.notify_all()
