"""Our MTCNN cascade against facenet-pytorch's MTCNN.detect() on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.detect.mtcnn import MTCNNConfig, pyramid_scales
from streamrec.images import load_image
from tests.support.needs import need_module

PHOTOS = [
    "faces/barack_obama/1.jpg", "faces/barack_obama/4.jpg", "faces/alex_lacamoire/1.png",
    "faces/kit_harington/1.jpg", "faces/kit_harington/2.jpg", "faces/rose_leslie/2.jpg",
    "faces/joe_biden/2.jpg", "faces/lin_manuel_miranda/1.png", "faces/compreface_person_b/1.jpg",
    "scenes/fr_two_people.jpg", "scenes/fapi_bbt4.jpg", "scenes/cf_016_8.jpg", "scenes/fnp_multiface.jpg",
    "scenes/fr_obama_and_biden.jpg", "edge_cases/fr_obama_partial_face.jpg", "edge_cases/fr_obama-240p.jpg",
    "nonfaces/trt_dog.jpg", "nonfaces/fapi_white.png",
]


@pytest.fixture(scope="module")
def reference():
    facenet_pytorch = need_module("facenet_pytorch", "facenet-pytorch is the detection reference")
    return facenet_pytorch.MTCNN(keep_all=True, device="cpu")


def _match(ours, boxes: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """Worst box and landmark difference (px) after pairing each reference face with ours."""
    worst_box = worst_point = 0.0
    for box, pts in zip(boxes, points):
        j = int(np.argmin(np.abs(ours.boxes - box).max(axis=1)))
        worst_box = max(worst_box, float(np.abs(ours.boxes[j] - box).max()))
        worst_point = max(worst_point, float(np.abs(ours.landmarks[j] - pts).max()))
    return worst_box, worst_point


@pytest.mark.parametrize("photo", PHOTOS)
def test_equals_facenet_pytorch_within_a_pixel(shared_data: Path, models, reference, photo):
    image = load_image(shared_data / photo, 1024).rgb
    ours = models.detector.detect(image)[0]
    boxes, probs, points = reference.detect(image, landmarks=True)
    if boxes is None:
        assert len(ours) == 0
        return
    assert len(ours) == len(boxes)
    worst_box, worst_point = _match(ours, boxes, points)
    assert worst_box <= 1.0 and worst_point <= 1.0
    np.testing.assert_allclose(np.sort(ours.scores), np.sort(probs.astype(np.float32)), atol=1e-4)


def test_a_batch_equals_frames_one_by_one(faces_dir: Path, models):
    import cv2

    frames = np.stack(
        [cv2.resize(load_image(p).rgb, (640, 480)) for p in sorted((faces_dir / "barack_obama").glob("*.jpg"))]
    )
    batch = models.detector.detect(frames)
    for frame, together in zip(frames, batch):
        alone = models.detector.detect(frame)[0]
        assert len(alone) == len(together) >= 1
        np.testing.assert_allclose(alone.boxes, together.boxes, atol=1e-3)
        np.testing.assert_allclose(alone.landmarks, together.landmarks, atol=1e-3)


def test_min_face_size_prunes_the_pyramid_and_small_faces(faces_dir: Path, engine_dir: Path):
    from streamrec.backends import open_backend
    from streamrec.detect.mtcnn import MTCNN

    nets = [open_backend("onnxruntime", engine_dir / f"{n}.onnx") for n in ("pnet", "rnet", "onet")]
    image = load_image(faces_dir.parent / "scenes" / "cf_016_8.jpg").rgb  # a crowd of ~28 px faces
    small = MTCNN(*nets, MTCNNConfig(min_face_size=20)).detect(image)[0]
    big = MTCNN(*nets, MTCNNConfig(min_face_size=120)).detect(image)[0]
    assert len(small) >= 8 and len(big) < len(small)
    assert len(pyramid_scales(480, 640, MTCNNConfig(min_face_size=40))) < len(pyramid_scales(480, 640, MTCNNConfig()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_face_size": 5}, "min_face_size"), ({"min_face_size": float("nan")}, "min_face_size"),
        ({"min_face_size": float("inf")}, "min_face_size"), ({"thresholds": (0.6, 1.5, 0.7)}, "thresholds"), ({"factor": 1.2}, "factor"),
    ],
)
def test_bad_detector_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MTCNNConfig(**kwargs)


def test_bad_frames_are_refused(models):
    with pytest.raises(ValueError, match="uint8 RGB"):
        models.detector.detect(np.zeros((10, 10), np.uint8))


def test_refine_redetects_known_faces_and_drops_empty_boxes(faces_dir: Path, models):
    import cv2

    frame = cv2.resize(load_image(faces_dir.parent / "scenes" / "fr_two_people.jpg").rgb, (640, 376))
    found = models.detector.detect(frame)[0]
    assert len(found) == 2
    moved = found.boxes + np.array([6, -4, 6, -4], np.float32)  # where a tracker might predict them
    background = np.array([[5, 300, 60, 360]], np.float32)
    (again,) = models.detector.refine(frame[None], [np.concatenate([moved, background])])
    assert len(again) == 2  # the faces come back, the patch of background does not
    for box in found.boxes:
        assert np.abs(again.boxes - box).max(axis=1).min() < 6
    (nothing,) = models.detector.refine(frame[None], [np.zeros((0, 4), np.float32)])
    assert len(nothing) == 0
