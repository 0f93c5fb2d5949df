"""The whole MTCNN cascade as tensor operations on one device, over a batch of frames.

:class:`TorchMTCNN` is a :class:`~streamrec.detect.mtcnn.MTCNN` (same ``detect``, ``refine``
and config) whose work stays on the device from the uploaded frames to the final boxes: integral
images, the pyramid, P-Net per level for the whole batch, candidates, suppression, regression,
squaring, the 24 and 48 px crops, R-Net, O-Net and landmarks. The host sees the frames once on
the way in and the surviving boxes once on the way out; on CUDA the only synchronisations are
the data-dependent sizes (how many candidates a level or a stage leaves).

Every step repeats the host cascade's float32 operations in the same order (see
:mod:`.resample` and :mod:`.nms` for the two that needed care), so the results equal the host
cascade's run on the same net outputs; what differs is only how PyTorch and ONNX Runtime round
inside the nets (about 1e-6), which can tip a borderline candidate across a threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from streamrec.backends.torch.nets import TorchNet
from streamrec.backends.torch.nms import nms_grid, nms_matrix
from streamrec.backends.torch.resample import (
    Windows,
    frame_windows,
    integral_images,
    resample_frames,
    resample_regions,
)
from streamrec.detect.mtcnn import MTCNN, MTCNNConfig, pyramid_scales
from streamrec.detect.types import FaceDetections

__all__ = ["Frames", "TorchMTCNN", "frames_tensor"]

#: A batch of frames: ``(N, H, W, 3)`` uint8 RGB as a NumPy array or a tensor (on any device).
Frames = np.ndarray | torch.Tensor


def frames_tensor(frames: Frames, device: torch.device) -> torch.Tensor:
    """``frames`` as an ``(N, H, W, 3)`` uint8 tensor on ``device`` (one ``(H, W, 3)`` frame
    becomes a batch of one); ``ValueError`` for anything else."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[3] != 3 or tensor.dtype != torch.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8 RGB, got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.to(device)


@dataclass
class _Candidates:
    """Boxes still in the running, on the device: ``boxes (k, 4)`` float32, ``scores (k,)``,
    ``frame (k,)`` int64 and the latest net's regression ``offsets (k, 4)``."""

    boxes: torch.Tensor
    scores: torch.Tensor
    frame: torch.Tensor
    offsets: torch.Tensor

    def take(self, index: torch.Tensor) -> _Candidates:
        return _Candidates(self.boxes[index], self.scores[index], self.frame[index], self.offsets[index])

    def __len__(self) -> int:
        return len(self.boxes)

    @staticmethod
    def empty(device: torch.device) -> _Candidates:
        frame = torch.zeros(0, dtype=torch.int64, device=device)
        return _Candidates(torch.zeros((0, 4), device=device), torch.zeros(0, device=device), frame, torch.zeros((0, 4), device=device))

    @staticmethod
    def concat(parts: list[_Candidates]) -> _Candidates:
        return _Candidates(*(torch.cat([getattr(p, f) for p in parts]) for f in ("boxes", "scores", "frame", "offsets")))


@dataclass(frozen=True)
class _Level:
    """One pyramid level of one frame size: its scale (as a float32 device scalar, the divisor
    of the grid mapping) and its resampling windows."""

    scale: torch.Tensor
    windows: Windows


def _regress(boxes: torch.Tensor, offsets: torch.Tensor, inclusive: bool) -> torch.Tensor:
    """:func:`streamrec.detect.boxes.regress` on the device."""
    extra = 1.0 if inclusive else 0.0
    size = (boxes[:, 2:4] - boxes[:, 0:2] + extra).repeat(1, 2)
    return boxes + offsets * size


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """:func:`streamrec.detect.boxes.square` on the device."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _crop_regions(boxes: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`streamrec.detect.boxes.crop_regions` on the device: ``y0, x0, y1, x1`` windows of
    the boxes whose window is non-empty, and the mask of those boxes."""
    b = torch.trunc(boxes).to(torch.int64)
    x0 = b[:, 0].clamp_min(1) - 1
    y0 = b[:, 1].clamp_min(1) - 1
    x1 = b[:, 2].clamp_max(width)
    y1 = b[:, 3].clamp_max(height)
    valid = (x1 > x0) & (y1 > y0)
    return torch.stack([y0, x0, y1, x1], dim=1)[valid], valid


def _span(height: int, width: int, config: MTCNNConfig) -> int:
    """A power of two above every coordinate a grid box of this frame size can have: the
    bottom-right corner of the last cell of the coarsest level is below ``side + 13 / scale``."""
    scales = pyramid_scales(height, width, config)
    bound = max(height, width) + 13.0 / min(scales) + 2 if scales else 1
    return 1 << int(np.ceil(np.log2(bound)))


class TorchMTCNN(MTCNN):
    """The MTCNN detector running the whole cascade on the device its nets are on.

    ``pnet``, ``rnet`` and ``onet`` are :class:`~streamrec.backends.torch.nets.TorchNet` on one
    device (they also serve as plain backends, so a host-side :class:`MTCNN` can use them).
    """

    def __init__(self, pnet: TorchNet, rnet: TorchNet, onet: TorchNet, config: MTCNNConfig | None = None) -> None:
        super().__init__(pnet, rnet, onet, config)
        if not all(isinstance(net, TorchNet) for net in (pnet, rnet, onet)):
            kinds = ", ".join(net.kind for net in (pnet, rnet, onet))
            raise TypeError(f"the cascade on the device needs the torch backend's nets (got {kinds})")
        if not pnet.device == rnet.device == onet.device:
            raise ValueError(f"the three nets must share one device (got {pnet.device}, {rnet.device}, {onet.device})")
        self.nets = (pnet, rnet, onet)
        self.device = pnet.device
        self._levels: dict[tuple[int, int], tuple[list[_Level], int]] = {}

    def detect(self, frames: Frames | Sequence[np.ndarray]) -> list[FaceDetections]:
        """Detect faces in ``(N, H, W, 3)`` uint8 RGB frames (array or tensor, or one
        ``(H, W, 3)`` frame), or in a list of frames of different sizes (each size one batch).

        Returns one :class:`FaceDetections` per frame, highest score first.
        """
        if isinstance(frames, (list, tuple)):
            return self._detect_sizes(frames)
        assert isinstance(frames, (np.ndarray, torch.Tensor))
        batch = frames_tensor(frames, self.device)
        n, h, w, _ = batch.shape
        with torch.inference_mode():
            integral = integral_images(batch)
            cand = self._stage1(integral, n, h, w)
            if len(cand):
                cand = self._stage2(integral, cand, h, w)
            if len(cand):
                return self._stage3(integral, cand, n, h, w)
        return [FaceDetections.empty() for _ in range(n)]

    def _detect_sizes(self, frames: Sequence[np.ndarray]) -> list[FaceDetections]:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault(frame.shape, []).append(i)
        result: list[FaceDetections] = [FaceDetections.empty()] * len(frames)
        for members in groups.values():
            for i, faces in zip(members, self.detect(np.stack([frames[i] for i in members]))):
                result[i] = faces
        return result

    def refine(self, frames: Frames, boxes: list[np.ndarray]) -> list[FaceDetections]:
        """Re-detect known faces only: O-Net on ``boxes[i]`` ``(k, 4)`` of frame ``i``; boxes it
        rejects are missing from the result, the rest come back corrected, with landmarks."""
        batch = frames_tensor(frames, self.device)
        n, h, w, _ = batch.shape
        if len(boxes) > n:
            raise ValueError(f"boxes for {len(boxes)} frames, but {n} frame(s) given")
        stacked = np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)
        if not len(stacked):
            return [FaceDetections.empty() for _ in range(n)]
        frame = np.concatenate([np.full(len(b), i, np.int64) for i, b in enumerate(boxes)])
        with torch.inference_mode():
            start = torch.from_numpy(stacked).to(self.device)
            cand = _Candidates(
                _square(start),
                torch.ones(len(start), device=self.device),
                torch.from_numpy(frame).to(self.device),
                torch.zeros_like(start),
            )
            return self._stage3(integral_images(batch), cand, n, h, w)

    def _pyramid(self, h: int, w: int) -> tuple[list[_Level], int]:
        """The levels of ``h x w`` frames and their box span, prepared once per frame size."""
        if (h, w) not in self._levels:
            levels = [
                _Level(
                    torch.tensor(scale, dtype=torch.float32, device=self.device),
                    frame_windows(h, w, int(h * scale + 1), int(w * scale + 1), self.device),
                )
                for scale in pyramid_scales(h, w, self.config)
            ]
            self._levels[(h, w)] = (levels, _span(h, w, self.config))
        return self._levels[(h, w)]

    def _grid_boxes(self, level: _Level, integral: torch.Tensor) -> _Candidates:
        """P-Net over one level for the whole batch; cells at or above the threshold as boxes in
        frame pixels (see :func:`streamrec.detect.mtcnn._grid_boxes`)."""
        prob, reg = self.nets[0].forward(resample_frames(integral, level.windows))
        f, y, x = torch.nonzero(prob >= self.config.thresholds[0], as_tuple=True)
        cells = torch.stack([x, y], dim=1).to(torch.float32)
        top_left = torch.floor((2 * cells + 1) / level.scale)
        bottom_right = torch.floor((2 * cells + 12) / level.scale)
        boxes = torch.cat([top_left, bottom_right], dim=1)
        return _Candidates(boxes, prob[f, y, x], f, reg[f, y, x])

    def _stage1(self, integral: torch.Tensor, n: int, h: int, w: int) -> _Candidates:
        """P-Net over the pyramid, suppression per level and across levels, then regression."""
        levels, span = self._pyramid(h, w)
        if not levels:
            return _Candidates.empty(self.device)
        parts = [self._grid_boxes(level, integral) for level in levels]
        cand = _Candidates.concat(parts)
        level = torch.cat([torch.full((len(p),), i, dtype=torch.int64, device=self.device) for i, p in enumerate(parts)])
        # Per level and frame at IoU 0.5 in one call, ordered level by level as the host does.
        cand = cand.take(nms_grid(cand.boxes, cand.scores, level * n + cand.frame, 0.5, span))
        cand = cand.take(nms_grid(cand.boxes, cand.scores, cand.frame, 0.7, span))
        cand.boxes = _square(_regress(cand.boxes, cand.offsets, inclusive=False))
        return cand

    def _net_stage(
        self, net: TorchNet, integral: torch.Tensor, cand: _Candidates, size: int, threshold: float, h: int, w: int
    ) -> tuple[_Candidates, list[torch.Tensor]]:
        """Crop every candidate, resample to ``size``, run ``net``; keep those above ``threshold``."""
        regions, valid = _crop_regions(cand.boxes, w, h)
        # a mask indexes by finding its true entries, a wait for the device each time: once here
        cand = cand.take(torch.nonzero(valid).flatten())
        crops = resample_regions(integral, cand.frame, regions, size, size)
        prob, offsets, *extra = net.forward(crops)
        keep = torch.nonzero(prob > threshold).flatten()
        survivors = _Candidates(cand.boxes[keep], prob[keep], cand.frame[keep], offsets[keep])
        return survivors, [e[keep] for e in extra]

    def _stage2(self, integral: torch.Tensor, cand: _Candidates, h: int, w: int) -> _Candidates:
        """R-Net on 24x24 crops, suppression, regression, squaring."""
        cand, _ = self._net_stage(self.nets[1], integral, cand, 24, self.config.thresholds[1], h, w)
        cand = cand.take(nms_matrix(cand.boxes, cand.scores, cand.frame, 0.7, by_min=False))
        cand.boxes = _square(_regress(cand.boxes, cand.offsets, inclusive=True))
        return cand

    def _stage3(self, integral: torch.Tensor, cand: _Candidates, n: int, h: int, w: int) -> list[FaceDetections]:
        """O-Net on 48x48 crops, landmarks, regression, suppression by the smaller box; then the
        one copy to the host, split by frame."""
        cand, (points,) = self._net_stage(self.nets[2], integral, cand, 48, self.config.thresholds[2], h, w)
        size = cand.boxes[:, 2:4] - cand.boxes[:, 0:2] + 1
        landmarks = torch.stack(
            [
                size[:, None, 0] * points[:, :5] + cand.boxes[:, None, 0] - 1,
                size[:, None, 1] * points[:, 5:] + cand.boxes[:, None, 1] - 1,
            ],
            dim=2,
        )
        boxes = _regress(cand.boxes, cand.offsets, inclusive=True)
        keep = nms_matrix(boxes, cand.scores, cand.frame, 0.7, by_min=True)
        keep = keep[torch.sort(cand.scores[keep], descending=True, stable=True).indices]
        keep = keep[torch.sort(cand.frame[keep], stable=True).indices]
        counts = torch.bincount(cand.frame[keep], minlength=n).tolist()
        bounds = np.cumsum(counts)[:-1]
        host = [t[keep].cpu().numpy() for t in (boxes, cand.scores, landmarks)]
        return [FaceDetections(*parts) for parts in zip(*(np.split(t, bounds) for t in host))]
