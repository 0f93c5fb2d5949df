"""TensorRT on an NVIDIA GPU: each ONNX file of engines/ compiled into a TensorRT engine, run with PyCUDA.

Not yet run on a GPU by the project: this backend is written against the TensorRT 10 and PyCUDA
documentation, and its tests that need a GPU (parity with ONNX Runtime, LFW accuracy) skip on
machines without one. No speed or accuracy figure has been measured for it.

Install: ``pip install 'streamrec[tensorrt]'`` (TensorRT 10 and PyCUDA), on a machine with an
NVIDIA driver and CUDA. Without them, or without a CUDA device, :meth:`TensorRtBackend.check_options`
refuses in one line naming what is missing, before any engine is built.

Precision. ``fp32`` (with TensorRT's TF32, on by default, switched off: it rounds the inputs of
products to 10-bit mantissas), or ``fp16`` (TensorRT may then run layers in half precision;
inputs and outputs stay as the ONNX file declares them). ``int8`` is refused: TensorRT's int8 needs a
calibration of its own, which this backend does not do; ``bf16`` is refused too.

Engines. Compiling takes minutes, so an engine is compiled once and cached under the engines
folder, in ``tensorrt/<GPU>-trt<version>/<model>-<precision>-b<max batch>-<ONNX sha256>/``
(``engine.plan`` and ``manifest.json``): a TensorRT engine runs only on the GPU model and
TensorRT version it was built with, and the ONNX file's hash keys the model itself. An entry whose
manifest does not match its key, or whose plan file does not match the manifest's hash, or that
TensorRT cannot load, is compiled again. ``streamrec engines build --backend tensorrt`` compiles
all four ahead of time.

Shapes. Every engine has one optimisation profile: the batch from 1 to ``max_batch``; for P-Net
also height and width from 12 (its window) to :data:`PNET_MAX_SIDE`, which covers pyramid levels
of frames up to 1920 px on either side at ``min_face_size`` 20 or more (the first level is the
frame scaled by 12 / ``min_face_size``). P-Net's batch is at most :data:`PNET_MAX_BATCH` frames
(larger batches are split): the engine's working memory is sized for the largest shape of its
profile. Frames that would need a larger level are refused before detection, as the class says
its largest side (:attr:`Backend.max_input_side`, checked by :mod:`streamrec.faces`); an input
outside the profile is still refused in one line here, last.

Memory and the stream. Page-locked host buffers and device buffers are allocated once per input
shape bucket (the input shape without its batch: one for R-Net, O-Net and FaceNet, one per
pyramid level for P-Net, at most :data:`BUCKETS` kept) and reused, grown when a larger batch
comes. A call queues the copy in, the inference and the copies out on one CUDA stream and waits
once, at the end.

CUDA context. One per process and device, created on first use in the process that runs the
models (the pipeline's inference stage runs in a process of its own, started by spawning, so no
CUDA state crosses a fork), made current around each call and kept until the process exits.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import Self

from streamrec.backends.base import Backend, BackendOptions, TensorSpec
from streamrec.engines.sources import sha256_file

__all__ = [
    "BUCKETS",
    "PNET_MAX_BATCH",
    "PNET_MAX_SIDE",
    "EngineKey",
    "Profile",
    "TensorRtBackend",
    "cached_plan",
    "check_shape",
    "cuda_ordinal",
    "manifest",
    "profile_for",
]

#: P-Net's height and width bound: a 1920 px side at the pyramid's first scale for min_face_size 20
PNET_MAX_SIDE = int(1920 * 12 / 20 + 1)
#: P-Net's batch bound (frames of one size): its working memory grows with batch x height x width
PNET_MAX_BATCH = 8
#: P-Net's most frequent level: a 1080p frame at min_face_size 40 (the configuration's default)
_PNET_OPT_SIDES = (int(1080 * 12 / 40 + 1), int(1920 * 12 / 40 + 1))
#: input shape buckets whose buffers are kept (P-Net needs about ten per frame size)
BUCKETS = 32
#: scratch memory TensorRT may use while running a layer
WORKSPACE_BYTES = 1 << 30
#: seconds between "still compiling" lines
_HEARTBEAT_S = 30.0
_INSTALL = "pip install 'streamrec[tensorrt]' (needs an NVIDIA GPU with its driver and CUDA)"


@dataclass(frozen=True)
class Profile:
    """An optimisation profile: the smallest, the tuned-for and the largest input shape."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def profile_for(shape: tuple[int | None, ...], max_batch: int) -> Profile:
    """The profile of an input of ``shape`` (``None`` for a dynamic dimension): batch 1 to
    ``max_batch`` (tuned for ``max_batch``); a dynamic height and width (P-Net) 12 to
    :data:`PNET_MAX_SIDE` (tuned for a 1080p frame at min_face_size 40), batch at most
    :data:`PNET_MAX_BATCH` (tuned for 1)."""
    if any(d is None for d in shape[1:]):
        if len(shape) != 4 or shape[3] is None:
            raise ValueError(f"only the batch, or the batch, height and width, may be dynamic (got {shape})")
        batch = min(max_batch, PNET_MAX_BATCH)
        return Profile((1, 12, 12, shape[3]), (1, *_PNET_OPT_SIDES, shape[3]),
                       (batch, PNET_MAX_SIDE, PNET_MAX_SIDE, shape[3]))
    fixed = tuple(d for d in shape[1:] if d is not None)  # none is None here (checked above)
    return Profile((1, *fixed), (max_batch, *fixed), (max_batch, *fixed))


def check_shape(name: str, shape: tuple[int, ...], profile: Profile) -> None:
    """Raise ``ValueError`` (one line) if ``shape`` lies outside ``profile``."""
    if len(shape) == len(profile.max) and all(lo <= d <= hi for d, lo, hi in zip(shape, profile.min, profile.max)):
        return
    if len(profile.max) == 4 and profile.max[1] != profile.min[1]:
        raise ValueError(
            f"{name}: input {'x'.join(map(str, shape))} is outside the TensorRT engine's profile (height and width "
            f"{profile.min[1]}-{profile.max[1]}: frames up to 1920 px at min_face_size 20 or more); "
            "downscale the frames or raise min_face_size"
        )
    raise ValueError(
        f"{name}: input {'x'.join(map(str, shape))} is outside the TensorRT engine's profile "
        f"({'x'.join(map(str, profile.min))} to {'x'.join(map(str, profile.max))})"
    )


def cuda_ordinal(device: str | None) -> int:
    """The CUDA device number of ``device``: ``None``, ``cuda`` (device 0) or ``cuda:N``."""
    match = re.fullmatch(r"cuda(?::(\d+))?", (device or "cuda").lower())
    if match is None:
        raise ValueError(f"the tensorrt backend runs on a CUDA device: cuda or cuda:N (got device {device!r})")
    return int(match.group(1) or 0)


@dataclass(frozen=True)
class EngineKey:
    """What a compiled engine depends on: the GPU model, the TensorRT version, the precision,
    the profile's largest batch, and the ONNX file (its name and SHA-256)."""

    gpu: str
    tensorrt: str
    precision: str
    max_batch: int
    onnx_file: str
    onnx_sha256: str

    @classmethod
    def of(cls, onnx_path: Path, gpu: str, tensorrt: str, precision: str, max_batch: int) -> EngineKey:
        return cls(gpu, tensorrt, precision, max_batch, onnx_path.name, sha256_file(onnx_path))

    def folder(self, engine_dir: Path) -> Path:
        """Where this engine is cached under ``engine_dir``."""
        gpu = re.sub(r"[^A-Za-z0-9.]+", "-", self.gpu).strip("-")
        stem = Path(self.onnx_file).stem
        return engine_dir / "tensorrt" / f"{gpu}-trt{self.tensorrt}" / (
            f"{stem}-{self.precision}-b{self.max_batch}-{self.onnx_sha256[:16]}"
        )


def manifest(key: EngineKey, plan: Path, profile: Profile, build_seconds: float) -> dict[str, Any]:
    """The record written beside a compiled engine: its key, profile and the plan file's hash."""
    return {
        "format": 1,
        "key": asdict(key),
        "profile": {"min": list(profile.min), "opt": list(profile.opt), "max": list(profile.max)},
        "plan_sha256": sha256_file(plan),
        "plan_bytes": plan.stat().st_size,
        "build_seconds": round(build_seconds, 1),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def cached_plan(key: EngineKey, engine_dir: Path) -> Path | None:
    """The cached plan file for ``key``, or ``None`` when there is none, or its manifest is
    unreadable, belongs to another key, or does not match the plan file's hash."""
    folder = key.folder(engine_dir)
    plan = folder / "engine.plan"
    try:
        record = json.loads((folder / "manifest.json").read_text())
        valid = record["key"] == asdict(key) and record["plan_sha256"] == sha256_file(plan)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return plan if valid else None


def _import() -> tuple[Any, Any]:
    """``tensorrt`` and ``pycuda.driver``, or ``ValueError`` naming what is missing."""
    missing, modules = [], []
    for name in ("tensorrt", "pycuda.driver"):
        try:
            modules.append(importlib.import_module(name))
        except (ImportError, OSError):  # OSError: the package is there, a shared library it needs is not
            missing.append(name.split(".")[0])
    if missing:
        raise ValueError(f"the tensorrt backend needs {' and '.join(missing)}, not installed here: {_INSTALL}")
    version = str(modules[0].__version__)
    if version.split(".")[0] != "10":  # 11 dropped the fp16 builder flag (networks are strongly typed)
        raise ValueError(f"the tensorrt backend runs on TensorRT 10, and this is TensorRT {version}: {_INSTALL}")
    return modules[0], modules[1]


@functools.cache
def _cuda_context(ordinal: int) -> Any:
    """This process's CUDA context on device ``ordinal``, created once, left not current."""
    _, cuda = _import()
    context = cuda.Device(ordinal).make_context()
    cuda.Context.pop()
    return context


def _gpu_name(ordinal: int) -> str:
    """The device's model name; raises ``ValueError`` when CUDA has no such device."""
    _, cuda = _import()
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise ValueError(f"the tensorrt backend found no CUDA device ({str(exc).strip()})") from None
    if count == 0:
        raise ValueError("the tensorrt backend found no CUDA device")
    if ordinal >= count:
        names = ", ".join(f"cuda:{i} {cuda.Device(i).name()}" for i in range(count))
        raise ValueError(f"there is no CUDA device cuda:{ordinal} (this machine has {names})")
    return str(cuda.Device(ordinal).name())


class _Heartbeat:
    """Prints ``still compiling ...`` every :data:`_HEARTBEAT_S` seconds while a build runs (the
    builder releases the GIL, so this thread runs meanwhile)."""

    def __init__(self, what: str) -> None:
        self.what, self.done, self.start = what, threading.Event(), time.monotonic()
        self.thread = threading.Thread(target=self._beat, name="tensorrt-build-progress", daemon=True)

    def _beat(self) -> None:
        while not self.done.wait(_HEARTBEAT_S):
            _say(f"still compiling {self.what} ({time.monotonic() - self.start:.0f} s)")

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


@functools.cache
def _logger() -> Any:
    """One TensorRT logger per process: it must outlive every builder and runtime made with it."""
    trt, _ = _import()
    return trt.Logger(trt.Logger.WARNING)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _compile(trt: Any, key: EngineKey, onnx_path: Path, folder: Path) -> Path:
    """Compile ``onnx_path`` into ``folder/engine.plan`` with its manifest; returns the plan."""
    builder = trt.Builder(_logger())
    network = builder.create_network(0)  # TensorRT 10: every network has an explicit batch
    parser = trt.OnnxParser(network, _logger())
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT cannot read {onnx_path.name}: {errors}")
    tensor = network.get_input(0)
    profile = profile_for(tuple(None if d < 0 else int(d) for d in tensor.shape), key.max_batch)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if key.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    else:  # TF32 is on by default and rounds products to 10-bit mantissas: not what fp32 promises
        config.clear_flag(trt.BuilderFlag.TF32)
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(tensor.name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(trt_profile)
    what = f"{onnx_path.name} ({key.precision}, {key.gpu}, TensorRT {key.tensorrt})"
    _say(f"compiling {what} into a TensorRT engine, once: this takes minutes")
    start = time.monotonic()
    with _Heartbeat(what):
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ValueError(f"TensorRT could not compile {onnx_path.name} (its log above says why)")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".engine.plan.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(plan)
    os.replace(tmp, folder / "engine.plan")
    record = manifest(key, folder / "engine.plan", profile, time.monotonic() - start)
    tmp = folder / f".manifest.json.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / "manifest.json")
    _say(f"compiled {what} in {record['build_seconds']:.0f} s: {folder}")
    return folder / "engine.plan"


@dataclass
class _Buffers:
    """Page-locked host and device memory for one input shape bucket, ``capacity`` items deep."""

    capacity: int
    host_in: np.ndarray
    device_in: Any
    host_out: list[np.ndarray]
    device_out: list[Any]


class TensorRtBackend(Backend):
    """Runs an ONNX file as a TensorRT engine on a CUDA device (``options.device``: ``cuda:N``)."""

    kind = "tensorrt"
    library = "tensorrt"
    precisions = ("fp32", "fp16")
    max_input_side = PNET_MAX_SIDE

    @classmethod
    def check_options(cls, options: BackendOptions) -> None:
        if options.precision == "int8":
            raise ValueError(
                "the tensorrt backend runs fp32 and fp16 only: its int8 would need a TensorRT calibration, "
                "which it does not do (got precision 'int8')"
            )
        super().check_options(options)
        ordinal = cuda_ordinal(options.device)
        _import()
        _gpu_name(ordinal)

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        super().__init__(model_path, options)
        trt, self._cuda = _import()
        ordinal = cuda_ordinal(options.device)
        key = EngineKey.of(self.model_path, _gpu_name(ordinal), trt.__version__, options.precision, options.max_batch)
        self._context = _cuda_context(ordinal)
        self._context.push()
        try:
            self._load(trt, key)
            self._stream = self._cuda.Stream()
        finally:
            self._cuda.Context.pop()
        self._buffers: OrderedDict[tuple[int, ...], _Buffers] = OrderedDict()

    def _load(self, trt: Any, key: EngineKey) -> None:
        folder = key.folder(self.model_path.parent)
        plan = cached_plan(key, self.model_path.parent) or _compile(trt, key, self.model_path, folder)
        self._runtime = trt.Runtime(_logger())
        self._engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if self._engine is None:  # written by another TensorRT build, or damaged: compile afresh
            _say(f"TensorRT could not load the cached engine in {folder}; compiling it again")
            self._engine = self._runtime.deserialize_cuda_engine(_compile(trt, key, self.model_path, folder).read_bytes())
        self._execution = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        specs = {
            name: TensorSpec(
                name,
                tuple(None if d < 0 else int(d) for d in self._engine.get_tensor_shape(name)),
                np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))),
            )
            for name in names
        }
        self.inputs = [specs[n] for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [specs[n] for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.profile = profile_for(self.inputs[0].shape, key.max_batch)
        if self.profile.max[0] < self.options.max_batch:  # P-Net: Backend.run splits batches to fit
            self.options = replace(self.options, max_batch=self.profile.max[0])

    def _allocate(self, shape: tuple[int, ...]) -> _Buffers:
        """Buffers for inputs shaped ``(n, *shape[1:])`` up to ``n = shape[0]``, sized by the
        output shapes TensorRT derives for that input."""
        cuda = self._cuda
        self._execution.set_input_shape(self.inputs[0].name, shape)
        host_in = cuda.pagelocked_empty(shape, self.inputs[0].dtype)
        host_out = [
            cuda.pagelocked_empty(tuple(self._execution.get_tensor_shape(spec.name)), spec.dtype)
            for spec in self.outputs
        ]
        return _Buffers(shape[0], host_in, cuda.mem_alloc(host_in.nbytes), host_out,
                        [cuda.mem_alloc(out.nbytes) for out in host_out])

    def _buffers_for(self, shape: tuple[int, ...]) -> _Buffers:
        bucket = shape[1:]
        buffers = self._buffers.get(bucket)
        if buffers is None or buffers.capacity < shape[0]:
            # grow to the next power of two, so a slowly rising batch reallocates only a few times
            capacity = min(1 << (shape[0] - 1).bit_length(), self.options.max_batch)
            buffers = self._allocate((capacity, *bucket))
            self._buffers[bucket] = buffers
            if len(self._buffers) > BUCKETS:
                self._buffers.popitem(last=False)
        self._buffers.move_to_end(bucket)
        return buffers

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        check_shape(self.model_path.name, batch.shape, self.profile)
        cuda, count = self._cuda, len(batch)
        self._context.push()
        try:
            buffers = self._buffers_for(batch.shape)
            buffers.host_in[:count] = batch
            cuda.memcpy_htod_async(buffers.device_in, buffers.host_in[:count], self._stream)
            if not self._execution.set_input_shape(self.inputs[0].name, batch.shape):
                raise ValueError(f"{self.model_path.name}: TensorRT refused input shape {batch.shape}")
            self._execution.set_tensor_address(self.inputs[0].name, int(buffers.device_in))
            for spec, device in zip(self.outputs, buffers.device_out):
                self._execution.set_tensor_address(spec.name, int(device))
            if not self._execution.execute_async_v3(stream_handle=self._stream.handle):
                raise RuntimeError(f"{self.model_path.name}: TensorRT could not run the batch")
            for host, device in zip(buffers.host_out, buffers.device_out):
                cuda.memcpy_dtoh_async(host[:count], device, self._stream)
            self._stream.synchronize()
            return [host[:count].copy() for host in buffers.host_out]
        finally:
            cuda.Context.pop()

    def close(self) -> None:
        self._context.push()
        try:
            for buffers in self._buffers.values():
                buffers.device_in.free()
                for device in buffers.device_out:
                    device.free()
            self._buffers.clear()
            del self._execution, self._engine, self._stream
        finally:
            self._cuda.Context.pop()

