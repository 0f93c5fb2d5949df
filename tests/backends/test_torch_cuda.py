"""The torch backend on a CUDA device: the same faces and embeddings as on the CPU and as the
ONNX Runtime path, crops equal to OpenCV's, fp16/bf16 FaceNet close to fp32, and LFW View 1
accuracy within 0.002 of ONNX Runtime fp32 in every precision.

Skipped where no CUDA device is visible (the CPU tests beside this file cover the same code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamrec.backends import BackendOptions
from streamrec.backends.torch import TorchFaceEmbedder, TorchMTCNN
from streamrec.backends.torch.crops import box_crops, warp_crops
from streamrec.embed import align
from streamrec.faces import FaceModels, ModelsConfig
from tests.backends.compare import LFW_TOLERANCE, assert_same_faces

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

PHOTOS = ["scenes/cf_016_8.jpg", "scenes/fnp_multiface.jpg", "scenes/fr_two_people.jpg", "faces/joe_biden/2.jpg"]


@pytest.fixture(scope="module")
def cuda_models(engine_dir: Path) -> FaceModels:
    return FaceModels(ModelsConfig(backend="torch", backend_options=BackendOptions(device="cuda")), engine_dir)


def test_detections_on_cuda_match_onnx_runtime(photos, clip_frames, models, cuda_models):
    ours = cuda_models.detector
    assert isinstance(ours, TorchMTCNN) and ours.device.type == "cuda"
    for name in PHOTOS:
        assert_same_faces(ours.detect(photos[name])[0], models.detector.detect(photos[name])[0], name)
    batch = clip_frames[:8]
    for i, (got, expected) in enumerate(zip(ours.detect(batch), models.detector.detect(batch))):
        assert_same_faces(got, expected, f"clip frame {i}")


def test_frames_already_on_the_device(photos, cuda_models):
    ours = cuda_models.detector
    image = photos["scenes/fr_two_people.jpg"]
    on_device = torch.from_numpy(image).cuda()
    np.testing.assert_allclose(ours.detect(on_device)[0].boxes, ours.detect(image)[0].boxes, atol=1e-3)


def test_crops_on_cuda_equal_opencvs(photos, models):
    for name in PHOTOS:
        image = photos[name]
        faces = models.detector.detect(image)[0]
        frames = torch.from_numpy(image)[None].cuda()
        index = np.zeros(len(faces), np.int64)
        for margin in (0.0, 0.15, 0.45):
            got = box_crops(frames, index, faces.boxes, margin).cpu().numpy()
            np.testing.assert_array_equal(got, align.box_crops(image, faces.boxes, margin), err_msg=name)
        got = warp_crops(frames, index, faces.landmarks).cpu().numpy()
        np.testing.assert_array_equal(got, align.warp_crops(image, faces.landmarks), err_msg=name)


def _skip_without(precision: str) -> None:
    """Skip where the GPU lacks ``precision``: bf16 needs compute capability 8.0 (Ampere) on."""
    if precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16 arithmetic")


def _crops(photos, models) -> np.ndarray:
    return np.concatenate(
        [align.box_crops(photos[n], models.detector.detect(photos[n])[0].boxes, 0.15) for n in PHOTOS]
    )


def test_fp32_embeddings_on_cuda_match_onnx_runtime(photos, models, cuda_models):
    crops = _crops(photos, models)
    cosines = np.sum(cuda_models.embedder.embed_crops(crops) * models.embedder.embed_crops(crops), axis=1)
    assert cosines.min() >= 0.9999


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_stays_close_to_fp32(photos, models, engine_dir, precision):
    _skip_without(precision)
    options = BackendOptions(device="cuda")
    reduced = FaceModels(ModelsConfig(backend="torch", backend_options=options, precision=precision), engine_dir).embedder
    assert isinstance(reduced, TorchFaceEmbedder)
    crops = _crops(photos, models)
    vectors = reduced.embed_crops(crops)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.sum(vectors * models.embedder.embed_crops(crops), axis=1).min() >= 0.999


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_lfw_view1_on_cuda_within_0_002_of_onnxruntime(lfw_accuracy, precision):
    """``eval-pairs --backend torch --device cuda`` (the whole cascade and FaceNet on the GPU)
    in each precision it runs there, against ONNX Runtime fp32 on the CPU: the accuracy guard."""
    _skip_without(precision)
    ours = lfw_accuracy("torch", precision, "cuda")
    assert abs(ours - lfw_accuracy("onnxruntime", "fp32")) <= LFW_TOLERANCE
