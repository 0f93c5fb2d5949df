"""``streamrec bench peers``: our face recognition beside face_recognition (dlib) and
facenet-pytorch on the same frames, photos and thread budget (:mod:`streamrec.bench.peers`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from streamrec.backends import BackendOptions, default_threads
from streamrec.backends.choose import (
    AUTO,
    BACKEND_CHOICES,
    PRECISION_CHOICES,
    BackendChoice,
    Choice,
    PrecisionChoice,
)
from streamrec.bench.peer_workers import SYSTEMS
from streamrec.cli.common import UserError, emit_result, number, resolve_engine, stderr, thread_count
from streamrec.faces import DETECTION_PRECISIONS, DetectionPrecision, check_detection

__all__ = ["register_peers", "run_peers_bench"]

_SYSTEMS = SYSTEMS


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _systems(text: str) -> list[str]:
    systems = _names(text)
    unknown = [s for s in systems if s not in _SYSTEMS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown system {unknown[0]!r} (choose from {', '.join(_SYSTEMS)})")
    return list(dict.fromkeys(systems))


def _choices(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names from ``choices``, ``auto`` only alone (it picks one
    engine for this machine, so it has nothing to be compared with)."""

    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(_names(text)))
        wrong = [n for n in names if n not in choices]
        if wrong:
            raise argparse.ArgumentTypeError(f"unknown {wrong[0]!r} (choose from {', '.join(choices)})")
        if AUTO in names and len(names) > 1:
            raise argparse.ArgumentTypeError(f"{AUTO} stands alone: it picks one for this machine (got {text!r})")
        return names

    return parse


def register_peers(kinds: argparse._SubParsersAction) -> None:
    """Add ``peers`` to the sub-verbs of ``streamrec bench``."""
    from streamrec.bench import peers as doc

    parser = kinds.add_parser(
        "peers", help="our recognition beside face_recognition (dlib) and facenet-pytorch: speed and accuracy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Runs each system in processes of its own, one system after the other, on every frame "
        "of --source in order (each worker decodes the same file frame by frame; decoding is not timed) with "
        "the same thread budget: face_recognition (dlib HOG + ResNet, face_locations then face_encodings, "
        "tolerance 0.6), facenet-pytorch (MTCNN(keep_all=True) + InceptionResnetV1 holding the FaceNet "
        "20180408-102900 weights our engine is built from, threshold 1.12) and streamrec (our MTCNN and "
        "FaceNet on --backend in --precision (ONNX Runtime fp32 unless told), every face of every frame, and the watchlist "
        "matcher; no tracking), one streamrec row per backend and precision of the comma lists, each run like a peer. "
        "Reports FPS, the detection / embedding split, faces per frame, CPU cores used and peak memory "
        "of each. With --faces (one folder of photos per person), each system enrolls those people and "
        "names faces on the clip, and scores a pair list built from the photos with the eval-pairs "
        "protocol, in a process before the one that processes the video. With --pairs PAIRS.txt --images DIR "
        "(an LFW-format list, as eval-pairs reads it, e.g. LFW View 1 DevTest: 1000 pairs), every system also "
        "scores that list, in the process before the video's, so the accuracy comparison does not rest on a few pairs. A system whose library cannot be imported is reported as not available, with the "
        "reason. Peers are an optional extra: pip install 'streamrec[peers]' then "
        "pip install --no-deps face_recognition.",
        epilog="JSON keys (--json, --out):\n" + (doc.__doc__ or "").split("Result keys", 1)[-1],
    )
    parser.add_argument("--source", type=Path, required=True, metavar="VIDEO", help="the video file every system processes")
    parser.add_argument("--faces", type=Path, metavar="DIR", help="one folder of photos per person: the people to enroll and "
                        "recognise, and the pair list's photos (default: speed only)")
    parser.add_argument("--pairs", type=Path, metavar="PAIRS.txt", help="an LFW-format pair list every system also scores "
                        "(header 'n' or 'folds n', as eval-pairs reads it); needs --images")
    parser.add_argument("--images", type=Path, metavar="DIR", help="the folder of the --pairs list's images (DIR/name/name_0001.jpg)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=number(gt=0), metavar="S", help="process the first S seconds of the clip")
    amount.add_argument("--frames", type=number(whole=True, ge=1), metavar="N", help="process the first N frames (default: the whole clip, once)")
    parser.add_argument("--threads", type=thread_count, default=default_threads(), metavar="N",
                        help="thread budget of every system, at most the cores available (default: %(default)s, all of them)")
    parser.add_argument("--systems", type=_systems, default=list(_SYSTEMS), metavar="A,B,...",
                        help=f"which systems, in this order (default: {','.join(_SYSTEMS)})")
    parser.add_argument("--expected", type=_names, metavar="NAME,NAME", help="the people who really appear in the clip: "
                        "any other name a system gives is listed as unexpected")
    parser.add_argument("--engines", type=Path, metavar="DIR", help="engine folder (built on first use)")
    ours = parser.add_argument_group("streamrec's engines (the other systems run as they ship)")
    ours.add_argument("--backend", type=_choices(BACKEND_CHOICES), default=["onnxruntime"], metavar="B,B",
                      help=f"backends of the streamrec rows, from {', '.join(BACKEND_CHOICES)} (auto only alone): one row "
                      "per backend and precision, run one after the other like the peers; a pair this machine cannot run "
                      "is said in one line and listed in config.skipped (default: onnxruntime)")
    ours.add_argument("--precision", type=_choices(PRECISION_CHOICES), default=["fp32"], metavar="P,P",
                      help=f"how streamrec's FaceNet computes, from {', '.join(PRECISION_CHOICES)} (auto only alone) "
                      "(default: fp32)")
    ours.add_argument("--detection-precision", type=_choices(DETECTION_PRECISIONS), default=["fp32"], metavar="P,P",
                      help=f"how streamrec's R-Net and O-Net compute, from {', '.join(DETECTION_PRECISIONS)}: each engine "
                      "above once per precision its backend runs detection in here (default: fp32)")
    ours.add_argument("--device", metavar="DEVICE", help="where streamrec's backend runs: cpu, gpu, cuda:N (default: the backend's own)")
    parser.add_argument("--pipeline-result", type=Path, metavar="FILE.json",
                        help="attach the result of `streamrec bench pipeline --out FILE.json` (our full pipeline, with tracking)")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="also write the results here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_peers_bench)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_peers(result: dict[str, Any]) -> None:
    from streamrec.bench.peers import engine_text

    cfg, info = result["config"], result["config"]["source_info"]
    limit = f"first {cfg['frames']} frames" if cfg["frames"] else "every frame"
    print(f"peers on {cfg['source']} ({info['width']}x{info['height']}, {info['fps']:g} fps, {info['frames']} frames): {limit}, "
          f"{cfg['threads']} thread(s); machine: {result['machine']['cpu']}")
    width = max([17, *(len(name) + 1 for name in result["systems"])])
    print(f"{'system':{width}} {'frames':>6} {'fps':>6} {'med ms':>7} {'detect ms':>9} {'embed ms':>8} {'ms/face':>7} "
          f"{'faces/fr':>8} {'cores':>5} {'peak MB':>7} {'pair acc':>8}")
    for name, row in result["systems"].items():
        if not row.get("available"):
            print(f"{name:{width}} not available: {row.get('reason')}")
            continue
        if "error" in row:
            print(f"{name:{width}} failed: {row['error']}")
            continue
        stage = row["stage_ms"]
        accuracy = (row.get("verification") or {}).get("accuracy")
        print(f"{name:{width}} {row['frames']:>6} {row['fps']:>6.1f} {row['frame_ms']['median']:>7.1f} "
              f"{_num((stage['detect'] or {}).get('median'), '.1f'):>9} {_num((stage['embed'] or {}).get('median'), '.1f'):>8} "
              f"{_num(row['embed_ms_per_face'], '.1f'):>7} {row['faces_per_frame']:>8.2f} {row['cpu_cores_used']:>5.2f} "
              f"{_num(row['peak_rss_mb'] or row['peak_rss_mb_process'], '.0f'):>7} {_num(accuracy, '.3f'):>8}")
    for name, row in result["systems"].items():
        if "identities" not in row:
            continue
        named = ", ".join(f"{who} {r['frames']} frames ({r['first_frame']}-{r['last_frame']})" for who, r in row["identities"].items())
        extra = f"; unexpected: {', '.join(row['unexpected_names'])}" if row.get("unexpected_names") else ""
        print(f"{name}: {named or 'nobody named'}; {row['unknown_faces']} unknown faces{extra}")
    engines = [(name, row["engine"]) for name, row in result["systems"].items() if "engine" in row]
    if len(engines) > 1:
        print("streamrec rows: " + ", ".join(f"{name} = {engine_text(e)}" for name, e in engines))
    for line in cfg["skipped"]:
        print(f"streamrec not run on {line}")
    pairs = result["pairs"]
    if pairs:
        print(f"pairs: {pairs['same']} same + {pairs['different']} different from {pairs['photos']} photos of "
              f"{len(pairs['people'])} people, {pairs['folds']} folds (eval-pairs protocol)")
    listed = result["pair_file"]
    if listed:
        scores = ", ".join(f"{name} {_num((row.get('verification_pairs') or {}).get('accuracy'), '.3f')}"
                           for name, row in result["systems"].items() if row.get("available") and "error" not in row)
        print(f"{listed['pairs']}: {listed['same']} same + {listed['different']} different pairs, {listed['folds']} folds; "
              f"accuracy: {scores or '-'}")
    if not result["same_frames"]:
        print("WARNING: the systems decoded different frames")
    pipeline = result["streamrec_pipeline"]["result"]
    if pipeline and "fps" in pipeline:
        print(f"streamrec full pipeline (bench pipeline, {result['streamrec_pipeline']['source']}): {pipeline['fps']:.1f} FPS")


def _pair_file(pairs: Path | None, images: Path | None) -> tuple[Path, Path] | None:
    """``(--pairs, --images)`` once both are checked the way eval-pairs checks them, so a bad
    list stops the run before any system loads; ``None`` without them."""
    from streamrec.verify.pairs import PairsFormatError, read_pairs

    if pairs is None and images is None:
        return None
    if pairs is None or images is None:
        raise UserError("--pairs and --images go together (the list, and the folder of its images)")
    try:
        read_pairs(pairs, images)
    except PairsFormatError as exc:
        raise UserError(str(exc)) from None
    if not images.is_dir():
        raise UserError(f"{images}: not a directory")
    return pairs, images


def _engines(
    backends: Sequence[BackendChoice], precisions: Sequence[PrecisionChoice], device: str | None
) -> tuple[list[Choice], list[str]]:
    """The streamrec rows' engines, checked before any system runs, and one line for each pair of
    ``--backend`` and ``--precision`` this machine cannot run (said on stderr). One pair is
    resolved as every verb resolves ``--backend``/``--precision`` (``auto`` included), and stops
    the run if it cannot run here; of several, those that can run are compared, and the run stops
    only when none can."""
    from streamrec.bench.models import engine_choices

    if len(backends) == 1 and len(precisions) == 1:
        return [resolve_engine(backends[0], precisions[0], device, "")], []
    named_backends = [b for b in backends if b != AUTO]
    named_precisions = [p for p in precisions if p != AUTO]
    if len(named_backends) < len(backends) or len(named_precisions) < len(precisions):
        raise UserError(f"--backend {AUTO} and --precision {AUTO} pick one engine; name the backends and precisions to compare")
    runnable, skipped = engine_choices(named_backends, list(named_precisions), device)
    for line in skipped:
        stderr(f"not run: {line}")
    if not runnable:
        raise UserError("no backend here runs the precisions asked for: " + "; ".join(skipped))
    runs = set(runnable)
    asked = [Choice(backend, precision, device) for backend in named_backends for precision in named_precisions]
    return [choice for choice in asked if (choice.backend, choice.precision) in runs], skipped


def _with_detection(engines: list[Choice], precisions: Sequence[DetectionPrecision]) -> tuple[list[Choice], list[str]]:
    """Each engine once per detection precision (those in fp32 first), where its backend runs
    detection in it here, and one line (said on stderr) for each that cannot run."""
    rows: list[Choice] = []
    refused: list[str] = []
    for precision in precisions:
        for engine in engines:
            try:
                check_detection(engine.backend, precision, BackendOptions(device=engine.device))
            except ValueError as exc:
                refused.append(f"{engine.backend} {engine.precision}, detection {precision}: {exc}")
                stderr(f"not run: {refused[-1]}")
                continue
            rows.append(replace(engine, detection=precision))
    if not rows:
        raise UserError("no engine here runs detection in the precisions asked for: " + "; ".join(refused))
    return rows, refused


def run_peers_bench(args: argparse.Namespace) -> int:
    from streamrec.bench.models import probe_video
    from streamrec.bench.peers import bench_peers, frames_for
    from streamrec.engines.build import BuildError
    from streamrec.engines.sources import SourceError

    try:
        info = probe_video(args.source)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.faces is not None and not args.faces.is_dir():
        raise UserError(f"{args.faces}: not a folder (--faces wants one sub-folder of photos per person)")
    pair_file = _pair_file(args.pairs, args.images)
    if args.pipeline_result is not None:
        try:
            json.loads(args.pipeline_result.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{args.pipeline_result}: not a readable JSON file ({exc})") from None
    frames = frames_for(args.duration, args.frames, info["fps"])
    engines, skipped = _engines(args.backend, args.precision, args.device)
    engines, refused = _with_detection(engines, args.detection_precision)
    skipped += refused
    stderr(f"streamrec bench peers: {', '.join(args.systems)} on {args.source}, "
           f"{f'{frames} frames' if frames else 'the whole clip'}, {args.threads} thread(s); "
           f"streamrec on {', '.join(choice.describe() for choice in engines)}")
    try:
        result = bench_peers(args.source, args.faces, frames, args.threads, args.systems, stderr,
                             args.expected, args.engines, args.pipeline_result, pair_file, engines, skipped)
    except (BuildError, SourceError) as exc:
        raise UserError(str(exc)) from None
    emit_result(result, args, _print_peers)
    return 0
