"""Cut face crops for FaceNet: MTCNN box plus margin, or a five-landmark similarity warp.

FaceNet 20180408-102900 was trained on MTCNN boxes widened by a margin and resized to 160x160
(Sandberg's ``align_dataset_mtcnn.py``), so the box crop is the native input. The warp rotates
and scales each face so its landmarks land on :data:`TEMPLATE_160`, the median landmark positions
of box crops, giving the same framing with the eyes levelled.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FACE_SIZE", "TEMPLATE_160", "box_crops", "margin_regions", "warp_crops"]

FACE_SIZE = 160

#: Where the five landmarks sit in a 160x160 box crop with the default margin (0.15): the
#: median over the 1,549 LFW View 1 images, made left-right symmetric about the crop centre.
TEMPLATE_160 = np.array(
    [[48.0, 64.3], [112.0, 64.3], [80.0, 92.1], [51.2, 115.9], [108.8, 115.9]], np.float32
)


def margin_regions(boxes: np.ndarray, margin: float, width: int, height: int) -> np.ndarray:
    """Integer ``x0, y0, x1, y1`` windows: each box grown by ``margin`` x its size (half on
    each side), clipped to the image. ``boxes`` is ``(k, 4)``."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    grown = np.stack(
        [
            boxes[:, 0] - margin * w / 2,
            boxes[:, 1] - margin * h / 2,
            boxes[:, 2] + margin * w / 2,
            boxes[:, 3] + margin * h / 2,
        ],
        axis=1,
    )
    regions = np.floor(grown).astype(np.int64)
    regions[:, [0, 2]] = np.clip(regions[:, [0, 2]], 0, width)
    regions[:, [1, 3]] = np.clip(regions[:, [1, 3]], 0, height)
    regions[:, 2] = np.maximum(regions[:, 2], regions[:, 0] + 1)
    regions[:, 3] = np.maximum(regions[:, 3], regions[:, 1] + 1)
    return regions


def _resize(patch: np.ndarray, size: int) -> np.ndarray:
    shrinking = patch.shape[0] > size or patch.shape[1] > size
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def box_crops(image: np.ndarray, boxes: np.ndarray, margin: float, size: int = FACE_SIZE) -> np.ndarray:
    """``(k, size, size, 3)`` uint8 crops of ``image`` (RGB) around ``boxes`` widened by ``margin``."""
    regions = margin_regions(boxes, margin, image.shape[1], image.shape[0])
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(regions):
        out[i] = _resize(image[y0:y1, x0:x1], size)
    return out


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) mapping src to dst
    (Umeyama 1991), as a 2x3 matrix."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def warp_crops(image: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """``(k, size, size, 3)`` uint8 faces warped so their landmarks ``(k, 5, 2)`` match the
    template (scaled to ``size``); pixels outside the image are replicated from its border."""
    template = TEMPLATE_160 * (size / FACE_SIZE)
    out = np.empty((len(landmarks), size, size, 3), np.uint8)
    for i, points in enumerate(landmarks):
        matrix = _similarity(points.astype(np.float64), template.astype(np.float64))
        out[i] = cv2.warpAffine(
            image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return out
