"""The inference backend interface: what the detector and the embedder need from an engine.

A backend loads one model file, reports its inputs and outputs, and runs a batch. Backends are
interchangeable: the MTCNN cascade and the FaceNet embedder only ever call :meth:`Backend.run`,
so a new engine (TensorRT, PyTorch on CUDA) plugs in by subclassing :class:`Backend` and adding
its import path to :data:`streamrec.backends.REGISTRY`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

__all__ = ["Backend", "BackendOptions", "BackendUnavailable", "TensorSpec", "TritonOptions", "default_threads"]


def default_threads() -> int:
    """Cores this process may run on (respects CPU affinity and cgroup-pinned sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BackendUnavailable(RuntimeError):
    """A backend that runs on another machine could not answer a call (the server is down,
    restarting or too slow). The model stays open: later calls try again, so a caller that serves
    a stream fails the frames in between and carries on."""


@dataclass(frozen=True)
class TritonOptions:
    """Where the ``triton`` backend finds its Triton Inference Server, and how it talks to it.

    ``url``: the server's gRPC ``host:port``. ``timeout_s``: the limit of every call.
    ``tls``: a TLS channel, checked against ``root_cert`` (PEM; empty: the system's roots), and
    presenting ``client_cert`` + ``client_key`` (PEM) when the server asks for a client.
    ``model_prefix``: put before each net's name (``pnet``...) to give the server's model name,
    so several streamrec deployments can share one server.
    """

    url: str = "127.0.0.1:8001"
    timeout_s: float = 5.0
    tls: bool = False
    root_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    model_prefix: str = ""

    def __post_init__(self) -> None:
        host, _, port = self.url.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"triton url must be host:port (got {self.url!r})")
        if not self.timeout_s > 0:
            raise ValueError(f"triton timeout_s must be > 0 (got {self.timeout_s})")
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("triton client_cert and client_key go together: give both, or neither")


@dataclass(frozen=True)
class BackendOptions:
    """Settings common to every backend.

    ``threads``: intra-op threads for CPU backends (``None``: every core this process may use).
    ``max_batch``: the largest batch one call sends to the engine; bigger requests are split, so
    memory stays bounded however many faces or frames arrive at once.
    ``precision``: how the model computes: ``fp32``; ``bf16`` (fp32 weights, bfloat16
    arithmetic); ``fp16`` (half-precision arithmetic where the engine chooses it: TensorRT);
    ``int8`` (a model file quantized to int8, whose other layers compute in fp32).
    Each backend lists the ones it runs in :attr:`Backend.precisions` and refuses the others, so
    a result never claims a precision it was not computed in.
    ``device``: where the model runs, as the backend names its devices (``cpu`` for ONNX
    Runtime and OpenVINO; ``gpu`` for OpenVINO on an Intel GPU; ``cuda:N`` for TensorRT);
    ``None``: the backend's own default (``cpu``; ``cuda:0`` for TensorRT).
    ``triton``: the server the ``triton`` backend sends its batches to (the others ignore it).
    """

    threads: int | None = None
    max_batch: int = 64
    precision: str = "fp32"
    device: str | None = None
    triton: TritonOptions = field(default_factory=TritonOptions)

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (got {self.threads})")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (got {self.max_batch})")


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None`` for a dynamic dimension) and dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class Backend(ABC):
    """One loaded model. Subclasses implement :meth:`_run` and fill ``inputs``/``outputs``."""

    kind: ClassVar[str]
    #: the distribution that provides the engine, whose version results are recorded with
    library: ClassVar[str]
    #: the :attr:`BackendOptions.precision` values this backend computes in
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: the largest height or width an input whose height and width are dynamic (P-Net's pyramid
    #: levels) may take, or ``None``: any. Known from the class alone, without loading a model or
    #: importing the engine's library, so a configuration that asks for more is refused before
    #: anything is built or run, on any machine.
    max_input_side: ClassVar[int | None] = None

    @classmethod
    def check_options(cls, options: BackendOptions) -> None:
        """Raise ``ValueError`` (one line) if this backend cannot run as ``options`` ask, on
        this machine. Cheap, and called before any model is loaded, so a command refuses a
        precision or a device it cannot have before it builds or loads engines."""
        if options.precision not in cls.precisions:
            raise ValueError(
                f"the {cls.kind} backend runs {' and '.join(cls.precisions)} only (got precision {options.precision!r})"
            )

    def __init__(self, model_path: Path, options: BackendOptions) -> None:
        type(self).check_options(options)
        self.model_path = Path(model_path)
        self.options = options
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    @abstractmethod
    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch no larger than ``options.max_batch`` through the model."""

    def check_input(self, batch: np.ndarray) -> None:
        """Raise unless ``batch`` has the model input's dtype and number of dimensions."""
        spec = self.inputs[0]
        if batch.dtype != spec.dtype:
            raise TypeError(f"{self.model_path.name}: input dtype {batch.dtype}, model wants {spec.dtype}")
        if batch.ndim != len(spec.shape):
            raise ValueError(
                f"{self.model_path.name}: input has {batch.ndim} dims, model wants {len(spec.shape)}"
            )

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run a batch of any size (first axis), splitting it into ``max_batch`` chunks.

        Returns one array per model output, in :attr:`outputs` order, each with the batch as its
        first axis. An empty batch returns empty outputs without touching the engine.
        """
        self.check_input(batch)
        step = self.options.max_batch
        if len(batch) <= step:
            return self._run(np.ascontiguousarray(batch)) if len(batch) else self._empty(batch)
        parts = [self._run(np.ascontiguousarray(batch[i : i + step])) for i in range(0, len(batch), step)]
        return [np.concatenate(chunks) for chunks in zip(*parts)]

    def run_each(self, batches: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Run inputs of different shapes (P-Net's pyramid levels): :meth:`run`'s outputs for
        each, in order. A backend that can take them in one call overrides this."""
        return [self.run(batch) for batch in batches]

    def _empty(self, batch: np.ndarray) -> list[np.ndarray]:
        # Output shapes can depend on the input's other dims (P-Net), so probe with one item.
        probe = self._run(np.zeros((1, *batch.shape[1:]), batch.dtype))
        return [np.empty((0, *out.shape[1:]), out.dtype) for out in probe]

    def finish_compiles(self) -> None:
        """Wait for the models this backend compiles in the background (OpenVINO's fixed shapes)
        and run them from the next call on: for a caller that wants the steady state now, a
        benchmark after its warm-up. A backend that compiles nothing in the background has
        nothing to wait for."""

    def close(self) -> None:
        """Release the engine's resources; the object must not be used afterwards."""

