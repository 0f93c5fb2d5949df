"""The TensorRT backend: its refusals, its engine cache and its profiles here; on a GPU, its parity
with ONNX Runtime.

Without TensorRT and PyCUDA (the 'tensorrt' extra) or without a CUDA device, the backend must
refuse in one line naming what is missing, before anything is built: the refusal tests run real
``streamrec`` processes. The cache key, the manifest and the profile bounds are plain functions,
tested on the real engine files. The tests that run TensorRT skip without it or without a CUDA
device, saying which: FaceNet must keep a cosine of 0.9999 to ONNX Runtime fp32's in fp32 and
0.999 in fp16, MTCNN's outputs must stay within the build's 1e-4, and LFW View 1 accuracy within
0.002 of ONNX Runtime's.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamrec.backends import BackendOptions, backend_class, open_backend
from streamrec.backends.tensorrt import (
    PNET_MAX_BATCH,
    PNET_MAX_SIDE,
    EngineKey,
    Profile,
    TensorRtBackend,
    cached_plan,
    check_shape,
    cuda_ordinal,
    manifest,
    profile_for,
)
from streamrec.detect.mtcnn import MTCNNConfig, largest_frame_side, pyramid_scales
from streamrec.engines import ENGINE_FILES, read_manifest
from streamrec.engines.build import MTCNN_TOLERANCE, face_crops, mtcnn_inputs, sample_photos
from streamrec.engines.check import MIN_COSINE
from streamrec.faces import FrameTooLarge, check_image_side
from tests.conftest import run_cli

#: LFW View 1 accuracy may differ from ONNX Runtime's by this much (2 of 1,000 pairs)
LFW_TOLERANCE = 0.002


def _missing() -> str | None:
    """Why TensorRT cannot run here, or ``None`` when it can."""
    from streamrec.backends.tensorrt import _gpu_name, _import

    try:
        _import()
    except ValueError:
        return "TensorRT and pycuda are not installed (pip install 'streamrec[tensorrt]')"
    try:
        _gpu_name(0)
    except ValueError as exc:
        return f"no CUDA device ({exc})"
    return None


needs_gpu = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
needs_no_tensorrt = pytest.mark.skipif(_missing() is None, reason="TensorRT runs here: nothing to refuse")


def _one_line_refusal(run, *phrases: str) -> None:
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamrec: error: "), run.stderr
    for phrase in phrases:
        assert phrase in lines[0]


# -- refusals, as real processes --------------------------------------------------------------------
@needs_no_tensorrt
def test_detect_refuses_in_one_line_naming_what_is_missing(faces_dir: Path):
    run = run_cli("detect", "--backend", "tensorrt", str(faces_dir / "barack_obama" / "1.jpg"), timeout=120)
    _one_line_refusal(run, "pip install 'streamrec[tensorrt]'", "tensorrt")
    assert run.stdout == ""


@needs_no_tensorrt
def test_engines_build_refuses_before_building_anything(tmp_path: Path):
    run = run_cli("engines", "build", "--backend", "tensorrt", "--precision", "fp16", "--engines", str(tmp_path),
                  timeout=120)
    _one_line_refusal(run, "pip install 'streamrec[tensorrt]'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("precision", "phrase"), [("int8", "calibration"), ("bf16", "runs fp32 and fp16 only")])
def test_precisions_tensorrt_does_not_run_are_refused_before_building(tmp_path: Path, precision: str, phrase: str):
    run = run_cli("engines", "build", "--backend", "tensorrt", "--precision", precision, "--engines", str(tmp_path),
                  timeout=120)
    _one_line_refusal(run, phrase, repr(precision))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options", [["--min-face-size", "12"], ["--max-side", "4000"]])
def test_images_too_large_for_pnet_are_refused_before_anything_else(faces_dir: Path, options: list[str]):
    """A configuration no TensorRT engine can take is refused as such, on any machine: before
    whether TensorRT runs here, before any engine is built and before any image is read."""
    run = run_cli("detect", "--backend", "tensorrt", *options, str(faces_dir / "barack_obama" / "1.jpg"),
                  timeout=120)
    _one_line_refusal(run, "are too large", "lower --max-side or raise --min-face-size")
    assert run.stdout == ""


@needs_no_tensorrt
def test_images_that_just_fit_pass_the_size_check(faces_dir: Path):
    largest = largest_frame_side(PNET_MAX_SIDE, 12)
    run = run_cli("detect", "--backend", "tensorrt", "--min-face-size", "12", "--max-side", str(largest),
                  str(faces_dir / "barack_obama" / "1.jpg"), timeout=120)
    _one_line_refusal(run, "pip install 'streamrec[tensorrt]'")  # the next check: the machine


@pytest.mark.parametrize(("device", "ordinal"), [(None, 0), ("cuda", 0), ("CUDA:1", 1), ("cuda:12", 12)])
def test_cuda_device_names(device: str | None, ordinal: int):
    assert cuda_ordinal(device) == ordinal


@pytest.mark.parametrize("device", ["cpu", "gpu", "cuda:", "cuda:-1", "cuda:0:1"])
def test_devices_that_are_not_cuda_are_refused(device: str):
    with pytest.raises(ValueError, match="cuda or cuda:N"):
        cuda_ordinal(device)


# -- the engine cache: key and manifest ---------------------------------------------------------------
def _key(engine_dir: Path, **changes) -> EngineKey:
    key = EngineKey.of(engine_dir / ENGINE_FILES["facenet"], "NVIDIA H200", "10.8.0.43", "fp16", 64)
    return replace(key, **changes)


def test_the_key_names_the_onnx_file_by_its_sha256(engine_dir: Path):
    key = _key(engine_dir)
    digest = hashlib.sha256((engine_dir / "facenet.onnx").read_bytes()).hexdigest()
    assert key.onnx_sha256 == digest == read_manifest(engine_dir)["files"]["facenet.onnx"]["sha256"]
    assert (key.onnx_file, key.gpu, key.tensorrt, key.precision, key.max_batch) == (
        "facenet.onnx", "NVIDIA H200", "10.8.0.43", "fp16", 64)
    folder = key.folder(Path("/cache"))
    assert folder == Path(f"/cache/tensorrt/NVIDIA-H200-trt10.8.0.43/facenet-fp16-b64-{digest[:16]}")


@pytest.mark.parametrize("change", [
    {"gpu": "NVIDIA L4"}, {"tensorrt": "10.9.0.34"}, {"precision": "fp32"}, {"max_batch": 32},
    {"onnx_sha256": "0" * 64},
])
def test_every_field_of_the_key_has_a_folder_of_its_own(engine_dir: Path, change: dict):
    assert _key(engine_dir, **change).folder(engine_dir) != _key(engine_dir).folder(engine_dir)


@pytest.fixture
def cache_entry(engine_dir: Path, tmp_path: Path) -> tuple[EngineKey, Path]:
    """A cache entry whose plan file is a real engine file's bytes, with the manifest written for it."""
    key = _key(engine_dir)
    folder = key.folder(tmp_path)
    folder.mkdir(parents=True)
    plan = folder / "engine.plan"
    shutil.copyfile(engine_dir / "rnet.onnx", plan)
    record = manifest(key, plan, profile_for((None, 160, 160, 3), 64), 83.26)
    (folder / "manifest.json").write_text(json.dumps(record))
    return key, plan


def test_the_manifest_records_the_key_the_profile_and_the_plan_hash(engine_dir: Path, cache_entry):
    key, plan = cache_entry
    record = json.loads((plan.parent / "manifest.json").read_text())
    assert record["key"]["onnx_sha256"] == key.onnx_sha256 and record["key"]["gpu"] == "NVIDIA H200"
    assert record["plan_sha256"] == read_manifest(engine_dir)["files"]["rnet.onnx"]["sha256"]
    assert record["plan_bytes"] == (engine_dir / "rnet.onnx").stat().st_size
    assert record["profile"] == {"min": [1, 160, 160, 3], "opt": [64, 160, 160, 3], "max": [64, 160, 160, 3]}
    assert record["build_seconds"] == 83.3


def test_a_valid_cache_entry_is_used(cache_entry, tmp_path: Path):
    key, plan = cache_entry
    assert cached_plan(key, tmp_path) == plan


def test_a_corrupt_plan_is_not_used(cache_entry, tmp_path: Path):
    key, plan = cache_entry
    data = bytearray(plan.read_bytes())
    data[len(data) // 2] ^= 0xFF
    plan.write_bytes(bytes(data))
    assert cached_plan(key, tmp_path) is None


@pytest.mark.parametrize("damage", ["garbage", "other key", "no manifest", "no plan"])
def test_a_stale_or_unreadable_entry_is_not_used(cache_entry, tmp_path: Path, damage: str):
    key, plan = cache_entry
    manifest_path = plan.parent / "manifest.json"
    if damage == "garbage":
        manifest_path.write_text('{"key": ')
    elif damage == "other key":
        record = json.loads(manifest_path.read_text())
        record["key"]["tensorrt"] = "10.0.1"
        manifest_path.write_text(json.dumps(record))
    elif damage == "no manifest":
        manifest_path.unlink()
    else:
        plan.unlink()
    assert cached_plan(key, tmp_path) is None


# -- profiles --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def input_shapes(engine_dir: Path) -> dict[str, tuple[int | None, ...]]:
    """Each real engine's input shape, as ONNX Runtime reads it."""
    return {name: open_backend("onnxruntime", engine_dir / f"{name}.onnx").inputs[0].shape
            for name in ("pnet", "rnet", "onet", "facenet")}


def test_fixed_size_nets_take_any_batch_up_to_max_batch(input_shapes):
    for name, side in (("rnet", 24), ("onet", 48), ("facenet", 160)):
        assert profile_for(input_shapes[name], 64) == Profile((1, side, side, 3), (64, side, side, 3),
                                                                (64, side, side, 3))


def test_pnet_takes_every_pyramid_level_of_a_1920_px_frame_at_min_face_size_20(input_shapes):
    profile = profile_for(input_shapes["pnet"], 64)
    assert profile.min == (1, 12, 12, 3) and profile.max == (PNET_MAX_BATCH, PNET_MAX_SIDE, PNET_MAX_SIDE, 3)
    for height, width in ((1080, 1920), (1920, 1080), (1920, 1920), (480, 640)):
        for scale in pyramid_scales(height, width, MTCNNConfig(min_face_size=20)):
            check_shape("pnet.onnx", (PNET_MAX_BATCH, int(height * scale + 1), int(width * scale + 1), 3), profile)


def test_a_pyramid_level_beyond_the_profile_is_refused_in_one_line(input_shapes):
    profile = profile_for(input_shapes["pnet"], 64)
    scale = pyramid_scales(1080, 1920, MTCNNConfig(min_face_size=12))[0]
    with pytest.raises(ValueError, match="downscale the frames or raise min_face_size") as refused:
        check_shape("pnet.onnx", (1, int(1080 * scale + 1), int(1920 * scale + 1), 3), profile)
    assert "\n" not in str(refused.value) and "pnet.onnx: input 1x1081x1921x3" in str(refused.value)


@pytest.mark.parametrize("min_face_size", [12, 12.5, 16, 17, 20, 24.3, 40, 100])
def test_frames_up_to_the_largest_side_fit_pnet_and_one_pixel_more_do_not(input_shapes, min_face_size):
    profile = profile_for(input_shapes["pnet"], 64)
    config = MTCNNConfig(min_face_size=min_face_size)
    largest = largest_frame_side(PNET_MAX_SIDE, min_face_size)
    for height, width in ((largest, largest), (largest // 2, largest)):
        for scale in pyramid_scales(height, width, config):
            check_shape("pnet.onnx", (1, int(height * scale + 1), int(width * scale + 1), 3), profile)
    beyond = largest + 1
    level = int(beyond * pyramid_scales(beyond, beyond, config)[0] + 1)
    with pytest.raises(ValueError, match="outside the TensorRT engine's profile"):
        check_shape("pnet.onnx", (1, level, level, 3), profile)


def test_the_tensorrt_class_states_its_largest_input_side_and_other_backends_none():
    assert TensorRtBackend.max_input_side == PNET_MAX_SIDE
    assert backend_class("onnxruntime").max_input_side is None
    check_image_side(backend_class("onnxruntime"), 100_000, 12)  # no limit
    check_image_side(TensorRtBackend, 1920, 20)  # the profile's own case


@pytest.mark.parametrize(("max_side", "min_face_size"), [(1600, 12), (1922, 20), (4000, 20), (1153, 12)])
def test_a_max_side_beyond_the_profile_is_refused_naming_the_min_face_size_that_fits(max_side, min_face_size):
    with pytest.raises(FrameTooLarge) as refused:
        check_image_side(TensorRtBackend, max_side, min_face_size)
    message = str(refused.value)
    largest = largest_frame_side(PNET_MAX_SIDE, min_face_size)
    assert "\n" not in message and f"up to {largest} px" in message and f"{PNET_MAX_SIDE} px" in message
    needed = int(re.search(r"needs a min face size of (\d+) px", message).group(1))
    # the smallest whole min face size that takes these images
    fits = largest_frame_side(PNET_MAX_SIDE, needed - 1), largest_frame_side(PNET_MAX_SIDE, needed)
    assert fits[0] < max_side <= fits[1]


@pytest.mark.parametrize("shape", [(65, 24, 24, 3), (0, 24, 24, 3), (1, 48, 48, 3), (1, 24, 24)])
def test_an_input_outside_a_fixed_profile_is_refused(input_shapes, shape: tuple[int, ...]):
    with pytest.raises(ValueError, match=r"rnet.onnx: input .* is outside the TensorRT engine's profile \(1x24x24x3 to "
                                          r"64x24x24x3\)"):
        check_shape("rnet.onnx", shape, profile_for(input_shapes["rnet"], 64))


# -- on a GPU -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crops(engine_dir: Path) -> np.ndarray:
    return face_crops(engine_dir, sample_photos())


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_facenet_embeddings_match_onnxruntime(engine_dir: Path, crops: np.ndarray, precision: str):
    reference = open_backend("onnxruntime", engine_dir / "facenet.onnx").run(crops)[0]
    ours = open_backend("tensorrt", engine_dir / "facenet.onnx", BackendOptions(precision=precision)).run(crops)[0]
    assert np.sum(ours * reference, axis=1).min() >= MIN_COSINE[precision]


@needs_gpu
def test_mtcnn_outputs_match_onnxruntime(engine_dir: Path):
    for name, batches in mtcnn_inputs(sample_photos()).items():
        ours = open_backend("tensorrt", engine_dir / ENGINE_FILES[name])
        theirs = open_backend("onnxruntime", engine_dir / ENGINE_FILES[name])
        for batch in batches:
            got, expected = ours.run(batch), theirs.run(batch)
            assert len(got) == len(expected), name
            for a, b in zip(got, expected):
                assert a.shape == b.shape and float(np.abs(a - b).max()) <= MTCNN_TOLERANCE, name


@needs_gpu
def test_a_second_open_uses_the_cached_engine(engine_dir: Path):
    options = BackendOptions(max_batch=16)
    first = open_backend("tensorrt", engine_dir / "onet.onnx", options)
    folder = next((engine_dir / "tensorrt").glob("*/onet-fp32-b16-*"))
    built = (folder / "engine.plan").stat().st_mtime_ns
    second = open_backend("tensorrt", engine_dir / "onet.onnx", options)
    assert (folder / "engine.plan").stat().st_mtime_ns == built
    batch = np.random.default_rng(0).uniform(0, 255, (5, 48, 48, 3)).astype(np.float32)
    for a, b in zip(first.run(batch), second.run(batch)):
        np.testing.assert_array_equal(a, b)


@needs_gpu
def test_lfw_view1_accuracy_within_0_002_of_onnxruntime(lfw_view1: Path):
    accuracy = {}
    for backend in ("onnxruntime", "tensorrt"):
        run = run_cli("eval-pairs", "--pairs", str(lfw_view1 / "pairsDevTest.txt"),
                      "--images", str(lfw_view1 / "deepfunneled"), "--backend", backend, "--json", timeout=1800)
        assert run.returncode == 0, run.stderr
        accuracy[backend] = json.loads(run.stdout)["accuracy"]
    assert abs(accuracy["tensorrt"] - accuracy["onnxruntime"]) <= LFW_TOLERANCE
