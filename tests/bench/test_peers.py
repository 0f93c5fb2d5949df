"""``streamrec bench peers`` in its quick form, as a real process on the real clip: it runs every
installed system, and what it reports is coherent. (A benchmark, not a timed test: no speed is
asserted beyond "it processed frames".)"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_command, run_cli

# The people of the clip with photos in faces/: few photos, so enrollment and the pair list
# (alex_lacamoire's 3 photos give 3 same-person pairs) stay quick.
PEOPLE = ("alex_lacamoire", "lin_manuel_miranda")


def _peers(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*cli_command(), "bench", "peers", *args], check=False, capture_output=True,
                          text=True, timeout=300, **kwargs)


def _installed(system: str) -> bool:
    modules = {"face_recognition": ("face_recognition", "dlib"), "facenet_pytorch": ("facenet_pytorch", "torch"), "streamrec": ()}
    return all(importlib.util.find_spec(m) is not None for m in modules[system])


@pytest.fixture(scope="module")
def few_faces(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("few_faces")
    for name in PEOPLE:
        (folder / name).symlink_to((faces_dir / name).resolve())
    return folder


def test_quick_run_of_every_system(hamilton_clip: Path, few_faces: Path, tmp_path: Path):
    out = tmp_path / "peers.json"
    result = _peers(
        "--source", str(hamilton_clip), "--faces", str(few_faces), "--frames", "12", "--threads", "2",
        "--expected", ",".join(PEOPLE), "--out", str(out),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "config", "systems", "same_frames", "pairs", "pair_file", "streamrec_pipeline"}
    assert report["pair_file"] is None
    assert report["config"]["frames"] == 12 and report["config"]["threads"] == 2
    assert report["config"]["source_info"]["frames"] == 275
    assert report["pairs"] == {"same": 3, "different": 3, "folds": 3, "photos": 4, "people": list(PEOPLE)}
    assert report["streamrec_pipeline"]["result"] is None and "bench pipeline" in report["streamrec_pipeline"]["note"]
    assert report["same_frames"] is True
    assert list(report["systems"]) == ["face_recognition", "facenet_pytorch", "streamrec"]
    for name, row in report["systems"].items():
        if not _installed(name):
            assert row["available"] is False and row["reason"]
            continue
        assert row["available"] is True and "error" not in row, row.get("error")
        assert row["frames"] == 12 and row["fps"] > 0 and row["faces"] > 0
        assert len(row["per_frame"]["ms"]) == 12 and sum(row["per_frame"]["faces"]) == row["faces"]
        assert row["stage_ms"]["detect"]["median"] > 0 and row["stage_ms"]["embed"]["median"] > 0
        assert row["peak_rss_mb_process"] > 0 and row["enrolled"]["photos"]["lin_manuel_miranda"] == 1
        assert row["unexpected_names"] == []
        verification = row["verification"]
        assert verification["pairs"] == 6 and 0.0 <= verification["accuracy"] <= 1.0
    ours = report["systems"]["streamrec"]
    assert ours["identities"]["lin_manuel_miranda"]["frames"] >= 1
    assert ours["threshold"] == pytest.approx(1.12)
    if report["systems"]["facenet_pytorch"].get("available"):
        # Sandberg's weights in facenet-pytorch's network compute what our ONNX engine computes
        check = report["systems"]["facenet_pytorch"]["weights_check"]
        assert check["crops"] >= 4 and check["min_cosine_vs_onnx"] >= 0.999
    assert "streamrec" in result.stdout and "pair acc" in result.stdout


def _small_pair_list(lfw_view1: Path, folder: Path) -> Path:
    """The first 2 same-person and 2 different-person pairs of LFW View 1 DevTest, as a View 1 list."""
    lines = (lfw_view1 / "pairsDevTest.txt").read_text().splitlines()
    n = int(lines[0])
    path = folder / "pairs.txt"
    path.write_text("\n".join(["2", *lines[1:3], *lines[1 + n:3 + n]]) + "\n")
    return path


def test_a_pair_list_alone_is_scored_in_the_photos_phase(hamilton_clip: Path, lfw_view1: Path, tmp_path: Path):
    pairs, images = _small_pair_list(lfw_view1, tmp_path), lfw_view1 / "deepfunneled"
    out = tmp_path / "peers.json"
    result = _peers("--source", str(hamilton_clip), "--frames", "2", "--threads", "2", "--systems", "streamrec",
                    "--pairs", str(pairs), "--images", str(images), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["pair_file"] == {"pairs": str(pairs), "images": str(images), "same": 2, "different": 2, "folds": 2}
    assert report["pairs"] is None
    row = report["systems"]["streamrec"]
    assert row["available"] is True and "error" not in row, row.get("error")
    assert "verification" not in row and row["frames"] == 2
    scored = row["verification_pairs"]
    assert scored["pairs"] == 4 and 0.0 <= scored["accuracy"] <= 1.0
    assert f"{pairs}: 2 same + 2 different pairs, 2 folds; accuracy: streamrec {scored['accuracy']:.3f}" in result.stdout


def test_a_bad_pair_list_is_refused_before_any_system_runs(hamilton_clip: Path, lfw_view1: Path, tmp_path: Path):
    images = str(lfw_view1 / "deepfunneled")
    result = _peers("--source", str(hamilton_clip), "--pairs", str(tmp_path / "missing.txt"), "--images", images)
    assert result.returncode == 1 and "missing.txt: cannot read" in result.stderr and "Traceback" not in result.stderr
    assert "[streamrec]" not in result.stderr
    result = _peers("--source", str(hamilton_clip), "--pairs", str(_small_pair_list(lfw_view1, tmp_path)))
    assert result.returncode == 1 and "--pairs and --images go together" in result.stderr
    result = _peers("--source", str(hamilton_clip), "--pairs", str(_small_pair_list(lfw_view1, tmp_path)), "--images", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "nowhere: not a directory" in result.stderr


def test_a_library_that_cannot_be_imported_is_reported(hamilton_clip: Path, tmp_path: Path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "dlib.py").write_text("raise ImportError('simulated: dlib is not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    result = _peers("--source", str(hamilton_clip), "--frames", "2", "--systems", "face_recognition", "--json", env=env)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)["systems"]["face_recognition"]
    assert row["available"] is False and "simulated: dlib is not installed" in row["reason"]


def test_bad_options(hamilton_clip: Path, tmp_path: Path):
    result = _peers("--source", str(tmp_path / "missing.mp4"))
    assert result.returncode == 1 and "missing.mp4" in result.stderr and "Traceback" not in result.stderr
    result = _peers("--source", str(hamilton_clip), "--systems", "deepface")
    assert result.returncode == 2 and "unknown system 'deepface'" in result.stderr


def test_the_streamrec_row_runs_on_the_backend_asked_for(hamilton_clip: Path):
    """``--backend torch``: streamrec's row computes in PyTorch (its own detector and embedder)
    and says so; the engine is recorded in the configuration, the CPU in the machine."""
    pytest.importorskip("torchvision", reason="the torch backend is the 'torch' extra")
    result = _peers("--source", str(hamilton_clip), "--frames", "3", "--systems", "streamrec", "--backend", "torch", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["engine"] == {"backend": "torch", "precision": "fp32", "device": None, "detection": "fp32"}
    assert report["machine"]["gpu"] is None
    row = report["systems"]["streamrec"]
    assert row["available"] is True and "error" not in row, row.get("error")
    assert row["frames"] == 3 and row["faces"] > 0
    assert "torch on" in row["detector"] and "torch" in row["versions"]
    assert "streamrec on torch fp32 on cpu" in result.stderr


def test_an_engine_this_machine_lacks_is_one_line(hamilton_clip: Path):
    result = _peers("--source", str(hamilton_clip), "--frames", "2", "--systems", "streamrec", "--backend", "onnxruntime", "--precision", "fp16")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("streamrec: ") and "fp16" in result.stderr


def test_each_engine_is_a_streamrec_row_on_the_same_frames(hamilton_clip: Path, tmp_path: Path):
    """``--backend onnxruntime,openvino``: two streamrec rows, one after the other on the same
    frames, each recording its engine; the first keeps the key the report's targets read, and
    the report names each row by its engine."""
    pytest.importorskip("openvino", reason="the openvino backend is the 'openvino' extra")
    out = tmp_path / "bench" / "peers.json"
    result = _peers("--source", str(hamilton_clip), "--frames", "3", "--threads", "2", "--systems", "streamrec",
                    "--backend", "onnxruntime,openvino", "--precision", "fp32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    onnx, openvino = ({"backend": backend, "precision": "fp32", "device": None, "detection": "fp32"} for backend in ("onnxruntime", "openvino"))
    assert list(report["systems"]) == ["streamrec", "streamrec:openvino:fp32"]
    assert report["config"]["engine"] == onnx and report["config"]["engines"] == [onnx, openvino]
    assert report["config"]["skipped"] == [] and report["config"]["systems"] == ["streamrec"]
    rows = report["systems"]
    for row, engine in zip(rows.values(), (onnx, openvino)):
        assert row["available"] is True and "error" not in row, row.get("error")
        assert row["engine"] == engine and f"({engine['backend']} on" in row["embedder"]
        assert row["frames"] == 3 and row["faces"] > 0
    assert rows["streamrec"]["frames_sha256"] == rows["streamrec:openvino:fp32"]["frames_sha256"] and report["same_frames"] is True
    lines = result.stdout.splitlines()
    assert any(line.startswith("streamrec ") and line.split()[1] == "3" for line in lines)
    assert any(line.startswith("streamrec:openvino:fp32 ") and line.split()[1] == "3" for line in lines)

    markdown = tmp_path / "benchmarks.md"
    written = run_cli("bench", "report", "--dir", str(out.parent), "--out", str(markdown), timeout=120)
    assert written.returncode == 0, written.stderr
    text = markdown.read_text()
    for engine, row in zip(("onnxruntime fp32", "openvino fp32"), rows.values()):
        assert f"| streamrec, per frame (no tracking), {engine} | offline: every frame, as fast as it goes | {row['fps']:.1f} |" in text
        assert f"| {engine} | {row['fps']:.1f} | - | - |" in text  # its FPS over the peers': none measured here


def test_an_engine_this_cpu_lacks_is_one_line_beside_those_that_run(hamilton_clip: Path):
    """``--precision fp32,bf16`` on a CPU without bf16: the fp32 row runs; bf16 is one line on
    stderr and in the text, and listed in ``config.skipped``."""
    from streamrec.backends.cpu import cpu_info

    pytest.importorskip("openvino", reason="the openvino backend is the 'openvino' extra")
    if cpu_info().bf16:
        pytest.skip("this CPU computes in bf16, so there is no refusal to see")
    result = _peers("--source", str(hamilton_clip), "--frames", "2", "--threads", "2", "--systems", "streamrec",
                    "--backend", "openvino", "--precision", "fp32,bf16", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    refusals = [line for line in result.stderr.splitlines() if "bf16" in line]
    assert len(refusals) == 1 and refusals[0].startswith("not run: openvino bf16: ") and "AVX-512 BF16" in refusals[0]
    report = json.loads(result.stdout)
    assert report["config"]["skipped"] == [refusals[0].removeprefix("not run: ")]
    assert report["config"]["engines"] == [{"backend": "openvino", "precision": "fp32", "device": None, "detection": "fp32"}]
    row = report["systems"]["streamrec"]
    assert list(report["systems"]) == ["streamrec"] and row["available"] is True and "error" not in row, row.get("error")
    assert row["engine"]["precision"] == "fp32" and row["frames"] == 2


def test_detection_precisions_add_rows_where_the_backend_runs_them(hamilton_clip: Path):
    """``--detection-precision fp32,bf16``: each engine once per detection precision its backend
    runs here, the fp32 rows first; ONNX Runtime's bf16 detection is one refusal line, and so is
    OpenVINO's on a CPU without bf16."""
    from streamrec.backends.cpu import cpu_info

    pytest.importorskip("openvino", reason="the openvino backend is the 'openvino' extra")
    result = _peers("--source", str(hamilton_clip), "--frames", "2", "--threads", "2", "--systems", "streamrec",
                    "--backend", "onnxruntime,openvino", "--precision", "fp32", "--detection-precision", "fp32,bf16", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    refusals = [line.removeprefix("not run: ") for line in result.stderr.splitlines() if line.startswith("not run: ")]
    expected = ["onnxruntime fp32, detection bf16: detection in bf16 runs on the openvino backend only (got onnxruntime)"]
    keys = ["streamrec", "streamrec:openvino:fp32"]
    if cpu_info().bf16:
        keys.append("streamrec:openvino:fp32:detection-bf16")
    else:
        assert refusals[1].startswith("openvino fp32, detection bf16: ") and "AVX-512 BF16" in refusals[1]
        expected.append(refusals[1])
    assert refusals == expected and report["config"]["skipped"] == expected
    assert list(report["systems"]) == keys
    for key, row in report["systems"].items():
        assert row["available"] is True and "error" not in row, row.get("error")
        assert row["engine"]["detection"] == ("bf16" if key.endswith("detection-bf16") else "fp32")
        assert f"R-Net and O-Net in {row['engine']['detection']}" in row["detector"]


def test_engines_none_of_which_runs_or_auto_among_others_are_refused(hamilton_clip: Path):
    result = _peers("--source", str(hamilton_clip), "--systems", "streamrec", "--backend", "onnxruntime", "--precision", "bf16,fp16")
    assert result.returncode == 1 and "Traceback" not in result.stderr and "[streamrec]" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("streamrec: ") and "no backend here runs the precisions asked for: onnxruntime bf16: " in last
    result = _peers("--source", str(hamilton_clip), "--backend", "auto,onnxruntime")
    assert result.returncode == 2 and "auto stands alone" in result.stderr
    result = _peers("--source", str(hamilton_clip), "--backend", "auto", "--precision", "fp32,int8")
    assert result.returncode == 1 and "--backend auto and --precision auto pick one engine" in result.stderr
