"""OpenVINO on the CPU (or an Intel GPU): the same ONNX engines, with bf16 where the CPU has it.

OpenVINO reads the project's ONNX files directly; for FaceNet in int8 it reads the IR the engine
build quantizes for it (``facenet_int8_openvino.xml``).

Threads. On the CPU, ``INFERENCE_NUM_THREADS`` is ``threads``, with one stream, the latency hint
and CPU pinning off: streamrec runs its stages as separate processes, and pinned pools of two
processes can land on the same cores. After each call OpenVINO's oneTBB workers busy-wait for
about a millisecond of one core (OpenVINO documents this "worker wait"; no setting turns it off),
then sleep: an idle process uses no CPU, and the NumPy work between calls keeps its core. The wait
is paid per call, so a cascade of short calls pays it often: on 640x480 frames (min face 40, 2
threads, 2-core AMD EPYC) whole-frame MTCNN took 14 ms a frame on either CPU backend, with 27 ms
of CPU time under OpenVINO against 19 ms under ONNX Runtime, whose spinning is off. Pinned,
the wait is as long. tests/backends/test_openvino.py tells this bounded wait from a pool that spins.

Shapes. Each model is compiled once as read, with its dynamic dimensions (the batch; P-Net's
height and width), so any input runs at once. A model compiled for one fixed shape runs the
small MTCNN nets faster (whole-frame MTCNN on 640x480 frames took a fifth less time than with
dynamic shapes, docs/speed.md), so a shape that recurs gets a compiled model of its own, kept in
a bounded least-recently-used cache. The batch is rounded up to one of a few sizes (and padded
with zeros, :func:`_bucket`), so the candidate counts of R-Net and O-Net, which change every
frame, fall on a few shapes. A shape is compiled the second time it comes, on a thread of its
own (0.04-0.3 s each on 2 cores, 0.5 s for a pyramid): no call waits for it, the calls run the
dynamic model until it is done, and a shape seen only once (the pyramid of a photo of a one-off
size) is never compiled. Models whose weights are over
:data:`STATIC_MAX_BYTES` (FaceNet, in any precision) stay dynamic: every compiled shape holds its
own repacked copy of the weights (about 100 MiB for FaceNet fp32, 23 MiB in int8), FaceNet's
time per face measured the same both ways, and each compile of its int8 IR took 0.6 s.

A frame size's pyramid (P-Net's levels, :meth:`OpenVinoBackend.run_each`) that recurs is
compiled as one model holding a copy of P-Net per level, run in one call: its outputs are the
level-by-level ones, and the levels then cost one call's overhead and one worker wait instead of
ten (the copies share nothing, and P-Net's weights are 28 kB): 10-14% off whole-frame detection
on 640x480 and 640x360 frames (docs/speed.md).

PReLU. The MTCNN files write each PReLU as operations ONNX Runtime runs faster; OpenVINO runs
the nets faster with a single ``PRelu``, which it joins to the convolution before it, so the
backend folds them back as it reads a model (:mod:`streamrec.backends.openvino_prelu`).

Precision. ``fp32`` compiles with ``INFERENCE_PRECISION_HINT=f32``; ``bf16`` with ``bf16``, and
only on a device that computes in bf16 (a CPU with AVX-512 BF16 or AMX): elsewhere OpenVINO
would quietly compute in f32, so it is refused instead; ``int8`` runs a quantized model (for
FaceNet, OpenVINO's own, quantized by NNCF: :mod:`streamrec.engines.quantize`), its quantized
layers in int8 and the rest in f32. After compiling, the precision the
convolutions actually run in is read back from the compiled model and must be the one asked for.
"""

from __future__ import annotations

import functools
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

try:
    import openvino as ov  # type: ignore[import-untyped]
except ImportError:
    raise ImportError("OpenVINO is not installed: pip install 'streamrec[openvino]'") from None

from streamrec.backends.base import Backend, BackendOptions, TensorSpec, default_threads
from streamrec.backends.cpu import require_bf16
from streamrec.backends.openvino_prelu import fold_prelus

__all__ = ["STATIC_MAX_BYTES", "OpenVinoBackend", "runtime_precisions"]

#: models with up to this many bytes of weights get compiled models per recurring shape; larger
#: ones stay dynamic
STATIC_MAX_BYTES = 8 * 2**20
#: compiled fixed-shape models kept per backend (R-Net's and O-Net's batch sizes)
_CACHE_SIZE = 32
#: compiled pyramids kept per backend (one per frame size and min face size in use)
_PYRAMID_CACHE_SIZE = 8
#: a shape (or a pyramid) gets its own compiled model when it is seen this many times
_PROMOTE_AFTER = 2
#: what the convolutions of a compiled model must run in, per precision asked for
_RUNTIME = {"fp32": {"f32"}, "bf16": {"bf16"}, "int8": {"u8", "i8"}}
_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


@functools.cache
def _core() -> ov.Core:
    """One OpenVINO runtime per process: it owns the plugins and their thread pools."""
    return ov.Core()


def _spec(port: ov.Output) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()))


def _is_quantized(model: ov.Model) -> bool:
    """Whether the model has quantized layers (ONNX QDQ pairs read as ``FakeQuantize``)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def _weight_bytes(model: ov.Model) -> int:
    """Bytes of the model's constants (its weights), wherever they are stored: an IR's ``.xml``
    is small, its weights are in the ``.bin`` beside it."""
    return sum(op.get_byte_size() for op in model.get_ops() if op.get_type_name() == "Constant")


def runtime_precisions(compiled: ov.CompiledModel) -> set[str]:
    """The precisions (``f32``, ``bf16``, ``u8``...) the compiled model's convolutions and
    matrix products run in, as the device reports them."""
    found = set()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "runtimePrecision" in info and info["layerType"].astype(str) in ("Convolution", "FullyConnected", "MatMul"):
            found.add(info["runtimePrecision"].astype(str))
    return found


_Key = TypeVar("_Key", bound=Hashable)


@functools.cache
def _compiler() -> ThreadPoolExecutor:
    """The one thread every backend of the process compiles its fixed-shape models on, so that no
    call waits for a compile (OpenVINO lets go of the GIL while it compiles). A process that ends
    waits for the compiles still queued, no longer than the calls that asked for them would have."""
    return ThreadPoolExecutor(1, thread_name_prefix="openvino-compile")


class _Compiled(Generic[_Key]):
    """Requests of models compiled for a key (an input shape, or a pyramid's shapes). A key that
    has come :data:`_PROMOTE_AFTER` times is compiled on :func:`_compiler`'s thread while the
    calls go on with the dynamic model, and is used from the first call after it is done; beyond
    ``size`` the least recently used goes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.requests: OrderedDict[_Key, ov.InferRequest] = OrderedDict()
        self._seen: Counter[_Key] = Counter()
        self._pending: dict[_Key, Future[ov.InferRequest]] = {}

    def get(self, key: _Key, compile_for: Callable[[], ov.InferRequest]) -> ov.InferRequest | None:
        """The request for ``key``; ``None`` while it has none (the caller runs the dynamic
        model), its compile by ``compile_for`` sent off once the key has come often enough."""
        self._adopt(wait=False)
        request = self.requests.get(key)
        if request is not None:
            self.requests.move_to_end(key)
            return request
        if key not in self._pending:
            self._seen[key] += 1
            if self._seen[key] >= _PROMOTE_AFTER:
                del self._seen[key]
                self._pending[key] = _compiler().submit(compile_for)
            elif len(self._seen) > 8 * self.size:  # one-off shapes must not pile up
                self._seen.clear()
        return None

    def _adopt(self, wait: bool) -> None:
        """Take the finished compiles into use (all of them, waiting for each, with ``wait``). A
        compile that failed raises here, in the call that would have used it."""
        for key, future in list(self._pending.items()):
            if wait or future.done():
                del self._pending[key]
                self.requests[key] = future.result()
                if len(self.requests) > self.size:
                    self.requests.popitem(last=False)

    def finish(self) -> None:
        """Wait for the compiles sent off and use them from the next call on."""
        self._adopt(wait=True)

    def clear(self) -> None:
        """Drop the compiled requests and the compiles not yet started."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self.requests.clear()


def _bucket(batch: int, limit: int) -> int:
    """``batch`` rounded up to one of a few sizes, at most ``limit`` (which is >= ``batch``):
    a power of two up to 8, then a multiple of a quarter of the power of two below it (at least
    8). R-Net's and O-Net's time grows with the batch (their convolutions are the cost), so
    padding wastes at most a fifth of a call from 32 up (a power of two wasted up to half: 34
    O-Net crops ran as 64), while the sizes stay few enough to compile once each (11 up to 64)."""
    if batch <= 8:
        return min(1 << (batch - 1).bit_length(), limit)
    step = max(8, (1 << (batch.bit_length() - 1)) // 4)
    return min(-(-batch // step) * step, limit)


class OpenVinoBackend(Backend):
    """Runs an ONNX file with OpenVINO on ``options.device`` (``cpu`` or ``gpu``)."""

    kind = "openvino"
    library = "openvino"
    precisions = ("fp32", "bf16", "int8")

    @classmethod
    def check_options(cls, options: BackendOptions) -> None:
        super().check_options(options)
        device = (options.device or "cpu").upper()
        available = _core().available_devices
        if not any(d == device or d.startswith(device + ".") for d in available):
            raise ValueError(f"OpenVINO has no {device} device here (it has: {', '.join(available)})")
        if options.precision == "bf16" and "BF16" not in _core().get_property(device, "OPTIMIZATION_CAPABILITIES"):
            if device == "CPU":
                require_bf16()
            raise ValueError(f"OpenVINO's {device} device does not compute in bf16")

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        super().__init__(model_path, options)
        self._device = (options.device or "cpu").upper()
        model = _core().read_model(self.model_path)
        quantized = _is_quantized(model)
        if quantized != (options.precision == "int8"):
            raise ValueError(
                f"{self.model_path.name} is quantized: it runs with precision int8 only" if quantized
                else f"{self.model_path.name} is not quantized: precision int8 needs a quantized model"
            )
        # a quantized model (FaceNet's) has no PReLU, and looking would cost its load 0.14 s
        self._model = model if quantized else fold_prelus(model)
        self.inputs = [_spec(port) for port in self._model.inputs]
        self.outputs = [_spec(port) for port in self._model.outputs]
        self._config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": _HINT[options.precision],
        }
        if self._device == "CPU":
            self._config.update(
                INFERENCE_NUM_THREADS=options.threads or default_threads(), NUM_STREAMS=1, ENABLE_CPU_PINNING=False
            )
        compiled = _core().compile_model(self._model, self._device, self._config)
        ran = runtime_precisions(compiled)
        if not ran & _RUNTIME[options.precision]:
            raise ValueError(
                f"{self.model_path.name}: OpenVINO on {self._device} computes in {', '.join(sorted(ran))}, "
                f"not {options.precision}; refusing to label its results {options.precision}"
            )
        self._dynamic = compiled.create_infer_request()
        self._static_shapes = self._model.is_dynamic() and _weight_bytes(self._model) <= STATIC_MAX_BYTES
        self._static: _Compiled[tuple[int, ...]] = _Compiled(_CACHE_SIZE)
        self._pyramids: _Compiled[tuple[tuple[int, ...], ...]] = _Compiled(_PYRAMID_CACHE_SIZE)

    def _fixed(self, shape: tuple[int, ...]) -> ov.Model:
        """A copy of the model with its input fixed to ``shape``."""
        model = self._model.clone()
        model.reshape({0: ov.PartialShape(list(shape))})
        return model

    def _compile(self, model: ov.Model) -> ov.InferRequest:
        return _core().compile_model(model, self._device, self._config).create_infer_request()

    def _request(self, shape: tuple[int, ...]) -> tuple[ov.InferRequest, int]:
        """The request to run an input of ``shape`` with, and the batch it expects."""
        if not self._static_shapes:
            return self._dynamic, shape[0]
        key = (_bucket(shape[0], self.options.max_batch), *shape[1:])
        request = self._static.get(key, lambda: self._compile(self._fixed(key)))
        return (self._dynamic, shape[0]) if request is None else (request, key[0])

    def run_each(self, batches: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Inputs of different shapes in one call, once the same shapes have come twice (a
        camera's pyramid) and their model is compiled: a fixed-shape copy of the net per input.
        Until then each runs on the dynamic model (not counted towards a fixed shape of its own,
        which the pyramid's model makes needless); a large model's, or batches over
        ``max_batch``, run one call each as :meth:`run` runs them."""
        shapes = tuple(batch.shape for batch in batches)
        if not self._static_shapes or len(batches) < 2 or not all(0 < len(b) <= self.options.max_batch for b in batches):
            return super().run_each(batches)
        for batch in batches:
            self.check_input(batch)
        request = self._pyramids.get(shapes, lambda: self._compile(self._copies(shapes)))
        if request is None:
            return [self._infer(self._dynamic, len(batch), np.ascontiguousarray(batch)) for batch in batches]
        request.infer({i: np.ascontiguousarray(batch) for i, batch in enumerate(batches)}, share_inputs=True)
        count = len(self.outputs)
        return [[request.get_output_tensor(i * count + j).data.copy() for j in range(count)] for i in range(len(batches))]

    def _copies(self, shapes: tuple[tuple[int, ...], ...]) -> ov.Model:
        """One model made of a fixed-shape copy of this one per shape: input ``i`` feeds copy
        ``i``, whose outputs are outputs ``i * n`` to ``i * n + n - 1``."""
        copies = [self._fixed(shape) for shape in shapes]
        return ov.Model([r for c in copies for r in c.get_results()], [p for c in copies for p in c.get_parameters()], "copies")

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._infer(*self._request(batch.shape), batch)

    def _infer(self, request: ov.InferRequest, size: int, batch: np.ndarray) -> list[np.ndarray]:
        """``request``'s outputs for ``batch``, padded with zeros up to the ``size`` it takes."""
        count = len(batch)
        if size > count:
            batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), batch.dtype)])
        request.infer({0: batch}, share_inputs=True)
        return [request.get_output_tensor(i).data[:count].copy() for i in range(len(self.outputs))]

    @property
    def compiled_shapes(self) -> list[tuple[int, ...]]:
        """The fixed input shapes that have a compiled model of their own, oldest use first."""
        return list(self._static.requests)

    @property
    def compiled_pyramids(self) -> list[tuple[tuple[int, ...], ...]]:
        """The input shapes of each set run as one compiled model (:meth:`run_each`), oldest use
        first."""
        return list(self._pyramids.requests)

    def finish_compiles(self) -> None:
        for cache in (self._static, self._pyramids):
            cache.finish()

    def close(self) -> None:
        self._static.clear()
        self._pyramids.clear()
        del self._dynamic
