"""Inference backends: one module per engine, chosen by name.

``REGISTRY`` maps a backend name to ``module:Class``; modules are imported only when chosen, so a
machine without a GPU never imports GPU libraries. Those backends run one model file at a time
and leave the detection cascade and the face crops to the host. The backends in
``FACE_ENGINE_BACKENDS`` run the whole face engine on a device of their own (``torch``: see
:mod:`streamrec.backends.torch`) and are opened by :class:`streamrec.faces.FaceModels`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from streamrec.backends.base import Backend, BackendOptions, TensorSpec, default_threads

__all__ = ["BACKENDS", "BACKEND_PRECISIONS", "FACE_ENGINE_BACKENDS", "REGISTRY", "Backend", "BackendOptions", "TensorSpec", "default_threads", "open_backend"]

REGISTRY: dict[str, str] = {
    "onnxruntime": "streamrec.backends.onnxruntime:OnnxRuntimeBackend",
}
#: Backends that run the detector and the embedder whole, cascade and crops included.
FACE_ENGINE_BACKENDS: tuple[str, ...] = ("torch",)
#: Every backend name the commands accept.
BACKENDS: tuple[str, ...] = (*sorted(REGISTRY), *FACE_ENGINE_BACKENDS)
#: What each backend computes FaceNet in, its default first (the detector always runs in fp32).
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("fp32", "int8"),
    "torch": ("fp32", "fp16", "bf16"),
}


def open_backend(kind: str, model_path: Path, options: BackendOptions | None = None) -> Backend:
    """Load ``model_path`` with the backend called ``kind`` (a key of :data:`REGISTRY`)."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown backend {kind!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    module_name, class_name = REGISTRY[kind].split(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls(Path(model_path), options or BackendOptions())
