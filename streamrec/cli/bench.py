"""``streamrec bench``: benchmarks (medians of repeated runs; competitors side by side)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from streamrec.backends import default_threads
from streamrec.bench.models import bench_detection, bench_frames, bench_nets, machine
from streamrec.cli.common import UserError, print_json, stderr, write_atomic
from streamrec.engines import ensure_engines

__all__ = ["register"]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected numbers >= 1, got {text!r}")
    return values


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``bench`` and its sub-verbs to the ``streamrec`` parser."""
    bench = verbs.add_parser("bench", help="benchmarks: per-model speed, detection vs facenet-pytorch")
    kinds = bench.add_subparsers(dest="kind", metavar="KIND", required=True)
    models = kinds.add_parser(
        "models", help="per-model latency/throughput by batch, and whole-frame MTCNN vs facenet-pytorch",
        description="Times R-Net, O-Net and FaceNet at each batch size (median latency per batch "
        "and per item, items per second), then whole-frame MTCNN detection on frames of --size, "
        "interleaved round by round with facenet-pytorch's MTCNN.detect() on the same frames and "
        "the same thread budget (skipped with a note if facenet-pytorch cannot be imported).",
    )
    models.add_argument("--batches", type=_int_list, default=[1, 8, 32], metavar="B,B,...", help="batch sizes (default: 1,8,32)")
    models.add_argument("--duration", type=float, default=3.0, metavar="S", help="seconds per model and batch (default: %(default)s)")
    models.add_argument("--rounds", type=int, default=40, help="interleaved detection rounds per min face size (default: %(default)s)")
    models.add_argument("--min-face-sizes", type=_int_list, default=[40, 20], metavar="PX,PX", help="(default: 40,20)")
    models.add_argument("--size", type=_size, default=(640, 480), metavar="WxH", help="detection frame size (default: 640x480)")
    models.add_argument("--source", type=Path, metavar="FILE", help="take frames from this video or image (default: the sample photos)")
    models.add_argument("--threads", type=int, default=default_threads(), help="thread budget for every engine (default: %(default)s)")
    models.add_argument("--engines", type=Path, metavar="DIR", help="engine folder")
    models.add_argument("--out", type=Path, metavar="FILE.json", help="also write the results here")
    models.add_argument("--json", action="store_true", help="print the results as JSON")
    models.set_defaults(handler=run_models)


def _print_table(result: dict[str, Any]) -> None:
    print(f"machine: {result['machine']['cpu']}, {result['threads']} threads")
    print(f"{'model':12} {'batch':>5} {'median ms':>10} {'ms/item':>8} {'items/s':>8}")
    for row in result["nets"]:
        print(f"{row['model']:12} {row['batch']:>5} {row['median_ms']:>10.2f} {row['per_item_ms']:>8.2f} {row['items_per_s']:>8.1f}")
    print(f"{'MTCNN frame':12} {'min face':>8} {'streamrec ms':>13} {'facenet-pytorch ms':>19} {'speed-up':>9}")
    for row in result["detection"]:
        theirs = row.get("facenet_pytorch", {}).get("median_ms")
        print(
            f"{row['frame']:12} {row['min_face_size']:>8g} {row['streamrec']['median_ms']:>13.1f} "
            f"{theirs if theirs is None else f'{theirs:.1f}':>19} {row.get('speedup', float('nan')):>8.2f}x"
        )
        if "facenet_pytorch" not in row:
            print(f"  ({row['reference']})")


def run_models(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1 (got {args.threads})")
    folder = ensure_engines(args.engines, stderr)
    try:
        frames = bench_frames(args.source, args.size)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    stderr(f"timing nets at batches {args.batches} ({args.duration:g} s each)")
    nets = bench_nets(folder, args.threads, args.batches, args.duration, stderr)
    stderr(f"timing whole-frame detection, {args.rounds} interleaved rounds per setting")
    detection = bench_detection(folder, args.threads, frames, [float(m) for m in args.min_face_sizes], args.rounds, stderr)
    result = {"machine": machine(), "threads": args.threads, "nets": nets, "detection": detection}
    if args.out:
        write_atomic(args.out, (json.dumps(result, indent=2) + "\n").encode())
    if args.json:
        print_json(result)
    else:
        _print_table(result)
    return 0
