"""Options and helpers shared by the verbs."""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from streamrec.backends import BackendOptions, TritonOptions, backend_class, default_threads
from streamrec.backends.choose import (
    BACKEND_CHOICES,
    DETECTION_MEANINGS,
    PRECISION_CHOICES,
    PRECISION_MEANINGS,
    BackendChoice,
    Choice,
    PrecisionChoice,
    choose,
)
from streamrec.config.load import override
from streamrec.config.model import MAX_FACE, MIN_FACE, RunConfig
from streamrec.config.schema import number_text
from streamrec.detect.mtcnn import MTCNNConfig
from streamrec.embed.facenet import ALIGNMENTS, EmbedConfig
from streamrec.embed.select import SELECTIONS
from streamrec.engines import PUBLISHED_MODEL
from streamrec.engines.build import BuildError
from streamrec.engines.sources import SourceError
from streamrec.faces import (
    DETECTION_PRECISIONS,
    DetectionPrecision,
    FaceModels,
    ModelsConfig,
    check_detection,
    check_image_side,
)
from streamrec.images import DEFAULT_MAX_SIDE

__all__ = [
    "UserError",
    "add_engine_options",
    "add_model_options",
    "check_link_keys",
    "emit_result",
    "number",
    "number_list",
    "open_models",
    "print_json",
    "resolve_engine",
    "resolve_pipeline",
    "say_error",
    "stderr",
    "thread_count",
    "write_atomic",
]


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def stderr(message: str) -> None:
    """Progress and diagnostics go to stderr so stdout stays clean for results and JSON."""
    print(message, file=sys.stderr, flush=True)


def say_error(message: str) -> None:
    """One problem, on one line of stderr, with the prefix every verb uses for its errors (so a
    script can find them, whichever verb printed them)."""
    stderr(f"streamrec: error: {message}")


def number(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, whole: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` for a number option: NaN, infinities, out-of-range values and (with
    ``whole``) fractions are refused with one line saying what is allowed, worded as the
    configuration's errors are (``argument --threshold: must be a finite number > 0 and <= 2
    (got -1)``)."""
    rule = number_text("integer" if whole else "number", ge=ge, gt=gt, le=le, lt=lt)

    def parse(text: str) -> Any:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text!r})") from None
        inside = math.isfinite(value) and all(
            bound is None or check(value, bound)
            for bound, check in ((ge, operator.ge), (gt, operator.gt), (le, operator.le), (lt, operator.lt))
        )
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {rule} (got {text})")
        return value

    return parse


def number_list(**bounds: Any) -> Callable[[str], list[Any]]:
    """An argparse ``type`` for comma-separated numbers, each checked as :func:`number` checks one."""
    item = number(**bounds)

    def parse(text: str) -> list[Any]:
        values = [item(part) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers (got {text!r})")
        return values

    return parse


def thread_count(text: str) -> int:
    """``--threads``: 1 up to the cores this process may use; more only contend for them."""
    parse: Callable[[str], int] = number(whole=True, ge=1, le=default_threads())
    return parse(text)


def add_engine_options(
    parser: argparse.ArgumentParser, default: tuple[BackendChoice, PrecisionChoice] = ("onnxruntime", "fp32")
) -> None:
    """``--engines``, ``--backend``, ``--device``, ``--threads``, ``--precision``, ``--triton-url``, ``--json``.

    ``default``: the backend and precision when none is given: ONNX Runtime fp32, the reference
    every result is measured against, for the commands whose output is a measurement; ``auto``
    for those that show the product running (the demo)."""
    backend, precision = default
    group = parser.add_argument_group("engine options")
    group.add_argument(
        "--engines", type=Path, metavar="DIR",
        help="folder of built engines (default: $STREAMREC_ENGINES, else engines/ of a source "
        "checkout, else DATA_DIR/engines); built there on first use",
    )
    group.add_argument(
        "--backend", default=backend, choices=BACKEND_CHOICES,
        help="inference backend: auto (the fastest this machine runs whose accuracy holds, said on stderr; "
        "streamrec/backends/choose.py); onnxruntime; openvino (the 'openvino' extra; bf16 on CPUs with AVX-512 "
        "BF16 or AMX); tensorrt (the 'tensorrt' extra, on an NVIDIA GPU; engines compiled once, see "
        "'streamrec engines build --help'); torch (the 'torch' extra: the whole detector and embedder, "
        "crops included, in PyTorch on --device); or triton (the 'triton' extra: the engines run on the Triton "
        "Inference Server at --triton-url, docs/triton.md) (default: %(default)s)",
    )
    group.add_argument(
        "--device", metavar="DEVICE",
        help="where the backend runs: cpu (onnxruntime, openvino, torch); gpu (openvino on an Intel GPU); "
        "cuda or cuda:N (tensorrt, torch: an NVIDIA GPU) (default: the backend's own: cuda:0 for tensorrt, "
        "else cpu)",
    )
    group.add_argument(
        "--threads", type=thread_count, metavar="N",
        help="CPU threads for inference, at most the cores this process may use (default: all of them)",
    )
    group.add_argument(
        "--precision", choices=PRECISION_CHOICES, default=precision,
        help=f"how FaceNet computes: {PRECISION_MEANINGS} (default: %(default)s)",
    )
    group.add_argument(
        "--detection-precision", choices=DETECTION_PRECISIONS, default="fp32",
        help=f"how MTCNN's R-Net and O-Net compute: {DETECTION_MEANINGS} (default: %(default)s)",
    )
    group.add_argument(
        "--triton-url", metavar="HOST:PORT", default=TritonOptions.url,
        help="the Triton Inference Server's gRPC address, for --backend triton; TLS and the other settings "
        "are the configuration's [triton] keys (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def add_model_options(parser: argparse.ArgumentParser, embeds: bool = True) -> None:
    """Detection and embedding knobs; defaults are the measured ones (docs/accuracy.md).
    ``embeds``: the verb embeds faces, so ``--flip`` and ``--model`` apply to it."""
    det, emb = MTCNNConfig(), EmbedConfig()
    group = parser.add_argument_group("face options")
    group.add_argument(
        "--min-face-size", type=number(ge=MIN_FACE, le=MAX_FACE), default=det.min_face_size, metavar="PX",
        help="smallest face side to look for, in pixels of the (downscaled) image (default: %(default)s)",
    )
    group.add_argument(
        "--max-side", type=number(whole=True, ge=1), default=DEFAULT_MAX_SIDE, metavar="PX",
        help="images are downscaled so their longer side is at most this (default: %(default)s)",
    )
    group.add_argument(
        "--selection", choices=SELECTIONS, default="centre",
        help="which face is an image's main face (default: %(default)s: large and central)",
    )
    group.add_argument(
        "--alignment", choices=ALIGNMENTS, default=emb.alignment,
        help="crop by detector box + margin, or warp by the five landmarks (default: %(default)s)",
    )
    group.add_argument(
        "--margin", type=number(ge=0, le=1), default=emb.margin,
        help="box growth as a fraction of its size, for --alignment box (default: %(default)s)",
    )
    if not embeds:
        return
    group.add_argument(
        "--flip", action="store_true", default=emb.flip,
        help="add the mirrored face's embedding (twice the FaceNet work; no gain measured on LFW View 1)",
    )
    group.add_argument(
        "--model", default=PUBLISHED_MODEL, metavar="NAME",
        help="which FaceNet embeds: facenet (the published one) or a model 'streamrec train' wrote into the "
        "engine folder; embeddings of different models never compare (default: %(default)s)",
    )


def resolve_engine(
    backend: BackendChoice, precision: PrecisionChoice, device: str | None, where: str,
    images: tuple[int, float] | None = None, model: str = PUBLISHED_MODEL,
    detection: DetectionPrecision = "fp32",
) -> Choice:
    """The backend, precision and device to run FaceNet ``model`` with (``auto`` resolved), and
    the precision of ``detection``, checked against this machine before any engine is built or
    loaded; :class:`UserError` naming ``where`` (the options or keys that asked, if known) when it
    cannot run here. ``images``: the longest side and the min face size of the images to detect
    faces in, refused first if the backend's engines cannot take them: that is the
    configuration's fault, on any machine."""
    try:
        choice = choose(backend, precision, device, model, detection)
        chosen = backend_class(choice.backend)
        if images is not None:
            check_image_side(chosen, *images)
        options = BackendOptions(device=choice.device)
        chosen.check_options(replace(options, precision=choice.precision))
        check_detection(choice.backend, choice.detection, options)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}" if where else str(exc)) from None
    return choice


def resolve_pipeline(
    config: RunConfig, where: str, names: dict[str, str] | None = None, origin: str = ""
) -> tuple[RunConfig, Choice]:
    """``config`` with its ``[pipeline]`` backend, precision and device resolved by
    :func:`resolve_engine`, so that every stage (and a restarted one) runs what is said at the
    start, and the choice, to say it."""
    pipeline = config.pipeline
    choice = resolve_engine(pipeline.backend, pipeline.precision, pipeline.device or None, where, model=pipeline.model,
                            detection=config.detector.precision)
    resolved = {"backend": choice.backend, "precision": choice.precision, "device": choice.device or ""}
    changes = {"pipeline": resolved, "detector": {"precision": choice.detection}}
    return override(config, changes, names, origin), choice


def open_models(args: argparse.Namespace) -> FaceModels:
    """Build the detector and embedder the options describe, building engines if needed."""
    min_face_size = getattr(args, "min_face_size", MTCNNConfig.min_face_size)
    max_side = getattr(args, "max_side", DEFAULT_MAX_SIDE)
    # the line names the value
    model = getattr(args, "model", PUBLISHED_MODEL)
    choice = resolve_engine(args.backend, args.precision, args.device, "", (max_side, min_face_size), model,
                            args.detection_precision)
    if choice.automatic:
        stderr(f"streamrec: inference on {choice.describe()}")
    try:
        config = ModelsConfig(
            backend=choice.backend,
            backend_options=BackendOptions(
                threads=args.threads, device=choice.device, triton=TritonOptions(url=args.triton_url)
            ),
            precision=choice.precision,
            detection=choice.detection,
            detector=MTCNNConfig(min_face_size=min_face_size),
            embed=EmbedConfig(
                alignment=getattr(args, "alignment", EmbedConfig.alignment),
                margin=getattr(args, "margin", EmbedConfig.margin),
                flip=getattr(args, "flip", EmbedConfig.flip),
            ),
            selection=getattr(args, "selection", "centre"),
            max_side=max_side,
            model=model,
        )
        return FaceModels(config, args.engines, report=stderr)
    except (ValueError, SourceError, BuildError) as exc:
        raise UserError(str(exc)) from None


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, default=float))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename, so a failure (a full disk)
    never leaves a truncated file behind; raises :class:`UserError` with the reason."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp_name = tmp.name
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        if tmp_name and os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def emit_result(result: dict[str, Any], args: argparse.Namespace, table: Callable[[dict[str, Any]], None]) -> None:
    """A benchmark's result: written as JSON to ``--out`` if given, then printed as JSON with
    ``--json``, else as ``table`` prints it for people."""
    if args.out:
        write_atomic(args.out, (json.dumps(result, indent=2) + "\n").encode())
    if args.json:
        print_json(result)
    else:
        table(result)


def check_link_keys(config: RunConfig, binds: bool, origin: str) -> None:
    """Fail with one line now, rather than in a stage restarted in vain: the CURVE key files of
    ``[links]`` a stage needs must be readable (the server's secret only where it ``binds``)."""
    from streamrec.bus.curve import CurveError, LinkCurve

    curve = LinkCurve.from_links(config.links)
    try:
        if curve is not None:
            curve.check(binds)
    except CurveError as exc:
        raise UserError(f"{origin}: links: {exc}") from None
