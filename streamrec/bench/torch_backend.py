"""``streamrec bench torch``: the torch backend beside the ONNX Runtime path, in one process,
interleaved round by round so a noisy neighbour hits both alike.

Measures whole-frame MTCNN (the host cascade around ONNX Runtime's nets against the torch
cascade on its device) per batch of frames, and FaceNet per face at several batch sizes; with
``compile``, also ``torch.compile``d nets (and how long compiling took). Every figure is a median
over the rounds; the record names the machine, its CPU flags and its load, because the machines
this runs on are shared.

Result keys (``--json``, ``--out``): ``machine`` (CPU, cores, flags that matter for inference,
load average before and after, library versions), ``device``, ``threads``, ``rounds``,
``detection`` (one row per frame size, minimum face and batch: ``onnxruntime`` and ``torch``
summaries in ms per call (``median_ms``, ``p10_ms``, ``p90_ms``, ``runs``), ``per_frame_ms`` of
each, ``faces`` each found, ``torch_compiled`` and ``compile_s`` with ``compile``), ``facenet``
(one row per batch: the same summaries and ``per_face_ms``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import numpy as np

from streamrec.backends import BackendOptions, open_backend
from streamrec.bench.models import machine
from streamrec.bench.timing import interleave, summary
from streamrec.detect.mtcnn import MTCNN, MTCNNConfig
from streamrec.engines import ENGINE_FILES

__all__ = ["TorchBenchSettings", "bench_torch"]

#: CPU flags that decide what inference can use.
_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")

Report = Callable[[str], None]


@dataclass(frozen=True)
class TorchBenchSettings:
    """What to time: ``cases`` are (width, height, min face); ``batches`` frames per detection
    call; ``facenet_batches`` faces per FaceNet call; ``rounds`` interleaved rounds of each."""

    cases: tuple[tuple[int, int, float], ...] = ((640, 480, 40.0), (1920, 1080, 20.0))
    batches: tuple[int, ...] = (1, 8)
    facenet_batches: tuple[int, ...] = (1, 8, 32)
    rounds: int = 30
    device: str = "cpu"
    threads: int | None = None
    compile: bool = False


def _machine() -> dict[str, Any]:
    from streamrec.backends.torch.device import cpu_flags

    record = machine()
    record["cpu_flags"] = [f for f in _FLAGS if f in cpu_flags()]
    record["load_average"] = [round(v, 2) for v in os.getloadavg()]
    record["versions"] = {name: version(name) for name in ("torch", "torchvision", "onnxruntime", "numpy", "opencv-python-headless")}
    return record


def _compile(net: Any, dynamic: bool) -> None:
    """Put ``net``'s module through ``torch.compile``; compiling happens on its first call.
    ``dynamic``: the cascade's batch and pyramid sizes vary from call to call."""
    import torch

    net.module = torch.compile(net.module, dynamic=dynamic)


def _seconds(fn: Callable[[np.ndarray], object], item: np.ndarray) -> float:
    """How long one call takes (the first call of a compiled net: compiling included)."""
    start = time.perf_counter()
    fn(item)
    return time.perf_counter() - start


def _detection(settings: TorchBenchSettings, engine_dir: Path, frames: dict[tuple[int, int], list[np.ndarray]], report: Report) -> list[dict[str, Any]]:
    from streamrec.backends.torch import TorchMTCNN, load_nets
    from streamrec.backends.torch.device import open_device

    options = BackendOptions(threads=settings.threads, max_batch=64)
    device = open_device(settings.device)
    pnet, rnet, onet = (open_backend("onnxruntime", engine_dir / ENGINE_FILES[n], options) for n in ("pnet", "rnet", "onet"))
    nets = load_nets(device, "fp32", options)
    compiled = load_nets(device, "fp32", options) if settings.compile else None
    rows = []
    for width, height, min_face in settings.cases:
        config = MTCNNConfig(min_face_size=min_face)
        contenders: dict[str, Callable[[np.ndarray], object]] = {
            "onnxruntime": MTCNN(pnet, rnet, onet, config).detect,
            "torch": TorchMTCNN(nets.pnet, nets.rnet, nets.onet, config).detect,
        }
        compile_s = None
        if compiled is not None:
            for net in (compiled.pnet, compiled.rnet, compiled.onet):
                _compile(net, dynamic=True)
            detector = TorchMTCNN(compiled.pnet, compiled.rnet, compiled.onet, config)
            compile_s = _seconds(detector.detect, np.stack(frames[(width, height)][:1]))
            contenders["torch_compiled"] = detector.detect
        for batch in settings.batches:
            pool = frames[(width, height)]
            batches = [np.stack([pool[(i + j) % len(pool)] for j in range(batch)]) for i in range(len(pool))]
            times = interleave(contenders, batches, settings.rounds)
            row: dict[str, Any] = {"frame": f"{width}x{height}", "min_face_size": min_face, "batch": batch}
            for name, runs in times.items():
                row[name] = summary(runs)
                row[name]["per_frame_ms"] = row[name]["median_ms"] / batch
            row["faces"] = {
                name: int(sum(len(f) for f in cast(list, fn(batches[0])))) for name, fn in contenders.items()
            }
            if compile_s is not None:
                row["compile_s"] = round(compile_s, 1)
            rows.append(row)
            report(
                f"MTCNN {width}x{height} min face {min_face:g}, {batch} frame(s) per call: "
                + ", ".join(f"{name} {row[name]['per_frame_ms']:.1f} ms/frame" for name in contenders)
            )
    return rows


def _facenet(settings: TorchBenchSettings, engine_dir: Path, crops: np.ndarray, report: Report) -> list[dict[str, Any]]:
    from streamrec.backends.torch import TorchFaceEmbedder, load_nets
    from streamrec.backends.torch.device import open_device

    options = BackendOptions(threads=settings.threads, max_batch=max(settings.facenet_batches))
    ort = open_backend("onnxruntime", engine_dir / ENGINE_FILES["facenet"], options)
    nets = load_nets(open_device(settings.device), "fp32", options)
    ours = TorchFaceEmbedder(nets.facenet)
    contenders: dict[str, Callable[[np.ndarray], object]] = {"onnxruntime": ort.run, "torch": ours.embed_crops}
    compiled = None
    if settings.compile:
        compiled_nets = load_nets(open_device(settings.device), "fp32", options)
        _compile(compiled_nets.facenet, dynamic=False)
        compiled = TorchFaceEmbedder(compiled_nets.facenet)
        contenders["torch_compiled"] = compiled.embed_crops
    rows = []
    for batch in settings.facenet_batches:
        inputs = [np.ascontiguousarray(np.resize(np.roll(crops, i, axis=0), (batch, *crops.shape[1:]))) for i in range(4)]
        row: dict[str, Any] = {"batch": batch}
        if compiled is not None:
            row["compile_s"] = round(_seconds(compiled.embed_crops, inputs[0]), 1)
        times = interleave(contenders, inputs, settings.rounds)
        for name, runs in times.items():
            row[name] = summary(runs)
            row[name]["per_face_ms"] = row[name]["median_ms"] / batch
        rows.append(row)
        report(f"FaceNet batch {batch}: " + ", ".join(f"{name} {row[name]['per_face_ms']:.1f} ms/face" for name in contenders))
    return rows


def _face_crops(frames: list[np.ndarray], engine_dir: Path) -> np.ndarray:
    """Real face crops (box and margin) of the frames, found by the ONNX Runtime path."""
    from streamrec.embed.align import box_crops

    pnet, rnet, onet = (open_backend("onnxruntime", engine_dir / ENGINE_FILES[n]) for n in ("pnet", "rnet", "onet"))
    found = MTCNN(pnet, rnet, onet).detect(np.stack(frames))
    crops = [box_crops(frame, faces.boxes, 0.15) for frame, faces in zip(frames, found) if len(faces)]
    if not crops:
        raise ValueError("no face found in the benchmark frames to time FaceNet on")
    return np.concatenate(crops)


def bench_torch(
    settings: TorchBenchSettings, engine_dir: Path, frames: dict[tuple[int, int], list[np.ndarray]], report: Report
) -> dict[str, Any]:
    """Run the whole comparison; ``frames`` holds the frames of each case's size."""
    first = _machine()
    detection = _detection(settings, engine_dir, frames, report)
    facenet = _facenet(settings, engine_dir, _face_crops(next(iter(frames.values())), engine_dir), report)
    first["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return {
        "machine": first,
        "device": settings.device,
        "threads": settings.threads,
        "rounds": settings.rounds,
        "detection": detection,
        "facenet": facenet,
    }
