"""``detect``, ``embed`` and ``compare``: faces in still images."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.cli.common import (
    UserError,
    add_engine_options,
    add_model_options,
    number,
    open_models,
    print_json,
    say_error,
    write_atomic,
)
from streamrec.embed.facenet import DEFAULT_THRESHOLD, MAX_DISTANCE
from streamrec.faces import ImageFaces

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the three verbs to the ``streamrec`` parser."""
    detect = verbs.add_parser(
        "detect", help="find faces, with box, score and five landmarks",
        description="Find every face in each image: box (x1, y1, x2, y2 in pixels of the "
        "original file), detection score and five landmarks. Exit status 1 if an image cannot "
        "be read; an image without faces is not an error.",
    )
    detect.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    add_model_options(detect)
    add_engine_options(detect)
    detect.set_defaults(handler=run_detect)

    embed = verbs.add_parser(
        "embed", help="write FaceNet embeddings to a .npy file",
        description="Embed the main face of each image (or every face with --all-faces) and save "
        "the 512-d L2-normalised float32 vectors to FILE.npy, one row per image in input order "
        "(an image without a usable face gets a row of NaN and exit status 1).",
    )
    embed.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    embed.add_argument("--out", type=Path, required=True, metavar="FILE.npy", help="where to save the embeddings")
    embed.add_argument("--all-faces", action="store_true", help="one row per face instead of per image")
    add_model_options(embed)
    add_engine_options(embed)
    embed.set_defaults(handler=run_embed)

    compare = verbs.add_parser(
        "compare", help="same person or not: distance between the main faces of two images",
        description="Euclidean distance between the FaceNet embeddings of the main faces of two "
        "images, and the verdict at the threshold (default: the one measured best on LFW View 1 "
        f"with the default options, {DEFAULT_THRESHOLD}). Exit status 1 if either image has no face.",
    )
    compare.add_argument("image_a", type=Path, metavar="IMAGE_A")
    compare.add_argument("image_b", type=Path, metavar="IMAGE_B")
    compare.add_argument(
        "--threshold", type=number(gt=0, le=MAX_DISTANCE), default=DEFAULT_THRESHOLD,
        help="distances below this mean the same person; distances lie between 0 and 2 (default: %(default)s)",
    )
    add_model_options(compare)
    add_engine_options(compare)
    compare.set_defaults(handler=run_compare)


def _image_json(result: ImageFaces) -> dict[str, Any]:
    if result.error:
        return {"image": str(result.path), "error": result.error}
    return {
        "image": str(result.path),
        "width": result.size[0],
        "height": result.size[1],
        "main_face": result.main,
        "faces": result.faces.to_dicts(),
    }


def _describe_face(face: dict[str, Any]) -> str:
    x1, y1, x2, y2 = face["box"]
    marks = ", ".join(f"{name} ({x:.0f}, {y:.0f})" for name, (x, y) in face["landmarks"].items())
    return f"box ({x1:.0f}, {y1:.0f})-({x2:.0f}, {y2:.0f}) {x2 - x1:.0f}x{y2 - y1:.0f} px, score {face['score']:.4f}; {marks}"


def run_detect(args: argparse.Namespace) -> int:
    models = open_models(args)
    results = [_image_json(r) for r in models.analyse(args.images, embed="none")]
    if args.json:
        print_json(results)
    else:
        for item in results:
            if "error" in item:
                say_error(item["error"])
                continue
            faces = item["faces"]
            print(f"{item['image']}: {len(faces)} face{'s' if len(faces) != 1 else ''} ({item['width']}x{item['height']})")
            for k, face in enumerate(faces):
                star = " (main)" if k == item["main_face"] else ""
                print(f"  face {k}{star}: {_describe_face(face)}")
    return 1 if any("error" in item for item in results) else 0


def run_embed(args: argparse.Namespace) -> int:
    models = open_models(args)
    rows: list[np.ndarray] = []
    listing: list[dict[str, Any]] = []
    failed = 0
    for result in models.analyse(args.images, embed="all" if args.all_faces else "main"):
        problem = result.error or (None if len(result.embeddings) else "no face found")
        if problem:
            failed += 1
            listing.append({"image": str(result.path), "error": problem, "row": None if args.all_faces else len(rows)})
            if not args.all_faces:
                rows.append(np.full((1, 512), np.nan, np.float32))
            continue
        faces = result.faces if args.all_faces else result.faces[[result.main]]
        for face, vector in zip(faces.to_dicts(), result.embeddings):
            listing.append({"image": str(result.path), "row": len(rows), "box": face["box"], "score": face["score"]})
            rows.append(vector[None])
    matrix = np.concatenate(rows) if rows else np.zeros((0, 512), np.float32)
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    write_atomic(args.out, buffer.getvalue())
    if args.json:
        print_json({"out": str(args.out), "rows": len(matrix), "failed": failed, "embeddings": listing})
    else:
        for item in listing:
            if "error" in item:
                where = f"row {item['row']} is NaN" if item["row"] is not None else "no row"
                say_error(f"{item['image']}: {item['error'].removeprefix(str(item['image']) + ': ')} ({where})")
            else:
                print(f"{item['image']}: row {item['row']}: box {item['box']}")
        print(_wrote(len(matrix), 0 if args.all_faces else failed, matrix.shape[1], args.out))
    return 1 if failed else 0


def _wrote(rows: int, empty: int, size: int, out: Path) -> str:
    """What ``embed`` saved: the rows of NaN (images without a usable face) are not embeddings,
    and a count that included them would overstate what the file holds."""
    if not empty:
        return f"wrote {rows} embedding{'s' if rows != 1 else ''} ({size}-d) to {out}"
    real = rows - empty
    return (f"wrote {rows} rows ({size}-d) to {out}: {real} embedding{'s' if real != 1 else ''} and {empty} "
            f"row{'s' if empty != 1 else ''} of NaN (image{'s' if empty != 1 else ''} without a usable face)")


def run_compare(args: argparse.Namespace) -> int:
    models = open_models(args)
    results = list(models.analyse([args.image_a, args.image_b], embed="main"))
    for result in results:
        problem = result.error or (None if len(result.embeddings) else f"{result.path}: no face found")
        if problem is None:
            continue
        if args.json:  # the shape of detect's object for an unusable image
            print_json({"image": str(result.path), "error": problem})
            return 1
        raise UserError(problem)
    distance = float(np.linalg.norm(results[0].embeddings[0] - results[1].embeddings[0]))
    same = distance < args.threshold
    if args.json:
        print_json(
            {
                "distance": round(distance, 4),
                "same": same,
                "threshold": args.threshold,
                "faces": [r.faces.to_dicts()[r.main] for r in results if r.main is not None],
            }
        )
    else:
        verdict = "same person" if same else "different people"
        print(f"{args.image_a} vs {args.image_b}: distance {distance:.3f} -> {verdict} (threshold {args.threshold})")
    return 0
