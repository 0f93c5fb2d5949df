"""FaceNet on the device (here the CPU) against ONNX Runtime fp32 on real face crops, and the
embedder's ways in: host crops, device crops of one image, device crops of a batch of frames."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.backends.torch import TorchFaceEmbedder
from streamrec.detect.types import FaceDetections
from streamrec.embed import align
from streamrec.embed.facenet import EmbedConfig, FaceEmbedder
from streamrec.engines.check import BF16_MIN_COSINE
from streamrec.faces import FaceModels, ModelsConfig
from tests.backends.compare import PARITY_PHOTOS, needs_bf16

MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def faces(photos, models) -> list[tuple[np.ndarray, FaceDetections]]:
    """Every face the ONNX Runtime path finds in the photos of the detector's parity test."""
    found = [(photos[name], models.detector.detect(photos[name])[0]) for name in PARITY_PHOTOS]
    return [(image, f) for image, f in found if len(f)]


@pytest.fixture(scope="module")
def embedders(models, torch_models) -> tuple[FaceEmbedder, TorchFaceEmbedder]:
    assert isinstance(torch_models.embedder, TorchFaceEmbedder)
    return models.embedder, torch_models.embedder


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def crops(faces) -> np.ndarray:
    """Every face cut by its box and by its landmarks."""
    crops = np.concatenate(
        [align.box_crops(image, f.boxes, 0.15) for image, f in faces] + [align.warp_crops(image, f.landmarks) for image, f in faces]
    )
    assert len(crops) >= 80
    return crops


def _assert_close(got: np.ndarray, expected: np.ndarray, min_cosine: float) -> None:
    """Unit float32 vectors, one per expected one, each within ``min_cosine`` of it."""
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert _cosines(got, expected).min() >= min_cosine


def test_embeddings_of_real_crops_match_onnx_runtime_fp32(crops, embedders):
    reference, ours = embedders
    _assert_close(ours.embed_crops(crops), reference.embed_crops(crops), MIN_COSINE)


@needs_bf16
def test_bf16_embeddings_on_the_cpu_stay_close_to_onnx_runtime_fp32(crops, embedders, engine_dir):
    """FaceNet in bf16 on a CPU that computes in it (AMX or AVX-512 BF16), what ``auto`` runs there
    without OpenVINO: within the bf16 cosine bound the engine check holds the other backends to."""
    bf16 = FaceModels(ModelsConfig(backend="torch", precision="bf16"), engine_dir).embedder
    _assert_close(bf16.embed_crops(crops), embedders[0].embed_crops(crops), BF16_MIN_COSINE)


@pytest.mark.parametrize("config", [EmbedConfig(), EmbedConfig(alignment="warp"), EmbedConfig(flip=True, margin=0.3)])
def test_faces_embedded_from_device_crops_match_onnx_runtime(faces, embedders, config):
    """``embed(image, faces)`` cuts the crops on the device: the same vectors as ONNX Runtime
    fed with the host's crops, under every crop option."""
    reference = FaceEmbedder(embedders[0].backend, config)
    ours = TorchFaceEmbedder(embedders[1].net, config)
    for image, found in faces[:4]:
        np.testing.assert_array_equal(ours.crops(image, found), reference.crops(image, found))
        assert _cosines(ours.embed(image, found), reference.embed(image, found)).min() >= MIN_COSINE


def test_a_batch_of_frames_embeds_as_its_frames_one_by_one(clip_frames, models, embedders):
    _, ours = embedders
    frames = np.concatenate([clip_frames[4:11], np.zeros_like(clip_frames[:1])])  # the last has no face
    found = models.detector.detect(frames)
    assert sum(len(f) for f in found) >= 4 and any(len(f) == 0 for f in found)
    together = ours.embed_frames(frames, found)
    assert [len(v) for v in together] == [len(f) for f in found]
    for frame, faces_of_frame, vectors in zip(frames, found, together):
        np.testing.assert_allclose(vectors, ours.embed(frame, faces_of_frame), atol=1e-5)


def test_no_faces_no_embeddings(embedders):
    _, ours = embedders
    assert ours.embed(np.zeros((50, 50, 3), np.uint8), FaceDetections.empty()).shape == (0, 512)
    assert [v.shape for v in ours.embed_frames(np.zeros((2, 50, 50, 3), np.uint8), [FaceDetections.empty()] * 2)] == [
        (0, 512),
        (0, 512),
    ]


def test_bad_inputs_are_refused(faces, embedders):
    _, ours = embedders
    with pytest.raises(ValueError, match=r"crops must be \(k, 160, 160, 3\) uint8"):
        ours.embed_crops(np.zeros((2, 100, 100, 3), np.uint8))
    image, found = faces[0]
    with pytest.raises(ValueError, match="1 lists of faces for 2 frames"):
        ours.embed_frames(np.stack([image, image]), [found])
