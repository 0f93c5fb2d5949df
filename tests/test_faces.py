"""The face engine every caller goes through: a detector per min face size made from the
engine's own detector (whatever its class), and one FaceNet batch for the faces of many images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamrec.detect.mtcnn import MTCNN, MTCNNConfig
from streamrec.images import load_image

SCENE = "scenes/fr_two_people.jpg"


class _DeviceMTCNN(MTCNN):
    """A detector class of another backend, as one that keeps its cascade on a device would be."""


def test_a_detector_made_for_another_setting_keeps_its_class_and_nets(models):
    own = _DeviceMTCNN(models.detector.pnet, models.detector.rnet, models.detector.onet)
    other = own.with_config(MTCNNConfig(min_face_size=60))
    assert type(other) is _DeviceMTCNN and other.config.min_face_size == 60
    assert (other.pnet, other.rnet, other.onet) == (own.pnet, own.rnet, own.onet)


def test_a_min_face_size_finds_what_a_detector_built_for_it_finds(shared_data: Path, models):
    frame = load_image(shared_data / "scenes/cf_016_8.jpg").rgb  # a crowd of small faces
    nets = (models.detector.pnet, models.detector.rnet, models.detector.onet)
    for size in (20, 120, 20, 120):  # each size again: the kept detector answers the same
        expected = MTCNN(*nets, MTCNNConfig(min_face_size=size)).detect(frame)[0]
        found = models.detect(frame, min_face_size=size)[0]
        assert np.array_equal(found.boxes, expected.boxes) and np.array_equal(found.landmarks, expected.landmarks)
    assert len(models.detect(frame, 120)[0]) == 0 < len(models.detect(frame)[0])  # the default looks for small faces too


def test_the_faces_of_several_images_embed_as_each_image_alone(shared_data: Path, models):
    images = [load_image(shared_data / name).rgb for name in (SCENE, "faces/barack_obama/1.jpg", "nonfaces/trt_dog.jpg")]
    faces = models.detect_images(images)
    assert [len(f) > 0 for f in faces] == [True, True, False]
    together = models.embed(images, faces)
    alone = np.concatenate([models.embedder.embed(image, found) for image, found in zip(images, faces)])
    assert together.shape == (sum(len(f) for f in faces), 512)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert models.embed(images[2:], faces[2:]).shape == (0, 512)
