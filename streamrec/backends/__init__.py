"""Inference backends: one module per engine, chosen by name.

``REGISTRY`` maps a backend name to ``module:Class``; modules are imported only when chosen, so a
machine without a GPU never imports GPU libraries, and one without OpenVINO never needs it.
:data:`BackendName` is the one list of names that the configuration, the command line and
:class:`~streamrec.faces.ModelsConfig` accept; a new backend is its module plus one name here and
its ``REGISTRY`` entry (mypy refuses an entry whose name is not in :data:`BackendName`,
``tests/backends`` a name without an entry). Which precisions and devices a backend runs is its
class's to say (:attr:`Backend.precisions`, :meth:`Backend.check_options`).

The ``torch`` backend runs the PyTorch modules the engines are exported from, and with them the
whole MTCNN cascade and the face crops on its device (:mod:`streamrec.backends.torch`). The
``triton`` backend runs nothing itself: it sends each batch to a Triton Inference Server
(:mod:`streamrec.backends.triton`), which serves the same engines exported as a model repository.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Literal, get_args

from streamrec.backends.base import (
    Backend,
    BackendOptions,
    BackendUnavailable,
    TensorSpec,
    TritonOptions,
    default_threads,
)

__all__ = [
    "BACKENDS", "REGISTRY", "Backend", "BackendName", "BackendOptions", "BackendUnavailable", "TensorSpec",
    "TritonOptions", "backend_class", "default_threads", "open_backend",
]

BackendName = Literal["onnxruntime", "openvino", "tensorrt", "torch", "triton"]
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)

REGISTRY: dict[BackendName, str] = {
    "onnxruntime": "streamrec.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "streamrec.backends.openvino:OpenVinoBackend",
    "tensorrt": "streamrec.backends.tensorrt:TensorRtBackend",
    "torch": "streamrec.backends.torch:TorchNet",
    "triton": "streamrec.backends.triton:TritonBackend",
}


def backend_class(kind: BackendName) -> type[Backend]:
    """The class of the backend called ``kind`` (a key of :data:`REGISTRY`), imported now.

    Raises ``ValueError`` (one line) for an unknown name, or when the backend's library is not
    installed.
    """
    if kind not in REGISTRY:
        raise ValueError(f"unknown backend {kind!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    module_name, class_name = REGISTRY[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"the {kind} backend is not available: {exc}") from None
    cls: type[Backend] = getattr(module, class_name)
    return cls


def open_backend(kind: BackendName, model_path: Path, options: BackendOptions | None = None) -> Backend:
    """Load ``model_path`` with the backend called ``kind`` (a key of :data:`REGISTRY`)."""
    return backend_class(kind)(Path(model_path), options or BackendOptions())
