"""``streamrec bench report``: ``docs/benchmarks.md`` and its plots, written from the JSON files
of the other ``bench`` sub-verbs.

:func:`write_report` reads, from one folder, ``pipeline_*.json`` (``streamrec bench pipeline
--out``), ``transport.json`` (``bench transport``), ``peers.json`` (``bench peers``) and
``models_triton.json`` (``bench models --backend onnxruntime,triton``), and
writes a Markdown report and, in a folder named after it (``docs/benchmarks/`` beside
``docs/benchmarks.md``), three PNG plots: FPS and CPU time per frame of each system, the
distribution of per-frame times and latencies, and where the time of a frame goes. Every number
in the report is read from the JSON files; only the project's targets (what the figures are
judged against, each with the reason it is set there: :data:`TARGETS`) are written here. A file that is missing turns its section into "not measured", with
the command of ``tools/run_benchmarks.sh`` that makes it.

matplotlib draws the plots (the ``build`` extra installs it); it is imported only here, so the
rest of the package never needs it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamrec.backends.cpu import CpuInfo
from streamrec.bench.models import isa_cap_text
from streamrec.bench.peers import engine_text
from streamrec.bench.transport import GOAL_PERCENT as TRANSPORT_TARGET_PERCENT

__all__ = ["COMMANDS", "REPRODUCE", "ReportError", "pipeline_latency", "pipeline_stages", "write_report"]

#: How everything is measured again, from the project root (quoted in the report)
REPRODUCE = "tools/run_benchmarks.sh"

#: The line of ``tools/run_benchmarks.sh`` that writes each file (``$clip``, ``$data``,
#: ``$watchlist``, ``$out`` and ``$url``, the address of the Triton server it starts, are the
#: script's variables)
COMMANDS = {
    "pipeline_1": 'streamrec bench pipeline --source "$clip" --streams 1 --duration 30 --data-dir "$watchlist" --out "$out/pipeline_1.json"',
    "pipeline_4": 'streamrec bench pipeline --source "$clip" --streams 4 --duration 30 --data-dir "$watchlist" --out "$out/pipeline_4.json"',
    "pipeline_1_noskips": 'streamrec bench pipeline --source "$clip" --streams 1 --duration 30 --data-dir "$watchlist" --no-skips '
    '--out "$out/pipeline_1_noskips.json"',
    "pipeline_fast": 'streamrec bench pipeline --source "$clip" --fast --config configs/wide.toml --duration 20 --data-dir "$watchlist" '
    '--out "$out/pipeline_fast.json"',
    "pipeline_fast_noskips": 'streamrec bench pipeline --source "$clip" --fast --config configs/wide.toml --duration 20 --data-dir "$watchlist" '
    '--no-skips --out "$out/pipeline_fast_noskips.json"',
    "pipeline_workers_4x1": 'streamrec bench pipeline --source "$clip" --streams 4 --workers 1 --duration 30 --data-dir "$watchlist" '
    '--out "$out/pipeline_workers_4x1.json"',
    "pipeline_workers_4x2": 'streamrec bench pipeline --source "$clip" --streams 4 --workers 2 --duration 30 --data-dir "$watchlist" '
    '--out "$out/pipeline_workers_4x2.json"',
    "transport": 'streamrec bench transport --out "$out/transport.json"',
    "transport_1280x720": 'streamrec bench transport --size 1280x720 --out "$out/transport_1280x720.json"',
    "peers": 'streamrec bench peers --source "$clip" --faces "$data/faces" --threads 2 \\\n'
    '    --backend onnxruntime,openvino --precision fp32,bf16,int8 --detection-precision fp32,bf16 \\\n'
    '    --expected lin_manuel_miranda,barack_obama,alex_lacamoire \\\n'
    '    --pairs "$data/lfw_view1/pairsDevTest.txt" --images "$data/lfw_view1/deepfunneled" \\\n'
    '    --pipeline-result "$out/pipeline_fast.json" --out "$out/peers.json"',
    "models_triton": 'streamrec bench models --backend onnxruntime,triton --precision fp32 --threads 1 --triton-url "$url" '
    '--out "$out/models_triton.json"',
}
_PIPELINES = ("pipeline_1", "pipeline_4", "pipeline_1_noskips", "pipeline_fast", "pipeline_fast_noskips")
#: the same live streams served by one inference worker, then by two (the section on cameras per worker)
_WORKER_RUNS = ("pipeline_workers_4x1", "pipeline_workers_4x2")

# The project's performance targets: what the figures are judged against, not results
PEER_TARGETS = {"facenet_pytorch": 5.0, "face_recognition": 2.0}  #: our FPS over theirs, at least
#: the engines' own target: per frame, every face embedded, no tracking, our FPS over theirs
ENGINE_TARGETS = {"facenet_pytorch": 3.0, "face_recognition": 3.5}
FPS_TARGET = 25.0  #: one live stream of the clip, end to end
EVENT_P95_TARGET_MS = 150.0  #: p95 capture-to-event latency, one stream
STREAMS_TARGET = (4, 8.0)  #: this many streams at once keep at least this FPS each
#: (target, why it is set there), as the report's "Targets" section lists them
TARGETS = (
    ((f"at least {PEER_TARGETS['facenet_pytorch']:g}x facenet-pytorch's FPS and {PEER_TARGETS['face_recognition']:g}x "
     "face_recognition's, on the same frames and cores"),
     ("streamrec exists to recognise faces in real time on a CPU: tracking faces, re-detecting them with O-Net alone and "
     "embedding a face only when it is new, undecided or better must make it several times cheaper than detecting and "
     "embedding every face of every frame, as these libraries do. face_recognition's HOG detector passes over small and "
     "turned faces, so it does less per frame, and the bar beside it is lower.")),
    ("identification equal or better than each of them",
     ("speed bought by skipping work must not cost recognition: the same pair list scored by each system's own distance, "
     "and the people of the clip named.")),
    (f"at least {FPS_TARGET:g} FPS for one live stream of a 30 fps camera",
     "nearly every frame of a camera is used: a face is looked at every 40 ms or sooner, and the door display stays fluid."),
    (f"p95 capture-to-event latency at most {EVENT_P95_TARGET_MS:g} ms, one live stream",
     ("a decision reaches the door display and the subscribers while the person is still stepping up: below the "
     "reaction time of the person waiting, so the door needs no pause anyone notices.")),
    (f"{STREAMS_TARGET[0]} live streams at once, at least {STREAMS_TARGET[1]:g} FPS each",
     "several cameras on one small machine: 8 frames a second keep a face's track at walking pace and decide within a second."),
    (f"moving a frame between processes: under {TRANSPORT_TARGET_PERCENT:g}% of the frame budget at 30 fps",
     ("every frame crosses from its capture process to the inference stage: the hand-over must cost next to nothing "
     "beside the inference it feeds.")),
)

_PEER_LABELS = {
    "streamrec": "streamrec, per frame (no tracking)",
    "facenet_pytorch": "facenet-pytorch",
    "face_recognition": "face_recognition (dlib)",
}
_STAGES = ("detect", "embed", "match", "other")
_STAGE_COLOURS = {"detect": "#4c72b0", "embed": "#dd8452", "match": "#55a868", "other": "#b0b0b0"}


class ReportError(Exception):
    """A JSON file that cannot be read, or matplotlib missing: one line for the user."""


# -- reading --------------------------------------------------------------------------------------
def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _pipeline_names(folder: Path) -> list[str]:
    """The known pipeline files first, in their order, then any other ``pipeline_*.json``, then
    the runs of the section on cameras per worker (which the pipeline section leaves out)."""
    others = sorted(p.stem for p in folder.glob("pipeline_*.json") if p.stem not in _PIPELINES and not _worker_run(p.stem))
    return [*_PIPELINES, *others, *_WORKER_RUNS]


def _worker_run(name: str) -> bool:
    return name.startswith("pipeline_workers_")


# -- formatting -----------------------------------------------------------------------------------
def _f(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{format(value, spec)}{suffix}"


def _lat(summary: dict[str, float] | None) -> str:
    if not summary:
        return "-"
    return f"{summary['p50']:.1f} / {summary['p95']:.1f} / {summary['p99']:.1f}"


def _cpu(machine: dict[str, Any]) -> str:
    """A result's CPU, with the instruction sets its figures depend on where the run recorded them."""
    flags = machine.get("cpu_flags")
    text = CpuInfo(machine.get("cpu", "unknown"), tuple(flags)).describe() if flags is not None else machine.get("cpu", "unknown")
    return text + isa_cap_text(machine)


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _command_block(names: Iterable[str]) -> list[str]:
    return ["```", *(COMMANDS[n] for n in names if n in COMMANDS), "```"]


def _not_measured(file: str) -> list[str]:
    lines = [f"Not measured: `{file}.json` is missing."]
    if file in COMMANDS:
        lines += [f"`{REPRODUCE}` makes it with:", "", *_command_block([file])]
    return lines


def _at_least(value: float, target: float, spec: str, unit: str = "") -> str:
    return "**met**" if value >= target else f"**not met**: short by {format(target - value, spec)}{unit}"


def _at_most(value: float, target: float, spec: str, unit: str = "") -> str:
    return "**met**" if value <= target else f"**not met**: over by {format(value - target, spec)}{unit}"


# -- derived figures --------------------------------------------------------------------------------
def _pipeline_label(result: dict[str, Any]) -> str:
    cfg = result.get("config", {})
    streams = cfg.get("streams", 1)
    plural = "s" if streams != 1 else ""
    mode = f"{streams} stream{plural} offline (--fast)" if cfg.get("fast") else f"{streams} live stream{plural}"
    skips = "no skips" if cfg.get("embed_every_frame") else "with skips"
    faces = f", faces from {cfg['min_face_size']:g} px" if cfg.get("config_file") and cfg.get("min_face_size") else ""
    return f"streamrec pipeline, {mode}, {skips}{faces}"


#: what the pipeline files hold, for the heading of one that is missing
_MISSING_LABELS = {
    "pipeline_1": "streamrec pipeline, 1 live stream, with skips",
    "pipeline_4": "streamrec pipeline, 4 live streams, with skips",
    "pipeline_1_noskips": "streamrec pipeline, 1 live stream, no skips",
    "pipeline_fast": "streamrec pipeline, 1 stream offline (--fast), with skips",
    "pipeline_fast_noskips": "streamrec pipeline, 1 stream offline (--fast), no skips",
}


def _offered_fps(result: dict[str, Any]) -> float | None:
    """Frames per second the live sources offered, all together (``None`` offline or unknown)."""
    cfg = result.get("config", {})
    info = cfg.get("source_info") or {}
    if cfg.get("fast") or not info.get("fps"):
        return None
    return float(info["fps"]) * int(cfg.get("streams", 1))


def _cpu_ms_per_frame(cores: float | None, fps: float | None) -> float | None:
    return None if cores is None or not fps else cores * 1000.0 / fps


def _pipeline_cores(result: dict[str, Any]) -> float | None:
    cpu = result.get("cpu") or {}
    return cpu["percent"] / 100.0 if "percent" in cpu else None


def _peer_memory(row: dict[str, Any]) -> float | None:
    return row.get("peak_rss_mb") or row.get("peak_rss_mb_process")


def pipeline_stages(result: dict[str, Any]) -> dict[str, Any] | None:
    """Milliseconds per processed frame in ``detect``, ``embed``, ``match`` and ``other`` (the
    rest of a batch: tracking, crops, decisions, overlays) from the pipeline's ``steps_ms``;
    ``stat`` says whether means were available or medians stood in (older JSON)."""
    steps = result.get("steps_ms") or {}
    frames = sum(s.get("frames", 0) for s in (result.get("sources") or {}).values())
    if not frames or not steps.get("batch"):
        return None
    present = [s for s in steps.values() if s]
    stat = "mean" if all("mean" in s for s in present) else "median"
    per = {name: (steps[name][stat] * steps[name]["count"] / frames if steps.get(name) else 0.0) for name in ("detect", "embed", "match")}
    batch = steps["batch"][stat] * steps["batch"]["count"] / frames
    per["other"] = max(batch - sum(per.values()), 0.0)
    return {**per, "total": max(batch, sum(per[n] for n in ("detect", "embed", "match"))), "stat": stat}


def _peer_stages(row: dict[str, Any]) -> dict[str, Any] | None:
    stage = row.get("stage_ms") or {}
    if not row.get("frame_ms"):
        return None
    per = {name: (stage[name]["mean"] if stage.get(name) else 0.0) for name in ("detect", "embed", "match")}
    total = row["frame_ms"]["mean"]
    per["other"] = max(total - sum(per.values()), 0.0)
    return {**per, "total": total, "stat": "mean"}


def pipeline_latency(result: dict[str, Any], kind: str = "capture_to_result") -> tuple[str, Any]:
    """What the JSON holds of one latency's distribution: ``("samples", [ms, ...])`` when it
    has the samples, else ``("percentiles", {"p50", "p95", "p99", ...})``, else ``("none", None)``."""
    samples = (result.get("latency_samples_ms") or {}).get(kind)
    if samples:
        return "samples", samples
    summary = (result.get("latency_ms") or {}).get(kind)
    if summary:
        return "percentiles", summary
    return "none", None


def _usable_peers(peers: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not peers:
        return {}
    return {name: row for name, row in peers.get("systems", {}).items() if row.get("available") and "error" not in row and row.get("fps")}


def _streamrec_rows(peers: dict[str, Any] | None) -> list[str]:
    """The keys of the streamrec rows of ``peers.json``: ``streamrec``, then one per further engine."""
    return [name for name, row in (peers or {}).get("systems", {}).items() if row.get("system", name) == "streamrec"]


def _peer_label(name: str, peers: dict[str, Any] | None) -> str:
    """How the report names a row of ``peers.json``; a streamrec row with its backend and precision
    (and device, when one was named) when the run measured several engines, so each row says which."""
    row = (peers or {}).get("systems", {}).get(name) or {}
    label = _PEER_LABELS.get(row.get("system", name), name)
    engine = row.get("engine")
    if engine and len(_streamrec_rows(peers)) > 1:
        label += f", {engine_text(engine)}"
    return label


# -- the report -----------------------------------------------------------------------------------
def write_report(folder: Path, out: Path) -> list[Path]:
    """Write the Markdown report ``out`` from the JSON files in ``folder``, and its plots into
    the folder ``out.parent / out.stem``. Returns the files written, the report first."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder (run {REPRODUCE} first)")
    data: dict[str, dict[str, Any] | None] = {name: _load(folder, name) for name in _pipeline_names(folder)}
    data["transport"] = _load(folder, "transport")
    data["transport_1280x720"] = _load(folder, "transport_1280x720")
    data["peers"] = _load(folder, "peers")
    data["models_triton"] = _load(folder, "models_triton")
    if not any(data.values()):
        raise ReportError(f"{folder}: none of the benchmark JSON files is there (run {REPRODUCE} first)")
    plots_dir = out.parent / out.stem
    plots_dir.mkdir(parents=True, exist_ok=True)
    plots = _draw_plots(data, plots_dir)
    links = {name: os.path.relpath(path, out.parent).replace(os.sep, "/") for name, path in plots.items()}
    text = "\n".join(_markdown(data, folder, out, links)) + "\n"
    _write_atomic(out, text.encode())
    return [out, *plots.values()]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)


def _markdown(data: dict[str, Any], folder: Path, out: Path, links: dict[str, str]) -> list[str]:
    raw = os.path.relpath(folder, out.parent).replace(os.sep, "/")
    lines = [
        "# Benchmarks",
        "",
        (f"Written by `streamrec bench report` from the JSON files in [`{raw}/`]({raw}/) (the raw results, "
        "every key documented in the `--help` of the `streamrec bench` sub-verb that wrote it); "
        "do not edit by hand. Every measurement, then this report, again, from the project root with "
        "the environment active (about half an hour, on an otherwise idle machine):"),
        "",
        "```",
        REPRODUCE,
        "```",
        "",
        ("(`tools/run_benchmarks.sh DATA` takes the shared data folder, default `../shared/data`: the "
        "clip is `DATA/video/short_hamilton_clip.mp4`, the people enrolled are those of `DATA/faces`.)"),
        "",
    ]
    lines += _machine_section(data, folder)
    lines += _targets_section()
    lines += _headline_section(data, links)
    lines += _identification_section(data)
    lines += _time_section(data, links)
    lines += _pipeline_section(data, links)
    lines += _workers_section(data)
    lines += _transport_section(data)
    lines += _peers_section(data)
    lines += _triton_section(data)
    return lines


def _targets_section() -> list[str]:
    return ["## Targets", "", "What streamrec sets out to reach on a 2-core CPU; each is judged in its section below.", "",
            *_table(["target", "why"], [list(row) for row in TARGETS]), ""]


def _machine_section(data: dict[str, Any], folder: Path) -> list[str]:
    lines = ["## Machine", ""]
    machines: dict[str, list[str]] = {}
    for name, result in data.items():
        if result and result.get("machine"):
            machines.setdefault(json.dumps(result["machine"], sort_keys=True), []).append(name)
    if not machines:
        return [*lines, "Not recorded in the JSON files.", ""]
    for key, names in machines.items():
        m = json.loads(key)
        prefix = f"- files {', '.join(f'`{n}.json`' for n in names)}: " if len(machines) > 1 else "- "
        cores = f"{m.get('cores_available', '?')} cores available"
        if m.get("cpu_count") and m.get("cpu_count") != m.get("cores_available"):
            cores += f" (of {m['cpu_count']})"
        parts = [f"CPU: {_cpu(m)}, {cores}"]
        memory = m.get("memory_gb") or (m["memory_mb"] / 1024 if m.get("memory_mb") else None)
        parts.append(f"memory: {memory:.0f} GiB" if memory else "memory: not recorded")
        system = m.get("os") or m.get("platform")
        parts.append(f"OS: {system}" if system else "OS: not recorded")
        parts.append(f"Python {m.get('python', '?')}")
        lines.append(prefix + "; ".join(parts))
    versions: dict[str, str] = {}
    for row in (data.get("peers") or {}).get("systems", {}).values():
        versions.update(row.get("versions") or {})
    if versions:
        lines.append("- libraries (from `peers.json`): " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    dates = sorted({r["machine"]["measured"][:10] for r in data.values() if r and (r.get("machine") or {}).get("measured")})
    if dates:
        lines.append(f"- measured: {' to '.join(dict.fromkeys([dates[0], dates[-1]]))}")
    clip = _clip(data)
    if clip:
        lines.append(f"- clip: `{clip['name']}`, {clip['width']}x{clip['height']} at {clip['fps']:g} fps, {clip['frames']} frames")
    peers = data.get("peers")
    if peers:
        lines.append(f"- thread budget of every peer: {peers['config']['threads']}; the pipeline's inference uses every core available")
    return [*lines, ""]


def _clip(data: dict[str, Any]) -> dict[str, Any] | None:
    for result in data.values():
        cfg = (result or {}).get("config") or {}
        if cfg.get("source_info"):
            return {**cfg["source_info"], "name": Path(str(cfg.get("source", "?"))).name}
    return None


def _headline_section(data: dict[str, Any], links: dict[str, str]) -> list[str]:
    live, fast, four, noskips = data.get("pipeline_1"), data.get("pipeline_fast"), data.get("pipeline_4"), data.get("pipeline_1_noskips")
    peers = _usable_peers(data.get("peers"))
    clip = _clip(data)
    where = f" on `{clip['name']}` at {clip['width']}x{clip['height']}" if clip else ""
    cores = next((r["machine"].get("cores_available") for r in data.values() if r and r.get("machine")), None)
    if cores:
        where += f", {cores} cores"
    lines = [f"## Headline: end-to-end FPS{where}", ""]
    if live is None:
        lines += [*_not_measured("pipeline_1"), ""]
    if data.get("peers") is None:
        lines += [*_not_measured("peers"), ""]
    rows: list[list[str]] = []
    ours: dict[str, dict[str, Any]] = {k: v for k, v in (("live", live), ("offline", fast)) if v}
    ours_cols = list(ours)
    header = ["system", "timed", "FPS", "CPU cores used", "CPU ms per frame", "peak memory MB"]
    header += [f"our pipeline ({k}) / it" for k in ours_cols]

    def ratio_cells(fps: float | None) -> list[str]:
        return [_f(ours[k]["fps"] / fps, ".2f", "x") if fps else "-" for k in ours_cols]

    for result in (live, noskips, fast, data.get("pipeline_fast_noskips")):
        if not result:
            continue
        cores = _pipeline_cores(result)
        offered = _offered_fps(result)
        timed = f"live: the clip played at {offered:g} fps like a camera" if offered else "offline: every frame, as fast as it goes"
        memory = sum((result.get("peak_rss_mb") or {}).values()) or None
        rows.append([_pipeline_label(result), timed, _f(result["fps"]), _f(cores, ".2f"), _f(_cpu_ms_per_frame(cores, result["fps"])),
                     _f(memory, ".0f") + (" (sum of stage peaks)" if memory else ""), *(["-"] * len(ours_cols))])
    for name, row in peers.items():
        rows.append([_peer_label(name, data.get("peers")), "offline: every frame, as fast as it goes", _f(row["fps"]), _f(row.get("cpu_cores_used"), ".2f"),
                     _f(_cpu_ms_per_frame(row.get("cpu_cores_used"), row["fps"])), _f(_peer_memory(row), ".0f"), *ratio_cells(row["fps"])])
    if rows:
        lines += _table(header, rows) + [""]
    lines += [
        ("FPS: frames processed per second. The pipeline's live FPS is frames processed per second of a live "
        "stream (the clip played at its own frame rate, as a camera delivers it, end to end through capture, "
        "inference and events in their own processes), so it can never exceed the clip's frame rate; the peers "
        "(and the pipeline with `--fast`) are timed offline, every frame as fast as they go. CPU cores used: CPU "
        "time over wall time (the pipeline: all its stage processes, decoding included; the peers: the process "
        "working on the frames, decoding excluded); CPU ms per frame is that over the FPS, the cost of a frame "
        "whatever the pacing."),
        "",
    ]
    if live:
        lines += _live_caveat(live, four, peers)
    lines += _target_rows(live, fast, peers, data)
    lines += _engine_ratios(data.get("peers"))
    if "fps" in links:
        lines += [f"![FPS and CPU time per frame of each system]({links['fps']})", ""]
    return lines


def _live_caveat(live: dict[str, Any], four: dict[str, Any] | None, peers: dict[str, Any]) -> list[str]:
    offered = _offered_fps(live)
    if not offered:
        return []
    source: dict[str, Any] = next(iter(live["sources"].values()), {})
    cores, available = _pipeline_cores(live), live.get("cpu", {}).get("cores")
    text = (f"The live pipeline processed {live['fps']:.1f} of the {offered:g} frames per second offered "
            f"({100 * live['fps'] / offered:.0f}%; {live.get('frames_skipped', 0)} frames skipped because a newer one of the same "
            f"camera was already waiting, {source.get('dropped', 0)} dropped at capture)")
    if cores is not None and available:
        spare = cores < 0.9 * available
        text += f", using {cores:.2f} of {available} cores"
        text += (": it had CPU to spare, so its ratio to an offline peer is a lower bound of what the same work costs."
                 if spare else ": it was using the cores it has, so its live FPS is close to its throughput.")
    else:
        text += "."
    lines = [text]
    if four:
        per = [s["fps"] for s in four["sources"].values()]
        versus = ", ".join(f"{four['fps'] / peers[n]['fps']:.1f}x {_PEER_LABELS[n]}'s FPS" for n in PEER_TARGETS if n in peers)
        spread = f"{min(per):.1f}" if f"{min(per):.1f}" == f"{max(per):.1f}" else f"{min(per):.1f} to {max(per):.1f}"
        lines[0] += (f" With {len(per)} live streams of the clip at once the same pipeline processed {four['fps']:.1f} frames per second "
                     f"in total{f' ({versus})' if versus else ''}, {spread} per stream, on the same cores.")
    return [*lines, ""]


def _target_rows(live: dict[str, Any] | None, fast: dict[str, Any] | None, peers: dict[str, Any], data: dict[str, Any]) -> list[str]:
    lines = [f"Targets: {TARGETS[0][0]}, with {TARGETS[1][0]}.", ""]
    ours = fast or live
    if ours is None or not peers:
        return [*lines, "Not judged: " + ("our pipeline" if ours is None else "the peers") + " not measured.", ""]
    which = "offline (`pipeline_fast.json`, timed as the peers are)" if fast else "live (`pipeline_1.json`)"
    rows = []
    notes: list[str] = []
    short: list[str] = []
    for name, target in PEER_TARGETS.items():
        row = peers.get(name)
        if row is None:
            rows.append([f">= {target:g}x {_PEER_LABELS[name]}", "-", "not judged: not measured"])
            continue
        ratio = ours["fps"] / row["fps"]
        needed = target * row["fps"]
        verdict = _at_least(ratio, target, ".2f", "x")
        if ratio < target:
            verdict += f" (needs {needed:.1f} FPS, {needed - ours['fps']:.1f} more)"
            short.append(name)
            offered = _offered_fps(ours)
            if offered and needed > offered:
                verdict += (f"; a live run cannot show it: the clip's {offered:g} fps caps the live ratio at {offered / row['fps']:.2f}x")
                if not fast:
                    notes.append(name)
        rows.append([f">= {target:g}x {_PEER_LABELS[name]}", f"{ratio:.2f}x ({ours['fps']:.1f} vs {row['fps']:.2f} FPS)", verdict])
        rows.append(_identification_target(name, row, data))
    lines += [f"Our pipeline: {which}.", "", *_table(["target", "measured", "verdict"], rows), ""]
    for name in short:
        lines += [_where_time_goes(ours, name, peers[name]), ""]
    if notes:
        lines += [("The offline throughput of the pipeline (the like-for-like figure) is not measured: `pipeline_fast.json` is "
                  f"missing; `{REPRODUCE}` makes it with:"), "", *_command_block(["pipeline_fast"]), ""]
    return lines


def _engine_ratios(peers: dict[str, Any] | None) -> list[str]:
    """With several streamrec engines in ``peers.json``: each one's per-frame FPS over each peer's,
    beside the speed targets, so the engine that gets there (or closest) shows; and the engines
    asked for that could not run. Nothing for a run of one engine."""
    names = _streamrec_rows(peers)
    if len(names) < 2:
        return []
    usable = _usable_peers(peers)
    header = ["streamrec, per frame (no tracking), on", "FPS",
              *(f"over {_PEER_LABELS[name]}, target {target:g}x" for name, target in ENGINE_TARGETS.items())]
    rows = []
    for name in names:
        row = (peers or {})["systems"][name]
        engine = engine_text(row["engine"])
        if name not in usable:
            rows.append([engine, f"not measured: {row.get('reason') or row.get('error') or 'no frames'}", *["-"] * len(ENGINE_TARGETS)])
            continue
        cells = []
        for peer, target in ENGINE_TARGETS.items():
            theirs = usable.get(peer)
            ratio = row["fps"] / theirs["fps"] if theirs else None
            cells.append("-" if ratio is None else f"{ratio:.2f}x" + (" (reaches it)" if ratio >= target else ""))
        rows.append([engine, _f(row["fps"]), *cells])
    lines = [("Per frame, without tracking, on each engine `bench peers` ran: what each engine alone gives, every face of "
              "every frame detected and embedded, against the engines' own targets (the targets above are the pipeline's):"),
             "", *_table(header, rows), ""]
    skipped = ((peers or {}).get("config") or {}).get("skipped") or []
    if skipped:
        lines += ["Asked for, not run on this machine: " + "; ".join(skipped) + ".", ""]
    return lines


def _where_time_goes(ours: dict[str, Any], name: str, row: dict[str, Any]) -> str:
    """One paragraph: the stage times and CPU per frame of our pipeline beside one peer's."""
    label = _PEER_LABELS.get(name, name)
    text = f"Where the time goes, beside {label}:"
    theirs = _peer_stages(row)
    if theirs:
        text += (f" {label} spends {theirs['detect']:.1f} ms detecting and {theirs['embed']:.1f} ms embedding per frame "
                 f"({theirs['total']:.1f} ms, mean of {row['frames']} frames)")
    stages = pipeline_stages(ours)
    embeds = ours["embeddings_per_s"] / max(ours["fps"], 1e-9)
    steps = ours.get("steps_ms") or {}
    if stages and stages["stat"] == "mean":
        text += (f"; our pipeline's inference stage {stages['detect']:.1f} ms detecting (whole cascade on some frames, O-Net on the "
                 f"tracked boxes on the others), {stages['embed']:.1f} ms embedding ({embeds:.2f} embeddings per frame) and "
                 f"{stages['other']:.1f} ms on the rest of a batch ({stages['total']:.1f} ms per frame, means)")
    elif steps.get("detect"):  # older JSON: medians only, which hide the slow full detections
        detect, embed = steps["detect"], steps.get("embed") or {}
        text += (f"; our pipeline's inference stage: a detection call takes {detect['median']:.1f} ms at the median and "
                 f"{detect['p95']:.1f} ms at p95 (whole cascade on some frames, O-Net on the tracked boxes on the others), "
                 f"and it embeds {embeds:.2f} faces per frame")
        if embed:
            text += f" at {embed['median']:.1f} ms per embedding call (median)"
    inference = ((ours.get("cpu") or {}).get("stages") or {}).get("inference")
    if inference is not None and ours["fps"]:
        text += f"; that stage used {inference / 100 * 1000 / ours['fps']:.1f} ms of CPU per frame"
    mine = _cpu_ms_per_frame(_pipeline_cores(ours), ours["fps"])
    other = _cpu_ms_per_frame(row.get("cpu_cores_used"), row["fps"])
    if mine and other:
        text += (f". In CPU time per frame, all the pipeline's processes took {mine:.1f} ms against {other:.1f} ms for {label} "
                 f"({other / mine:.1f}x less)")
    return text + "."


def _expected(data: dict[str, Any]) -> list[str] | None:
    peers = data.get("peers")
    return (peers or {}).get("config", {}).get("expected")


def _identification_target(name: str, row: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """Our identification beside one peer's: pair accuracy (same models as per-frame streamrec)
    and which of the people really in the clip were named (by the pipeline the speed targets are
    judged on: offline when measured, as the peers are timed, else live). The pair accuracy is
    judged on the ``--pairs`` list when both systems scored it: the photos' few pairs leave one
    pair worth more than a percent; the photos' accuracy is shown beside it."""
    target = f"identification equal or better than {_PEER_LABELS[name]}"
    ours_row = _usable_peers(data.get("peers")).get("streamrec") or {}
    expected = _expected(data)
    pipeline = data.get("pipeline_fast") or data.get("pipeline_1")
    which = "offline" if pipeline is data.get("pipeline_fast") else "live"
    measured, worse = [], []
    partial = False
    # judged on the --pairs list when both scored it, else on the photos' pairs
    lists = [key for key in ("verification_pairs", "verification")
             if "accuracy" in (ours_row.get(key) or {}) and "accuracy" in (row.get(key) or {})]
    if lists:
        ours_pairs, theirs_pairs = ours_row[lists[0]], row[lists[0]]
        a, b = ours_pairs["accuracy"], theirs_pairs["accuracy"]
        where = f" on `{Path(str(data['peers']['pair_file']['pairs'])).name}`" if lists[0] == "verification_pairs" else ""
        size = f" (LFW format, {ours_pairs['pairs']} pairs)" if where and ours_pairs.get("pairs") else ""
        measured.append(f"pair accuracy{where}{size} {a:.3f} vs {b:.3f} (+- {ours_pairs.get('accuracy_std', 0):.3f} vs "
                        f"+- {theirs_pairs.get('accuracy_std', 0):.3f} over the folds)")
        if a < b - 1e-9:
            pairs = ours_pairs.get("pairs")
            count = f", about {round((b - a) * pairs)} of {pairs} pairs" if pairs else ""
            worse.append(f"pair accuracy{where} lower by {b - a:.3f}{count}")
    if len(lists) == 2:  # the photos' pairs, shown beside the list judged on
        ours_photos, theirs_photos = ours_row["verification"], row["verification"]
        measured.append(f"on the photos' {ours_photos.get('pairs')} pairs {ours_photos['accuracy']:.3f} vs {theirs_photos['accuracy']:.3f}")
    if pipeline and not (pipeline.get("config") or {}).get("watchlist"):
        measured.append(f"our {which} pipeline ran with an empty watchlist: names not compared")
        partial = True
    elif expected and pipeline and "identities" in row:
        named = {p["name"] for p in pipeline.get("identities", [])}
        theirs = set(row["identities"])
        ours_n, theirs_n = len(named & set(expected)), len(theirs & set(expected))
        measured.append(f"people in the clip named {ours_n} vs {theirs_n} of {len(expected)}")
        if ours_n < theirs_n:
            missed = sorted((theirs - named) & set(expected))
            seen = ", ".join(f"{who} (on frames {row['identities'][who]['first_frame']}-{row['identities'][who]['last_frame']} of each pass "
                             f"of the clip, {row['identities'][who]['frames']} frames, for {_PEER_LABELS[name]})" for who in missed)
            worse.append(f"our {which} pipeline named {theirs_n - ours_n} fewer of the people in the clip; not named: {seen}")
        extra = sorted(named - set(expected))
        if extra:
            worse.append(f"also named people not in the clip: {', '.join(extra)}")
    if not measured:
        return [target, "-", "not judged: no identification in the JSON files"]
    verdict = ("**met** on pair accuracy; names not compared" if partial else "**met**") if not worse else "**not met**: " + "; ".join(worse)
    return [target, "; ".join(measured), verdict]


def _accuracy(report: dict[str, Any] | None) -> str:
    """One ``eval-pairs`` report as a table cell: accuracy +- its spread over the folds."""
    if not report or "accuracy" not in report:
        return "-"
    return f"{report['accuracy']:.3f} +- {report['accuracy_std']:.3f}"


def _identification_section(data: dict[str, Any]) -> list[str]:
    lines = ["## Who was identified", ""]
    expected = _expected(data)
    peers_all = (data.get("peers") or {}).get("systems", {})
    listed = (data.get("peers") or {}).get("pair_file")
    keys = ("verification", "verification_pairs") if listed else ("verification",)
    if expected:
        lines += [f"The people really in the clip (`--expected` of `bench peers`): {', '.join(expected)}.", ""]
    rows = []
    for key in ("pipeline_1", "pipeline_1_noskips", "pipeline_4", "pipeline_fast", "pipeline_fast_noskips"):
        result = data.get(key)
        if not result:
            continue
        people = result.get("identities") or []
        if not (result.get("config") or {}).get("watchlist"):
            rows.append([_pipeline_label(result), "-", "nobody to name: an empty watchlist", "-", "-", *["-"] * len(keys)])
            continue
        named = "; ".join(f"{p['name']}: {p['matches']} match events, first {p['first_s']:.1f} s after launch" for p in people)
        unexpected = sorted({p["name"] for p in people} - set(expected)) if expected else []
        found = f"{len({p['name'] for p in people} & set(expected))} of {len(expected)}" if expected else "-"
        decisions = result.get("decisions") or {}
        rows.append([_pipeline_label(result), found, named or "nobody", f"{decisions.get('unknown', '-')} unknown decisions in the window",
                     ", ".join(unexpected) or "none", *["-"] * len(keys)])
    for name, row in peers_all.items():
        if not row.get("available") or "error" in row:
            rows.append([_peer_label(name, data.get("peers")), "-", row.get("reason") or row.get("error") or "-", "-", "-", *["-"] * len(keys)])
            continue
        people = row.get("identities")
        if people is None:
            continue
        named = "; ".join(f"{who}: {r['faces']} faces on {r['frames']} frames, first at {_f(r.get('first_s'), '.2f')} s" for who, r in people.items())
        found = f"{len(set(people) & set(expected))} of {len(expected)}" if expected else "-"
        rows.append([_peer_label(name, data.get("peers")), found, named or "nobody", f"{row.get('unknown_faces', '-')} unknown faces",
                     ", ".join(row.get("unexpected_names") or []) or "none", *(_accuracy(row.get(key)) for key in keys)])
    if not rows:
        return [*lines, *_not_measured("peers"), ""]
    lines += _table(["system", "people in the clip named", "who, how often, first", "unknown", "names of people not in the clip",
                     "pair accuracy", *(["LFW pair accuracy"] if listed else [])], rows)
    lines.append("")
    lines.append("The pipelines ran for their warm-up and measured window with the clip looping (several passes); match "
                 "events are one per decided track, times from the launch (engine loading included). The peers processed "
                 "one pass, naming every face of every frame; times are positions in the clip.")
    pairs = (data.get("peers") or {}).get("pairs")
    if pairs:
        lines.append(f"Pair accuracy: 10-fold accuracy of the `eval-pairs` protocol on {pairs['same']} same-person and "
                     f"{pairs['different']} different-person pairs of {pairs['photos']} photos of {len(pairs['people'])} people "
                     "(each system's own distance and threshold); the pipeline embeds with the same models as per-frame streamrec.")
    if listed:
        lines.append(f"LFW pair accuracy: the same protocol on `{Path(str(listed['pairs'])).name}` ({listed['same']} same-person and "
                     f"{listed['different']} different-person pairs, {listed['folds']} folds, images in "
                     f"`{Path(str(listed['images'])).name}`); the identification target is judged on it.")
    if data.get("peers") is None:
        lines += ["", *_not_measured("peers")]
    return [*lines, ""]


def _time_section(data: dict[str, Any], links: dict[str, str]) -> list[str]:
    lines = ["## Where the time of a frame goes", ""]
    rows = []
    for key in ("pipeline_1", "pipeline_1_noskips", "pipeline_4", "pipeline_fast", "pipeline_fast_noskips"):
        result = data.get(key)
        stages = pipeline_stages(result) if result else None
        if not result or not stages:
            continue
        approx = "≈ " if stages["stat"] == "median" else ""
        frames = sum(s["frames"] for s in result["sources"].values())
        embeds = (result["steps_ms"].get("embed") or {}).get("count", 0)
        rows.append([_pipeline_label(result), *(approx + _f(stages[n], ".2f") for n in _STAGES), approx + _f(stages["total"], ".2f"),
                     f"{result.get('embeddings_per_s', 0) / max(result['fps'], 1e-9):.2f}",
                     f"{result.get('faces_per_s', 0) / max(result['fps'], 1e-9):.2f}",
                     _f(_cpu_ms_per_frame(((result.get("cpu") or {}).get("stages") or {}).get("inference", math.nan) / 100, result["fps"])),
                     f"{stages['stat']}s of {frames} frames, {embeds} embedding calls"])
    for name, row in _usable_peers(data.get("peers")).items():
        stages = _peer_stages(row)
        if not stages:
            continue
        rows.append([_peer_label(name, data.get("peers")), *(_f(stages[n], ".2f") for n in _STAGES), _f(stages["total"], ".2f"),
                     f"{row['faces_per_frame']:.2f}", f"{row['faces_per_frame']:.2f}", _f(_cpu_ms_per_frame(row.get("cpu_cores_used"), row["fps"])),
                     f"means of {row['frames']} frames"])
    if not rows:
        return [*lines, "Not measured: neither a pipeline JSON nor `peers.json` is there.", ""]
    lines += _table(["system", "detect ms", "embed ms", "match ms", "other ms", "total ms", "embeddings per frame", "faces per frame",
                     "CPU ms per frame", "from"], rows)
    lines += [
        "",
        ("Milliseconds of processing per frame (wall time). The peers: their per-frame stage times (embed includes cutting the crops); "
        "other is what is left of the frame time. The pipeline: each step of its inference stage (one batched call for all the "
        "frames of a batch) times the number of calls, over the frames processed; other is the rest of a batch (tracking, crops, "
        "decisions, overlays). Capture (decoding) runs in other processes, beside it. ≈: the JSON has only medians of these "
        "times, which understate skewed ones (slow full detections among fast tracked ones); newer JSON has means. CPU ms per "
        "frame: CPU time of the pipeline's inference stage, or of the peer's process, over the frames processed (all threads)."),
        "",
    ]
    if "stages" in links:
        lines += [f"![Stage breakdown per frame]({links['stages']})", ""]
    return lines


def _pipeline_section(data: dict[str, Any], links: dict[str, str]) -> list[str]:
    lines = ["## The pipeline end to end", ""]
    one, four = data.get("pipeline_1"), data.get("pipeline_4")
    rows = []
    if one:
        rows.append([f">= {FPS_TARGET:g} FPS, one live stream", f"{one['fps']:.1f} FPS", _at_least(one["fps"], FPS_TARGET, ".1f", " FPS")])
        event = (one.get("latency_ms") or {}).get("capture_to_event")
        if event:
            rows.append([f"p95 capture-to-event <= {EVENT_P95_TARGET_MS:g} ms, one live stream", f"{event['p95']:.1f} ms ({event['samples']} events)",
                         _at_most(event["p95"], EVENT_P95_TARGET_MS, ".1f", " ms")])
        else:
            rows.append([f"p95 capture-to-event <= {EVENT_P95_TARGET_MS:g} ms, one live stream", "no events in the window", "not judged"])
    else:
        rows.append([f">= {FPS_TARGET:g} FPS and p95 capture-to-event <= {EVENT_P95_TARGET_MS:g} ms, one live stream", "-", "not measured"])
    count, floor = STREAMS_TARGET
    if four:
        per = [s["fps"] for s in four["sources"].values()]
        rows.append([f"{count} live streams at once, >= {floor:g} FPS each", f"{min(per):.1f} FPS (slowest of {len(per)})", _at_least(min(per), floor, ".1f", " FPS")])
    else:
        rows.append([f"{count} live streams at once, >= {floor:g} FPS each", "-", "not measured"])
    lines += _table(["target", "measured", "verdict"], rows) + [""]
    for key in _pipeline_names_in(data):
        result = data.get(key)
        lines += [f"### {_pipeline_label(result) if result else _MISSING_LABELS.get(key, key)} (`{key}.json`)", ""]
        if result is None:
            lines += [*_not_measured(key), ""]
            continue
        lines += _pipeline_detail(result)
    if "latency" in links:
        lines += [f"![Per-frame time and latency distributions]({links['latency']})", ""]
    return lines


def _pipeline_names_in(data: dict[str, Any]) -> list[str]:
    return [k for k in data if k.startswith("pipeline_") and not _worker_run(k) and (k in _PIPELINES or data[k])]


def _detection_text(cfg: dict[str, Any]) -> str:
    """``", R-Net and O-Net bf16"`` where detection did not run in fp32 (older results say
    nothing: they ran it in fp32)."""
    detection = cfg.get("detection", "fp32")
    return "" if detection == "fp32" else f", R-Net and O-Net {detection}"


def _pipeline_detail(result: dict[str, Any]) -> list[str]:
    cfg = result["config"]
    info = cfg.get("source_info") or {}
    size = f" ({info['width']}x{info['height']} at {info['fps']:g} fps)" if info else ""
    embeds = "every face on every frame (`--no-skips`)" if cfg.get("embed_every_frame") else "quality-gated, skipped for tracked faces"
    lines = [
        (f"{cfg['streams']} x `{Path(str(cfg['source'])).name}`{size}, {'read as fast as taken (`--fast`)' if cfg.get('fast') else 'played at its own rate, looping'}; "
        f"{result['measured_s']:.1f} s measured after {cfg['warmup_s']:g} s of warm-up (engines loaded in {result['startup_s']:.1f} s); "
        f"FaceNet {cfg['precision']}{_detection_text(cfg)}, {cfg['threads'] or 'all'} inference threads; embeddings: {embeds}; "
        f"watchlist: {'enrolled people' if cfg.get('watchlist') else 'empty'}."),
        "",
    ]
    rows = [[name, _f(row["fps"]), str(row["frames"]), str(row.get("sent", "-")), str(row["dropped"]), str(row["skipped"]),
             _lat(row.get("capture_to_result_ms"))] for name, row in result["sources"].items()]
    rows.append(["all", _f(result["fps"]), str(sum(r["frames"] for r in result["sources"].values())), "", "", str(result.get("frames_skipped", "")), ""])
    lines += _table(["source", "FPS", "frames", "sent", "dropped", "skipped", "capture to result ms p50 / p95 / p99"], rows) + [""]
    latency = result.get("latency_ms") or {}
    if any(latency.values()):
        lines += _table(["latency, all sources", "p50 / p95 / p99 ms", "mean ms", "samples"],
                        [[name.replace("_", " "), _lat(s), _f(s["mean"]) if s else "-", str(s["samples"]) if s else "0"] for name, s in latency.items()])
        lines.append("")
    else:
        lines += ["No latencies: frames read as fast as taken wait their turn in full queues (their age is the backlog).", ""]
    steps = result.get("steps_ms") or {}
    lines += _table(["inference step", "median ms", "mean ms", "p95 ms", "calls"],
                    [[name, _f(s["median"], ".2f"), _f(s.get("mean"), ".2f"), _f(s["p95"], ".2f"), str(s["count"])] for name, s in steps.items() if s])
    lines.append("")
    batching, decisions = result.get("batching") or {}, result.get("decisions") or {}
    cpu = result.get("cpu") or {}
    stages = ", ".join(f"{n} {v:.0f}%" for n, v in sorted((cpu.get("stages") or {}).items()))
    lines.append(f"Faces {result['faces_per_s']:.1f}/s, embeddings {result['embeddings_per_s']:.1f}/s ({result['embeddings_per_face']:.2f} per face); "
                 f"{_f(batching.get('frames_per_batch'), '.2f')} frames per batch, {_f(batching.get('faces_per_embed_batch'), '.2f')} faces per embedding call; "
                 f"{_f(batching.get('full_detections_per_s'))} full and {_f(batching.get('tracked_detections_per_s'))} tracked detections/s; "
                 f"decisions in the window: {decisions.get('match', 0)} match, {decisions.get('unknown', 0)} unknown.")
    if cpu:
        lines.append(f"CPU: {cpu['percent']:.0f}% of one core, all stage processes ({cpu.get('cores', '?')} cores available): {stages}.")
    rss = result.get("peak_rss_mb") or {}
    if rss:
        lines.append("Peak memory (RSS) MB: " + ", ".join(f"{n} {v:.0f}" for n, v in sorted(rss.items())) + ".")
    people = result.get("identities") or []
    if people:
        lines.append("Identified: " + "; ".join(f"{p['name']} ({p['matches']} match events, first {p['first_s']:.1f} s after launch, on {', '.join(p['sources'])})" for p in people) + ".")
    if result.get("restarted"):
        lines.append(f"Restarted during the window: {', '.join(result['restarted'])}.")
    return [*lines, ""]


def _workers_section(data: dict[str, Any]) -> list[str]:
    """The same live cameras on one inference worker and on several: what each run took of the
    cameras' frames, and how many cameras one worker keeps at their full rate on this machine."""
    lines = ["## Cameras per inference worker", ""]
    runs = {name: data.get(name) for name in _WORKER_RUNS}
    measured = {name: result for name, result in runs.items() if result}
    clip = _clip(data)
    lines += [
        ("The clip played live as several cameras (`--streams`), each its own capture process, served by one inference worker or "
         "several (`--workers`, as `streamrec run --workers` starts them; each camera on one worker, chosen by hashing its name). "
         "Per camera: its FPS as a share of the camera's own frame rate (100%: every frame it sent was processed). Frames skipped: "
         "a newer frame of the same camera was already waiting. CPU cores per worker: its process's CPU time over the window, "
         "from `/proc`, with the cameras it served."),
        "",
    ]
    rows = [_workers_row(name, result) for name, result in measured.items()]
    if rows:
        lines += _table(["run", "streams", "workers", "FPS, all cameras", "per camera, of its own FPS", "frames skipped",
                         "p95 capture to event ms", "CPU cores per worker (its cameras)"], rows) + [""]
    for name, result in runs.items():
        if result is None:
            lines += [*_not_measured(name), ""]
    sizing = [line for name, result in measured.items() for line in _workers_sizing(name, result)]
    if sizing:
        machine: dict[str, Any] = next((r["machine"] for r in measured.values() if r.get("machine")), {})
        cpu = _cpu(machine)
        rate = f"{clip['fps']:g} fps" if clip else "its own rate"
        lines += [
            (f"Cameras at full rate ({rate}) that one worker sustains on this machine ({cpu}, {machine.get('cores_available', '?')} cores): "
             "the worker's processing capacity (frames it processed per second spent processing batches) over the camera's frame rate. "
             "Workers share the machine's cores, so a worker's capacity depends on how many run beside it: size with the run "
             "that has as many workers as the deployment."),
            "",
            *sizing,
            "",
        ]
    return lines


def _workers_row(name: str, result: dict[str, Any]) -> list[str]:
    cfg = result.get("config") or {}
    camera_fps = (cfg.get("source_info") or {}).get("fps")
    shares = sorted(row["fps"] / camera_fps for row in result["sources"].values()) if camera_fps and not cfg.get("fast") else []
    share = "-"
    if shares:  # the slowest camera's share to the fastest's, one figure when they round alike
        low, high = f"{100 * shares[0]:.0f}%", f"{100 * shares[-1]:.0f}%"
        share = low if low == high else f"{low} to {high}"
    event = (result.get("latency_ms") or {}).get("capture_to_event")
    workers = ", ".join(f"{worker} {_f(row.get('cpu_cores'), '.2f')} ({', '.join(row.get('cameras') or []) or 'no camera'})"
                        for worker, row in (result.get("workers") or {}).items())
    return [f"`{name}.json`", str(cfg.get("streams", "-")), str(cfg.get("workers", 1)), _f(result["fps"]), share,
            str(result.get("frames_skipped", "-")), _f(event["p95"] if event else None), workers or "-"]


def _workers_sizing(name: str, result: dict[str, Any]) -> list[str]:
    """One line per worker of a run: the cameras at full rate it sustains, and on what ground:
    measured when saturated (it skipped frames: its cameras offered more than it took), or
    extrapolated from the share of the window it spent processing."""
    camera_fps = ((result.get("config") or {}).get("source_info") or {}).get("fps")
    workers = result.get("workers") or {}
    lines = []
    for worker, row in workers.items():
        capacity = row.get("capacity_fps")
        if not camera_fps or capacity is None:
            continue
        if row.get("skipped"):
            ground = f"measured when saturated: its cameras offered more frames than it took ({row['skipped']} skipped)"
        else:
            ground = (f"not saturated ({100 * row.get('busy', 0):.0f}% of the window spent processing, no frame skipped): "
                      "extrapolated, a fuller load may lower it")
        lines.append(f"- `{name}.json`, {worker} of {len(workers)}: **{capacity / camera_fps:.1f} cameras** ({capacity:.1f} frames/s "
                     f"of processing / {camera_fps:g} fps), {ground}.")
    return lines


def _transport_section(data: dict[str, Any]) -> list[str]:
    lines = ["## Frame transport", ""]
    result = data.get("transport")
    if result is None:
        return [*lines, *_not_measured("transport"), ""]
    target = result["goal_percent"]
    lines += [
        (f"One {result['frame']} RGB frame ({result['frame_bytes'] / 1e6:.2f} MB) from one process to another: `ring`, as the pipeline sends it "
        "(the pixels decoded into a shared-memory frame ring and used there in place, a binary header over ZeroMQ), beside `multipart` "
        "(the pixels as a zero-copy ZeroMQ frame behind a JSON header), a `multiprocessing.Queue` of pickled tuples and, where the run "
        "measured them, the pixels inline over tcp on loopback as stages on two hosts send them (`raw_tcp`, `jpeg_tcp`, "
        f"`jpeg_tcp_curve`), at the sender's maximum rate and paced at {result['budget_fps']:g} fps. Target: under {target:g}% of the {result['budget_ms']:.1f} ms frame budget "
        f"at {result['budget_fps']:g} fps."),
        "",
    ]
    rows = []
    for row in result["rows"]:
        rate = row["rate"] if row["rate"] == "max" else f"{row['rate']:g} fps"
        rows.append([row["transport"], rate, str(row["frames"]), _f(row["fps"], ".0f"), _f(row["cpu_per_frame_ms"], ".3f"),
                     _f(row["pacing_cpu_per_frame_ms"], ".3f"), _f(row["transport_cpu_per_frame_ms"], ".3f"), _f(row["budget_percent"], ".2f", "%"),
                     f"{row['call_cpu_ms']['median']:.3f} / {row['call_cpu_ms']['p95']:.3f}", f"{row['send_wall_ms']['median']:.3f} / {row['send_wall_ms']['p95']:.3f}",
                     f"{row['latency_ms']['p50']:.2f} / {row['latency_ms']['p95']:.2f} / {row['latency_ms']['p99']:.2f}",
                     _f(row.get("message_bytes_per_frame"), ",")])
    lines += _table(["transport", "rate", "frames", "FPS", "CPU ms per frame", "- pacing", "= transport", "% of budget",
                     "call CPU ms median / p95", "send ms median / p95", "latency ms p50 / p95 / p99", "bytes per frame"], rows)
    verdict = result["verdict"]
    whole = "**met**" if verdict["meets_goal"] else f"**not met**: over by {verdict['percent'] - target:.2f} points"
    calls = "**met**" if verdict["calls_meet_goal"] else f"**not met**: over by {verdict['call_percent'] - target:.2f} points"
    lines += [
        "",
        ("CPU ms per frame: both processes, every thread (ZeroMQ's I/O threads, the Queue's feeder thread); - pacing: the same "
        "paced loop writing each frame into a buffer as a decoder does, sending nothing; = transport: the difference. "
        "Call CPU: inside the send and receive calls only."),
        "",
        *_table(["figure at the paced rate", "% of the frame budget", f"target < {target:g}%"], [
            ["the ring, whole cost per frame (both processes, all threads, less the pacing loop)", f"{verdict['percent']:.2f}%", whole],
            ["the ring, inside the send and receive calls (median)", f"{verdict['call_percent']:.2f}%", calls],
        ]),
        "",
        (f"The same pixels carried by ZeroMQ itself (`multipart`) cost {verdict['multipart_percent']:.2f}% of the budget; the pickling "
        f"`multiprocessing.Queue` costs {verdict['queue_cpu_ratio']:.1f}x the ring's transport CPU per frame at the paced rate."),
    ]
    return [*lines, *_across_hosts([r for r in (result, data.get("transport_1280x720")) if r]), ""]


def _across_hosts(results: list[dict[str, Any]]) -> list[str]:
    """The tcp transports at the paced rate, one table over the frame sizes measured, and which
    is cheaper by how much (runs from before they were measured have none)."""
    measured = [r for r in results if "jpeg_cpu_ratio" in r["verdict"]]
    if not measured:
        return []
    rows, lines = [], []
    for result in measured:
        for row in result["rows"]:
            if row["transport"].endswith(("_tcp", "_curve")) and row["rate"] != "max":
                rows.append([result["frame"], row["transport"], _f(row["fps"], ".0f"), _f(row["message_bytes_per_frame"], ","),
                             _f(row["message_bytes_per_frame"] * 8 * row["rate"] / 1e6, ".1f"),
                             _f(row["transport_cpu_per_frame_ms"], ".3f"), _f(row["budget_percent"], ".2f", "%"),
                             f"{row['latency_ms']['p50']:.2f} / {row['latency_ms']['p95']:.2f}"])
        v = result["verdict"]
        lines += [
            "",
            (f"At {result['frame']}: the pixels inline over tcp cost {v['raw_tcp_percent']:.2f}% of the budget raw and "
            f"{v['jpeg_tcp_percent']:.2f}% as JPEG, so {'raw' if v['jpeg_cpu_ratio'] > 1 else 'JPEG'} is cheaper in CPU: JPEG costs "
            f"{v['jpeg_cpu_ratio']:.1f}x raw's transport CPU per frame for {1 / v['jpeg_bytes_ratio']:.3f}x its bytes (raw sends "
            f"{v['jpeg_bytes_ratio']:.1f}x JPEG's). Under CURVE JPEG costs {v['jpeg_tcp_curve_percent']:.2f}%, {v['curve_cpu_ratio']:.2f}x without."),
        ]
    return [
        "",
        "### Across hosts",
        "",
        (f"The pixels inline in the frame message over tcp on loopback, as a capture and an inference stage on two hosts send them "
         f"(`[links] frame_pixels`), paced at {measured[0]['budget_fps']:g} fps, each measured side by side with the rows above in one run: `raw_tcp` (RGB), `jpeg_tcp` "
         "(JPEG at the default `frame_quality`, the encode in the sender and the decode in the receiver counted) and `jpeg_tcp_curve` (the "
         "same under CURVE). Bytes per frame: the message's frames (header and pixels), without ZeroMQ's framing, CURVE's 33 bytes "
         "per message frame and TCP/IP's headers. The frame is a synthetic picture that JPEG compresses about as much as a camera's. "
         "Where FPS is below the paced rate, the two processes could not keep up on this machine: frames queued and latency grew."),
        "",
        *_table(["frame", "transport", "FPS", "bytes per frame", "Mbit/s at the paced rate", "= transport CPU ms per frame", "% of budget", "latency ms p50 / p95"], rows),
        *lines,
    ]


def _peers_section(data: dict[str, Any]) -> list[str]:
    lines = ["## The peers in detail", ""]
    peers = data.get("peers")
    if peers is None:
        return [*lines, *_not_measured("peers"), ""]
    cfg = peers["config"]
    info = cfg.get("source_info") or {}
    limit = f"the first {cfg['frames']} frames" if cfg.get("frames") else "every frame once"
    lines += [
        (f"`{Path(str(cfg['source'])).name}` ({info.get('width')}x{info.get('height')}, {info.get('fps')} fps, {info.get('frames')} frames): {limit}, "
        f"{cfg['threads']} threads for every system, one system after the other, each in processes of its own. "
        f"{'Every system decoded identical frames.' if peers.get('same_frames') else 'WARNING: the systems decoded different frames.'}"),
        "",
    ]
    rows, how = [], []
    for name, row in peers.get("systems", {}).items():
        label = _peer_label(name, peers)
        if not row.get("available"):
            rows.append([label, f"not available: {row.get('reason')}", *["-"] * 10])
            continue
        if "error" in row:
            rows.append([label, f"failed: {row['error']}", *["-"] * 10])
            continue
        load = row.get("load_avg") or {}
        rows.append([label, _f(row["fps"], ".2f"), _f(row.get("fps_median"), ".2f"),
                     f"{row['frame_ms']['median']:.1f} ({row['frame_ms']['p10']:.1f}-{row['frame_ms']['p90']:.1f})",
                     _f(row.get("embed_ms_per_face"), ".1f"), _f(row.get("faces_per_frame"), ".2f"), _f(row.get("cpu_cores_used"), ".2f"),
                     f"{_f(row.get('rss_loaded_mb'), '.0f')} / {_f(_peer_memory(row), '.0f')}", _f(row.get("load_s"), ".2f"),
                     _pair_figures(row.get("verification")), _pair_figures(row.get("verification_pairs"), scored=True),
                     f"{_f(load.get('before'), '.2f')} / {_f(load.get('after'), '.2f')}"])
        how.append(f"- {label}: {row.get('detector')}; {row.get('embedder')}; {row.get('match')}.")
    lines += _table(["system", "FPS", "FPS (median frame)", "frame ms median (p10-p90)", "embed ms per face", "faces per frame",
                     "CPU cores", "memory MB loaded / peak", "load s", "photo pairs: accuracy / VAL@FAR 1e-3 / AUC",
                     "pair list: accuracy / VAL@FAR 1e-3 / AUC (pairs scored)", "load average before / after"], rows)
    lines += ["", *how, ""]
    if pair_file := peers.get("pair_file"):
        lines.append(f"Photo pairs: pairs built from the enrolled photos. Pair list: `{Path(str(pair_file['pairs'])).name}`, each system embedding its "
                     "photos its own way; a pair whose photo a system finds no face in is not scored (its accuracy counting such "
                     "pairs as wrong is in the JSON, `accuracy_counting_skipped`).")
    lines.append(f"Load average: the machine's 1-minute load before and after each system ran; above the thread budget "
                 f"({cfg['threads']}), other work competed for the cores.")
    return [*lines, ""]


#: the nets as the report names them, in the order ``bench models`` times them
_NETS = {"rnet": "R-Net", "onet": "O-Net", "facenet": "FaceNet"}


def _triton_section(data: dict[str, Any]) -> list[str]:
    """Each net, and whole-frame MTCNN, in this process (ONNX Runtime) and through the Triton
    server ``tools/run_benchmarks.sh`` starts, from ``models_triton.json``: what serving the
    engines from a server costs a call."""
    lines = ["## Triton beside in-process inference", ""]
    result = data.get("models_triton")
    if result is None:
        return [*lines, *_not_measured("models_triton"), "",
                "(It needs the `tritonserver` of `.venv-triton`, which `make test` makes; without it the script says so and goes on.)", ""]
    nets = {(r["model"], r["batch"], r["backend"]): r["median_ms"] for r in result["nets"] if r["precision"] == "fp32"}
    rows: list[list[str]] = []
    added: dict[int, list[float]] = {}  # per batch size, what a call of each net cost more
    for (model, batch, backend), ours in nets.items():
        served = nets.get((model, batch, "triton"))
        if backend == "onnxruntime" and served is not None:
            rows.append(_triton_row(_NETS.get(model, model), str(batch), ours, served))
            added.setdefault(batch, []).append(served - ours)
    for row in result["detection"]:
        times = {b: t["median_ms"] for b, t in row["streamrec"].items()}
        if {"onnxruntime", "triton"} <= times.keys():
            label = f"MTCNN, a {row['frame']} frame, faces from {row['min_face_size']:g} px"
            rows.append(_triton_row(label, f"whole frame (of {row['frames']})", times["onnxruntime"], times["triton"]))
    if not rows:
        return [*lines, "Not measured: `models_triton.json` has no figures of both onnxruntime and triton.", ""]
    libraries = result.get("libraries") or {}
    smallest = min(added, default=None)
    cost = (f"A call of a batch of {smallest} cost {min(added[smallest]):.2f} to {max(added[smallest]):.2f} ms more through the "
            "server here: the gRPC round trip, the copies in and out and the Python backend. " if smallest is not None else "")
    lines += [
        (f"`streamrec bench models --backend onnxruntime,triton --precision fp32 --threads {result['threads']}`: each net fed random "
         "inputs in this process by ONNX Runtime "
         f"{libraries.get('onnxruntime', '')} and through Triton (tritonclient {libraries.get('triton', '?')}), the two alternated "
         "call by call; then MTCNN's whole-frame detection on each, interleaved frame by frame. The server was nvidia-pytriton's `tritonserver` "
         "on the same machine, its Python backend running the same ONNX files with ONNX Runtime (the repository "
         "`streamrec engines export --triton DIR --platform python --threads 1` writes), reached over gRPC on loopback "
         f"(`{result.get('triton_url') or 'loopback'}`). A GPU server was not measured."),
        "",
        *_table(["model", "batch", "in process ms", "through Triton ms", "difference per call ms", "ratio"], rows),
        "",
        (f"Median ms per call (a batch, or a whole frame); ratio: through Triton over in process. {cost}What a call costs more "
         "weighs most on the small MTCNN nets, called several times per frame; the server pays off where it has what the "
         "pipeline's machine lacks (a GPU, more cores) or serves several pipelines at once."),
        "",
    ]
    return lines


def _triton_row(label: str, batch: str, ours: float, served: float) -> list[str]:
    return [label, batch, f"{ours:.2f}", f"{served:.2f}", f"{served - ours:+.2f}", f"{served / ours:.2f}x"]


def _pair_figures(result: dict[str, Any] | None, scored: bool = False) -> str:
    """One ``eval-pairs`` report as a table cell: accuracy / VAL@FAR 1e-3 / AUC, and with
    ``scored`` how many of its pairs were scored."""
    result = result or {}
    figures = f"{_f(result.get('accuracy'), '.3f')} / {_f(result.get('val_at_far_1e-3'), '.3f')} / {_f(result.get('auc'), '.3f')}"
    if not scored:
        return figures
    return f"{figures} ({result.get('pairs_scored', '-')} of {result.get('pairs', '-')})" if result else "-"


# -- plots --------------------------------------------------------------------------------------------
def _draw_plots(data: dict[str, Any], folder: Path) -> dict[str, Path]:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError("the plots need matplotlib: pip install 'streamrec[build]' (or pip install matplotlib)") from None
    plots: dict[str, Path] = {}
    for name, draw, height in (("fps", _plot_fps, 5.0), ("latency", _plot_latency, 6.0), ("stages", _plot_stages, 5.0)):
        figure = Figure(figsize=(10, height), dpi=110, layout="constrained")
        if draw(figure, data):
            path = folder / f"{name}.png"
            figure.savefig(path, metadata={"Software": None})  # no version stamp: the same data, the same bytes
            plots[name] = path
    return plots


def _systems_fps(data: dict[str, Any]) -> list[tuple[str, float, float | None, str]]:
    """(label, FPS, CPU ms per frame, ``live``/``offline``) of every system measured."""
    rows: list[tuple[str, float, float | None, str]] = []
    for key in ("pipeline_1", "pipeline_1_noskips", "pipeline_fast", "pipeline_fast_noskips", "pipeline_4"):
        result = data.get(key)
        if not result:
            continue
        label = _pipeline_label(result).replace("streamrec pipeline, ", "pipeline\n")
        if result["config"].get("streams", 1) > 1:
            label += "\n(FPS: all streams together)"
        rows.append((label, result["fps"], _cpu_ms_per_frame(_pipeline_cores(result), result["fps"]), "offline" if result["config"].get("fast") else "live"))
    for name, row in _usable_peers(data.get("peers")).items():
        rows.append((_peer_label(name, data.get("peers")).replace(", ", "\n"), row["fps"], _cpu_ms_per_frame(row.get("cpu_cores_used"), row["fps"]), "offline"))
    return rows


def _plot_fps(figure: Any, data: dict[str, Any]) -> bool:
    rows = _systems_fps(data)
    if not rows:
        return False
    colours = {"live": "#4c72b0", "offline": "#dd8452"}
    left, right = figure.subplots(1, 2, sharey=True)
    y = list(range(len(rows)))[::-1]
    fps, cpu_ms = [r[1] for r in rows], [r[2] for r in rows]
    for axis, figures, title in ((left, fps, "frames per second (higher is better)"), (right, cpu_ms, "CPU ms per frame, all threads (lower is better)")):
        values = [v or 0.0 for v in figures]
        bars = axis.barh(y, values, color=[colours[r[3]] for r in rows])
        axis.bar_label(bars, labels=[_f(v, ".1f") for v in figures], padding=3, fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.set_xlim(0, max(values) * 1.2 if max(values) > 0 else 1)
        axis.grid(axis="x", alpha=0.3)
    left.set_yticks(y, [r[0] for r in rows], fontsize=8)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(color=colours["live"], label="live: clip played at its frame rate"),
                          Patch(color=colours["offline"], label="offline: every frame, as fast as it goes")]
    clip = _clip(data)
    if clip:
        left.axvline(clip["fps"], color="black", linestyle="--", linewidth=1)
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=1, label=f"the clip's {clip['fps']:g} fps: one live stream's ceiling"))
    left.legend(handles=handles, fontsize=8, loc="lower right")
    where = f" ({clip['name']}, {clip['width']}x{clip['height']})" if clip else ""
    figure.suptitle(f"Speed and CPU cost per frame{where}", fontsize=11)
    return True


def _plot_latency(figure: Any, data: dict[str, Any]) -> bool:
    import numpy as np

    axis = figure.subplots()
    drawn = False
    # one colour per system, repeating only past ten (bench peers may run any number of engines)
    colours = itertools.cycle(["#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
                               "#64b5cd", "#2ca02c"])
    for name, row in _usable_peers(data.get("peers")).items():
        ms = np.sort(np.asarray((row.get("per_frame") or {}).get("ms") or [], dtype=float))
        if ms.size:
            axis.step(ms, np.arange(1, ms.size + 1) / ms.size, where="post", color=next(colours), linewidth=1.5,
                      label=f"{_peer_label(name, data.get('peers'))}: time per frame, offline ({ms.size} frames)")
            drawn = True
    markers = iter(["o", "s", "^", "D"])
    pipeline_colours = iter(["#4c72b0", "#1f3b73", "#6fa8dc", "#264653"])
    for key in ("pipeline_1", "pipeline_1_noskips", "pipeline_4"):
        result = data.get(key)
        if not result:
            continue
        kind, values = pipeline_latency(result)
        label = f"{_pipeline_label(result).replace('streamrec pipeline, ', 'pipeline, ')}: capture to result"
        colour = next(pipeline_colours)
        if kind == "samples":
            ms = np.sort(np.asarray(values, dtype=float))
            axis.step(ms, np.arange(1, ms.size + 1) / ms.size, where="post", color=colour, linewidth=1.5, label=f"{label} ({ms.size} frames)")
            drawn = True
        elif kind == "percentiles":  # older JSON: only three points of the curve are known
            points = [(values[p], q) for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))]
            axis.plot([p[0] for p in points], [p[1] for p in points], linestyle="none", marker=next(markers), markersize=7, color=colour,
                      label=f"{label}: p50, p95, p99 only ({values['samples']} frames)")
            drawn = True
    if not drawn:
        return False
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("milliseconds (log scale)")
    axis.set_ylabel("fraction of frames at or below")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3, which="both")
    figure.legend(fontsize=8, loc="outside lower center", ncols=2)
    axis.set_title("Distribution per frame: the peers' processing time; the live pipeline's latency from capture to results", fontsize=10)
    return True


def _plot_stages(figure: Any, data: dict[str, Any]) -> bool:
    rows: list[tuple[str, dict[str, Any]]] = []
    for key in ("pipeline_1", "pipeline_1_noskips", "pipeline_4", "pipeline_fast", "pipeline_fast_noskips"):
        result = data.get(key)
        stages = pipeline_stages(result) if result else None
        if result and stages:
            label = _pipeline_label(result).replace("streamrec pipeline, ", "pipeline\n")
            rows.append((label + ("\n(medians)" if stages["stat"] == "median" else ""), stages))
    for name, row in _usable_peers(data.get("peers")).items():
        stages = _peer_stages(row)
        if stages:
            rows.append((_peer_label(name, data.get("peers")).replace(", ", "\n"), stages))
    if not rows:
        return False
    axis = figure.subplots()
    y = list(range(len(rows)))[::-1]
    start = [0.0] * len(rows)
    for stage in _STAGES:
        widths = [r[1][stage] for r in rows]
        hatches = ["//" if r[1]["stat"] == "median" else "" for r in rows]
        bars = axis.barh(y, widths, left=start, color=_STAGE_COLOURS[stage], label=stage)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        start = [s + w for s, w in zip(start, widths)]
    for position, total in zip(y, start):
        axis.text(total, position, f" {total:.1f} ms", va="center", fontsize=8)
    axis.set_yticks(y, [r[0] for r in rows], fontsize=8)
    axis.set_xlim(0, max(start) * 1.15)
    axis.set_xlabel("milliseconds of processing per frame")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title("Where the time of a frame goes (hatched: from medians, the JSON has no means)", fontsize=10)
    return True
