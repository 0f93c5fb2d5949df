"""``streamrec engines export --triton``: the model repositories it writes are well-formed.

Each config.pbtxt is parsed back with protobuf's text format into Triton's own ``ModelConfig``
and checked against the ONNX file it serves (names, dims, types), with the batching and the
instances asked for. The tensorrt platform takes the plan the tensorrt backend cached for the
same ONNX file; no GPU is needed to export one, so the cache entry here is written by the
tensorrt backend's own manifest code around opaque plan bytes (a plan is copied, never read).
That the python repository actually serves is tests/backends/test_triton.py's business.
"""

from __future__ import annotations

import json
from pathlib import Path

from streamrec.backends import BackendOptions, open_backend
from streamrec.backends.tensorrt import PNET_MAX_BATCH, EngineKey, manifest, profile_for
from streamrec.engines import ENGINE_FILES, MANIFEST_NAME, expected_files
from streamrec.engines.triton import PYTHON_MODEL, read_config
from tests.conftest import run_cli
from tests.support.needs import need_module

need_module("tritonclient.grpc", "the export writes its configuration with tritonclient (the 'triton' extra)")

NAMES = sorted(Path(file).stem for file in ENGINE_FILES.values())


def _export(engine_dir: Path, out: Path, *options: str):
    return run_cli("engines", "export", "--triton", str(out), "--engines", str(engine_dir), *options, timeout=300)


def _check_against_onnx(config, onnx_path: Path) -> None:
    from tritonclient.grpc import model_config_pb2 as pb2

    engine = open_backend("onnxruntime", onnx_path, BackendOptions(threads=1))
    for ours, specs in ((config.input, engine.inputs), (config.output, engine.outputs)):
        assert [t.name for t in ours] == [s.name for s in specs], onnx_path.name
        for tensor, spec in zip(ours, specs):
            assert pb2.DataType.Name(tensor.data_type) == {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8"}[spec.dtype.name]
            dims = [-1 if d is None else d for d in spec.shape[1:]]
            if dims:
                assert list(tensor.dims) == dims and not tensor.HasField("reshape"), (onnx_path.name, tensor)
            else:  # one value per item: declared [1], reshaped to the engine's []
                assert list(tensor.dims) == [1] and list(tensor.reshape.shape) == [], (onnx_path.name, tensor)
    engine.close()


def test_onnxruntime_repository_is_well_formed(engine_dir: Path, tmp_path: Path):
    from tritonclient.grpc import model_config_pb2 as pb2

    export = _export(engine_dir, tmp_path / "repo", "--max-batch", "32", "--instances", "2", "--gpu",
                     "--queue-delay-us", "250")
    assert export.returncode == 0, export.stderr
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == NAMES
    for name in NAMES:
        config = read_config(tmp_path / "repo" / name / "config.pbtxt")
        assert (config.name, config.platform, config.max_batch_size) == (name, "onnxruntime_onnx", 32)
        assert list(config.dynamic_batching.preferred_batch_size) == [8, 16, 32]
        assert config.dynamic_batching.max_queue_delay_microseconds == 250
        assert [(g.count, pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [(2, "KIND_GPU")]
        onnx_path = engine_dir / f"{name}.onnx"
        assert (tmp_path / "repo" / name / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
        _check_against_onnx(config, onnx_path)


def test_python_repository_runs_the_onnx_file_with_its_own_model(engine_dir: Path, tmp_path: Path):
    from tritonclient.grpc import model_config_pb2 as pb2

    export = _export(engine_dir, tmp_path / "repo", "--platform", "python", "--threads", "2")
    assert export.returncode == 0, export.stderr
    for name in NAMES:
        config = read_config(tmp_path / "repo" / name / "config.pbtxt")
        assert (config.backend, config.platform, config.max_batch_size) == ("python", "", 64)
        assert config.parameters["threads"].string_value == "2"
        assert [pb2.ModelInstanceGroup.Kind.Name(g.kind) for g in config.instance_group] == ["KIND_CPU"]
        version = tmp_path / "repo" / name / "1"
        assert (version / "model.py").read_text() == PYTHON_MODEL.read_text()
        assert (version / "model.onnx").stat().st_size == (engine_dir / f"{name}.onnx").stat().st_size
        _check_against_onnx(config, engine_dir / f"{name}.onnx")


def _engines_with_plans(engine_dir: Path, folder: Path) -> dict[str, bytes]:
    """A copy of ``engine_dir`` (links) whose tensorrt cache holds an fp32 plan for every engine,
    as the tensorrt backend records them; returns each plan's bytes."""
    folder.mkdir()
    for file in (*expected_files(), MANIFEST_NAME):
        (folder / file).symlink_to(engine_dir / file)
    plans = {}
    for name in NAMES:
        onnx_path = folder / f"{name}.onnx"
        key = EngineKey.of(onnx_path, "NVIDIA H200", "10.13.0", "fp32", 64)
        shape = open_backend("onnxruntime", onnx_path, BackendOptions(threads=1)).inputs[0].shape
        cache = key.folder(folder)
        cache.mkdir(parents=True)
        plans[name] = f"plan of {name}".encode()
        (cache / "engine.plan").write_bytes(plans[name])
        (cache / "manifest.json").write_text(json.dumps(manifest(key, cache / "engine.plan", profile_for(shape, 64), 1.0)))
    return plans


def test_tensorrt_repository_takes_the_cached_plans(engine_dir: Path, tmp_path: Path):
    missing = _export(engine_dir, tmp_path / "none", "--platform", "tensorrt")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 2, missing.stderr  # progress, then one error
    assert "no TensorRT engine of" in missing.stderr and "streamrec engines build --backend tensorrt" in missing.stderr
    assert not (tmp_path / "none").exists()  # nothing written

    folder = tmp_path / "engines"
    plans = _engines_with_plans(engine_dir, folder)
    export = _export(folder, tmp_path / "repo", "--platform", "tensorrt")
    assert export.returncode == 0, export.stderr
    for name in NAMES:
        config = read_config(tmp_path / "repo" / name / "config.pbtxt")
        assert (config.platform, config.default_model_filename) == ("tensorrt_plan", "model.plan")
        # P-Net's engine takes at most PNET_MAX_BATCH frames: the server must not batch more
        assert config.max_batch_size == (PNET_MAX_BATCH if name == "pnet" else 64), name
        assert (tmp_path / "repo" / name / "1" / "model.plan").read_bytes() == plans[name]
        _check_against_onnx(config, engine_dir / f"{name}.onnx")
