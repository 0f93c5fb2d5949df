"""JPEG in and out of RGB arrays, for the frames the pipeline sends: OpenCV works in BGR."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["decode_jpeg", "encode_jpeg"]


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB image."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as JPEG")
    return buffer.tobytes()


def decode_jpeg(data: bytes | memoryview) -> np.ndarray | None:
    """The ``(height, width, 3)`` RGB image of JPEG bytes, or None if OpenCV cannot decode them.
    Check the size the JPEG's header claims first (:func:`streamrec.images.header.read_header`):
    OpenCV allocates whatever it says."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
