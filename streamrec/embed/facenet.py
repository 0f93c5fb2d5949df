"""FaceNet embeddings: crops in, 512-d L2-normalised vectors out, batched through a backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from streamrec.backends import Backend
from streamrec.detect.types import FaceDetections
from streamrec.embed.align import FACE_SIZE, box_crops, warp_crops

__all__ = ["ALIGNMENTS", "DEFAULT_THRESHOLD", "EMBEDDING_SIZE", "MAX_DISTANCE", "Alignment", "EmbedConfig", "FaceEmbedder"]

EMBEDDING_SIZE = 512

#: Euclidean distance below which two faces are called the same person: the threshold with the
#: best accuracy on LFW View 1 with the default :class:`EmbedConfig` (docs/accuracy.md).
DEFAULT_THRESHOLD = 1.12
#: Embeddings are L2-normalised, so the Euclidean distance between two lies between 0 and 2.
MAX_DISTANCE = 2.0

Alignment = Literal["box", "warp"]
ALIGNMENTS: tuple[Alignment, ...] = get_args(Alignment)


@dataclass(frozen=True)
class EmbedConfig:
    """How faces are cut and embedded; defaults are the best measured on LFW View 1.

    ``alignment``: ``box`` (MTCNN box + margin, how the model was trained) or ``warp`` (five-point
    similarity warp). ``margin``: box growth as a fraction of its size (``box`` only).
    ``flip``: also embed the mirrored crop and use the normalised sum of both vectors.
    """

    alignment: Alignment = "box"
    margin: float = 0.15
    flip: bool = False

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)} (got {self.alignment!r})")
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"margin must be in [0, 1] (got {self.margin})")


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-10)).astype(np.float32)


class FaceEmbedder:
    """Turns faces into embeddings with the FaceNet engine."""

    def __init__(self, backend: Backend, config: EmbedConfig | None = None) -> None:
        self.backend = backend
        self.config = config or EmbedConfig()

    def crops(self, image: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """``(k, 160, 160, 3)`` uint8 RGB crops of ``faces`` in ``image``, as configured."""
        if self.config.alignment == "warp":
            return warp_crops(image, faces.landmarks)
        return box_crops(image, faces.boxes, self.config.margin)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(k, 512)`` float32 unit vectors for ``(k, 160, 160, 3)`` uint8 crops."""
        if crops.shape[1:] != (FACE_SIZE, FACE_SIZE, 3) or crops.dtype != np.uint8:
            raise ValueError(f"crops must be (k, {FACE_SIZE}, {FACE_SIZE}, 3) uint8, got {crops.shape} {crops.dtype}")
        if not self.config.flip:
            return self.backend.run(crops)[0]
        both = self.backend.run(np.concatenate([crops, crops[:, :, ::-1]]))[0]
        return _normalise(both[: len(crops)] + both[len(crops) :])

    def embed(self, image: np.ndarray, faces: FaceDetections) -> np.ndarray:
        """``(k, 512)`` embeddings of ``faces`` found in ``image``."""
        return self.embed_images([image], [faces])

    def embed_images(self, images: Sequence[np.ndarray], faces: Sequence[FaceDetections]) -> np.ndarray:
        """``(k, 512)`` embeddings of the faces ``faces[i]`` found in ``images[i]``, every face of
        every image in order, as one batch: what a backend that crops on its device overrides."""
        crops = [self.crops(image, found) for image, found in zip(images, faces) if len(found)]
        if not crops:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        return self.embed_crops(np.concatenate(crops))
