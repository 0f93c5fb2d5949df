"""Comparing two backends: their detections on the same frame, their LFW View 1 accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.backends.cpu import require_bf16
from streamrec.detect.types import FaceDetections

#: LFW View 1 accuracy of one engine may differ between the backends by this much (2 of 1,000 pairs)
LFW_TOLERANCE = 0.002


def _bf16_missing() -> str | None:
    """Why this CPU cannot compute in bf16 (the backends' own refusal), or ``None`` when it can."""
    try:
        require_bf16()
    except ValueError as exc:
        return str(exc)
    return None


#: for the tests of bf16 on the CPU, which only CPUs with AVX-512 BF16 or AMX compute in
needs_bf16 = pytest.mark.skipif(_bf16_missing() is not None, reason=_bf16_missing() or "")

#: Crowds, faces cut off by the border, a tiny face, an RGBA file, portraits.
PARITY_PHOTOS = [
    *(f"scenes/{n}.jpg" for n in ("cf_016_8", "cf_013_4", "fapi_bbt1", "fapi_bbt4", "fnp_multiface", "fr_obama_and_biden")),
    *(f"edge_cases/{n}" for n in ("fr_obama_partial_face.jpg", "fr_obama_partial_face2.jpg", "fr_obama_small.jpg", "fr_32bit_rgba.png")),
    "faces/barack_obama/1.jpg", "faces/joe_biden/2.jpg", "faces/kit_harington/1.jpg",
]


def assert_same_faces(
    ours: FaceDetections, reference: FaceDetections, where: str, px: float = 1.0, score_tolerance: float = 1e-4
) -> None:
    """Same number of faces; each reference face has one of ours within ``px`` (box and
    landmarks) and with the same score to ``score_tolerance``: by default, the same arithmetic's
    results (1 px, 1e-4)."""
    assert len(ours) == len(reference), f"{where}: {len(ours)} faces, reference {len(reference)}"
    for box, points, score in zip(reference.boxes, reference.landmarks, reference.scores):
        j = int(np.argmin(np.abs(ours.boxes - box).max(axis=1)))
        assert np.abs(ours.boxes[j] - box).max() <= px, f"{where}: box {ours.boxes[j]} vs {box}"
        assert np.abs(ours.landmarks[j] - points).max() <= px, f"{where}: landmarks differ"
        assert abs(float(ours.scores[j]) - float(score)) <= score_tolerance, f"{where}: score {ours.scores[j]} vs {score}"
