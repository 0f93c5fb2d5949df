"""Which face in a photo is "the" face: the rule ``embed``, ``compare`` and enrollment use.

"Largest box" is wrong surprisingly often: a half-visible face at the image edge gets an MTCNN box
that runs past the border and looks large. :func:`main_face` therefore scores each face by its
box area clipped to the image, minus a penalty for its distance from the image centre (the rule
Sandberg's aligner uses), which measured best on LFW View 1 (see docs/accuracy.md).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from streamrec.detect.types import FaceDetections

__all__ = ["SELECTIONS", "Selection", "main_face", "selection_scores"]

Selection = Literal["centre", "largest", "largest_clipped"]
SELECTIONS: tuple[Selection, ...] = get_args(Selection)


def _clipped_areas(faces: FaceDetections, width: int, height: int) -> np.ndarray:
    b = faces.boxes
    w = np.clip(b[:, 2], 0, width) - np.clip(b[:, 0], 0, width)
    h = np.clip(b[:, 3], 0, height) - np.clip(b[:, 1], 0, height)
    return w * h


def selection_scores(faces: FaceDetections, width: int, height: int, rule: Selection = "centre") -> np.ndarray:
    """Score of each face under ``rule``; the highest is the main face.

    ``largest``: raw box area. ``largest_clipped``: area of the box clipped to the image.
    ``centre``: clipped area minus twice the squared distance of the box centre from the image
    centre (Sandberg's weighting).
    """
    if rule == "largest":
        return faces.areas
    clipped = _clipped_areas(faces, width, height)
    if rule == "largest_clipped":
        return clipped
    if rule == "centre":
        centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
        offset = centres - np.array([width / 2, height / 2], np.float32)
        return clipped - 2.0 * (offset**2).sum(axis=1)
    raise ValueError(f"unknown face selection {rule!r}; choose one of: {', '.join(SELECTIONS)}")


def main_face(faces: FaceDetections, width: int, height: int, rule: Selection = "centre") -> int | None:
    """Index of the main face in ``faces``, or ``None`` when there is none."""
    if not len(faces):
        return None
    return int(np.argmax(selection_scores(faces, width, height, rule)))
