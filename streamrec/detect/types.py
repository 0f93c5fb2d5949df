"""``FaceDetections``: the faces found in one frame, as one validated value object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FaceDetections"]


@dataclass(frozen=True)
class FaceDetections:
    """Faces in one image.

    ``boxes``: ``(n, 4)`` float32 ``x1, y1, x2, y2`` in pixels of the image given to the detector.
    ``scores``: ``(n,)`` float32 O-Net face probability.
    ``landmarks``: ``(n, 5, 2)`` float32 ``x, y`` of left eye, right eye, nose, left and right mouth
    corner (left/right as seen in the image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.boxes)
        expected = {"boxes": (n, 4), "scores": (n,), "landmarks": (n, 5, 2)}
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"FaceDetections.{name}: shape {value.shape}, expected {shape}")

    @classmethod
    def empty(cls) -> FaceDetections:
        """No faces."""
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> FaceDetections:
        """Select faces by boolean mask, index array or slice; always returns a new object."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return FaceDetections(self.boxes[index], self.scores[index], self.landmarks[index])

    @property
    def areas(self) -> np.ndarray:
        """Box areas in square pixels, ``(n,)``."""
        return (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])

    def scaled(self, factor: float) -> FaceDetections:
        """Coordinates multiplied by ``factor`` (to map detections on a resized image back)."""
        return FaceDetections(
            (self.boxes * factor).astype(np.float32),
            self.scores,
            (self.landmarks * factor).astype(np.float32),
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready faces: ``box``, ``score`` and named ``landmarks``, rounded to 0.01 px."""
        names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        return [
            {
                "box": [round(float(v), 2) for v in box],
                "score": round(float(score), 5),
                "landmarks": {n: [round(float(x), 2), round(float(y), 2)] for n, (x, y) in zip(names, pts)},
            }
            for box, score, pts in zip(self.boxes, self.scores, self.landmarks)
        ]
