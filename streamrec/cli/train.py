"""``streamrec train``: adapt FaceNet to a folder of labelled faces, written as a new engine."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamrec.backends import default_threads
from streamrec.cli.common import (
    UserError,
    add_engine_options,
    add_model_options,
    number,
    open_models,
    print_json,
    stderr,
)
from streamrec.engines import ENGINE_FILES, PUBLISHED_MODEL, ensure_engines, read_manifest
from streamrec.engines.build import BuildError
from streamrec.engines.sources import SourceError
from streamrec.train.data import FaceSet, Skipped, TrainDataError, folder_digest, load_faces, split_people

__all__ = ["register"]

_BLOCKS = 23  # blocks of FaceNet's body; streamrec.train.loop.BODY_BLOCKS, without importing torch here


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "train", help="adapt FaceNet to your own labelled faces (triplet loss), as a new engine",
        description="Adapt FaceNet to a folder of labelled faces (one sub-folder of photos per person) with "
        "the triplet loss on P x K batches, and write the result as a new engine beside the published one "
        "(engines/facenet-NAME.onnx, listed in the manifest); every verb that embeds, and the pipeline, "
        "runs it with --model NAME. Faces are found and cut as inference does (--aligned: the photos are "
        "face crops already). Some people are held out (never trained on) and measured as eval-pairs "
        "measures, before training and after each epoch; the best epoch is kept. The engine options choose "
        "how the faces are found; training runs in PyTorch on the CPU, on --threads. See docs/train.md.",
    )
    parser.add_argument("--faces", type=Path, required=True, metavar="DIR", help="one sub-folder of photos per person")
    parser.add_argument("--name", required=True, metavar="NAME", help="the new model's name (a-z, 0-9, - and _)")
    parser.add_argument("--aligned", action="store_true", help="the photos are face crops already: take them as they are")
    group = parser.add_argument_group("training options")
    group.add_argument("--epochs", type=number(whole=True, ge=1), default=5, help="passes over the training people (default: %(default)s)")
    group.add_argument("--people", type=number(whole=True, ge=2), default=8, metavar="P", help="people per batch (default: %(default)s)")
    group.add_argument("--photos", type=number(whole=True, ge=2), default=4, metavar="K", help="photos per person in a batch (default: %(default)s)")
    group.add_argument("--alpha", type=number(gt=0, le=4), default=0.2, metavar="MARGIN",
                       help="triplet margin on squared distances of unit vectors (default: %(default)s, FaceNet's)")
    group.add_argument("--mining", choices=("semi-hard", "hardest", "batch-all"), default="semi-hard",
                       help="each (anchor, positive) pair's negative: the closest one farther than the positive "
                       "within the margin, the closest one, or all of them (default: %(default)s)")
    group.add_argument("--train-blocks", type=number(whole=True, ge=0, le=_BLOCKS), default=1, metavar="N",
                       help=f"how many of FaceNet's last blocks learn, with the embedding head (0: the head only; "
                       f"{_BLOCKS}: all but the stem) (default: %(default)s)")
    group.add_argument("--learning-rate", type=number(gt=0, le=1), default=1e-4, metavar="LR", help="Adam's step size (default: %(default)s)")
    group.add_argument("--heldout", type=number(gt=0, lt=1), default=0.3, metavar="FRACTION",
                       help="fraction of the people held out to measure (at least 2, and 2 left to train) (default: %(default)s)")
    group.add_argument("--seed", type=number(whole=True, ge=0), default=0, help="split, batches and augmentations (default: %(default)s)")
    group.add_argument("--no-flip", action="store_true", help="augmentation: never mirror a crop")
    group.add_argument("--crop-jitter", type=number(ge=0, lt=1), default=0.1, metavar="FRACTION",
                       help="augmentation: keep a random square of 1-FRACTION to 1 of the crop's side (default: %(default)s)")
    group.add_argument("--brightness", type=number(ge=0, lt=1), default=0.2, metavar="FRACTION",
                       help="augmentation: scale pixels by up to 1 +- FRACTION (default: %(default)s)")
    add_model_options(parser, embeds=False)
    add_engine_options(parser)
    parser.set_defaults(handler=run_train)


def _show(line: str, transient: bool) -> None:
    """On a terminal a transient line (a batch, a count) is overwritten by the next; elsewhere
    (a log) every line stays."""
    if sys.stderr.isatty():
        print(f"\r{line}\033[K", end="" if transient else "\n", file=sys.stderr, flush=True)
    else:
        stderr(line)


def _files_progress(done: int, total: int) -> None:
    if done == total or done % 10 == 0:
        _show(f"reading photos: {done}/{total}", done < total)


def _train_progress(line: str) -> None:
    _show(line, " batch " in line)


def _settings(args: argparse.Namespace) -> Any:
    from streamrec.train.augment import Augment
    from streamrec.train.loop import TrainSettings

    try:
        augment = Augment(flip=not args.no_flip, crop=args.crop_jitter, brightness=args.brightness)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return TrainSettings(
        epochs=args.epochs, people=args.people, photos=args.photos, margin=args.alpha, strategy=args.mining,
        train_blocks=args.train_blocks, learning_rate=args.learning_rate, heldout=args.heldout, seed=args.seed,
        augment=augment,
    )


def run_train(args: argparse.Namespace) -> int:
    import torch

    from streamrec.engines.sources import locate_sources
    from streamrec.engines.weights import load_facenet
    from streamrec.train.export import ExportError, check_name, write_engine
    from streamrec.train.loop import train

    settings = _settings(args)
    torch.set_num_threads(args.threads or default_threads())
    try:
        models = None if args.aligned else open_models(args)
        engine_dir = ensure_engines(args.engines, stderr)
        check_name(engine_dir, args.name)
        faces, skipped = load_faces(args.faces, models, _files_progress)
        training, heldout = split_people(faces.names, settings.heldout, settings.seed)
        _say_data(faces, skipped, heldout)
        base = load_facenet(locate_sources())
        result = train(base, faces.subset(training), faces.subset(heldout), settings, _train_progress)
        record = {
            "base": {"model": PUBLISHED_MODEL, "file": ENGINE_FILES["facenet"],
                     "sha256": read_manifest(engine_dir)["files"][ENGINE_FILES["facenet"]]["sha256"]},
            "data": _data_record(args, faces, skipped, training, heldout),
            "settings": {**asdict(settings), "faces": _crop_settings(args)},
            "heldout": result.figures(),
        }
        entry = write_engine(result.model, engine_dir, args.name, record, faces.subset(heldout).crops)
    except (TrainDataError, ExportError, SourceError, BuildError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json({"name": args.name, **entry})
        return 0
    before, after = result.before, result.after
    kept = f"epoch {result.best_epoch} of {settings.epochs}" if result.best_epoch else "no epoch beat the published model: it is kept as is"
    print(f"held-out accuracy {before.accuracy:.4f} -> {after.accuracy:.4f}, AUC {before.auc:.4f} -> {after.auc:.4f} ({kept})")
    print(f"wrote {engine_dir / entry['file']}: use it with --model {args.name}")
    return 0


def _say_data(faces: FaceSet, skipped: Skipped, heldout: list[str]) -> None:
    """What training will use, and every file or person left out, and why."""
    stderr(f"{len(faces.paths)} faces of {len(faces.names)} people ({skipped.summary()}); "
           f"training on {len(faces.names) - len(heldout)} people, holding out {len(heldout)}: {', '.join(heldout)}")
    for path, reason in skipped.unreadable.items():
        stderr(f"  {path}: {reason}")
    for path in skipped.no_face:
        stderr(f"  {path}: no face found")
    for name in skipped.single_photo:
        stderr(f"  {name}: one usable photo, no positive for it")


def _data_record(
    args: argparse.Namespace, faces: FaceSet, skipped: Skipped, training: list[str], heldout: list[str]
) -> dict[str, Any]:
    """Which data the model was trained on, as the manifest records it."""
    return {
        "folder": str(args.faces.resolve()), "sha256": folder_digest(args.faces), "aligned": args.aligned,
        "people": len(faces.names), "photos": len(faces.paths), "training": training, "heldout": heldout,
        "skipped": {"unreadable": len(skipped.unreadable), "no_face": len(skipped.no_face),
                    "single_photo": len(skipped.single_photo)},
    }


def _crop_settings(args: argparse.Namespace) -> dict[str, Any]:
    """How the faces were found and cut (inference must cut them so too)."""
    if args.aligned:
        return {"aligned": True}
    return {"aligned": False, "alignment": args.alignment, "margin": args.margin, "min_face_size": args.min_face_size,
            "max_side": args.max_side, "selection": args.selection}
