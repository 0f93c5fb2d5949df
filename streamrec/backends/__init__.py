"""Inference backends: one module per engine, chosen by name.

``REGISTRY`` maps a backend name to ``module:Class``; modules are imported only when chosen, so a
machine without a GPU never imports GPU libraries.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from streamrec.backends.base import Backend, BackendOptions, TensorSpec, default_threads

__all__ = ["REGISTRY", "Backend", "BackendOptions", "TensorSpec", "default_threads", "open_backend"]

REGISTRY: dict[str, str] = {
    "onnxruntime": "streamrec.backends.onnxruntime:OnnxRuntimeBackend",
}


def open_backend(kind: str, model_path: Path, options: BackendOptions | None = None) -> Backend:
    """Load ``model_path`` with the backend called ``kind`` (a key of :data:`REGISTRY`)."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown backend {kind!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    module_name, class_name = REGISTRY[kind].split(":")
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls(Path(model_path), options or BackendOptions())
