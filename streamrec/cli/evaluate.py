"""``streamrec eval-pairs``: face verification accuracy on an LFW-format pair list."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamrec.cli.common import UserError, add_engine_options, add_model_options, open_models, print_json
from streamrec.verify.evaluate import evaluate_pairs
from streamrec.verify.pairs import PairsFormatError, read_pairs

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``eval-pairs`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "eval-pairs", help="verification accuracy on an LFW-format pair list (10-fold protocol)",
        description="Run the LFW protocol on any pair list in LFW's pairs.txt format (header "
        "'folds n' or 'n'; 'name i j' = same person, 'name1 i name2 j' = different; images "
        "DIR/name/name_%04d.jpg): 10-fold accuracy (threshold chosen on 9 folds, scored on the "
        "10th), VAL at FAR=1e-3, AUC and EER, and the best overall threshold. Pairs with an image "
        "where no face is found are left out and counted, as Sandberg's validate_on_lfw does; "
        "'accuracy_counting_skipped' counts them as errors instead.",
    )
    parser.add_argument("--pairs", type=Path, required=True, metavar="PAIRS.txt")
    parser.add_argument("--images", type=Path, required=True, metavar="DIR")
    add_model_options(parser)
    add_engine_options(parser)
    parser.set_defaults(handler=run_eval_pairs)


def _progress(done: int, total: int) -> None:
    if done == total or done % 100 == 0:
        end = "\n" if done == total else ""
        print(f"\rembedding images: {done}/{total}", end=end, file=sys.stderr, flush=True)


def run_eval_pairs(args: argparse.Namespace) -> int:
    try:
        pair_list = read_pairs(args.pairs, args.images)
    except PairsFormatError as exc:
        raise UserError(str(exc)) from None
    if not args.images.is_dir():
        raise UserError(f"{args.images}: not a directory")
    models = open_models(args)
    try:
        report = evaluate_pairs(models, pair_list, _progress)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json(report.to_json())
        return 0
    print(f"pairs: {report.pairs} ({report.pairs_scored} scored, {report.skipped_pairs} skipped)")
    print(f"accuracy: {report.accuracy:.4f} +- {report.accuracy_std:.4f} (10-fold)")
    if report.skipped_pairs:
        print(f"accuracy counting skipped pairs as errors: {report.accuracy_counting_skipped:.4f}")
    print(f"VAL at FAR=1e-3: {report.val_at_far_1e_3:.4f} +- {report.val_std:.4f} (FAR {report.far:.4f})")
    print(f"AUC: {report.auc:.4f}  EER: {report.eer:.4f}")
    print(f"threshold: {report.threshold:.2f} (per fold: {', '.join(f'{t:.2f}' for t in report.fold_thresholds)})")
    print(f"failed detections: {report.failed_detections}, unreadable images: {report.unreadable_images}")
    for path, reason in report.failures.items():
        print(f"  {path}: {reason}")
    return 0
