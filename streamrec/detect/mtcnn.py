"""The MTCNN cascade over a batch of frames: pyramid, P-Net, NMS, R-Net, O-Net, landmarks.

Every stage runs on all frames at once: one P-Net call per pyramid level for the whole batch,
one R-Net and one O-Net call for every candidate of every frame. Only the networks run in the
inference backend; the pyramid, the crops and the box arithmetic are vectorised NumPy that
reproduces facenet-pytorch's ``MTCNN.detect()`` (boxes and landmarks within a pixel, usually
identical to float precision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streamrec.backends import Backend, default_threads
from streamrec.detect import boxes as bx
from streamrec.detect.resample import integral_images, resample_frames, resample_regions
from streamrec.detect.types import FaceDetections

__all__ = ["MTCNN", "MTCNNConfig", "largest_frame_side", "pyramid_scales"]


@dataclass(frozen=True)
class MTCNNConfig:
    """Detector settings.

    ``min_face_size``: smallest face side in pixels the pyramid looks for; P-Net work falls about
    4x from 20 to 40, so cameras that only see near faces (door displays) should raise it.
    ``thresholds``: face probability each stage needs (P-Net, R-Net, O-Net).
    ``factor``: scale step between pyramid levels.
    """

    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709

    def __post_init__(self) -> None:
        if not 12 <= self.min_face_size < math.inf:  # written so that NaN fails too
            raise ValueError(f"min_face_size must be a finite number >= 12 px (got {self.min_face_size})")
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be three probabilities (got {self.thresholds})")
        if not 0.1 <= self.factor < 1.0:
            raise ValueError(f"factor must be in [0.1, 1) (got {self.factor})")


def pyramid_scales(height: int, width: int, config: MTCNNConfig) -> list[float]:
    """Scales at which P-Net's 12 px window covers faces from ``min_face_size`` up to the frame."""
    scale = 12.0 / config.min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= config.factor
        side *= config.factor
    return scales


def largest_frame_side(level_side: int, min_face_size: float) -> int:
    """The longest frame side whose pyramid levels are at most ``level_side`` px high and wide, when
    looking for faces from ``min_face_size`` px up: an engine that takes P-Net inputs only up to
    a size (TensorRT's profile) takes frames only up to this. The first level is the largest, the
    frame scaled by 12 / ``min_face_size`` as :meth:`MTCNN._propose` sizes it."""
    scale = 12.0 / min_face_size  # the first of pyramid_scales, computed the same way
    side = int(level_side / scale)
    while side > 0 and int(side * scale + 1) > level_side:
        side -= 1
    while int((side + 1) * scale + 1) <= level_side:
        side += 1
    return side


@dataclass
class _Candidates:
    """Boxes still in the running: float32 ``boxes (k, 4)``, ``scores (k,)``, the frame each
    belongs to, and the latest net's box regression ``offsets (k, 4)``."""

    boxes: np.ndarray
    scores: np.ndarray
    frame: np.ndarray
    offsets: np.ndarray

    def take(self, index: np.ndarray) -> _Candidates:
        return _Candidates(self.boxes[index], self.scores[index], self.frame[index], self.offsets[index])

    def __len__(self) -> int:
        return len(self.boxes)

    @staticmethod
    def concat(parts: list[_Candidates]) -> _Candidates:
        return _Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("boxes", "scores", "frame", "offsets")


def _grid_boxes(prob: np.ndarray, reg: np.ndarray, scale: float, threshold: float) -> _Candidates:
    """P-Net output cells at or above ``threshold`` as boxes in frame pixels.

    Cell ``(y, x)`` sees the 12x12 window at ``(2x, 2y)`` of the level; mapped back to the frame
    as in the reference implementation (1-based corners, floored).
    """
    f, y, x = np.nonzero(prob >= threshold)
    cells = np.stack([x, y], axis=1).astype(np.float32)
    s = np.float32(scale)
    top_left = np.floor((2 * cells + 1) / s)
    bottom_right = np.floor((2 * cells + 12) / s)
    return _Candidates(
        np.concatenate([top_left, bottom_right], axis=1),
        prob[f, y, x],
        f.astype(np.int64),
        reg[f, y, x],
    )


def _as_batch(frames: np.ndarray) -> np.ndarray:
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


class MTCNN:
    """Face detector with five landmarks, running its three nets through inference backends.

    The pyramid and the crops are made on as many threads as P-Net's backend was given (every
    core the process may use when it was given none): the engine waits while they are made."""

    def __init__(
        self, pnet: Backend, rnet: Backend, onet: Backend, config: MTCNNConfig | None = None
    ) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.config = config or MTCNNConfig()
        self.host_threads = pnet.options.threads or default_threads()

    def with_config(self, config: MTCNNConfig) -> MTCNN:
        """The same nets under other settings (another min face size, say). A subclass gets its
        own type back, so a detector that keeps its cascade on a device stays on it."""
        return type(self)(self.pnet, self.rnet, self.onet, config)

    def detect(self, frames: np.ndarray) -> list[FaceDetections]:
        """Detect faces in ``(N, H, W, 3)`` uint8 RGB frames (or one ``(H, W, 3)`` frame).

        Returns one :class:`FaceDetections` per frame, highest score first.
        """
        frames = _as_batch(frames)
        n, h, w, _ = frames.shape
        integral = integral_images(frames)
        cand = self._propose(integral, n, h, w)
        if len(cand):
            cand = self._refine(integral, cand, h, w)
        if len(cand):
            return self._output(integral, cand, n, h, w)
        return [FaceDetections.empty() for _ in range(n)]

    def refine(self, frames: np.ndarray, boxes: list[np.ndarray]) -> list[FaceDetections]:
        """Re-detect known faces only: O-Net (the last stage) on ``boxes[i]`` ``(k, 4)`` of frame
        ``i``, e.g. where tracked faces are predicted to be.

        A fraction of a full detection's cost, so a video pipeline can run the full cascade on
        some frames (to find new faces) and only this in between. Boxes O-Net rejects are
        missing from the result; the rest come back corrected, with landmarks.
        """
        frames = _as_batch(frames)
        n, h, w, _ = frames.shape
        frame = np.concatenate([np.full(len(b), i, np.int64) for i, b in enumerate(boxes)]) if boxes else np.zeros(0, np.int64)
        stacked = np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)
        if not len(stacked):
            return [FaceDetections.empty() for _ in range(n)]
        cand = _Candidates(bx.square(stacked), np.ones(len(stacked), np.float32), frame, np.zeros((len(stacked), 4), np.float32))
        return self._output(integral_images(frames), cand, n, h, w)

    def _propose(self, integral: np.ndarray, n: int, h: int, w: int) -> _Candidates:
        """Stage 1: P-Net over the pyramid, NMS per level and across levels, then regression."""
        scales = pyramid_scales(h, w, self.config)
        levels = [resample_frames(integral, int(h * scale + 1), int(w * scale + 1), self.host_threads) for scale in scales]
        per_level = []
        for scale, (prob, reg) in zip(scales, self.pnet.run_each(levels)):  # a backend may run the levels as one call
            cand = _grid_boxes(prob, reg, scale, self.config.thresholds[0])
            per_level.append(cand.take(bx.batched(bx.nms, cand.boxes, cand.scores, cand.frame, 0.5)))
        if not per_level:
            return _NONE
        cand = _Candidates.concat(per_level)
        cand = cand.take(bx.batched(bx.nms, cand.boxes, cand.scores, cand.frame, 0.7))
        cand.boxes = bx.square(bx.regress(cand.boxes, cand.offsets, inclusive=False))
        return cand

    def _classify(
        self, net: Backend, integral: np.ndarray, cand: _Candidates, size: int, threshold: float, h: int, w: int
    ) -> tuple[_Candidates, list[np.ndarray]]:
        """Crop every candidate, resize to ``size``, run ``net``; keep those above ``threshold``.

        Returns the survivors (scores and offsets from ``net``) and ``net``'s other outputs for them.
        """
        regions, valid = bx.crop_regions(cand.boxes, w, h)
        cand = cand.take(np.flatnonzero(valid))
        crops = resample_regions(integral, cand.frame, regions, size, size, self.host_threads)
        prob, offsets, *extra = net.run(crops)
        keep = np.flatnonzero(prob > threshold)
        survivors = _Candidates(cand.boxes[keep], prob[keep], cand.frame[keep], offsets[keep])
        return survivors, [e[keep] for e in extra]

    def _refine(self, integral: np.ndarray, cand: _Candidates, h: int, w: int) -> _Candidates:
        """Stage 2: R-Net on 24x24 crops, NMS, regression, squaring."""
        cand, _ = self._classify(self.rnet, integral, cand, 24, self.config.thresholds[1], h, w)
        cand = cand.take(bx.batched(bx.nms, cand.boxes, cand.scores, cand.frame, 0.7))
        cand.boxes = bx.square(bx.regress(cand.boxes, cand.offsets, inclusive=True))
        return cand

    def _output(self, integral: np.ndarray, cand: _Candidates, n: int, h: int, w: int) -> list[FaceDetections]:
        """Stage 3: O-Net on 48x48 crops, landmarks, regression, NMS by the smaller box."""
        cand, (points,) = self._classify(self.onet, integral, cand, 48, self.config.thresholds[2], h, w)
        size = cand.boxes[:, 2:4] - cand.boxes[:, 0:2] + 1
        landmarks = np.stack(
            [
                size[:, None, 0] * points[:, :5] + cand.boxes[:, None, 0] - 1,
                size[:, None, 1] * points[:, 5:] + cand.boxes[:, None, 1] - 1,
            ],
            axis=2,
        )
        boxes = bx.regress(cand.boxes, cand.offsets, inclusive=True)
        keep = bx.batched(bx.nms_min, boxes, cand.scores, cand.frame, 0.7)
        boxes, scores, frame, landmarks = boxes[keep], cand.scores[keep], cand.frame[keep], landmarks[keep]
        result = []
        for i in range(n):
            mine = np.flatnonzero(frame == i)
            mine = mine[np.argsort(-scores[mine], kind="stable")]
            result.append(
                FaceDetections(
                    boxes[mine].astype(np.float32),
                    scores[mine].astype(np.float32),
                    landmarks[mine].astype(np.float32),
                )
            )
        return result


_NONE = _Candidates(
    np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
)
