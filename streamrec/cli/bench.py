"""``streamrec bench``: benchmarks (medians of repeated runs; competitors side by side)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streamrec.backends import (
    BACKENDS,
    BackendOptions,
    BackendUnavailable,
    TritonOptions,
    backend_class,
    default_threads,
)
from streamrec.backends.choose import BACKEND_CHOICES, PRECISION_CHOICES
from streamrec.bench.models import (
    bench_detection,
    bench_frames,
    bench_nets,
    detection_choices,
    engine_choices,
    isa_cap_text,
    machine,
    probe_video,
)
from streamrec.cli.bench_peers import register_peers
from streamrec.cli.common import (
    UserError,
    emit_result,
    number,
    number_list,
    resolve_pipeline,
    stderr,
    thread_count,
)
from streamrec.config.model import MAX_FACE, MAX_SOURCES, MIN_FACE
from streamrec.engines import ensure_engines
from streamrec.faces import DETECTION_PRECISIONS, PRECISIONS

__all__ = ["register"]


#: Frames of any size up to 8K on the longer side, the largest the pipeline takes.
_SIDE = number(whole=True, ge=1, le=MAX_FACE)


def _names(choices: tuple[str, ...] | list[str]) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names, each one of ``choices``."""

    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(v for v in text.split(",") if v))
        wrong = [n for n in names if n not in choices]
        if not names or wrong:
            raise argparse.ArgumentTypeError(f"expected names from {', '.join(choices)}, got {text!r}")
        return names

    return parse


def _size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT``, each side from 1 to 8192 pixels."""
    try:
        width, height = text.lower().split("x")
        return _SIDE(width), _SIDE(height)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, each from 1 to {MAX_FACE} (got {text!r})") from None


def _triton_url(text: str) -> str:
    """``HOST:PORT``, as the triton backend takes it."""
    try:
        return TritonOptions(url=text).url
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``bench`` and its sub-verbs to the ``streamrec`` parser."""
    bench = verbs.add_parser("bench", help="benchmarks: per-model speed, the whole pipeline, the frame transport, peers side by side")
    kinds = bench.add_subparsers(dest="kind", metavar="KIND", required=True)
    models = kinds.add_parser(
        "models", help="per-model latency/throughput by batch and backend, and whole-frame MTCNN vs facenet-pytorch",
        description="Times R-Net, O-Net and FaceNet at each batch size (median latency per batch "
        "and per item, items per second) on each --backend, FaceNet in each --precision, R-Net and "
        "O-Net in each --detection-precision, the engines of a model and batch alternated call by "
        "call; then whole-frame MTCNN detection on frames of --size on each backend and detection precision, interleaved round "
        "by round with facenet-pytorch's MTCNN.detect() on the same frames and the same thread budget "
        "(skipped with a note if facenet-pytorch cannot be imported). A backend and precision this "
        "machine cannot run (bf16 without AVX-512 BF16 or AMX) is left out with the reason. The "
        "results record the CPU and its AMX, AVX-512 BF16, VNNI and AVX2 flags. Through --backend triton every net "
        "runs on the Triton Inference Server at --triton-url, recorded as triton_url.",
    )
    models.add_argument("--batches", type=number_list(whole=True, ge=1), default=[1, 8, 32], metavar="B,B,...", help="batch sizes (default: 1,8,32)")
    models.add_argument("--duration", type=number(gt=0), default=3.0, metavar="S", help="seconds per model and batch (default: %(default)s)")
    models.add_argument("--rounds", type=number(whole=True, ge=1), default=40, help="interleaved detection rounds per min face size (default: %(default)s)")
    models.add_argument("--min-face-sizes", type=number_list(whole=True, ge=MIN_FACE, le=MAX_FACE), default=[40, 20], metavar="PX,PX",
                        help=f"smallest face sides to detect, {MIN_FACE} to {MAX_FACE} (default: 40,20)")
    models.add_argument("--size", type=_size, default=(640, 480), metavar="WxH", help="detection frame size (default: 640x480)")
    models.add_argument("--source", type=Path, metavar="FILE", help="take frames from this video or image (default: the sample photos)")
    models.add_argument("--threads", type=thread_count, default=default_threads(), help="thread budget for every engine, at most the cores this process may use (default: %(default)s)")
    models.add_argument("--backend", type=_names(BACKENDS), default=["onnxruntime"], metavar="B,B",
                        help=f"backends to time side by side, from {', '.join(BACKENDS)} (default: onnxruntime)")
    models.add_argument("--precision", type=_names(PRECISIONS), default=["fp32", "int8"], metavar="P,P",
                        help=f"FaceNet precisions, from {', '.join(PRECISIONS)} (default: fp32,int8)")
    models.add_argument("--detection-precision", type=_names(DETECTION_PRECISIONS), default=["fp32"], metavar="P,P",
                        help=f"R-Net and O-Net precisions, from {', '.join(DETECTION_PRECISIONS)}; P-Net always runs in "
                        "fp32 (default: fp32)")
    models.add_argument("--device", metavar="DEVICE", help="where every backend runs: cpu, gpu (openvino), cuda:N (torch, "
                        "tensorrt); the GPU's name, driver and CUDA are recorded (default: each backend's own)")
    models.add_argument("--triton-url", type=_triton_url, default=TritonOptions.url, metavar="HOST:PORT",
                        help="the Triton Inference Server's gRPC address, for --backend triton; it must serve the "
                        "engines (streamrec engines export --triton DIR, docs/triton.md) (default: %(default)s)")
    models.add_argument("--engines", type=Path, metavar="DIR", help="engine folder")
    models.add_argument("--out", type=Path, metavar="FILE.json", help="also write the results here")
    models.add_argument("--json", action="store_true", help="print the results as JSON")
    models.set_defaults(handler=run_models)
    _register_pipeline(kinds)
    _register_transport(kinds)
    register_peers(kinds)
    _register_report(kinds)


def _print_table(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"machine: {m['cpu']} (flags: {', '.join(m['cpu_flags'] or ['unknown'])}{isa_cap_text(m)}), {result['threads']} threads; "
          + ", ".join(f"{k} {v}" for k, v in result["libraries"].items()))
    if m.get("gpu"):
        print("gpu: " + ", ".join(f"{k} {v}" for k, v in m["gpu"].items()))
    print(f"{'model':8} {'backend':12} {'precision':9} {'batch':>5} {'median ms':>10} {'ms/item':>8} {'items/s':>8}")
    for row in result["nets"]:
        print(f"{row['model']:8} {row['backend']:12} {row['precision']:9} {row['batch']:>5} {row['median_ms']:>10.2f} "
              f"{row['per_item_ms']:>8.2f} {row['items_per_s']:>8.1f}")
    for line in result["skipped"]:
        print(f"not run: {line}")
    print(f"{'MTCNN frame':12} {'min face':>8} {'backend':12} {'streamrec ms':>13} {'facenet-pytorch ms':>19} {'speed-up':>9}")
    for row in result["detection"]:
        theirs = row.get("facenet_pytorch", {}).get("median_ms")
        for backend, ours in row["streamrec"].items():
            print(
                f"{row['frame']:12} {row['min_face_size']:>8g} {backend:12} {ours['median_ms']:>13.1f} "
                f"{theirs if theirs is None else f'{theirs:.1f}':>19} {row.get('speedup', {}).get(backend, float('nan')):>8.2f}x"
            )
        if "facenet_pytorch" not in row:
            print(f"  ({row['reference']})")


def run_models(args: argparse.Namespace) -> int:
    engines, skipped = engine_choices(args.backend, args.precision, args.device)
    for line in skipped:
        stderr(f"not run: {line}")
    if not engines:
        raise UserError("no backend here runs the precisions asked for: " + "; ".join(skipped))
    backends = list(dict.fromkeys(backend for backend, _ in engines))
    detectors, refused = detection_choices(backends, args.detection_precision, args.device)
    for line in refused:
        stderr(f"not run: {line}")
    skipped += refused
    folder = ensure_engines(args.engines, stderr)
    try:
        frames = bench_frames(args.source, args.size)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    options = BackendOptions(device=args.device, triton=TritonOptions(url=args.triton_url))
    try:
        stderr(f"timing nets at batches {args.batches} ({args.duration:g} s each per engine)")
        nets = bench_nets(folder, args.threads, args.batches, args.duration, stderr, engines, options, detectors)
        stderr(f"timing whole-frame detection, {args.rounds} interleaved rounds per setting")
        detection = bench_detection(
            folder, args.threads, frames, [float(m) for m in args.min_face_sizes], args.rounds, stderr, detectors, options
        )
    except (ValueError, BackendUnavailable) as exc:  # a backend refusing to open (no Triton server there), or one gone mid-run
        raise UserError(str(exc)) from None
    result = {
        "machine": machine(args.device), "threads": args.threads, "device": args.device,
        "triton_url": args.triton_url if "triton" in backends else None,
        "libraries": {b: importlib.metadata.version(backend_class(b).library) for b in backends},
        "skipped": skipped, "nets": nets, "detection": detection,
    }
    emit_result(result, args, _print_table)
    return 0


# -- bench pipeline ----------------------------------------------------------------------------
def _register_pipeline(kinds: argparse._SubParsersAction) -> None:
    from streamrec.bench import pipeline as doc

    parser = kinds.add_parser(
        "pipeline", help="the real pipeline end to end: FPS, latency, CPU, memory per stage",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Runs the stage processes `streamrec run` runs (capture, inference, events, "
        "render; no web server) on --streams copies of --source, each its own capture process "
        "(cam1..camN) reading the file at its own frame rate and looping, like N cameras, served by "
        "--workers inference workers as `streamrec run --workers` serves them (each camera by one). After the "
        "engines load and --warmup seconds of processing, measures for --duration seconds from the "
        "stages' own reports: FPS per source (frame counters), capture-to-result and "
        "capture-to-event latency percentiles, faces and embeddings per second, dropped frames, "
        "CPU of all stage processes, peak memory per stage, the time of each inference step, and per "
        "inference worker its cameras, FPS, busy share, CPU cores and peak memory. "
        "Matching runs against an empty watchlist unless --data-dir names one, in which case the "
        "people identified (names in match events) are reported too, and the open-set figures: "
        "the tracks named as the enrolled people --expect says appear, and how many of the other "
        "tracks were named as someone (FPIR per track). The pipeline is stopped cleanly at the end.",
        epilog="Result keys of --json and --out" + (doc.__doc__ or "").split("Result keys", 1)[-1],
    )
    parser.add_argument("--source", required=True, metavar="FILE_OR_URL", help="video file (or rtsp:// / http(s):// stream) every stream plays")
    parser.add_argument("--streams", type=number(whole=True, ge=1, le=MAX_SOURCES), default=1, metavar="N",
                        help=f"copies of the source, each its own camera, at most {MAX_SOURCES} (default: %(default)s)")
    parser.add_argument("--workers", type=int, metavar="N", help="inference workers sharing the cameras, each camera served by one "
                        "(default: the configuration's [pipeline] workers, else 1)")
    parser.add_argument("--duration", type=number(gt=0), default=30.0, metavar="S", help="measured seconds (default: %(default)g)")
    parser.add_argument("--warmup", type=number(ge=0), default=5.0, metavar="S", help="seconds of processing before measuring, after the engines load (default: %(default)g)")
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="detector, batch, tracker, matcher and pipeline settings "
                        "from this configuration (its sources and outputs are not used)")
    parser.add_argument("--threads", type=int, metavar="N", help="inference threads, 0 (every core) up to the cores this process may use "
                        "(default: the configuration's, else every core)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, help="how FaceNet computes (default: the configuration's, else auto)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, help="inference backend (default: the configuration's, else auto: "
                        "the fastest this machine runs whose accuracy holds, said on stderr)")
    parser.add_argument("--engines", type=Path, metavar="DIR", help="engine folder (built on first use)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="match against the watchlist in DIR (read as `streamrec run` reads it; "
                        "events and logs go to a temporary folder) (default: an empty temporary watchlist)")
    parser.add_argument("--expect", action="append", default=[], metavar="NAME",
                        help="an enrolled person (name or id in the --data-dir watchlist) who appears in the source; repeatable. "
                        "Tracks named as anyone else are counted as false names of people not enrolled (the open-set figures)")
    parser.add_argument("--fast", action="store_true", help="read the file as fast as the pipeline takes its frames, none skipped (offline "
                        "throughput, as the peers are timed), instead of at its own frame rate like a camera; no latencies then")
    parser.add_argument("--no-skips", action="store_true", help="embed every tracked face on every frame ([tracker] embed_every_frame), "
                        "instead of the quality-gated embeddings with skips: the baseline to compare with")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="also write the results here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_pipeline_bench)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _probe_source(url: str) -> dict[str, Any] | None:
    """Check the source now, with one clear line if it is unusable; a file's size, rate, length."""
    from streamrec.capture import SourceError, SourceKind, parse_source

    try:
        spec = parse_source(url)
    except SourceError as exc:
        raise UserError(str(exc)) from None
    if spec.kind is SourceKind.WEBCAM:
        raise UserError(f"{spec.label}: a webcam cannot be opened by several capture processes; give a video file or a stream URL")
    if spec.kind is not SourceKind.FILE:
        return None
    with _quiet_stderr():  # FFmpeg's own complaints ("moov atom not found"): ours is clearer
        try:
            return probe_video(Path(str(spec.target)))  # a file: its path
        except ValueError as exc:
            raise UserError(str(exc)) from None


def _fmt_latency(summary: dict[str, float] | None) -> str:
    return "-" if summary is None else f"{summary['p50']:.1f} / {summary['p95']:.1f} / {summary['p99']:.1f}"


def _print_pipeline(result: dict[str, Any]) -> None:
    cfg = result["config"]
    info = cfg["source_info"]
    size = f" ({info['width']}x{info['height']} at {info['fps']:g} fps)" if info else ""
    print(f"pipeline: {cfg['streams']} x {cfg['source']}{size}; {result['measured_s']:.1f} s measured after {cfg['warmup_s']:g} s warm-up "
          f"(engines loaded in {result['startup_s']:.1f} s)")
    print(f"machine: {result['machine']['cpu']}, {result['cpu']['cores']} cores; FaceNet {cfg['precision']}, "
          f"{cfg['threads'] or 'all'} threads; embeddings: {'every face, every frame (--no-skips)' if cfg['embed_every_frame'] else 'quality-gated, with tracking skips'}; "
          f"watchlist: {cfg['watchlist'] or 'empty'}")
    print(f"{'source':10} {'fps':>7} {'frames':>7} {'dropped':>8} {'skipped':>8}  {'capture->result ms p50 / p95 / p99':>36}")
    for name, row in result["sources"].items():
        print(f"{name:10} {row['fps']:>7.1f} {row['frames']:>7} {row['dropped']:>8} {row['skipped']:>8}  {_fmt_latency(row['capture_to_result_ms']):>36}")
    print(f"{'all':10} {result['fps']:>7.1f}")
    print(f"{'latency ms':22} {'p50 / p95 / p99':>24} {'samples':>8}")
    for name, summary in result["latency_ms"].items():
        print(f"{name.replace('_', ' '):22} {_fmt_latency(summary):>24} {summary['samples'] if summary else 0:>8}")
    decisions = result["decisions"]
    print(f"faces {result['faces_per_s']:.1f}/s, embeddings {result['embeddings_per_s']:.1f}/s ({result['embeddings_per_face']:.2f} per face); "
          f"decisions: {decisions['match']} match, {decisions['unknown']} unknown")
    steps = ", ".join(f"{name} {s['median']:.1f} (p95 {s['p95']:.1f}, n={s['count']})" for name, s in result["steps_ms"].items() if s)
    batching = result["batching"]
    print(f"inference steps, median ms: {steps}")
    print(f"batches: {batching['frames_per_batch']:.2f} frames, {batching['faces_per_embed_batch']:.2f} faces per embedding call; "
          f"{batching['full_detections_per_s']:.1f} full + {batching['tracked_detections_per_s']:.1f} tracked detections/s")
    stages = ", ".join(f"{name} {value:.0f}%" for name, value in sorted(result["cpu"]["stages"].items()))
    print(f"CPU {result['cpu']['percent']:.0f}% of one core (all stages; {result['cpu']['cores']} cores): {stages}")
    print("peak RSS MB: " + ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(result["peak_rss_mb"].items())))
    for name, worker in result["workers"].items():
        capacity = "-" if worker["capacity_fps"] is None else f"{worker['capacity_fps']:.1f}"
        cores = "-" if worker["cpu_cores"] is None else f"{worker['cpu_cores']:.2f}"
        print(f"{name}: {', '.join(worker['cameras']) or 'no camera'}; {worker['fps']:.1f} fps, busy {100 * worker['busy']:.0f}% "
              f"(capacity {capacity} fps), {cores} CPU cores, {worker['skipped']} skipped")
    for person in result["identities"]:
        print(f"identified {person['name']}: {person['matches']} match event(s), first after {person['first_s']:.1f} s on {', '.join(person['sources'])}")
    _print_open_set(result["open_set"])
    if result["restarted"]:
        print(f"restarted during the window: {', '.join(result['restarted'])}")


def _check_expected(expected: list[str], data_dir: Path | None) -> None:
    """Every ``--expect`` must name someone in the watchlist (by name or id)."""
    if not expected:
        return
    if data_dir is None:
        raise UserError("--expect needs --data-dir: the watchlist the expected people are enrolled in")
    from streamrec.match.store import Watchlist, WatchlistError

    try:
        with Watchlist(data_dir) as store, store.read() as view:  # one is there: run_pipeline_bench checked
            names = view.names()
    except WatchlistError as exc:
        raise UserError(str(exc)) from None
    known = set(names) | set(names.values())
    for person in expected:
        if person not in known:
            raise UserError(f"--expect {person}: no one of that name or id in the watchlist in {data_dir}")


def _print_open_set(figures: dict[str, Any]) -> None:
    first = figures["first_named_s"]
    named = ", ".join(
        f"{person} on {count} track(s)" + (f", first {first[person]:.1f} s after processing began" if count else "")
        for person, count in figures["named"].items()
    ) or "none expected"
    missed = f"; never named: {', '.join(figures['missed'])}" if figures["missed"] else ""
    print(f"open set: {figures['tracks']} decided tracks; expected people named: {named}{missed}")
    if figures["fpir"] is None:
        print("tracks of people not enrolled: none")
        return
    wrong = ", ".join(f"{name} x{count}" for name, count in figures["false_named"].items())
    print(f"tracks of people not enrolled (or not recognised): {figures['stranger_tracks']}, named as someone: {figures['false_names']}"
          f"{f' ({wrong})' if wrong else ''}; FPIR per track {figures['fpir']:.4f} (95% upper bound {figures['fpir_upper_95']:.4f})")


def run_pipeline_bench(args: argparse.Namespace) -> int:
    from streamrec.bench.pipeline import PipelineCollector, bench_pipeline
    from streamrec.bus.curve import LinkCurve
    from streamrec.bus.sockets import Endpoints, new_run_dir
    from streamrec.config import ConfigError, RunConfig, load_config, override
    from streamrec.engines.build import BuildError
    from streamrec.engines.sources import SourceError
    from streamrec.match.store import DB_NAME
    from streamrec.pipeline.assemble import stage_factories
    from streamrec.pipeline.logs import configure_logging
    from streamrec.pipeline.stage import stage_kind
    from streamrec.pipeline.supervisor import Supervisor

    info = _probe_source(args.source)
    if args.data_dir is not None and not (args.data_dir / DB_NAME).is_file():
        raise UserError(f"{args.data_dir}: no watchlist there (enroll people with `streamrec enroll --data-dir {args.data_dir}`)")
    _check_expected(args.expect, args.data_dir)
    options = {option: getattr(args, option) for option in ("threads", "precision", "backend", "workers") if getattr(args, option) is not None}
    try:
        config = load_config(args.config) if args.config else RunConfig()
        config = override(config, {
            "pipeline": options,
            "tracker": {"embed_every_frame": config.tracker.embed_every_frame or args.no_skips},
            "sources": [{"url": args.source, "name": f"cam{i + 1}", "loop": True, "fast": args.fast} for i in range(args.streams)],
        }, {f"pipeline.{option}": f"--{option}" for option in options} | {"sources": "--source"}, str(args.config or ""))
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    given = ", ".join(f"--{option}" for option in options if option != "workers")  # those that choose the inference
    config, inference = resolve_pipeline(config, given or str(args.config or "pipeline"))
    stderr(f"streamrec bench pipeline: inference on {inference.describe()}")
    try:
        engines = ensure_engines(args.engines, stderr)
    except (BuildError, SourceError) as exc:
        raise UserError(str(exc)) from None
    work = Path(tempfile.mkdtemp(prefix="streamrec-bench-"))  # run.json, logs, the events journal
    run_dir = new_run_dir()
    try:
        # published outputs on ipc endpoints of this run: no port to collide with, nothing to clean up
        config = override(config, {"outputs": {
            "events": f"ipc://{run_dir / 'events-pub'}", "frames": f"ipc://{run_dir / 'frames-pub'}", "http": "",
        }})
        endpoints = Endpoints.for_run(run_dir, config.outputs.events, config.outputs.frames, dict(config.links.set_links()),
                                   LinkCurve.from_links(config.links), config.worker_links())
        log_file = work / "logs" / "streamrec.log"
        configure_logging("supervisor", log_file)
        watchlist = args.data_dir if args.data_dir is not None else work / "watchlist"
        factories = stage_factories(config, watchlist, engines, endpoints, log_file, journal_dir=work / "events")
        supervisor = Supervisor(config, work, factories, endpoints, run_dir, status_line=False)
        collector = PipelineCollector(
            supervisor, endpoints, [s.label for s in config.sources], args.warmup, args.duration, stderr, expected=args.expect,
            inference=[name for name in factories if stage_kind(name) == "inference"],
        )
        stderr(f"streamrec bench pipeline: {args.streams} stream(s) of {args.source} on {len(config.worker_links()) or 1} inference worker(s); "
               f"{args.warmup:g} s warm-up, {args.duration:g} s measured")
        figures, why = bench_pipeline(supervisor, collector)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if figures is None and why != "interrupted":
        raise UserError(f"{why}; the stages' log is in {log_file}")
    shutil.rmtree(work, ignore_errors=True)
    if figures is None:
        raise UserError("interrupted before the measurement ended", status=130)
    if args.fast:  # a fast file's frames wait their turn in full queues: their age is the backlog, no latency
        figures["latency_ms"] = dict.fromkeys(figures["latency_ms"])
        figures["latency_samples_ms"] = {name: [] for name in figures["latency_samples_ms"]}
    result = {
        "machine": machine(),
        "config": {
            "source": args.source, "streams": args.streams, "workers": len(config.worker_links()) or 1, "duration_s": args.duration, "warmup_s": args.warmup,
            "threads": config.pipeline.threads, "precision": config.pipeline.precision, "backend": config.pipeline.backend,
            "detection": config.detector.precision,
            "embed_every_frame": config.tracker.embed_every_frame, "fast": args.fast,
            "config_file": str(args.config) if args.config else None,
            "min_face_size": config.detector.min_face_size, "min_face_px": config.tracker.min_face_px,
            "watchlist": str(args.data_dir) if args.data_dir is not None else None, "expected": args.expect, "source_info": info,
        },
        **figures,
    }
    emit_result(result, args, _print_pipeline)
    return 0


# -- bench transport ---------------------------------------------------------------------------
def _register_transport(kinds: argparse._SubParsersAction) -> None:
    from streamrec.bench import transport as doc

    parser = kinds.add_parser(
        "transport", help="per-frame cost of the frame transport (shared-memory ring + ZeroMQ) vs pixels in ZeroMQ, a pickling "
        "multiprocessing.Queue and the pixels inline over tcp (raw, JPEG, JPEG under CURVE) as between two hosts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sends frames of --size between two real processes with the pipeline's transport "
        "(ring: pixels in a shared-memory frame ring, a binary header over ZeroMQ PUSH/PULL on ipc) and, "
        "side by side in the same run, with the pixels as a zero-copy ZeroMQ frame (multipart) and with a "
        "multiprocessing.Queue of pickled (dict, array) tuples, and as stages on two hosts send them ([links] frame_pixels): the pixels "
        "inline over tcp on loopback, raw (raw_tcp), as JPEG at the default frame_quality with its encode and decode counted (jpeg_tcp), "
        "and the same under CURVE (jpeg_tcp_curve); at the sender's maximum rate and paced at --fps. Reports the CPU time per frame of both processes, "
        "every thread included, less that of the same paced loop sending nothing, also as a "
        "percentage of the 30 FPS frame budget (33.3 ms); the CPU time inside the send and receive "
        "calls; the send call's wall time; the one-way latency; the bytes of the message per frame.",
        epilog="Result keys of --json and --out" + (doc.__doc__ or "").split("Result keys", 1)[-1],
    )
    parser.add_argument("--size", type=_size, default=(640, 480), metavar="WxH", help="frame size, RGB uint8 (default: 640x480)")
    parser.add_argument("--fps", type=number(gt=0), default=30.0, help="the paced rate (default: %(default)g)")
    parser.add_argument("--duration", type=number(gt=0), default=6.0, metavar="S", help="measured seconds per transport and rate, over all rounds (default: %(default)g)")
    parser.add_argument("--rounds", type=number(whole=True, ge=1), default=3, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="also write the results here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_transport_bench)


def _print_transport(result: dict[str, Any]) -> None:
    print(f"frame {result['frame']} RGB ({result['frame_bytes'] / 1e6:.2f} MB); budget {result['budget_ms']:.1f} ms per frame at {result['budget_fps']:g} FPS; "
          f"machine: {result['machine']['cpu']}")
    print(f"{'transport':14} {'rate':>5} {'frames':>7} {'fps':>6} {'CPU ms/frame':>13} {'- pacing':>9} {'= transport':>12} {'% budget':>9} "
          f"{'call CPU ms med/p95':>20} {'send ms med/p95':>16} {'latency ms p50/p95/p99':>23} {'bytes/frame':>12}")
    for row in result["rows"]:
        rate = row["rate"] if row["rate"] == "max" else f"{row['rate']:g}"
        cpu, send, lat = row["call_cpu_ms"], row["send_wall_ms"], row["latency_ms"]
        sent = "-" if row["message_bytes_per_frame"] is None else f"{row['message_bytes_per_frame']:,}"
        print(f"{row['transport']:14} {rate:>5} {row['frames']:>7} {row['fps']:>6.0f} {row['cpu_per_frame_ms']:>13.3f} "
              f"{row['pacing_cpu_per_frame_ms']:>9.3f} {row['transport_cpu_per_frame_ms']:>12.3f} {row['budget_percent']:>8.2f}% "
              f"{cpu['median']:>9.3f}/{cpu['p95']:<10.3f} {send['median']:>7.3f}/{send['p95']:<8.3f} "
              f"{lat['p50']:>7.2f}/{lat['p95']:.2f}/{lat['p99']:.2f} {sent:>12}")
    verdict = result["verdict"]
    print(f"the ring at the paced rate: {verdict['percent']:.2f}% of the frame budget "
          f"({'below' if verdict['meets_goal'] else 'NOT below'} the {result['goal_percent']:g}% goal); inside the send and receive "
          f"calls (median) {verdict['call_percent']:.2f}% ({'below' if verdict['calls_meet_goal'] else 'NOT below'}); "
          f"pixels in ZeroMQ {verdict['multipart_percent']:.2f}%; the pickling Queue costs {verdict['queue_cpu_ratio']:.1f}x the ring's CPU per frame")
    print(f"across hosts at the paced rate: raw over tcp {verdict['raw_tcp_percent']:.2f}% of the frame budget, JPEG {verdict['jpeg_tcp_percent']:.2f}% "
          f"({verdict['jpeg_cpu_ratio']:.1f}x raw's CPU per frame for {1 / verdict['jpeg_bytes_ratio']:.3f}x its bytes), JPEG under CURVE "
          f"{verdict['jpeg_tcp_curve_percent']:.2f}% ({verdict['curve_cpu_ratio']:.2f}x JPEG's CPU per frame)")


def run_transport_bench(args: argparse.Namespace) -> int:
    from streamrec.bench.transport import bench_transport

    width, height = args.size
    stderr(f"streamrec bench transport: {width}x{height} frames, max rate and {args.fps:g} fps, {args.rounds} round(s)")
    result = {"machine": machine(), **bench_transport(args.size, args.fps, args.duration, args.rounds, stderr)}
    emit_result(result, args, _print_transport)
    return 0


# -- bench report ------------------------------------------------------------------------------
def _register_report(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "report", help="docs/benchmarks.md and its plots, written from the JSON files of the other sub-verbs",
        description="Reads the JSON files the other sub-verbs write with --out (pipeline_*.json, transport.json, "
        "peers.json, models_triton.json; tools/run_benchmarks.sh makes them all, then runs this) and writes a Markdown report: the "
        "machine, how to reproduce it, the project's targets and why, the end-to-end FPS of our pipeline and of each peer with the ratios and the "
        "targets met or missed, who each system identified, where the time of a frame goes, the pipeline's latencies, "
        "CPU and memory, how many cameras at full rate one inference worker sustains (pipeline_workers_*.json), the frame "
        "transport, the peers in detail, and each net in process beside through a Triton server (bench models --backend "
        "onnxruntime,triton). Three PNG plots (FPS and CPU time per frame, per-frame time and latency "
        "distributions, stage breakdown) go into a folder named after the report (docs/benchmarks/ for "
        "docs/benchmarks.md). Every number comes from the JSON files; a missing file makes its section say "
        "\"not measured\" with the command that measures it. Needs matplotlib (the 'build' extra).",
    )
    parser.add_argument("--dir", type=Path, default=Path("docs/bench"), metavar="DIR", help="folder of the JSON files (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), metavar="FILE.md", help="the report (default: %(default)s)")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from streamrec.bench.report import ReportError, write_report

    try:
        written = write_report(args.dir, args.out)
    except ReportError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write the report: {exc}") from None
    for path in written:
        print(path)
    return 0
