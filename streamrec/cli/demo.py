"""``streamrec demo``: the embedded default run, on photos that ship with installed packages."""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from streamrec.cli.common import UserError, add_engine_options, open_models, print_json
from streamrec.embed.facenet import DEFAULT_THRESHOLD
from streamrec.embed.select import main_face
from streamrec.images import load_image
from streamrec.samples import SAMPLES, MissingSampleError, sample_path

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "demo", help="detect and compare faces in public-domain photos shipped with installed packages",
        description="Runs on a machine with no camera and no data of its own: builds the engines "
        "if needed, detects the faces in the sample photos (" + ", ".join(SAMPLES) + "), and "
        "compares the astronaut's face with a rescaled, re-encoded, mirrored copy of it (same "
        "person) and with each other sample (different people).",
    )
    add_engine_options(parser)
    parser.set_defaults(handler=run_demo)


def _variant(rgb: np.ndarray) -> np.ndarray:
    """The same photo as a camera might deliver it again: mirrored, 70% size, JPEG quality 60."""
    small = cv2.resize(rgb[:, ::-1], None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 60])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def run_demo(args: argparse.Namespace) -> int:
    try:
        photos = {name: load_image(sample_path(name)).rgb for name in SAMPLES}
    except MissingSampleError as exc:
        raise UserError(str(exc)) from None
    models = open_models(args)
    photos["astronaut (mirrored copy)"] = _variant(photos["astronaut"])
    embeddings, report = {}, []
    for name, rgb in photos.items():
        faces = models.detect([rgb])[0]
        main = main_face(faces, rgb.shape[1], rgb.shape[0])
        if main is not None:
            embeddings[name] = models.embedder.embed(rgb, faces[[main]])[0]
        report.append({"photo": name, "faces": faces.to_dicts()})
    comparisons = []
    for other in embeddings:
        if other == "astronaut":
            continue
        distance = float(np.linalg.norm(embeddings["astronaut"] - embeddings[other]))
        comparisons.append(
            {"a": "astronaut", "b": other, "distance": round(distance, 4), "same": distance < DEFAULT_THRESHOLD}
        )
    if args.json:
        print_json({"photos": report, "comparisons": comparisons, "threshold": DEFAULT_THRESHOLD})
        return 0
    for item in report:
        scores = ", ".join(f"{f['score']:.3f}" for f in item["faces"])
        print(f"{item['photo']}: {len(item['faces'])} face(s) found (scores {scores or '-'})")
    for c in comparisons:
        verdict = "same person" if c["same"] else "different people"
        print(f"{c['a']} vs {c['b']}: distance {c['distance']:.3f} -> {verdict} (threshold {DEFAULT_THRESHOLD})")
    return 0
