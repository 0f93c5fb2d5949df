"""Measure the face-cropping choices on LFW View 1 (the development pairs) side by side.

Detects every image once, then embeds the pairs under each combination of face selection rule,
alignment (box + margin, or landmark warp) and flipped-image embeddings, and prints the 10-fold
accuracy of each. The defaults in streamrec/embed/ come from this table (docs/accuracy.md).

    python tools/tune_lfw.py --pairs ../shared/data/lfw_view1/pairsDevTest.txt \
        --images ../shared/data/lfw_view1/deepfunneled
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from streamrec.embed.align import box_crops, warp_crops
from streamrec.embed.select import SELECTIONS, main_face
from streamrec.faces import FaceModels
from streamrec.images import load_image
from streamrec.verify.evaluate import pair_distances
from streamrec.verify.metrics import kfold_accuracy
from streamrec.verify.pairs import read_pairs


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--margins", default="0,0.1,0.2,0.3,0.4", help="comma-separated box margins")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()

    pair_list = read_pairs(args.pairs, args.images)
    folds = np.array([p.fold for p in pair_list.pairs])
    models = FaceModels(report=lambda s: print(s, file=sys.stderr))
    paths = pair_list.images
    images = [load_image(p).rgb for p in paths]
    start = time.monotonic()
    faces = models.detect(images)
    print(f"detected {len(images)} images in {time.monotonic() - start:.1f} s", file=sys.stderr)

    margins = [float(m) for m in args.margins.split(",")]
    alignments = [("box", m) for m in margins] + [("warp", 0.0)]
    rows = []
    for rule, (alignment, margin) in itertools.product(SELECTIONS, alignments):
        crops, owners = [], []
        for path, image, found in zip(paths, images, faces):
            h, w = image.shape[:2]
            i = main_face(found, w, h, rule)
            if i is None:
                continue
            face = found[[i]]
            crop = warp_crops(image, face.landmarks) if alignment == "warp" else box_crops(image, face.boxes, margin)
            crops.append(crop)
            owners.append(path)
        batch = np.concatenate(crops)
        plain = models.embedder.backend.run(batch)[0]
        mirrored = models.embedder.backend.run(np.ascontiguousarray(batch[:, :, ::-1]))[0]
        for flip, vectors in (("no", plain), ("yes", _normalise(plain + mirrored))):
            dist, same = pair_distances(dict(zip(owners, vectors)), pair_list)
            ok = ~np.isnan(dist)
            result = kfold_accuracy(dist[ok], same[ok], folds[ok])
            row = {
                "selection": rule, "alignment": alignment, "margin": margin, "flip": flip,
                "accuracy": round(result.accuracy, 4), "std": round(result.accuracy_std, 4),
                "threshold": float(np.median(result.fold_thresholds)), "skipped_pairs": int((~ok).sum()),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
