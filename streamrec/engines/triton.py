"""The engines as a Triton Inference Server model repository (``streamrec engines export --triton``).

Each engine becomes ``DIR/<name>/config.pbtxt`` and ``DIR/<name>/1/<model file>``, where
``<name>`` is the engine file's stem (``pnet``, ``rnet``, ``onet``, ``facenet``,
``facenet_int8``, ``facenet-NAME`` of a trained model): the name the ``triton`` backend asks the
server for. Three platforms:

* ``onnxruntime``: ``model.onnx`` served by Triton's ONNX Runtime backend;
* ``tensorrt``: ``model.plan``, the engine the ``tensorrt`` backend compiled and cached for this
  ONNX file (``streamrec engines build --backend tensorrt`` on the GPU that will serve it); a
  TensorRT engine runs only on the GPU model and TensorRT version it was built with;
* ``python``: ``model.onnx`` with a Python-backend ``model.py`` that runs it with ONNX Runtime
  (:mod:`streamrec.engines.triton_model`), for Triton builds without the ONNX Runtime backend.

Every config batches (``max_batch_size``; dynamic batching with preferred sizes and a queue
delay) and names its inputs and outputs with their types and dims (-1: dynamic), read from the
ONNX file. Triton wants at least one dim after the batch: an output that is one value per item
(MTCNN's face probability) is declared ``[1]`` and reshaped to ``[]``. The configs are written with
protobuf's text format from Triton's own schema (``tritonclient``'s ``model_config_pb2``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from streamrec.backends import BackendOptions, TensorSpec, open_backend
from streamrec.engines import ENGINE_FILES, trained_models

__all__ = ["PLATFORMS", "PYTHON_MODEL", "ExportError", "Platform", "RepositoryOptions", "engine_models", "export_repository",
           "model_config", "read_config"]

Platform = Literal["onnxruntime", "tensorrt", "python"]
PLATFORMS: tuple[Platform, ...] = get_args(Platform)
#: Triton's name of each platform, and the file its model is
_PLATFORM = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan"),
             "python": ("", "model.py")}
#: the Python-backend model of the python platform (runs in the server, never imported here)
PYTHON_MODEL = Path(__file__).with_name("triton_model.py")
_TYPES: dict[str, str] = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "uint8": "TYPE_UINT8"}


class ExportError(ValueError):
    """The repository cannot be written as asked (one line)."""


@dataclass(frozen=True)
class RepositoryOptions:
    """How the server runs each model: ``platform``; batches of up to ``max_batch`` items,
    requests waiting up to ``queue_delay_us`` microseconds to be batched; ``instances`` copies of
    each model, on the GPU when ``gpu``, else on the CPU; ``threads``: ONNX Runtime's intra-op
    threads per instance of the python platform (0: ONNX Runtime's default)."""

    platform: Platform = "onnxruntime"
    max_batch: int = 64
    queue_delay_us: int = 500
    instances: int = 1
    gpu: bool = False
    threads: int = 0


def _schema() -> tuple[Any, Any]:
    """Triton's ``model_config_pb2`` and protobuf's ``text_format``, which come with tritonclient."""
    try:
        from google.protobuf import text_format  # type: ignore[import-untyped]
        from tritonclient.grpc import model_config_pb2  # type: ignore[import-untyped]
    except ImportError:
        raise ExportError("Triton's model configuration schema is not installed: pip install 'streamrec[triton]'") from None
    return model_config_pb2, text_format


def engine_models(engine_dir: Path) -> dict[str, Path]:
    """The ONNX files of ``engine_dir`` the repository serves, by model name: the engines and
    every trained FaceNet."""
    files = [*ENGINE_FILES.values(), *(str(entry["file"]) for entry in trained_models(engine_dir).values())]
    return {Path(file).stem: engine_dir / file for file in files}


def model_config(name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], options: RepositoryOptions) -> str:
    """The ``config.pbtxt`` text of model ``name`` with these inputs and outputs (batch axis
    first, as the engines have them), batching up to ``options.max_batch``."""
    pb2, text_format = _schema()
    config = pb2.ModelConfig(name=name, max_batch_size=options.max_batch)
    platform, file = _PLATFORM[options.platform]
    if platform:
        config.platform = platform
    else:
        config.backend = "python"
        config.parameters["threads"].string_value = str(options.threads)
    config.default_model_filename = file
    for spec in inputs:
        _tensor(config.input.add(), spec, pb2)
    for spec in outputs:
        _tensor(config.output.add(), spec, pb2)
    preferred = sorted({size for size in (options.max_batch // 4, options.max_batch // 2, options.max_batch) if size})
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = options.queue_delay_us
    kind = "KIND_GPU" if options.gpu else "KIND_CPU"
    config.instance_group.add(count=options.instances, kind=pb2.ModelInstanceGroup.Kind.Value(kind))
    text: str = text_format.MessageToString(config)
    return text


def _tensor(message: Any, spec: TensorSpec, pb2: Any) -> None:
    """Fill a ``ModelInput``/``ModelOutput`` from ``spec`` (its first axis is the batch)."""
    message.name = spec.name
    message.data_type = pb2.DataType.Value(_TYPES[spec.dtype.name])
    dims = [-1 if d is None else d for d in spec.shape[1:]]
    if dims:
        message.dims.extend(dims)
    else:  # one value per item: Triton wants a dim, the engine has none
        message.dims.append(1)
        message.reshape.SetInParent()


def read_config(path: Path) -> Any:
    """A ``config.pbtxt`` parsed back into Triton's ``ModelConfig`` message."""
    pb2, text_format = _schema()
    config = pb2.ModelConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config


def _tensorrt_plan(onnx_path: Path, engine_dir: Path, max_batch: int) -> tuple[Path, int]:
    """The cached TensorRT engine of ``onnx_path`` compiled for ``max_batch`` in fp32 (the one
    ``streamrec engines build --backend tensorrt`` makes), and the largest batch its profile takes
    (P-Net's is smaller); :class:`ExportError` when there is none."""
    from streamrec.backends.tensorrt import EngineKey, cached_plan
    from streamrec.engines.sources import sha256_file

    digest = sha256_file(onnx_path)
    pattern = f"*/{onnx_path.stem}-fp32-b{max_batch}-{digest[:16]}/manifest.json"
    for record_file in sorted((engine_dir / "tensorrt").glob(pattern)):
        try:
            record = json.loads(record_file.read_text())
            key, largest = EngineKey(**record["key"]), int(record["profile"]["max"][0])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
        if key.onnx_sha256 == digest and (plan := cached_plan(key, engine_dir)) is not None:
            return plan, largest
    raise ExportError(
        f"no TensorRT engine of {onnx_path.name} (fp32, max batch {max_batch}) in {engine_dir / 'tensorrt'}: "
        "run 'streamrec engines build --backend tensorrt' on the GPU that will serve it"
    )


def export_repository(
    engine_dir: Path, out: Path, options: RepositoryOptions, report: Callable[[str], None] = print
) -> list[str]:
    """Write the model repository of ``engine_dir``'s engines into ``out``; returns the model
    names. Every model is checked (and its plan found) before anything is written."""
    models = engine_models(engine_dir)
    specs: dict[str, tuple[list[TensorSpec], list[TensorSpec]]] = {}
    sources: dict[str, tuple[Path, RepositoryOptions]] = {}
    for name, onnx_path in models.items():
        if not onnx_path.is_file():
            raise ExportError(f"no engine {onnx_path} (run: streamrec engines build)")
        backend = open_backend("onnxruntime", onnx_path, BackendOptions(threads=1))
        specs[name] = (backend.inputs, backend.outputs)
        backend.close()
        if options.platform == "tensorrt":
            plan, largest = _tensorrt_plan(onnx_path, engine_dir, options.max_batch)
            sources[name] = plan, replace(options, max_batch=min(options.max_batch, largest))
        else:
            sources[name] = onnx_path, options
    for name, (inputs, outputs) in specs.items():
        source, served = sources[name]
        version = out / name / "1"
        version.mkdir(parents=True, exist_ok=True)
        (out / name / "config.pbtxt").write_text(model_config(name, inputs, outputs, served))
        target = "model.plan" if options.platform == "tensorrt" else "model.onnx"
        shutil.copyfile(source, version / target)
        if options.platform == "python":
            shutil.copyfile(PYTHON_MODEL, version / "model.py")
        report(f"  {name}: {out / name}")
    return list(specs)
