"""A trained FaceNet written as a new engine beside the published one, and listed in the manifest.

Files: ``facenet-NAME.onnx`` (what ONNX Runtime and OpenVINO run, exported by the engine build's
own code) and ``facenet-NAME.pt`` (its PyTorch weights, what the torch backend runs). The
published ``facenet.onnx`` and every other engine stay as they are; a name already in use is
refused. Before anything is installed, ONNX Runtime's output on the held-out crops must agree
with PyTorch's (as the build checks its own export); the files move into place first and the
manifest entry last, so an interrupted export leaves no entry without files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamrec.backends import BackendOptions, open_backend
from streamrec.embed.nets import InceptionResnetV1
from streamrec.engines import (
    MANIFEST_NAME,
    MODELS_KEY,
    PUBLISHED_MODEL,
    TRAINED_PREFIX,
    read_manifest,
    trained_models,
)
from streamrec.engines.build import FACENET_MIN_COSINE, export_onnx
from streamrec.engines.sources import sha256_file

__all__ = ["ExportError", "check_name", "write_engine"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}\Z")


class ExportError(RuntimeError):
    """The engine cannot be written (name taken, parity failed, disk); one line says why."""


def check_name(engine_dir: Path, name: str) -> None:
    """Refuse a name that is malformed or taken, before any training time is spent on it."""
    if not _NAME.match(name) or name == PUBLISHED_MODEL:
        raise ExportError(
            f"bad model name {name!r}: use 1-40 of a-z, 0-9, '-' and '_', starting with a letter or digit, "
            f"not {PUBLISHED_MODEL!r}"
        )
    files = [engine_dir / f"{TRAINED_PREFIX}{name}{suffix}" for suffix in (".onnx", ".pt")]
    if name in trained_models(engine_dir) or any(path.exists() for path in files):
        raise ExportError(f"a model named {name!r} is already in {engine_dir}: choose another name")


def _parity(onnx_file: Path, model: InceptionResnetV1, crops: np.ndarray) -> float:
    ours = open_backend("onnxruntime", onnx_file, BackendOptions(threads=1)).run(crops)[0]
    with torch.inference_mode():
        reference = model(torch.from_numpy(crops)).numpy()
    worst = float(np.sum(ours * reference, axis=1).min())
    if worst < FACENET_MIN_COSINE:
        raise ExportError(f"{onnx_file.name}: ONNX Runtime vs PyTorch min cosine {worst:.6f} (< {FACENET_MIN_COSINE})")
    return worst


def _write_manifest(engine_dir: Path, name: str, entry: dict[str, Any]) -> None:
    manifest = read_manifest(engine_dir)
    manifest.setdefault(MODELS_KEY, {})[name] = entry
    with tempfile.NamedTemporaryFile("w", dir=engine_dir, prefix=".manifest-", delete=False) as tmp:
        tmp.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp.name, 0o644)  # as the build writes it: readable by every user of the engines
    os.replace(tmp.name, engine_dir / MANIFEST_NAME)


def write_engine(
    model: InceptionResnetV1, engine_dir: Path, name: str, record: dict[str, Any], crops: np.ndarray
) -> dict[str, Any]:
    """Write ``model`` as the engine ``name`` in ``engine_dir`` (which holds the built engines),
    checked on ``crops``; ``record`` (base model, data, settings, figures) goes into its manifest
    entry, which is returned."""
    check_name(engine_dir, name)
    onnx_name, weights_name = f"{TRAINED_PREFIX}{name}.onnx", f"{TRAINED_PREFIX}{name}.pt"
    try:
        with tempfile.TemporaryDirectory(dir=engine_dir, prefix=".train-") as tmp:
            folder = Path(tmp)
            example = torch.zeros(2, 160, 160, 3, dtype=torch.uint8)
            (folder / onnx_name).write_bytes(export_onnx(model.eval(), example, ["embedding"], False))
            torch.save(model.state_dict(), folder / weights_name)
            cosine = _parity(folder / onnx_name, model, crops)
            entry = {
                **record,
                "file": onnx_name,
                "sha256": sha256_file(folder / onnx_name),
                "weights": weights_name,
                "weights_sha256": sha256_file(folder / weights_name),
                "parity": {"min_cosine_onnxruntime_vs_pytorch": cosine, "crops": len(crops)},
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            for file_name in (weights_name, onnx_name):
                os.replace(folder / file_name, engine_dir / file_name)
        _write_manifest(engine_dir, name, entry)
    except OSError as exc:
        raise ExportError(f"cannot write the engine into {engine_dir}: {exc.strerror or exc}") from None
    return entry
