"""FaceNet crops cut on the device equal OpenCV's (``box_crops``, ``warp_crops``) byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrec.backends.torch.crops import box_crops, warp_crops
from streamrec.embed import align
from streamrec.embed.align import FACE_SIZE, margin_regions

SCENES = ["scenes/fapi_bbt1.jpg", "scenes/cf_016_8.jpg", "scenes/fr_obama_and_biden.jpg", "edge_cases/fr_obama_partial_face.jpg"]


@pytest.fixture(scope="module")
def detections(photos, models) -> dict[str, tuple[np.ndarray, object]]:
    """Real faces (found by the ONNX Runtime path) of photos with crowds and cut-off faces."""
    return {name: (photos[name], models.detector.detect(photos[name])[0]) for name in SCENES}


def _frames(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image)[None]


def _kind(region: np.ndarray) -> str:
    """Which of OpenCV's resize paths a region takes."""
    w, h = region[2] - region[0], region[3] - region[1]
    if w <= FACE_SIZE and h <= FACE_SIZE:
        return "linear"
    if w < FACE_SIZE or h < FACE_SIZE:
        return "area mode"
    return "blocks" if w % FACE_SIZE == 0 and h % FACE_SIZE == 0 else "area"


@pytest.mark.parametrize("margin", [0.0, 0.15, 0.3, 0.45])
def test_box_crops_of_real_faces_equal_opencvs(detections, margin):
    for name, (image, faces) in detections.items():
        ours = box_crops(_frames(image), np.zeros(len(faces), np.int64), faces.boxes, margin).numpy()
        np.testing.assert_array_equal(ours, align.box_crops(image, faces.boxes, margin), err_msg=name)


def test_box_crops_of_every_shape_equal_opencvs(photos):
    """Boxes small and large, wide and tall, partly outside the image: every one of OpenCV's
    four resize paths (linear, area, area with whole-number factors, mixed) is exercised."""
    image = photos["scenes/fapi_bbt1.jpg"]
    h, w, _ = image.shape
    rng = np.random.default_rng(11)
    size = rng.uniform(5, 520, (150, 2))
    corner = rng.uniform(-60, [w - 20, h - 20], (150, 2))
    boxes = np.concatenate([corner, corner + size], axis=1).astype(np.float32)
    whole = np.float32([[20, 10, 340, 330], [0, 0, 480, 320], [100, 50, 260, 530]])  # 2x2, 3x2, 1x3 blocks
    boxes = np.concatenate([boxes, whole])
    regions = margin_regions(boxes, 0.0, w, h)
    assert {_kind(r) for r in regions} == {"linear", "area mode", "area", "blocks"}
    ours = box_crops(_frames(image), np.zeros(len(boxes), np.int64), boxes, 0.0).numpy()
    np.testing.assert_array_equal(ours, align.box_crops(image, boxes, 0.0))


def test_crops_of_several_frames_in_one_call(clip_frames, models):
    frames = clip_frames[:8]
    found = models.detector.detect(frames)
    index = np.concatenate([np.full(len(f), i) for i, f in enumerate(found)])
    assert len(index) >= 4
    ours = box_crops(torch.from_numpy(frames), index, np.concatenate([f.boxes for f in found]), 0.15).numpy()
    expected = np.concatenate([align.box_crops(frame, f.boxes, 0.15) for frame, f in zip(frames, found) if len(f)])
    np.testing.assert_array_equal(ours, expected)


def test_warp_crops_of_real_faces_equal_opencvs(detections):
    """Including faces at the image border, where pixels are replicated."""
    for name, (image, faces) in detections.items():
        ours = warp_crops(_frames(image), np.zeros(len(faces), np.int64), faces.landmarks).numpy()
        np.testing.assert_array_equal(ours, align.warp_crops(image, faces.landmarks), err_msg=name)


def test_warp_crops_of_several_frames_and_sizes(clip_frames, models):
    frames = clip_frames[8:16]
    found = models.detector.detect(frames)
    index = np.concatenate([np.full(len(f), i) for i, f in enumerate(found)])
    landmarks = np.concatenate([f.landmarks for f in found])
    for size in (FACE_SIZE, 112):
        ours = warp_crops(torch.from_numpy(frames), index, landmarks, size).numpy()
        expected = np.concatenate([align.warp_crops(fr, f.landmarks, size) for fr, f in zip(frames, found) if len(f)])
        np.testing.assert_array_equal(ours, expected)
