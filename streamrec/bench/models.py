"""``streamrec bench models``: per-model latency and throughput, and whole-frame detection
time side by side with facenet-pytorch's ``MTCNN.detect()`` on the same frames.

Every net is timed through the backends the pipeline can use, each backend (and for FaceNet each
precision) alternated call by call with the others so machine noise hits all alike.
facenet-pytorch runs in the same process with ``torch.set_num_threads`` set to the same thread
budget, interleaved round by round with our detector on each backend.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from streamrec.backends import BackendName, BackendOptions, backend_class, default_threads, open_backend
from streamrec.backends.cpu import cpu_info
from streamrec.bench.timing import alternate, interleave, summary
from streamrec.engines import ENGINE_FILES, facenet_file
from streamrec.faces import DetectionPrecision, FaceModels, ModelsConfig, check_detection

__all__ = ["bench_detection", "bench_frames", "bench_nets", "detection_choices", "detector_label", "engine_choices", "isa_cap_text",
           "machine"]

#: the input each timed net takes (P-Net's cost depends on the frame: see bench_detection)
_SHAPES = {"rnet": (24, 24, 3), "onet": (48, 48, 3), "facenet": (160, 160, 3)}


def gpu(device: str | None) -> dict[str, Any] | None:
    """The NVIDIA GPU a ``cuda``/``cuda:N`` device names, for the record beside its figures: name,
    compute capability, memory, the driver (as the kernel reports it) and the CUDA that torch
    was built with; ``None`` for any other device. Read through torch, the one library here that
    reports it without a GPU-specific dependency."""
    if not device or not device.startswith("cuda"):
        return None
    try:
        import torch

        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
    except Exception as exc:  # noqa: BLE001 - the record says why instead of losing the run
        return {"device": device, "error": f"{type(exc).__name__}: {exc}"}
    driver = Path("/proc/driver/nvidia/version")
    return {
        "device": device, "name": props.name, "capability": f"{props.major}.{props.minor}",
        "memory_gb": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda, "torch": torch.__version__,
        "driver": driver.read_text().splitlines()[0].strip() if driver.is_file() else None,
    }


def machine(device: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on: the CPU with the instruction sets that decide which
    precisions are fast (AMX, AVX-512 BF16, VNNI, AVX2), cores, memory, system; and the GPU
    when ``device`` names one (:func:`gpu`). ``isa_cap`` records ``ONEDNN_MAX_CPU_ISA`` when it
    is set: oneDNN, whose kernels OpenVINO and PyTorch run on the CPU, then uses nothing beyond
    that instruction set (``AVX512_CORE_BF16``: the kernels of a CPU without AMX), though the
    flags still list what the CPU has; ONNX Runtime's own kernels ignore it."""
    cpu = cpu_info()
    memory_gb = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory_gb = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    return {
        "cpu": cpu.model, "cpu_flags": list(cpu.flags) if cpu.flags is not None else None, "cores_available": default_threads(), "cpu_count": os.cpu_count(), "memory_gb": memory_gb,
        "os": platform.platform(terse=True), "python": platform.python_version(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "gpu": gpu(device),
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA") or None,
    }


def isa_cap_text(record: dict[str, Any]) -> str:
    """``", oneDNN limited to X"`` for a :func:`machine` record whose run set ``isa_cap``, else
    nothing: said beside the CPU wherever its figures are shown."""
    return f", oneDNN limited to {record['isa_cap']}" if record.get("isa_cap") else ""


def probe_video(path: Path) -> dict[str, Any]:
    """Width, height, frame rate and frame count of a video file; ``ValueError`` if unreadable."""
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            raise ValueError(f"{path}: not a readable video file")
        return {
            "width": int(frame.shape[1]),
            "height": int(frame.shape[0]),
            "fps": round(float(capture.get(cv2.CAP_PROP_FPS)), 3),
            "frames": int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
        }
    finally:
        capture.release()


def bench_frames(source: Path | None, size: tuple[int, int], count: int = 8) -> list[np.ndarray]:
    """``count`` RGB frames of ``size`` (w, h): from a video or image file, else the sample photos.

    Frames are resized to cover ``size`` and centre-cropped, so faces keep their proportions.
    """
    from streamrec.images import load_image
    from streamrec.samples import SAMPLES, sample_path

    raw: list[np.ndarray] = []
    if source is not None and source.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov", ".webm"):
        capture = cv2.VideoCapture(str(source))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or count
        for index in np.linspace(0, max(total - 1, 0), count).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                raw.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        capture.release()
        if not raw:
            raise ValueError(f"{source}: no frames could be read")
    elif source is not None:
        raw = [load_image(source).rgb]
    else:
        raw = [load_image(sample_path(name)).rgb for name in SAMPLES]
    width, height = size
    frames = []
    for image in raw:
        scale = max(width / image.shape[1], height / image.shape[0])
        resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        y0 = (resized.shape[0] - height) // 2
        x0 = (resized.shape[1] - width) // 2
        frames.append(np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width]))
    return [frames[i % len(frames)] for i in range(max(count, len(frames)))][: max(count, 1)]


_P = TypeVar("_P", bound=str)


def _runnable(
    backends: list[BackendName], precisions: list[_P], check: Callable[[BackendName, _P], None], what: str
) -> tuple[list[tuple[BackendName, _P]], list[str]]:
    """The (backend, precision) pairs ``check`` lets through, and for each it refuses one line,
    ``"BACKEND WHATPRECISION: why"``."""
    runnable: list[tuple[BackendName, _P]] = []
    refused: list[str] = []
    for backend in backends:
        for precision in precisions:
            try:
                check(backend, precision)
            except ValueError as exc:
                refused.append(f"{backend} {what}{precision}: {exc}")
                continue
            runnable.append((backend, precision))
    return runnable, refused


def engine_choices(
    backends: list[BackendName], precisions: list[str], device: str | None = None
) -> tuple[list[tuple[BackendName, str]], list[str]]:
    """The (backend, precision) pairs that can run here on ``device``, and one line for each
    that cannot (a precision the backend does not offer, or this CPU or device cannot compute
    in, or a device the backend does not run on)."""
    def check(backend: BackendName, precision: str) -> None:
        backend_class(backend).check_options(BackendOptions(precision=precision, device=device))

    return _runnable(backends, precisions, check, "")


def detection_choices(
    backends: list[BackendName], precisions: list[DetectionPrecision], device: str | None = None
) -> tuple[list[tuple[BackendName, DetectionPrecision]], list[str]]:
    """The (backend, precision) pairs that run R-Net and O-Net here on ``device``, and one line
    for each that cannot (:func:`~streamrec.faces.check_detection`)."""
    def check(backend: BackendName, precision: DetectionPrecision) -> None:
        check_detection(backend, precision, BackendOptions(device=device))

    return _runnable(backends, precisions, check, "detection ")


def detector_label(backend: str, precision: str) -> str:
    """How a detection result names its engine: the backend, with R-Net's and O-Net's precision
    when it is not fp32 (``openvino bf16``)."""
    return backend if precision == "fp32" else f"{backend} {precision}"


def bench_nets(
    engine_dir: Path,
    threads: int,
    batches: list[int],
    seconds: float,
    report: Callable[[str], None],
    engines: list[tuple[BackendName, str]],
    options: BackendOptions,
    detectors: list[tuple[BackendName, DetectionPrecision]],
) -> list[dict[str, Any]]:
    """Latency per batch and per item, and items per second, at each batch size: FaceNet for
    each (backend, precision) of ``engines``, R-Net and O-Net for each of ``detectors``, on the
    device and Triton server of ``options``. The engines of one model and batch are alternated
    call by call; each call returns host arrays, so a GPU's (or a server's) work is complete
    when it is timed."""
    rng = np.random.default_rng(0)
    rows = []
    for name, shape in _SHAPES.items():
        pairs: list[tuple[BackendName, str]] = engines if name == "facenet" else list(detectors)
        opened = {
            (backend, precision): open_backend(
                backend,
                engine_dir / (facenet_file(precision, backend) if name == "facenet" else ENGINE_FILES[name]),
                dataclasses.replace(options, threads=threads, max_batch=max(batches), precision=precision),
            )
            for backend, precision in pairs
        }
        for batch in batches:
            data = rng.integers(0, 256, (batch, *shape)).astype(next(iter(opened.values())).inputs[0].dtype)
            times = alternate({pair: functools.partial(net.run, data) for pair, net in opened.items()}, seconds)
            for (backend, precision), runs in times.items():
                stats = summary(runs)
                rows.append(
                    {
                        "model": name,
                        "backend": backend,
                        "precision": precision,
                        "batch": batch,
                        **stats,
                        "per_item_ms": stats["median_ms"] / batch,
                        "items_per_s": 1e3 * batch / stats["median_ms"],
                    }
                )
                report(
                    f"{name} {backend} {precision} batch {batch}: {stats['median_ms']:.2f} ms "
                    f"({stats['median_ms'] / batch:.2f} ms per item)"
                )
    return rows


def _facenet_pytorch_detector(min_face: float, threads: int) -> tuple[Callable[[np.ndarray], object] | None, str]:
    try:
        import torch
        from facenet_pytorch import MTCNN as ReferenceMTCNN
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available here"
        return None, f"facenet-pytorch not available: {type(exc).__name__}: {exc}"
    torch.set_num_threads(threads)
    reference = ReferenceMTCNN(min_face_size=min_face, keep_all=True, device="cpu")
    label = f"facenet-pytorch {importlib.metadata.version('facenet-pytorch')}, torch {torch.__version__}"
    return (lambda frame: reference.detect(frame, landmarks=True)), label


def bench_detection(
    engine_dir: Path,
    threads: int,
    frames: list[np.ndarray],
    min_faces: list[float],
    rounds: int,
    report: Callable[[str], None],
    detectors: list[tuple[BackendName, DetectionPrecision]],
    options: BackendOptions,
) -> list[dict[str, Any]]:
    """Whole-frame MTCNN time on each backend, with R-Net and O-Net in each precision of
    ``detectors`` (on the device and Triton server of ``options``), vs facenet-pytorch's
    ``detect()`` on the CPU, interleaved per frame, each through
    :class:`~streamrec.faces.FaceModels` as the pipeline uses it, and named by
    :func:`detector_label`. Every detector (the reference too) first runs over the frames
    twice, untimed; ours then wait for the compiles that sent off (OpenVINO's, per recurring
    input shape), so the timing sees the steady state a camera reaches after its first frames."""
    timed = dataclasses.replace(options, threads=threads)
    engines = {
        detector_label(b, p): FaceModels(ModelsConfig(backend=b, backend_options=timed, detection=p), engine_dir, report)
        for b, p in detectors
    }
    rows = []
    for min_face in min_faces:
        ours = {b: functools.partial(models.detect, min_face_size=min_face) for b, models in engines.items()}
        reference, label = _facenet_pytorch_detector(min_face, threads)
        competitors: dict[str, Callable[[np.ndarray], object]] = {b: detect for b, detect in ours.items()}
        if reference is not None:
            competitors["facenet-pytorch"] = reference
        for detect in competitors.values():
            for frame in frames * 2:
                detect(frame)
        for models in engines.values():
            for net in models.nets:
                net.finish_compiles()
        times = interleave(competitors, frames, rounds, warmup=0)
        row: dict[str, Any] = {
            "min_face_size": min_face,
            "frame": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
            "frames": len(frames),
            "streamrec": {b: summary(times[b]) for b in engines},
            "faces_found": {b: sum(len(d) for d in detect(np.stack(frames))) for b, detect in ours.items()},
            "reference": label,
        }
        line = ", ".join(f"streamrec on {b} {row['streamrec'][b]['median_ms']:.1f} ms" for b in engines)
        if reference is not None:
            row["facenet_pytorch"] = summary(times["facenet-pytorch"])
            theirs = row["facenet_pytorch"]["median_ms"]
            row["speedup"] = {b: theirs / row["streamrec"][b]["median_ms"] for b in engines}
            line += f", facenet-pytorch {theirs:.1f} ms"
        else:
            line += f"; {label}"
        report(f"MTCNN {row['frame']} min face {min_face:g}: {line}")
        rows.append(row)
    return rows
