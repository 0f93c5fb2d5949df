"""How good a face is for recognition: size, sharpness and frontality.

Only good faces are worth an embedding: FaceNet's distances grow for small, blurred or turned
faces, which is where false names come from. The tracker embeds a track when it appears and
again when its face gets clearly better, and these scores decide what "better" means.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["FaceQuality", "face_quality"]

_PATCH = 64


@dataclass(frozen=True)
class FaceQuality:
    """``size``: shorter box side in pixels. ``sharpness``: variance of the Laplacian of the face
    resized to 64x64 grayscale (blur lowers it; 25 is a usable floor on webcam video).
    ``frontality``: 1 for a frontal face, falling towards 0 as the nose moves off the line between
    the eyes and the mouth (a turned head). ``score``: the product used to rank faces of a track."""

    size: float
    sharpness: float
    frontality: float

    @property
    def score(self) -> float:
        return self.size * min(self.sharpness, 200.0) / 200.0 * self.frontality


def _frontality(landmarks: np.ndarray) -> float:
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks
    centre = (left_eye + right_eye + mouth_left + mouth_right) / 4.0
    half_width = max(float(np.linalg.norm(right_eye - left_eye)) / 2.0, 1.0)
    offset = abs(float(nose[0] - centre[0])) / half_width
    return float(np.clip(1.0 - offset, 0.0, 1.0))


def face_quality(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> FaceQuality:
    """Quality of the face at ``box`` (x1, y1, x2, y2) with ``landmarks`` (5, 2) in ``image``
    (RGB uint8)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    size = float(min(box[2] - box[0], box[3] - box[1]))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return FaceQuality(size, 0.0, _frontality(landmarks))
    gray = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY)
    patch = cv2.resize(gray, (_PATCH, _PATCH), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(patch, cv2.CV_32F).var())
    return FaceQuality(size, sharpness, _frontality(landmarks))
