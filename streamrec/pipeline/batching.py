"""Which frames the inference stage works on together: a batch across cameras.

One process serves every camera, so the detector sees batches across cameras (as DeepStream's
stream muxer does): a batch leaves when it holds a new frame from every live source, when
``max_frames`` are waiting, or ``max_wait_s`` after its first frame arrived. A batch holds one
frame per source: the newest one of a camera (older ones are skipped and counted), or the next
one in order of a video file read with ``fast`` (a lossless source), whose frames are never
skipped. A lossless source with ``LOSSLESS_BACKLOG`` frames waiting sends the batch at once, and
the stage takes no more frames until it has caught up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamrec.bus.messages import FrameHeader

__all__ = ["LOSSLESS_BACKLOG", "Frame", "FrameBatcher"]

#: A frame's header and its pixels ``(H, W, 3)`` uint8 RGB, read in place in its capture's ring.
Frame = tuple[FrameHeader, np.ndarray]

#: frames of a lossless (``fast``) source held here before the stage stops taking more
LOSSLESS_BACKLOG = 8


@dataclass
class _Line:
    """One source's frames waiting for a batch, oldest first, and whether it is sending."""

    lossless: bool
    waiting: deque[Frame] = field(default_factory=deque)
    live: bool = True


class FrameBatcher:
    """Collects frames per source and says when they make a batch.

    ``lossless``: each source's name, and whether it is a file read ``fast``. ``skipped`` is
    told of every frame of a camera passed over for a newer one (with 0 when frames arrived and
    none was), so that the stage can count them per source.
    """

    def __init__(
        self,
        lossless: Mapping[str, bool],
        max_frames: int,
        max_wait_s: float,
        skipped: Callable[[str, int], None],
    ) -> None:
        self.lines = {name: _Line(flag) for name, flag in lossless.items()}
        self.max_frames, self.max_wait_s = max_frames, max_wait_s
        self.frames: dict[str, Frame] = {}  #: the batch being filled, one frame per source
        self.started = 0.0  #: when its first frame came in (monotonic seconds)
        self._skipped = skipped

    def lossless(self, name: str) -> bool:
        return self.lines[name].lossless

    @property
    def live(self) -> bool:
        """Whether any source may still send frames."""
        return any(line.live for line in self.lines.values())

    def set_live(self, name: str, live: bool) -> None:
        """Note that source ``name`` opened (``True``) or ended (``False``): a batch waits for the
        live sources only."""
        self.lines[name].live = live

    def add(self, name: str, frames: Sequence[Frame]) -> None:
        """Frames just received from source ``name``, oldest first: a camera keeps only the
        newest, a lossless source all of them."""
        line = self.lines[name]
        if line.lossless:
            line.waiting.extend(frames)
        else:
            self._skipped(name, len(line.waiting) + len(frames) - 1)
            line.waiting = deque(frames[-1:])

    def wait_s(self, now: float) -> float:
        """How long to wait for frames at ``now``: until the open batch is due, or a whole
        ``max_wait_s`` while none is open."""
        return self.max_wait_s if not self.frames else max(0.0, self.started + self.max_wait_s - now)

    def backlogged(self) -> bool:
        """Whether a lossless source has as many frames waiting as the stage may hold."""
        return any(len(line.waiting) >= LOSSLESS_BACKLOG for line in self.lines.values())

    def fill(self, now: float) -> None:
        """Move the next waiting frame of each source into the batch: a camera's replaces the
        one it already has there (skipped), a lossless source's waits for the next batch."""
        for name, line in self.lines.items():
            if line.waiting and not (line.lossless and name in self.frames):
                if not self.frames:
                    self.started = now
                if name in self.frames:
                    self._skipped(name, 1)
                self.frames[name] = line.waiting.popleft()

    def ready(self, now: float) -> bool:
        """Whether the batch should leave at ``now``."""
        if not self.frames:
            return False
        live = {name for name, line in self.lines.items() if line.live}
        waited = now - self.started >= self.max_wait_s
        full = live <= self.frames.keys() or len(self.frames) >= self.max_frames
        return full or waited or self.backlogged()

    def take(self) -> dict[str, Frame]:
        """The batch, by source in configuration order; the next one starts empty."""
        batch, self.frames = self.frames, {}
        return batch

    def leftovers(self, name: str) -> list[Frame]:
        """What source ``name`` sent that no batch has taken, oldest first (its frame in the open
        batch, then those waiting), taken out of the batcher: an ended source's last frames."""
        frames = [self.frames.pop(name)] if name in self.frames else []
        frames.extend(self.lines[name].waiting)
        self.lines[name].waiting.clear()
        return frames
