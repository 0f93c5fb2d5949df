"""``streamrec bench torch``: the torch backend beside ONNX Runtime (:mod:`streamrec.bench.torch_backend`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamrec.cli.common import UserError, emit_result, stderr

__all__ = ["register_torch"]


def _cases(text: str) -> list[tuple[int, int, float]]:
    """``640x480@40,1920x1080@20`` -> [(640, 480, 40.0), (1920, 1080, 20.0)]."""
    cases = []
    for item in text.split(","):
        try:
            size, min_face = item.split("@")
            width, height = (int(v) for v in size.lower().split("x"))
            cases.append((width, height, float(min_face)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT@MINFACE[,...], got {item!r}") from None
        if width < 12 or height < 12 or float(min_face) < 12:
            raise argparse.ArgumentTypeError(f"frames and faces must be at least 12 px (got {item!r})")
    return cases


def register_torch(kinds: argparse._SubParsersAction) -> None:
    """Add ``torch`` to the sub-verbs of ``streamrec bench``."""
    from streamrec.bench import torch_backend as doc
    from streamrec.cli.bench import _int_list  # the parent verb's parser of "1,8,32"

    parser = kinds.add_parser(
        "torch", help="the torch backend (whole cascade on --device) beside ONNX Runtime: MTCNN per frame, FaceNet per face",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Times whole-frame MTCNN (ONNX Runtime's nets inside the host cascade, against the torch backend's "
        "cascade on --device) for every --cases size and minimum face at every --batches frames per call, and FaceNet "
        "(ONNX Runtime fp32 against torch fp32) per face at every --facenet-batches size, interleaved round by round "
        "in one process with the same thread budget. Frames come from --source (a video or image), resized to cover "
        "each size, else from the sample photos. --compile adds torch.compile'd nets and how long compiling took.",
        epilog="Result keys of --json and --out" + (doc.__doc__ or "").split("Result keys", 1)[-1],
    )
    parser.add_argument("--cases", type=_cases, default=[(640, 480, 40.0), (1920, 1080, 20.0)], metavar="WxH@PX,...",
                        help="frame sizes and minimum face sizes (default: 640x480@40,1920x1080@20)")
    parser.add_argument("--batches", type=_int_list, default=[1, 8], metavar="N,N", help="frames per detection call (default: 1,8)")
    parser.add_argument("--facenet-batches", type=_int_list, default=[1, 8, 32], metavar="N,N,...",
                        help="faces per FaceNet call (default: 1,8,32)")
    parser.add_argument("--rounds", type=int, default=30, metavar="N", help="interleaved rounds per measurement (default: %(default)s)")
    parser.add_argument("--source", type=Path, metavar="FILE", help="take frames from this video or image (default: the sample photos)")
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda[:N]", help="where the torch backend runs (default: %(default)s)")
    parser.add_argument("--threads", type=int, metavar="N", help="thread budget of both (default: every core this process may use)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd nets (compiling takes minutes on a CPU)")
    parser.add_argument("--engines", type=Path, metavar="DIR", help="engine folder")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="also write the results here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run_torch_bench)


def _print_table(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"machine: {m['cpu']} ({', '.join(m['cpu_flags'])}), {m['cores_available']} cores, load {m['load_average']}")
    names = [n for n in ("onnxruntime", "torch", "torch_compiled") if n in result["detection"][0]]
    print(f"{'MTCNN frame':12} {'min face':>8} {'batch':>5} " + " ".join(f"{n + ' ms/frame':>24}" for n in names))
    for row in result["detection"]:
        print(f"{row['frame']:12} {row['min_face_size']:>8g} {row['batch']:>5} "
              + " ".join(f"{row[n]['per_frame_ms']:>24.1f}" for n in names))
    print(f"{'FaceNet batch':13} " + " ".join(f"{n + ' ms/face':>23}" for n in names))
    for row in result["facenet"]:
        print(f"{row['batch']:>13} " + " ".join(f"{row[n]['per_face_ms']:>23.1f}" for n in names))


def run_torch_bench(args: argparse.Namespace) -> int:
    from streamrec.bench.models import bench_frames
    from streamrec.engines import ensure_engines

    try:
        from streamrec.backends.torch.device import open_device
        from streamrec.bench.torch_backend import TorchBenchSettings, bench_torch

        open_device(args.device)
    except ImportError as exc:
        raise UserError(f"the torch backend needs PyTorch and torchvision ({exc}): pip install 'streamrec[torch]'") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1 (got {args.threads})")
    if args.rounds < 1:
        raise UserError(f"--rounds must be >= 1 (got {args.rounds})")
    folder = ensure_engines(args.engines, stderr)
    try:
        frames = {(w, h): bench_frames(args.source, (w, h)) for w, h, _ in args.cases}
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    settings = TorchBenchSettings(
        cases=tuple(args.cases), batches=tuple(args.batches), facenet_batches=tuple(args.facenet_batches),
        rounds=args.rounds, device=args.device, threads=args.threads, compile=args.compile,
    )
    stderr(f"timing MTCNN and FaceNet, ONNX Runtime beside torch on {args.device}, {settings.rounds} interleaved rounds each")
    emit_result(bench_torch(settings, folder, frames, stderr), args, _print_table)
    return 0
