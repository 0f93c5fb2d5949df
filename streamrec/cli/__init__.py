"""The ``streamrec`` command: one sub-command per verb, one module per group of verbs.

Every error a user can cause (a bad file, a missing package, a bad option value) ends the command
with a single ``streamrec: error: ...`` line and a non-zero exit; a traceback is shown only for
genuine bugs, and only when ``STREAMREC_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from streamrec.cli import (
    bench,
    config,
    demo,
    engines,
    evaluate,
    events,
    faces,
    keys,
    run,
    stage,
    train,
    users,
    watchlist,
)
from streamrec.cli.common import UserError, say_error

__all__ = ["build_parser", "main"]

_VERBS = (demo, run, stage, keys, config, events, engines, faces, watchlist, users, evaluate, train, bench)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render ``--help`` in the docs)."""
    parser = argparse.ArgumentParser(
        prog="streamrec",
        description="Real-time face recognition: MTCNN detection and FaceNet embeddings on "
        "ONNX Runtime (or OpenVINO, or whole in PyTorch on the CPU or a CUDA GPU: --backend). "
        "Run 'streamrec VERB --help' for each verb.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in _VERBS:
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamrec`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        say_error(str(exc))
        return exc.status
    except KeyboardInterrupt:
        print("streamrec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the user
        if os.environ.get("STREAMREC_DEBUG"):
            traceback.print_exc()
        print(
            f"streamrec: internal error: {type(exc).__name__}: {exc} "
            "(set STREAMREC_DEBUG=1 for a traceback and please report it)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
