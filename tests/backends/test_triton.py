"""The triton backend against a real Triton Inference Server (nvidia-pytriton's ``tritonserver``
in ``.venv-triton``, which ``make setup`` creates) serving the engines as ``streamrec engines
export --triton DIR --platform python`` writes them.

The server's models must all load; the backend's outputs must equal ONNX Runtime's on the same
inputs, and ``streamrec detect``/``embed --backend triton`` give the faces and embeddings that
ONNX Runtime gives (tolerances of tests/backends/compare.py and the engine build). A server
killed mid-use makes calls fail with a one-line error, and they resume once it is back on the
same port, in the backend and in the inference stage, whose health gauges follow the server; a
frozen one makes calls time out, and they resume once it thaws. A server that is down, lacks a
model or serves another engine under its name is refused in one line, by ``streamrec run``
before it starts. Mutual TLS reaches a server that asks for it; a client without it does not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamrec.backends import Backend, BackendOptions, BackendUnavailable, TritonOptions, open_backend
from streamrec.bus import sockets
from streamrec.bus.messages import FrameHeader, SourceStatus, StageStats
from streamrec.config.model import PipelineConfig, RunConfig, SourceConfig, TritonConfig
from streamrec.engines import ENGINE_FILES
from streamrec.engines.build import FACENET_MIN_COSINE
from streamrec.images import load_image
from streamrec.web.metrics import StageMetrics
from tests.backends.compare import assert_same_faces
from tests.conftest import run_cli
from tests.pipeline.conftest import quiet_outputs, stepped_inference
from tests.support.needs import missing, need_module
from tests.support.triton import TritonServer, require_triton

PHOTO = "scenes/fnp_multiface.jpg"


@pytest.fixture(scope="module")
def server(engine_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """tritonserver over the exported repository, one ONNX Runtime thread per model instance."""
    require_triton()
    need_module("tritonclient.grpc", "the triton backend's client is tritonclient (the 'triton' extra)")
    folder = tmp_path_factory.mktemp("triton")
    export = run_cli("engines", "export", "--triton", str(folder / "repository"), "--platform", "python",
                     "--threads", "1", "--engines", str(engine_dir), timeout=300)
    assert export.returncode == 0, export.stderr
    server = TritonServer(folder / "repository", folder / "tritonserver.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _up(server: TritonServer) -> TritonServer:
    """The module's server, started again if a test left it down."""
    if server.process is None:
        server.restart()
    return server


def _triton(server: TritonServer, timeout_s: float = 30.0) -> BackendOptions:
    return BackendOptions(triton=TritonOptions(url=server.url, timeout_s=timeout_s))


def _inputs(shared_data: Path) -> dict[str, np.ndarray]:
    """Real pixels in each engine's input: a pyramid level of a photo for P-Net, face-sized crops
    of it for R-, O-Net (float, as MTCNN feeds them) and FaceNet (uint8)."""
    rgb = load_image(shared_data / PHOTO, 1024).rgb
    scaled = (rgb.astype(np.float32) - 127.5) / 128.0
    crops = [rgb[y : y + 200, x : x + 160] for y, x in ((0, 0), (100, 300), (200, 500))]
    return {
        "pnet": cv2.resize(scaled, (173, 131))[None],
        "rnet": np.stack([cv2.resize(c, (24, 24)) for c in crops]).astype(np.float32) / 128.0 - 1.0,
        "onet": np.stack([cv2.resize(c, (48, 48)) for c in crops]).astype(np.float32) / 128.0 - 1.0,
        "facenet": np.stack([cv2.resize(c, (160, 160)) for c in crops]),
    }


def test_every_exported_model_is_ready(server: TritonServer):
    import tritonclient.grpc as grpcclient

    names = sorted(path.name for path in server.repository.iterdir())
    assert names == sorted(Path(file).stem for file in ENGINE_FILES.values()), names
    with grpcclient.InferenceServerClient(_up(server).url) as client:
        assert client.is_server_ready(client_timeout=10)
        assert {name: client.is_model_ready(name, client_timeout=10) for name in names} == dict.fromkeys(names, True)


def test_outputs_equal_onnxruntimes_on_the_same_inputs(server: TritonServer, engine_dir: Path, shared_data: Path):
    for net, batch in _inputs(shared_data).items():
        path = engine_dir / ENGINE_FILES[net]
        reference = open_backend("onnxruntime", path, BackendOptions(threads=1))
        remote = open_backend("triton", path, _triton(_up(server)))
        assert remote.inputs == reference.inputs and remote.outputs == reference.outputs, net
        ours, theirs = remote.run(batch), reference.run(batch)
        for spec, a, b in zip(reference.outputs, ours, theirs):
            assert a.shape == b.shape and a.dtype == b.dtype, (net, spec.name, a.shape, b.shape)
            if net == "facenet":
                assert np.min(np.sum(a * b, axis=1)) >= FACENET_MIN_COSINE, net
            else:
                np.testing.assert_allclose(a, b, atol=1e-4, err_msg=f"{net} {spec.name}")
        assert remote.run(batch[:0])[0].shape[0] == 0  # an empty batch keeps the engine's shapes
        remote.close()


def test_detect_and_embed_match_onnxruntime_on_a_real_photo(server: TritonServer, engine_dir: Path, shared_data: Path,
                                                           tmp_path: Path):
    photo = str(shared_data / PHOTO)
    common = ("--engines", str(engine_dir), "--threads", "1")
    remote = ("--backend", "triton", "--triton-url", _up(server).url)
    found = {}
    for name, backend in (("onnxruntime", ()), ("triton", remote)):
        run = run_cli("detect", photo, "--json", *common, *backend, timeout=300)
        assert run.returncode == 0, run.stderr
        found[name] = json.loads(run.stdout)[0]["faces"]
        embed = run_cli("embed", photo, "--all-faces", "--out", str(tmp_path / f"{name}.npy"), *common, *backend,
                        timeout=300)
        assert embed.returncode == 0, embed.stderr
    assert len(found["onnxruntime"]) >= 3
    from streamrec.detect.types import FaceDetections

    def faces(items: list[dict]) -> FaceDetections:
        return FaceDetections(
            np.array([f["box"] for f in items], np.float32), np.array([f["score"] for f in items], np.float32),
            np.array([[p for point in f["landmarks"].values() for p in point] for f in items], np.float32).reshape(-1, 5, 2),
        )

    assert_same_faces(faces(found["triton"]), faces(found["onnxruntime"]), PHOTO)
    ours, reference = np.load(tmp_path / "triton.npy"), np.load(tmp_path / "onnxruntime.npy")
    assert ours.shape == reference.shape and len(ours) >= 3
    assert np.min(np.sum(ours * reference, axis=1)) >= FACENET_MIN_COSINE


def _resumes(remote: Backend, batch: np.ndarray, before: list[np.ndarray], when: str) -> None:
    """Calls on ``remote`` succeed again within a minute, with the outputs they had ``before``."""
    deadline = time.monotonic() + 60
    while True:
        try:
            after = remote.run(batch)
            break
        except BackendUnavailable:
            assert time.monotonic() < deadline, f"calls never resumed {when}"
            time.sleep(0.1)  # polling interval of a deadline loop
    for ours, theirs in zip(after, before):
        np.testing.assert_array_equal(ours, theirs)
    remote.close()


def test_calls_fail_clearly_while_the_server_is_down_and_resume_when_it_is_back(server: TritonServer,
                                                                                engine_dir: Path, shared_data: Path):
    batch = _inputs(shared_data)["rnet"]
    remote = open_backend("triton", engine_dir / ENGINE_FILES["rnet"], _triton(_up(server), timeout_s=5))
    before = remote.run(batch)
    server.kill()
    with pytest.raises(BackendUnavailable) as failed:
        remote.run(batch)
    assert server.url in str(failed.value) and "\n" not in str(failed.value)
    with pytest.raises(BackendUnavailable, match="unreachable; trying again in"):
        remote.run(batch)  # within the back-off: refused at once, without a call
    server.restart()
    _resumes(remote, batch, before, "after the server came back")


def test_a_frozen_server_times_out_and_is_used_again_once_it_thaws(server: TritonServer, engine_dir: Path,
                                                                   shared_data: Path):
    batch = _inputs(shared_data)["rnet"]
    remote = open_backend("triton", engine_dir / ENGINE_FILES["rnet"], _triton(_up(server), timeout_s=1))
    before = remote.run(batch)
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)  # sockets open, nothing answers
    try:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"^triton at {server.url}: running 'rnet' failed: "):
            remote.run(batch)
        assert time.monotonic() - start < 4, "the call outlasted its timeout"
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    _resumes(remote, batch, before, "after the server thawed")


def test_a_missing_model_or_a_server_that_is_down_is_one_line(server: TritonServer, engine_dir: Path, tmp_path: Path,
                                                             shared_data: Path):
    with pytest.raises(ValueError) as missing:
        open_backend("triton", tmp_path / "nobody.onnx", _triton(_up(server)))
    assert str(missing.value) == f"triton at {server.url} has no ready model 'nobody'"
    (tmp_path / "rnet.onnx").symlink_to(engine_dir / ENGINE_FILES["onet"])  # not the engine the server has
    with pytest.raises(ValueError, match=f"^triton at {server.url}: model 'rnet' has inputs .*24, 24.*, rnet.onnx has "
                       ".*48, 48.*: export the repository from these engines$"):
        open_backend("triton", tmp_path / "rnet.onnx", _triton(server))
    prefixed = BackendOptions(triton=TritonOptions(url=server.url, model_prefix="site1-"))
    with pytest.raises(ValueError, match=f"^triton at {server.url} has no ready model 'site1-pnet'$"):
        open_backend("triton", engine_dir / ENGINE_FILES["pnet"], prefixed)
    closed = TritonServer(server.repository, tmp_path / "unused.log").url  # a free port nobody serves
    run = run_cli("detect", str(shared_data / PHOTO), "--engines", str(engine_dir), "--backend", "triton",
                  "--triton-url", closed, timeout=120)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and f"triton at {closed}" in run.stderr, run.stderr


def test_a_pipeline_refuses_to_start_without_the_server_or_its_models(server: TritonServer, engine_dir: Path,
                                                                      hamilton_clip: Path, tmp_path: Path):
    common = ("run", "--source", str(hamilton_clip), "--engines", str(engine_dir), "--data-dir", str(tmp_path / "data"),
              "--backend", "triton", "--precision", "fp32", *quiet_outputs())
    closed = TritonServer(server.repository, tmp_path / "unused.log").url
    down = run_cli(*common, "--triton-url", closed, timeout=120)
    assert down.returncode == 1 and down.stderr.count("\n") == 1, down.stderr
    assert down.stderr.startswith(f"streamrec: error: --triton-url: triton at {closed}: the health check failed"), down.stderr
    config = tmp_path / "site.toml"
    config.write_text(f'[triton]\nurl = "{_up(server).url}"\nmodel_prefix = "site1-"\n')
    missing = run_cli(*common, "--config", str(config), timeout=120)
    assert missing.returncode == 1, missing.stderr
    assert missing.stderr == f"streamrec: error: {config}: triton.url: triton at {server.url} has no ready model 'site1-pnet'\n"


def test_bench_models_times_the_server_beside_onnxruntime(server: TritonServer, engine_dir: Path, tmp_path: Path):
    """``bench models --triton-url``: every net at every batch, and whole frames, timed through
    the server at that address beside ONNX Runtime in process; a server that is not there is one
    line."""
    common = ("bench", "models", "--backend", "onnxruntime,triton", "--precision", "fp32", "--threads", "1",
              "--duration", "0.05", "--rounds", "1", "--batches", "1,4", "--min-face-sizes", "40", "--engines", str(engine_dir))
    out = tmp_path / "bench.json"
    run = run_cli(*common, "--triton-url", _up(server).url, "--out", str(out), timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["triton_url"] == server.url and set(report["libraries"]) == {"onnxruntime", "triton"}
    timed = {(r["model"], r["backend"], r["batch"]) for r in report["nets"] if r["runs"] >= 1 and r["median_ms"] > 0}
    assert timed == {(m, b, n) for m in ("rnet", "onet", "facenet") for b in ("onnxruntime", "triton") for n in (1, 4)}
    (detection,) = report["detection"]
    assert detection["faces_found"]["triton"] == detection["faces_found"]["onnxruntime"] >= 2
    closed = TritonServer(server.repository, tmp_path / "unused.log").url  # a free port nobody serves
    down = run_cli(*common, "--triton-url", closed, timeout=120)
    assert down.returncode == 1 and "Traceback" not in down.stderr, down.stderr
    assert down.stderr.splitlines()[-1].startswith(f"streamrec: error: triton at {closed}: the health check failed"), down.stderr


def test_a_server_started_for_a_script_is_ready_and_stops_with_its_process_group(server: TritonServer, tmp_path: Path):
    """``python -m streamrec.bench.tritonserver REPOSITORY LOG`` (as tools/run_benchmarks.sh runs
    it) returns once every model is ready, printing ``PID HOST:PORT``; killing that process group
    stops it. A repository that is not there is one line."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    command = [sys.executable, "-m", "streamrec.bench.tritonserver"]
    started = subprocess.run([*command, str(server.repository), str(tmp_path / "server.log")], capture_output=True,
                             text=True, timeout=300, check=False)
    assert started.returncode == 0, started.stderr
    pid, url = started.stdout.split()
    try:
        with grpcclient.InferenceServerClient(url) as client:
            assert client.is_server_ready(client_timeout=5)
            assert all(client.is_model_ready(net, client_timeout=5) for net in ("pnet", "rnet", "onet", "facenet"))
    finally:
        os.killpg(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + 60
    with grpcclient.InferenceServerClient(url) as client:
        while True:
            try:
                client.is_server_live(client_timeout=1)
            except InferenceServerException:
                break
            assert time.monotonic() < deadline, "the server outlived its process group"
            time.sleep(0.1)  # polling interval of a deadline loop
    missing = subprocess.run([*command, str(tmp_path / "nowhere"), str(tmp_path / "server.log")], capture_output=True,
                             text=True, timeout=60, check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == f"tritonserver: {tmp_path / 'nowhere'}: no such model repository (streamrec engines export --triton DIR writes one)\n"


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """``(cert, key)``: a self-signed certificate for 127.0.0.1, valid for two days (openssl)."""
    if shutil.which("openssl") is None:
        missing("the Triton TLS test makes its certificates with openssl")
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_mutual_tls_reaches_a_server_that_asks_for_it_and_nothing_else_does(server: TritonServer, engine_dir: Path,
                                                                             shared_data: Path, tmp_path: Path):
    (server_cert, server_key), (client_cert, client_key) = _self_signed(tmp_path, "server"), _self_signed(tmp_path, "client")
    shutil.copytree(server.repository / "rnet", tmp_path / "repository" / "rnet")
    secure = TritonServer(
        tmp_path / "repository", tmp_path / "tls.log",
        options=["--grpc-use-ssl-mutual", "true", "--grpc-server-cert", str(server_cert), "--grpc-server-key",
                 str(server_key), "--grpc-root-cert", str(client_cert)],
        client={"ssl": True, "root_certificates": str(server_cert), "private_key": str(client_key),
                "certificate_chain": str(client_cert)},
    )
    path, batch = engine_dir / ENGINE_FILES["rnet"], _inputs(shared_data)["rnet"]
    secure.start()
    try:
        mutual = TritonOptions(url=secure.url, tls=True, root_cert=str(server_cert), client_cert=str(client_cert),
                               client_key=str(client_key))
        remote = open_backend("triton", path, BackendOptions(triton=mutual))
        reference = open_backend("onnxruntime", path, BackendOptions(threads=1))
        for a, b in zip(remote.run(batch), reference.run(batch)):
            np.testing.assert_allclose(a, b, atol=1e-4)
        remote.close()
        for refused in (TritonOptions(url=secure.url, timeout_s=5),  # no TLS
                        TritonOptions(url=secure.url, tls=True, root_cert=str(server_cert), timeout_s=5)):  # no client cert
            with pytest.raises(ValueError) as caught:
                open_backend("triton", path, BackendOptions(triton=refused))
            assert str(caught.value).startswith(f"triton at {secure.url}: the health check failed: ")
            assert "\n" not in str(caught.value)
    finally:
        secure.stop()


def test_the_inference_stage_survives_a_server_restart_and_reports_its_health(server: TritonServer,
                                                                             engine_dir: Path, shared_data: Path,
                                                                             tmp_path: Path):
    config = RunConfig(
        pipeline=PipelineConfig(backend="triton", precision="fp32", threads=1),
        triton=TritonConfig(url=_up(server).url, timeout_s=5),
        sources=[SourceConfig(url="0", name="cam")],
    )
    photo = load_image(shared_data / PHOTO, 640).rgb
    with stepped_inference(config, tmp_path / "data", engine_dir) as stepped:
        stage = stepped.stage
        sockets.send(stepped.status_out, "status", SourceStatus("cam", "open", time.time(), "camera open"))
        index = 0

        def step_until(done, what: str, timeout: float = 60) -> None:
            nonlocal index
            deadline = time.monotonic() + timeout
            while not done():
                assert time.monotonic() < deadline, f"never {what}: {dict(stage.counters)} {stage.gauges}"
                place = stepped.ring.publish(photo)
                assert place is not None
                header = FrameHeader("cam", index, time.time(), *photo.shape[:2], ring=place[0], slot=place[1],
                                     seq=place[2])
                sockets.send_frame(stepped.frames_out, header)
                index += 1
                stage.step()

        step_until(lambda: stage.counters["frames[cam]"] >= 2 and stage.gauges.get("triton_live") == 1.0, "processed")
        models = ("pnet", "rnet", "onet", "facenet")
        assert {m: stage.gauges[f"triton_model_ready_{m}"] for m in models} == dict.fromkeys(models, 1.0)
        metrics = StageMetrics()
        metrics.update(StageStats(stage.name, os.getpid(), time.time(), dict(stage.counters), dict(stage.gauges)))
        assert 'streamrec_triton_ready{source="",stage="inference"} 1.0' in metrics.exposition().decode()

        server.kill()
        step_until(lambda: stage.counters["batches_failed"] >= 2 and stage.gauges.get("triton_live") == 0.0,
                   "failed while the server was down")
        server.restart()
        processed = stage.counters["frames[cam]"]
        step_until(lambda: stage.counters["frames[cam]"] >= processed + 2, "resumed after the restart")
        step_until(lambda: stage.gauges.get("triton_ready") == 1.0, "saw the server ready again")
