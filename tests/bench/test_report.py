"""``streamrec bench report``, built from the benchmark JSON files the project commits in
docs/bench/ (real runs of tools/run_benchmarks.sh), copied into a temporary folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from streamrec.backends.cpu import CpuInfo
from streamrec.bench.report import COMMANDS, REPRODUCE, TARGETS, ReportError, pipeline_latency, write_report
from tests.conftest import ROOT, run_cli

BENCH = ROOT / "docs" / "bench"
NEEDED = ("pipeline_1", "pipeline_4", "pipeline_1_noskips", "transport", "peers")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    missing = [n for n in NEEDED if not (BENCH / f"{n}.json").is_file()]
    if missing:
        pytest.skip(f"no recorded benchmark results in {BENCH} ({', '.join(missing)}.json missing; {REPRODUCE} makes them)")
    folder = tmp_path / "bench"
    folder.mkdir()
    for path in BENCH.glob("*.json"):
        shutil.copy(path, folder / path.name)
    return folder


def _json(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.json").read_text())


def _check_png(path: Path) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        assert width >= 800 and height >= 400
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50  # drawn on, not a blank canvas


def test_report_from_the_recorded_results(bench_dir: Path, tmp_path: Path):
    out = tmp_path / "docs" / "benchmarks.md"
    result = run_cli("bench", "report", "--dir", str(bench_dir), "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    plots = out.parent / "benchmarks"
    assert result.stdout.split() == [str(out), *(str(plots / f"{n}.png") for n in ("fps", "latency", "stages"))]
    text = out.read_text()
    for heading in ("# Benchmarks", "## Machine", "## Headline: end-to-end FPS", "## Who was identified", "## Where the time of a frame goes",
                    "## The pipeline end to end", "## Frame transport", "## The peers in detail"):
        assert f"\n{heading}" in "\n" + text, heading
    assert f"```\n{REPRODUCE}\n```" in text
    for name in ("fps", "latency", "stages"):
        assert f"](benchmarks/{name}.png)" in text
        _check_png(plots / f"{name}.png")

    one, four, peers, transport = (_json(bench_dir, n) for n in ("pipeline_1", "pipeline_4", "peers", "transport"))
    cpu = CpuInfo(one["machine"]["cpu"], tuple(one["machine"]["cpu_flags"])).describe()  # the model and its instruction sets
    assert f"CPU: {cpu}, {one['machine']['cores_available']} cores available" in text
    # the headline: our FPS, each peer's, and the ratios, as the JSON has them
    assert f"| streamrec pipeline, 1 live stream, with skips | live: the clip played at 29.97 fps like a camera | {one['fps']:.1f} |" in text
    # the targets, each with why
    targets = text.split("## Targets")[1].split("\n## ")[0]
    for target, why in TARGETS:
        assert f"| {target} | {why} |" in targets
    assert "issue" not in text.lower()
    # the pipeline's figures
    event_p95 = one["latency_ms"]["capture_to_event"]["p95"]
    assert f"| {event_p95:.1f} ms ({one['latency_ms']['capture_to_event']['samples']} events) |" in text
    slowest = min(s["fps"] for s in four["sources"].values())
    assert f"{slowest:.1f} FPS (slowest of 4)" in text
    result_latency = one["sources"]["cam1"]["capture_to_result_ms"]
    assert f"{result_latency['p50']:.1f} / {result_latency['p95']:.1f} / {result_latency['p99']:.1f}" in text
    for person in one["identities"]:
        assert f"{person['name']}: {person['matches']} match events" in text
    # the transport's verdict, met or not, in its own figures
    verdict = transport["verdict"]
    assert f"| {verdict['percent']:.2f}% | " in text and f"| {verdict['call_percent']:.2f}% | " in text
    assert f"(`multipart`) cost {verdict['multipart_percent']:.2f}% of the budget" in text
    assert ("over by" in text.split("## Frame transport")[1]) == (not verdict["meets_goal"] or not verdict["calls_meet_goal"])
    # across hosts: the tcp rows with their bytes per frame, and which is cheaper by how much
    for row in transport["rows"]:
        if row["message_bytes_per_frame"] is not None:
            assert f"| {row['message_bytes_per_frame']:,} |" in text
    assert f"{verdict['raw_tcp_percent']:.2f}% of the budget raw and {verdict['jpeg_tcp_percent']:.2f}% as JPEG" in text
    assert f"JPEG costs {verdict['jpeg_cpu_ratio']:.1f}x raw's transport CPU per frame" in text
    # the peers: who they named, their pair accuracy
    for row in peers["systems"].values():
        if row.get("identities"):
            who, figures = next(iter(row["identities"].items()))
            assert f"{who}: {figures['faces']} faces on {figures['frames']} frames" in text
        if row.get("verification"):
            assert f"{row['verification']['accuracy']:.3f} +- {row['verification']['accuracy_std']:.3f}" in text
        listed = row.get("verification_pairs")
        if listed:  # the pair list's figures in the peers' table, with how many pairs were scored
            cell = f"| {listed['accuracy']:.3f} / {listed['val_at_far_1e-3']:.3f} / {listed['auc']:.3f} ({listed['pairs_scored']} of {listed['pairs']}) |"
            assert cell in text
    if peers.get("pair_file"):
        assert f"Pair list: `{Path(peers['pair_file']['pairs']).name}`, each system" in text


def _set(folder: Path, name: str, change: Callable[[dict], object]) -> None:
    """Rewrite ``folder/name.json`` through ``change(data)``."""
    data = _json(folder, name)
    change(data)
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_missing_files_say_not_measured(bench_dir: Path, tmp_path: Path):
    _set(bench_dir, "pipeline_1", lambda d: d.update(fps=26.0))
    for name in ("peers", "transport", "models_triton"):
        (bench_dir / f"{name}.json").unlink(missing_ok=True)
    out = tmp_path / "benchmarks.md"
    written = write_report(bench_dir, out)
    assert written[0] == out and all(p.is_file() for p in written)
    text = out.read_text()
    peers_part = text.split("## The peers in detail")[1]
    assert "Not measured: `peers.json` is missing." in peers_part and COMMANDS["peers"] in peers_part
    transport_part = text.split("## Frame transport")[1].split("## ")[0]
    assert "Not measured: `transport.json` is missing." in transport_part and COMMANDS["transport"] in transport_part
    assert "Not judged: the peers not measured." in text
    assert "| >= 25 FPS, one live stream | 26.0 FPS | **met** |" in text  # the other figures are judged as ever
    triton_part = text.split("## Triton beside in-process inference")[1]
    assert "Not measured: `models_triton.json` is missing." in triton_part and COMMANDS["models_triton"] in triton_part
    assert "`.venv-triton`, which `make test` makes" in triton_part


def test_transport_from_before_the_tcp_rows(bench_dir: Path, tmp_path: Path):
    """A transport.json written before the transports across hosts were measured still renders:
    no bytes per frame, no paragraph about them."""
    def older(data: dict) -> None:
        data["rows"] = [row for row in data["rows"] if not row["transport"].endswith(("_tcp", "_curve"))]
        for row in data["rows"]:
            del row["message_bytes_per_frame"]
        for key in ("raw_tcp_percent", "jpeg_tcp_percent", "jpeg_tcp_curve_percent", "jpeg_cpu_ratio", "curve_cpu_ratio", "jpeg_bytes_ratio"):
            del data["verdict"][key]

    _set(bench_dir, "transport", older)
    (bench_dir / "transport_1280x720.json").unlink(missing_ok=True)
    out = tmp_path / "benchmarks.md"
    write_report(bench_dir, out)
    transport_part = out.read_text().split("## Frame transport")[1].split("\n## ")[0]
    assert "| ring | 30 fps |" in transport_part and "raw_tcp |" not in transport_part and "Across hosts" not in transport_part
    assert all(line.endswith("| - |") for line in transport_part.splitlines() if line.startswith(("| ring |", "| mp_queue |")))


def test_targets_are_judged_on_figures_set_by_hand(bench_dir: Path, tmp_path: Path):
    """Each verdict against figures chosen here, at and around each target; the expected lines
    were worked out by hand."""
    _set(bench_dir, "pipeline_fast", lambda d: d.update(fps=50.0))
    _set(bench_dir, "peers", lambda d: (d["systems"]["facenet_pytorch"].update(fps=10.0),
                                        d["systems"]["face_recognition"].update(fps=26.0)))

    def live(d: dict) -> None:
        d.update(fps=24.9)
        d["cpu"]["percent"] = 80.0
        d["latency_ms"]["capture_to_event"].update(p95=150.0, samples=21)

    _set(bench_dir, "pipeline_1", live)
    _set(bench_dir, "pipeline_4", lambda d: [row.update(fps=fps) for row, fps in zip(d["sources"].values(), (9.0, 7.5, 12.0, 8.0))])
    out = tmp_path / "benchmarks.md"
    write_report(bench_dir, out)
    text = out.read_text()
    assert "| >= 5x facenet-pytorch | 5.00x (50.0 vs 10.00 FPS) | **met** |" in text  # exactly at the target
    # 50 / 26 = 1.923: short of 2 by 0.077; 2 x 26 = 52 FPS needed, 2 more
    assert "| >= 2x face_recognition (dlib) | 1.92x (50.0 vs 26.00 FPS) | **not met**: short by 0.08x (needs 52.0 FPS, 2.0 more) |" in text
    assert "| >= 25 FPS, one live stream | 24.9 FPS | **not met**: short by 0.1 FPS |" in text
    assert "| p95 capture-to-event <= 150 ms, one live stream | 150.0 ms (21 events) | **met** |" in text
    assert "| 4 live streams at once, >= 8 FPS each | 7.5 FPS (slowest of 4) | **not met**: short by 0.5 FPS |" in text
    # 0.8 cores at 24.9 FPS: 800 ms of CPU a second over 24.9 frames, 32.1 ms each
    assert "| streamrec pipeline, 1 live stream, with skips | live: the clip played at 29.97 fps like a camera | 24.9 | 0.80 | 32.1 |" in text


def test_newer_json_fields_are_used(bench_dir: Path, tmp_path: Path):
    """Latency samples (plotted as a real distribution), step means."""
    one = _json(bench_dir, "pipeline_1")
    one.pop("latency_samples_ms", None)  # as recorded before the samples were kept
    assert pipeline_latency(one)[0] == "percentiles"
    one["latency_samples_ms"] = {"capture_to_result": [10.0 + i % 50 for i in range(500)], "capture_to_event": [50.0, 60.0]}
    for step in one["steps_ms"].values():
        step["mean"] = step["median"] * 2
    (bench_dir / "pipeline_1.json").write_text(json.dumps(one))
    kind, samples = pipeline_latency(one)
    assert kind == "samples" and len(samples) == 500
    out = tmp_path / "benchmarks.md"
    write_report(bench_dir, out)
    text = out.read_text()
    detect = one["steps_ms"]["detect"]
    assert f"| detect | {detect['median']:.2f} | {detect['mean']:.2f} |" in text
    row = next(line for line in text.splitlines() if line.startswith("| streamrec pipeline, 1 live stream, with skips | ") and "frames," in line)
    assert "≈" not in row and "means of" in row
    _check_png(out.parent / "benchmarks" / "latency.png")


def test_identification_is_judged_on_the_pair_file_when_given(bench_dir: Path, tmp_path: Path):
    """With ``--pairs``, the goal is judged on that larger list; the photos' pairs stay beside it."""
    peers = _json(bench_dir, "peers")
    peers["pair_file"] = {"pairs": "../shared/data/lfw_view1/pairsDevTest.txt", "images": "../shared/data/lfw_view1/deepfunneled",
                          "same": 500, "different": 500, "folds": 10}
    scores = {"streamrec": 0.992, "face_recognition": 0.990, "facenet_pytorch": 0.995}
    for name, accuracy in scores.items():
        peers["systems"][name]["verification_pairs"] = {"accuracy": accuracy, "accuracy_std": 0.01, "pairs": 1000}
    (bench_dir / "peers.json").write_text(json.dumps(peers))
    out = tmp_path / "benchmarks.md"
    write_report(bench_dir, out)
    text = out.read_text()
    goals = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| identification equal or better")}
    dlib, pytorch = goals["identification equal or better than face_recognition (dlib)"], goals["identification equal or better than facenet-pytorch"]
    assert "pair accuracy on `pairsDevTest.txt` (LFW format, 1000 pairs) 0.992 vs 0.990" in dlib and "pair accuracy lower" not in dlib
    photos = peers["systems"]["streamrec"]["verification"]
    assert f"on the photos' {photos['pairs']} pairs {photos['accuracy']:.3f} vs " in dlib
    assert "pair accuracy on `pairsDevTest.txt` lower by 0.003, about 3 of 1000 pairs" in pytorch
    section = text.split("## Who was identified")[1].split("\n## ")[0]
    assert "| pair accuracy | LFW pair accuracy |" in section and "| 0.992 +- 0.010 |" in section
    assert "LFW pair accuracy: the same protocol on `pairsDevTest.txt` (500 same-person and 500 different-person pairs" in section


def test_each_streamrec_engine_is_labelled_and_set_beside_the_targets(bench_dir: Path, tmp_path: Path):
    """A peers.json with two streamrec engines and one refused: every table names each row by its
    engine, and each engine's per-frame FPS over each peer's is given beside the speed targets
    (figures chosen here, ratios worked out by hand); the pipeline's targets are judged as ever."""
    refused = "openvino bf16: bf16 needs a CPU with AVX-512 BF16 or AMX"

    def two_engines(data: dict) -> None:
        onnx, openvino = {"backend": "onnxruntime", "precision": "fp32", "device": None}, {"backend": "openvino", "precision": "int8", "device": None}
        systems = data["systems"]
        systems["facenet_pytorch"]["fps"], systems["face_recognition"]["fps"] = 2.0, 5.0
        systems["streamrec"].update(fps=8.0, engine=onnx)
        systems["streamrec:openvino:int8"] = {**systems["streamrec"], "fps": 12.0, "engine": openvino}
        data["config"].update(engines=[onnx, openvino], skipped=[refused])

    _set(bench_dir, "peers", two_engines)
    out = tmp_path / "benchmarks.md"
    write_report(bench_dir, out)
    text = out.read_text()
    # the engines' targets: 3x facenet-pytorch, 3.5x face_recognition. 8 / 2 = 4.00 (over 3),
    # 8 / 5 = 1.60 (under 3.5); 12 / 2 = 6.00 (over), 12 / 5 = 2.40 (under)
    assert "| streamrec, per frame (no tracking), on | FPS | over facenet-pytorch, target 3x | over face_recognition (dlib), target 3.5x |" in text
    assert "| onnxruntime fp32 | 8.0 | 4.00x (reaches it) | 1.60x |" in text
    assert "| openvino int8 | 12.0 | 6.00x (reaches it) | 2.40x |" in text
    assert f"Asked for, not run on this machine: {refused}." in text
    for engine in ("onnxruntime fp32", "openvino int8"):
        label = f"streamrec, per frame (no tracking), {engine}"
        assert f"| {label} | offline: every frame, as fast as it goes |" in text  # the headline
        assert f"\n| {label} | " in text.split("## Where the time of a frame goes")[1].split("\n## ")[0]
        assert f"\n| {label} | " in text.split("## The peers in detail")[1]
    fast = _json(bench_dir, "pipeline_fast")
    assert f"| >= 5x facenet-pytorch | {fast['fps'] / 2.0:.2f}x ({fast['fps']:.1f} vs 2.00 FPS) |" in text


def _net(model: str, backend: str, batch: int, median_ms: float) -> dict:
    """One row of ``bench models``' ``nets``, as it writes them."""
    return {"model": model, "backend": backend, "precision": "fp32", "batch": batch, "median_ms": median_ms,
            "p10_ms": median_ms * 0.9, "p90_ms": median_ms * 1.1, "runs": 100.0, "per_item_ms": median_ms / batch,
            "items_per_s": 1e3 * batch / median_ms}


def _timing(median_ms: float) -> dict:
    return {"median_ms": median_ms, "p10_ms": median_ms * 0.9, "p90_ms": median_ms * 1.1, "runs": 40.0}


#: what ``streamrec bench models --backend onnxruntime,triton --precision fp32 --threads 1
#: --triton-url ...`` writes (the shape of a real run's file), with figures chosen here
MODELS_TRITON = {
    "machine": {"cpu": "AMD EPYC", "cpu_flags": ["avx2"], "cores_available": 2, "cpu_count": 2, "memory_gb": 24.0,
                "os": "Linux-6.18-x86_64-with-glibc2.36", "python": "3.11.7", "measured": "2026-12-02T18:06:00Z", "gpu": None},
    "threads": 1, "device": None, "triton_url": "127.0.0.1:50507", "libraries": {"onnxruntime": "1.32.0", "triton": "2.73.0"},
    "skipped": [],
    "nets": [_net("rnet", "onnxruntime", 1, 0.5), _net("rnet", "triton", 1, 2.5),
             _net("rnet", "onnxruntime", 32, 4.0), _net("rnet", "triton", 32, 8.0),
             _net("facenet", "onnxruntime", 1, 40.0), _net("facenet", "triton", 1, 44.0)],
    "detection": [{"min_face_size": 40.0, "frame": "640x480", "frames": 8,
                   "streamrec": {"onnxruntime": _timing(40.0), "triton": _timing(60.0)},
                   "faces_found": {"onnxruntime": 8, "triton": 8}, "reference": "facenet-pytorch 2.6.0, torch 2.14.1",
                   "facenet_pytorch": _timing(96.0), "speedup": {"onnxruntime": 2.4, "triton": 1.6}}],
}


def test_triton_beside_in_process(tmp_path: Path):
    """Per net and batch: both medians, what a call through the server costs more, and the ratio,
    worked out by hand from the figures of :data:`MODELS_TRITON`; what the server was."""
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "models_triton.json").write_text(json.dumps(MODELS_TRITON))
    out = tmp_path / "benchmarks.md"
    write_report(folder, out)
    section = out.read_text().split("## Triton beside in-process inference\n")[1]
    for row in ("| R-Net | 1 | 0.50 | 2.50 | +2.00 | 5.00x |", "| R-Net | 32 | 4.00 | 8.00 | +4.00 | 2.00x |",
                "| FaceNet | 1 | 40.00 | 44.00 | +4.00 | 1.10x |",
                "| MTCNN, a 640x480 frame, faces from 40 px | whole frame (of 8) | 40.00 | 60.00 | +20.00 | 1.50x |"):
        assert f"\n{row}\n" in section, row
    assert "A call of a batch of 1 cost 2.00 to 4.00 ms more through the server here" in section
    assert "nvidia-pytriton's `tritonserver` on the same machine, its Python backend running the same ONNX files with ONNX Runtime" in section
    assert "over gRPC on loopback (`127.0.0.1:50507`). A GPU server was not measured." in section
    assert "ONNX Runtime 1.32.0 and through Triton (tritonclient 2.73.0)" in section and "--threads 1`" in section


def test_triton_without_both_backends_says_so(tmp_path: Path):
    """A file of a run without triton (or without onnxruntime) has nothing to set side by side."""
    alone = {**MODELS_TRITON, "nets": [r for r in MODELS_TRITON["nets"] if r["backend"] == "onnxruntime"],
             "detection": [{**MODELS_TRITON["detection"][0], "streamrec": {"onnxruntime": _timing(40.0)}}]}
    (tmp_path / "models_triton.json").write_text(json.dumps(alone))
    write_report(tmp_path, tmp_path / "benchmarks.md")
    section = (tmp_path / "benchmarks.md").read_text().split("## Triton beside in-process inference")[1]
    assert "Not measured: `models_triton.json` has no figures of both onnxruntime and triton." in section and "|" not in section


def test_the_triton_section_leaves_the_others_as_they_were(bench_dir: Path, tmp_path: Path):
    """The recorded results with and without ``models_triton.json``: every section from the
    targets to the peers reads the same."""
    def sections(name: str) -> str:
        out = tmp_path / name / "benchmarks.md"  # the same name, so the same links to the plots
        write_report(bench_dir, out)
        return out.read_text().split("\n## Targets")[1].split("\n## Triton beside in-process inference")[0]

    (bench_dir / "models_triton.json").unlink(missing_ok=True)
    without = sections("without")
    (bench_dir / "models_triton.json").write_text(json.dumps(MODELS_TRITON))
    assert sections("with") == without


def test_commands_are_those_of_the_script():
    script = (ROOT / REPRODUCE).read_text()
    for name, command in COMMANDS.items():
        assert command in script, name
    assert "streamrec bench report --dir \"$out\" --out docs/benchmarks.md" in script


def test_no_results(tmp_path: Path):
    with pytest.raises(ReportError, match="none of the benchmark JSON files"):
        write_report(tmp_path, tmp_path / "out.md")
    (tmp_path / "peers.json").write_text("{not json")
    with pytest.raises(ReportError, match="peers.json: not a readable JSON file"):
        write_report(tmp_path, tmp_path / "out.md")
    result = run_cli("bench", "report", "--dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out.md"), timeout=60)
    assert result.returncode != 0 and "streamrec: error:" in result.stderr and "no such folder" in result.stderr


MACHINE = {"cpu": "Test CPU 9000", "cpu_flags": ["avx2"], "cores_available": 2, "python": "3.12.0"}


def _workers_run(streams: int, sources_fps: list[float], workers: dict[str, dict], skipped: int, event_p95: float) -> dict:
    """A small ``bench pipeline --workers`` result: the keys the report reads."""
    return {
        "machine": MACHINE,
        "config": {"source": "clip.mp4", "streams": streams, "workers": len(workers), "fast": False, "warmup_s": 5.0,
                   "source_info": {"width": 640, "height": 360, "fps": 29.97, "frames": 275}},
        "fps": sum(sources_fps),
        "sources": {f"cam{i + 1}": {"fps": fps} for i, fps in enumerate(sources_fps)},
        "frames_skipped": skipped,
        "latency_ms": {"capture_to_event": {"p50": 80.0, "p95": event_p95, "p99": 160.0, "mean": 85.0, "samples": 12}},
        "workers": workers,
    }


ONE_WORKER = _workers_run(4, [15.0] * 4, {"inference": {
    "pid": 10, "cameras": ["cam1", "cam2", "cam3", "cam4"], "frames": 1800, "fps": 60.0, "skipped": 300, "busy": 0.98,
    "capacity_fps": 61.2, "cpu_cores": 1.85, "peak_rss_mb": 420.0}}, skipped=300, event_p95=140.3)
TWO_WORKERS = _workers_run(4, [25.0, 20.0, 29.97, 29.97], {
    "inference:1": {"pid": 11, "cameras": ["cam2"], "frames": 600, "fps": 20.0, "skipped": 0, "busy": 0.6, "capacity_fps": 49.95,
                    "cpu_cores": 0.9, "peak_rss_mb": 410.0},
    "inference:2": {"pid": 12, "cameras": ["cam1", "cam3", "cam4"], "frames": 2548, "fps": 84.94, "skipped": 120, "busy": 1.0,
                    "capacity_fps": 75.0, "cpu_cores": 1.02, "peak_rss_mb": 415.0},
}, skipped=120, event_p95=95.0)


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n")[1].split("\n## ")[0]


def test_cameras_per_worker_section(tmp_path: Path):
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "pipeline_workers_4x1.json").write_text(json.dumps(ONE_WORKER))
    (folder / "pipeline_workers_4x2.json").write_text(json.dumps(TWO_WORKERS))
    out = tmp_path / "benchmarks.md"
    write_report(folder, out)
    text = out.read_text()
    section = _section(text, "Cameras per inference worker")
    # 15 of 29.97 fps is 50%; 20 of 29.97 is 67%, 29.97 of 29.97 is 100%
    assert ("| `pipeline_workers_4x1.json` | 4 | 1 | 60.0 | 50% | 300 | 140.3 | inference 1.85 (cam1, cam2, cam3, cam4) |") in section
    assert ("| `pipeline_workers_4x2.json` | 4 | 2 | 104.9 | 67% to 100% | 120 | 95.0 | "
            "inference:1 0.90 (cam2), inference:2 1.02 (cam1, cam3, cam4) |") in section
    cpu = CpuInfo(MACHINE["cpu"], tuple(MACHINE["cpu_flags"])).describe()
    assert f"one worker sustains on this machine ({cpu}, 2 cores)" in section
    # 61.2 / 29.97 = 2.04; 49.95 / 29.97 = 1.67; 75 / 29.97 = 2.50
    assert ("- `pipeline_workers_4x1.json`, inference of 1: **2.0 cameras** (61.2 frames/s of processing / 29.97 fps), measured when "
            "saturated: its cameras offered more frames than it took (300 skipped).") in section
    assert ("- `pipeline_workers_4x2.json`, inference:1 of 2: **1.7 cameras** (50.0 frames/s of processing / 29.97 fps), not saturated "
            "(60% of the window spent processing, no frame skipped): extrapolated, a fuller load may lower it.") in section
    assert "- `pipeline_workers_4x2.json`, inference:2 of 2: **2.5 cameras** (75.0 frames/s" in section
    assert "Not measured" not in section
    # the runs are this section's alone: the pipeline section does not list them
    assert "pipeline_workers" not in _section(text, "The pipeline end to end")


def test_cameras_per_worker_not_measured(bench_dir: Path, tmp_path: Path):
    for name in ("pipeline_workers_4x1", "pipeline_workers_4x2"):
        (bench_dir / f"{name}.json").unlink(missing_ok=True)
    before = tmp_path / "before" / "benchmarks.md"  # the same name: the same links to its plots
    write_report(bench_dir, before)
    section = _section(before.read_text(), "Cameras per inference worker")
    for name in ("pipeline_workers_4x1", "pipeline_workers_4x2"):
        assert f"Not measured: `{name}.json` is missing." in section and COMMANDS[name] in section
    assert "cameras** (" not in section
    # one run of the two: the other is said missing; the other sections read as without it
    recorded_machine = _json(bench_dir, "pipeline_1")["machine"]
    (bench_dir / "pipeline_workers_4x1.json").write_text(json.dumps({**ONE_WORKER, "machine": recorded_machine}))
    after = tmp_path / "after" / "benchmarks.md"
    write_report(bench_dir, after)
    section = _section(after.read_text(), "Cameras per inference worker")
    assert "Not measured: `pipeline_workers_4x1.json` is missing." not in section and "`pipeline_workers_4x1.json` | 4 | 1 |" in section
    assert "Not measured: `pipeline_workers_4x2.json` is missing." in section and COMMANDS["pipeline_workers_4x2"] in section
    # the machine section names the file among those measured on its machine
    assert "`pipeline_workers_4x1.json`" in _section(after.read_text(), "Machine")
    others = lambda text: (text.split("\n## Machine\n")[0] + text.split("\n## Targets\n")[1].split("\n## Cameras per inference worker\n")[0]
                           + text.split("\n## Frame transport\n")[1])
    assert others(after.read_text()) == others(before.read_text())


def test_a_run_with_onednn_limited_is_a_machine_of_its_own_that_says_so(tmp_path: Path):
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "pipeline_workers_4x1.json").write_text(json.dumps(ONE_WORKER))
    (folder / "pipeline_workers_4x2.json").write_text(json.dumps({**TWO_WORKERS, "machine": {**MACHINE, "isa_cap": "AVX512_CORE_BF16"}}))
    out = tmp_path / "benchmarks.md"
    write_report(folder, out)
    section = _section(out.read_text(), "Machine")
    cpu = CpuInfo(MACHINE["cpu"], tuple(MACHINE["cpu_flags"])).describe()
    assert f"- files `pipeline_workers_4x1.json`: CPU: {cpu}, 2 cores available;" in section
    assert f"- files `pipeline_workers_4x2.json`: CPU: {cpu}, oneDNN limited to AVX512_CORE_BF16, 2 cores available;" in section
