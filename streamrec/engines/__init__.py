"""Built model files: where they live, and building them on first use.

The engines are ONNX files converted from the published weights by :mod:`.build`. They are not
shipped in git; every command that needs them calls :func:`ensure_engines`, which builds them
once (about a minute) when any file or the manifest is missing. ``streamrec train`` adds
FaceNets of its own beside them (``facenet-NAME.onnx``), listed under the manifest's ``models``;
:func:`model_file` finds the file a ``--model`` name runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ENGINE_FILES", "MANIFEST_FORMAT", "MANIFEST_NAME", "MODELS_KEY", "OPENVINO_INT8_FILES", "PUBLISHED_MODEL", "TRAINED_PREFIX",
    "default_engine_dir", "ensure_engines", "expected_files", "facenet_file", "int8_refusal", "model_file", "openvino_int8_buildable",
    "read_manifest", "trained_models", "trained_weights",
]

#: engine name -> file name inside the engine folder
ENGINE_FILES: dict[str, str] = {
    "pnet": "pnet.onnx",
    "rnet": "rnet.onnx",
    "onet": "onet.onnx",
    "facenet": "facenet.onnx",
    "facenet_int8": "facenet_int8.onnx",
}
#: OpenVINO's own int8 FaceNet (its IR: the model, then its weights), quantized by NNCF with 8-bit
#: weights, which ONNX Runtime's int8 file cannot have (see :mod:`.quantize`); built beside the
#: others whenever OpenVINO and NNCF are installed (the ``openvino`` extra)
OPENVINO_INT8_FILES = ("facenet_int8_openvino.xml", "facenet_int8_openvino.bin")
MANIFEST_NAME = "manifest.json"
#: what a build writes as the manifest's ``format``; raised whenever a build makes different files
#: from the same sources (2: the int8 FaceNet keeps its L2 normalisation in fp32; 3: P-Net's
#: softmax is written out and its PReLU element-wise), so engines an older streamrec built are
#: rebuilt on first use instead of running stale
MANIFEST_FORMAT = 3
#: the manifest's section of trained FaceNets: name -> entry (``file``, ``weights``, ``base``, ...)
MODELS_KEY = "models"
#: the name ``--model`` gives the published FaceNet
PUBLISHED_MODEL = "facenet"
#: a trained FaceNet NAME is ``facenet-NAME.onnx``, with its PyTorch weights in ``facenet-NAME.pt``
TRAINED_PREFIX = "facenet-"


def facenet_file(precision: str, backend: str) -> str:
    """The file of the published FaceNet that ``backend`` runs in ``precision``: a quantized one
    for ``int8`` (OpenVINO's own, :data:`OPENVINO_INT8_FILES`, on the ``openvino`` backend); the
    fp32 file otherwise, which ``bf16`` and ``fp16`` compute in their own precision."""
    if precision != "int8":
        return ENGINE_FILES["facenet"]
    return OPENVINO_INT8_FILES[0] if backend == "openvino" else ENGINE_FILES["facenet_int8"]


def openvino_int8_buildable() -> bool:
    """Whether the engine build can make OpenVINO's int8 FaceNet: OpenVINO and NNCF are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def expected_files() -> list[str]:
    """The files a build makes here: :data:`ENGINE_FILES`, and :data:`OPENVINO_INT8_FILES` where
    :func:`openvino_int8_buildable` (so installing OpenVINO later rebuilds the engines once)."""
    return [*ENGINE_FILES.values(), *(OPENVINO_INT8_FILES if openvino_int8_buildable() else ())]


def int8_refusal(model: str) -> str | None:
    """Why ``model`` cannot run in int8 (one line), or ``None`` when it can: only the published
    FaceNet is quantized."""
    if model == PUBLISHED_MODEL:
        return None
    return f"model {model!r} has no int8 engine: only the published model is quantized"


def default_engine_dir() -> Path:
    """``$STREAMREC_ENGINES`` if set; else ``engines/`` of a source checkout; else
    ``engines/`` under the data directory (see :func:`streamrec.paths.data_dir`)."""
    env = os.environ.get("STREAMREC_ENGINES")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "engines"
    if (checkout / "README.md").is_file():
        return checkout
    from streamrec.paths import data_dir

    return data_dir() / "engines"


def missing(engine_dir: Path) -> list[str]:
    """Engine files (and the manifest) not present in ``engine_dir``."""
    names = [*expected_files(), MANIFEST_NAME]
    return [name for name in names if not (engine_dir / name).is_file()]


def outdated(engine_dir: Path) -> str | None:
    """Why the engines in ``engine_dir`` must be rebuilt although every file is there (built by
    an older streamrec, or an unreadable manifest), or ``None`` when they are current."""
    try:
        found = read_manifest(engine_dir).get("format")
    except (OSError, ValueError, AttributeError) as exc:
        return f"the engine manifest in {engine_dir} is unreadable ({exc})"
    if not isinstance(found, int) or found < MANIFEST_FORMAT:
        return f"the engines in {engine_dir} were built by an older streamrec (format {found}, now {MANIFEST_FORMAT})"
    return None


def read_manifest(engine_dir: Path) -> dict[str, Any]:
    """The build manifest of ``engine_dir``."""
    return json.loads((engine_dir / MANIFEST_NAME).read_text())


def trained_models(engine_dir: Path) -> dict[str, dict[str, Any]]:
    """The FaceNets ``streamrec train`` wrote into ``engine_dir``, by name (none: empty)."""
    if not (engine_dir / MANIFEST_NAME).is_file():
        return {}
    models: dict[str, dict[str, Any]] = read_manifest(engine_dir).get(MODELS_KEY, {})
    return models


def model_file(engine_dir: Path, model: str, precision: str, backend: str) -> Path:
    """The FaceNet file that ``backend`` runs ``model`` (:data:`PUBLISHED_MODEL` or a trained
    one's name) from in ``precision``; ``ValueError`` (one line) for an unknown name, int8 of a
    trained model (only the published one is quantized), or OpenVINO's int8 FaceNet where the
    engines were built without NNCF."""
    if model == PUBLISHED_MODEL:
        path = engine_dir / facenet_file(precision, backend)
        if path.name in OPENVINO_INT8_FILES and not path.is_file():
            raise ValueError(
                f"OpenVINO runs int8 from {path.name}, which the engine build makes when NNCF is installed: "
                "pip install 'streamrec[openvino]', then streamrec engines build"
            )
        return path
    models = trained_models(engine_dir)
    if model not in models:
        known = ", ".join([PUBLISHED_MODEL, *sorted(models)])
        raise ValueError(f"no model {model!r} in {engine_dir} (there: {known}; 'streamrec train' adds one)")
    refusal = int8_refusal(model) if precision == "int8" else None
    if refusal:
        raise ValueError(refusal)
    return engine_dir / str(models[model]["file"])


def trained_weights(model_path: Path) -> Path | None:
    """The PyTorch weights beside a trained FaceNet's ONNX file (what the torch backend loads
    instead of the published ones), or ``None`` for any other file."""
    name = model_path.name
    if name.startswith(TRAINED_PREFIX) and name.endswith(".onnx"):
        return model_path.with_suffix(".pt")
    return None


def ensure_engines(engine_dir: Path | None = None, report: Callable[[str], None] = print) -> Path:
    """Return the engine folder, building the engines first if any file is missing or they are
    :func:`outdated`."""
    folder = engine_dir or default_engine_dir()
    absent = missing(folder)
    why = f"engines missing in {folder} ({', '.join(absent)})" if absent else outdated(folder)
    if why:
        from streamrec.engines.build import build_engines

        report(f"{why}: building them now, once (about a minute)")
        build_engines(folder, report)
    return folder
