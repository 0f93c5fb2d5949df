"""The MTCNN cascade on the device (here the CPU) against the ONNX Runtime path, on real photos
and video frames: the same faces, boxes and landmarks within a pixel.

The cascade itself repeats the host's arithmetic exactly (the host cascade fed with the same
torch nets gives identical results); what remains between the two paths is how PyTorch and
ONNX Runtime round inside the networks (about 1e-6).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from streamrec.backends.torch import TorchMTCNN
from streamrec.detect.mtcnn import MTCNN, MTCNNConfig
from tests.backends.compare import PARITY_PHOTOS, assert_same_faces


@pytest.fixture(scope="module")
def detectors(models, torch_models) -> tuple[MTCNN, TorchMTCNN]:
    assert isinstance(torch_models.detector, TorchMTCNN)
    return models.detector, torch_models.detector


def test_photos_give_the_faces_of_the_onnx_runtime_path(photos, detectors):
    reference, ours = detectors
    found = 0
    nonfaces = [name for name in photos if name.startswith("nonfaces/")][:2]
    for name in PARITY_PHOTOS + nonfaces:
        image = photos[name]
        (expected,), (got,) = reference.detect(image), ours.detect(image)
        assert_same_faces(got, expected, name)
        found += len(got)
    assert found >= 40  # the scenes hold crowds: the comparison covers many faces


def test_video_frames_in_a_batch_of_eight(clip_frames, detectors):
    reference, ours = detectors
    batch = clip_frames[::2]
    found = 0
    for i, (got, expected) in enumerate(zip(ours.detect(batch), reference.detect(batch))):
        assert_same_faces(got, expected, f"clip frame {2 * i}")
        found += len(got)
    assert found >= 10


def test_the_cascade_repeats_the_host_arithmetic_exactly(photos, torch_models):
    """The host cascade run on the torch nets (as plain backends) gives the very same numbers:
    the device pyramid, suppression, regression and crops add no difference of their own."""
    device = torch_models.detector
    host = MTCNN(device.pnet, device.rnet, device.onet, device.config)
    for name in ("scenes/cf_016_8.jpg", "faces/joe_biden/2.jpg"):
        (expected,), (got,) = host.detect(photos[name]), device.detect(photos[name])
        np.testing.assert_array_equal(got.boxes, expected.boxes, err_msg=name)
        np.testing.assert_array_equal(got.landmarks, expected.landmarks, err_msg=name)
        np.testing.assert_array_equal(got.scores, expected.scores, err_msg=name)


def test_a_batch_equals_its_frames_one_by_one(clip_frames, detectors):
    """Up to the nets' rounding, which depends a little on the batch size."""
    _, ours = detectors
    together = ours.detect(clip_frames[:6])
    for frame, faces in zip(clip_frames[:6], together):
        (alone,) = ours.detect(frame)
        assert len(alone) == len(faces)
        np.testing.assert_allclose(alone.boxes, faces.boxes, atol=1e-3)
        np.testing.assert_allclose(alone.landmarks, faces.landmarks, atol=1e-3)


def test_frames_of_several_sizes_and_tensors(photos, detectors):
    """A list of frames of different sizes is detected size by size, in input order (up to the
    nets' rounding in a batch); frames already in a tensor are taken as they are."""
    _, ours = detectors
    names = ["scenes/fr_two_people.jpg", "faces/barack_obama/1.jpg", "scenes/fr_two_people.jpg"]
    results = ours.detect([photos[n] for n in names])
    for name, faces in zip(names, results):
        (alone,) = ours.detect(torch.from_numpy(photos[name]))
        np.testing.assert_allclose(faces.boxes, alone.boxes, atol=1e-3, err_msg=name)
    assert len(results[0]) == 2 and len(results[1]) == 1


def test_refine_gives_the_faces_of_the_onnx_runtime_path(clip_frames, photos, detectors):
    reference, ours = detectors
    frames = np.stack([photos["scenes/fr_two_people.jpg"]] * 2)
    (found, _) = reference.detect(frames)
    assert len(found) == 2
    moved = found.boxes + np.float32([6, -4, 6, -4])  # where a tracker might predict them
    background = np.float32([[5, 300, 60, 360]])
    boxes = [np.concatenate([moved, background]), found.boxes[:1]]
    for got, expected, i in zip(ours.refine(frames, boxes), reference.refine(frames, boxes), range(2)):
        assert_same_faces(got, expected, f"refined frame {i}")
    assert [len(f) for f in ours.refine(frames, boxes)] == [2, 1]  # the background patch is gone
    assert [len(f) for f in ours.refine(frames, [np.zeros((0, 4), np.float32)] * 2)] == [0, 0]
    with pytest.raises(ValueError, match=r"boxes for 2 frames, but 1 frame\(s\) given"):
        ours.refine(frames[:1], boxes)


def test_min_face_size_and_thresholds_are_honoured(photos, torch_models):
    nets = torch_models.detector.nets
    crowd = photos["scenes/cf_016_8.jpg"]
    small = TorchMTCNN(*nets, MTCNNConfig(min_face_size=20)).detect(crowd)[0]
    big = TorchMTCNN(*nets, MTCNNConfig(min_face_size=120)).detect(crowd)[0]
    strict = TorchMTCNN(*nets, MTCNNConfig(thresholds=(0.6, 0.7, 0.9999))).detect(crowd)[0]
    assert len(small) >= 8 and len(big) < len(small)
    assert len(strict) < len(small) and (strict.scores > 0.9999).all()


def test_frames_smaller_than_the_smallest_face_have_none(detectors):
    _, ours = detectors
    assert [len(f) for f in ours.detect(np.zeros((2, 15, 15, 3), np.uint8))] == [0, 0]


@pytest.mark.parametrize(
    "frames", [np.zeros((10, 10), np.uint8), np.zeros((1, 10, 10, 4), np.uint8), np.zeros((1, 10, 10, 3), np.float32)]
)
def test_bad_frames_are_refused(detectors, frames):
    _, ours = detectors
    with pytest.raises(ValueError, match=r"frames must be \(N, H, W, 3\) uint8 RGB"):
        ours.detect(frames)


def test_another_config_from_the_same_nets(photos, torch_models):
    """A detector per minimum face size, as the pipeline makes them: the class of the one it was
    given, around the same nets, with another config; it runs the cascade on the device."""
    detector = torch_models.detector
    crowd = photos["scenes/cf_016_8.jpg"]
    other = type(detector)(detector.pnet, detector.rnet, detector.onet, MTCNNConfig(min_face_size=120))
    assert isinstance(other, TorchMTCNN) and other.nets == detector.nets
    (expected,) = TorchMTCNN(*detector.nets, MTCNNConfig(min_face_size=120)).detect(crowd)
    (got,) = other.detect(crowd)
    np.testing.assert_array_equal(got.boxes, expected.boxes)
    assert len(got) < len(detector.detect(crowd)[0])


def test_nets_on_different_devices_or_of_another_backend_are_refused(models, torch_models):
    pnet, rnet, onet = torch_models.detector.nets
    moved = copy.copy(rnet)
    moved.device = torch.device("meta")
    with pytest.raises(ValueError, match="share one device"):
        TorchMTCNN(pnet, moved, onet)
    with pytest.raises(TypeError, match=r"needs the torch backend's nets \(got torch, onnxruntime, torch\)"):
        TorchMTCNN(pnet, models.detector.rnet, onet)
