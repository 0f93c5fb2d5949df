"""``streamrec engines check --backend NAME``: how closely a backend reproduces the engines as
ONNX Runtime computes them, per precision, recorded beside the manifest.

The build measures ONNX Runtime against the original models (``manifest.json``). Another backend
runs the same files with its own kernels and, in bf16, in coarser arithmetic, so its results are
measured here against ONNX Runtime fp32 on the build's real inputs (pyramid levels and crops of
the sample photos; the face crops MTCNN finds in them):

* FaceNet, for each precision the backend offers: every embedding's cosine to ONNX Runtime fp32's;
  a precision this machine cannot run is recorded with the reason;
* MTCNN, in fp32 (the precision detection runs in unless bf16 is asked for): the largest
  difference of any output.

The record, ``parity-<backend>.json`` in the engine folder, names the backend's version and the
CPU, since both change the figures; ``streamrec engines info`` shows it. The build and its
manifest are left as they are.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.backends import BackendName, BackendOptions, backend_class, open_backend
from streamrec.backends.cpu import cpu_info
from streamrec.engines import ENGINE_FILES, facenet_file
from streamrec.engines.build import (
    FACENET_MIN_COSINE,
    INT8_MIN_COSINE,
    MTCNN_TOLERANCE,
    face_crops,
    mtcnn_inputs,
    sample_photos,
)

__all__ = ["BF16_MIN_COSINE", "FP16_MIN_COSINE", "MIN_COSINE", "check_backend", "failures", "parity_path", "read_parity"]

#: bf16 keeps 8 bits of mantissa: each embedding must still agree with fp32 this well
BF16_MIN_COSINE = 0.999
#: fp16 keeps 11 bits of mantissa, and is held to the bound of bf16
FP16_MIN_COSINE = BF16_MIN_COSINE
#: the least cosine to ONNX Runtime fp32 each precision must reach on every crop
MIN_COSINE = {"fp32": FACENET_MIN_COSINE, "bf16": BF16_MIN_COSINE, "fp16": FP16_MIN_COSINE, "int8": INT8_MIN_COSINE}


def parity_path(engine_dir: Path, backend: str) -> Path:
    """Where the record of ``backend`` lives."""
    return engine_dir / f"parity-{backend}.json"


def read_parity(engine_dir: Path) -> dict[str, dict[str, Any]]:
    """Every backend's record in ``engine_dir``, by backend name."""
    return {path.stem.removeprefix("parity-"): json.loads(path.read_text()) for path in sorted(engine_dir.glob("parity-*.json"))}


def _facenet(engine_dir: Path, backend: BackendName, crops: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for precision in backend_class(backend).precisions:
        options = BackendOptions(precision=precision)
        try:
            backend_class(backend).check_options(options)
        except ValueError as exc:
            result[precision] = {"skipped": str(exc)}
            continue
        file = facenet_file(precision, backend)
        cosines = np.sum(open_backend(backend, engine_dir / file, options).run(crops)[0] * reference, axis=1)
        result[precision] = {
            "file": file,
            "min_cosine": float(cosines.min()),
            "mean_cosine": float(cosines.mean()),
            "min_cosine_required": MIN_COSINE[precision],
        }
    return result


def _mtcnn(engine_dir: Path, backend: BackendName, photos: list[np.ndarray]) -> dict[str, float]:
    result = {}
    for name, batches in mtcnn_inputs(photos).items():
        ours = open_backend(backend, engine_dir / ENGINE_FILES[name])
        theirs = open_backend("onnxruntime", engine_dir / ENGINE_FILES[name])
        result[name] = max(
            float(np.abs(a - b).max()) for batch in batches for a, b in zip(ours.run(batch), theirs.run(batch))
        )
    return result


def failures(record: dict[str, Any]) -> list[str]:
    """The bounds a record misses, one phrase each (none: it passes)."""
    missed = [
        f"FaceNet {precision} min cosine {entry['min_cosine']:.6f} < {entry['min_cosine_required']}"
        for precision, entry in record["facenet"].items()
        if "min_cosine" in entry and entry["min_cosine"] < entry["min_cosine_required"]
    ]
    missed += [
        f"{name} max abs diff {diff:.1e} > {MTCNN_TOLERANCE:.0e}"
        for name, diff in record["mtcnn_max_abs_diff"].items()
        if diff > MTCNN_TOLERANCE
    ]
    return missed


def check_backend(engine_dir: Path, backend: BackendName, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure ``backend`` against ONNX Runtime fp32 on the engines in ``engine_dir``, write the
    record there and return it. Raises ``ValueError`` for an unknown or unavailable backend."""
    cls = backend_class(backend)
    photos = sample_photos()
    crops = face_crops(engine_dir, photos)
    reference = open_backend("onnxruntime", engine_dir / ENGINE_FILES["facenet"]).run(crops)[0]
    report(f"FaceNet through {backend} on {len(crops)} face crops of the sample photos, per precision")
    facenet = _facenet(engine_dir, backend, crops, reference)
    report(f"MTCNN through {backend} on pyramid levels and crops of the sample photos")
    cpu = cpu_info()
    record = {
        "backend": backend,
        "version": importlib.metadata.version(cls.library),
        "cpu": cpu.model,
        "cpu_flags": list(cpu.flags) if cpu.flags is not None else None,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reference": "onnxruntime fp32",
        "facenet_crops": len(crops),
        "facenet": facenet,
        "mtcnn_max_abs_diff": _mtcnn(engine_dir, backend, photos),
        "mtcnn_tolerance": MTCNN_TOLERANCE,
    }
    record["passed"] = not failures(record)
    path = parity_path(engine_dir, backend)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return record
