"""FaceNet embeddings on the device, from frames and their detections: the crops are cut where
the frames are (see :mod:`.crops`) and go straight into the network, never through the host.

:class:`TorchFaceEmbedder` is a :class:`~streamrec.embed.facenet.FaceEmbedder` (same ``crops``,
``embed_crops``, ``embed`` and config) and adds :meth:`TorchFaceEmbedder.embed_frames`, which
embeds the faces of a whole batch of frames in one network call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from streamrec.backends.torch.crops import box_crops, warp_crops
from streamrec.backends.torch.mtcnn import Frames, frames_tensor
from streamrec.backends.torch.nets import TorchNet
from streamrec.detect.types import FaceDetections
from streamrec.embed.align import FACE_SIZE
from streamrec.embed.facenet import EMBEDDING_SIZE, EmbedConfig, FaceEmbedder

__all__ = ["TorchFaceEmbedder"]


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-10)


class TorchFaceEmbedder(FaceEmbedder):
    """FaceNet on the device its :class:`~streamrec.backends.torch.nets.TorchNet` is on."""

    def __init__(self, backend: TorchNet, config: EmbedConfig | None = None) -> None:
        super().__init__(backend, config)
        self.net = backend
        self.device = backend.device

    def device_crops(self, frames: torch.Tensor, faces: Sequence[FaceDetections]) -> torch.Tensor:
        """``(k, 160, 160, 3)`` uint8 crops on the device of every face in ``faces[i]`` of
        ``frames[i]`` (an ``(N, H, W, 3)`` uint8 tensor on the device), frame by frame."""
        if len(faces) != len(frames):
            raise ValueError(f"{len(faces)} lists of faces for {len(frames)} frames")
        frame = np.concatenate([np.full(len(f), i, np.int64) for i, f in enumerate(faces)])
        if self.config.alignment == "warp":
            return warp_crops(frames, frame, np.concatenate([f.landmarks for f in faces]))
        return box_crops(frames, frame, np.concatenate([f.boxes for f in faces]), self.config.margin)

    def embed_tensor(self, crops: torch.Tensor) -> torch.Tensor:
        """``(k, 512)`` float32 unit vectors on the device for ``(k, 160, 160, 3)`` uint8 crops
        on the device (with the mirrored crops added when the config asks for ``flip``)."""
        if not len(crops):
            return torch.zeros((0, EMBEDDING_SIZE), device=self.device)
        if not self.config.flip:
            vectors = self.net.forward(crops)[0]
        else:
            both = self.net.forward(torch.cat([crops, crops.flip(2)]))[0]
            vectors = both[: len(crops)] + both[len(crops) :]
        # Reduced precision ends in fp16/bf16 rounding: bring the vectors back to unit length.
        return _unit(vectors) if self.config.flip or self.net.autocast is not None else vectors

    def crops(self, image: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """``(k, 160, 160, 3)`` uint8 RGB crops of ``faces`` in ``image``, cut on the device."""
        with torch.inference_mode():
            return self.device_crops(frames_tensor(image, self.device), [faces]).cpu().numpy()

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(k, 512)`` float32 unit vectors for ``(k, 160, 160, 3)`` uint8 crops."""
        if crops.shape[1:] != (FACE_SIZE, FACE_SIZE, 3) or crops.dtype != np.uint8:
            raise ValueError(f"crops must be (k, {FACE_SIZE}, {FACE_SIZE}, 3) uint8, got {crops.shape} {crops.dtype}")
        with torch.inference_mode():
            return self.embed_tensor(torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)).cpu().numpy()

    def embed(self, image: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """``(k, 512)`` embeddings of ``faces`` found in ``image``."""
        return self.embed_frames(image, [faces])[0]

    def embed_frames(self, frames: Frames, faces: Sequence[FaceDetections]) -> list[np.ndarray]:
        """The embeddings of ``faces[i]`` in frame ``i`` of ``frames`` (``(N, H, W, 3)`` uint8, a
        NumPy array or a tensor, already on the device or not): one ``(k_i, 512)`` array per
        frame. Crops are cut on the device and every face goes through one network call."""
        counts = [len(f) for f in faces]
        if not sum(counts):
            return [np.zeros((0, EMBEDDING_SIZE), np.float32) for _ in counts]
        with torch.inference_mode():
            batch = frames_tensor(frames, self.device)
            vectors = self.embed_tensor(self.device_crops(batch, faces)).cpu().numpy()
        return np.split(vectors, np.cumsum(counts)[:-1])
