"""Measure the face-cropping choices on LFW View 1 (the development pairs) side by side.

Detects every image once, then embeds the pairs under each choice and prints the 10-fold
accuracy of each: the crop (MTCNN box + margin, or five-landmark warp) with and without
mirrored-image embeddings for the default face selection; the face selection rules at the
default crop; Euclidean distance against cosine after subtracting the mean embedding (Sandberg's
``--subtract_mean``); and the int8 engine. The defaults in streamrec/embed/ come from this table
(docs/accuracy.md).

    python tools/tune_lfw.py --pairs ../shared/data/lfw_view1/pairsDevTest.txt \\
        --images ../shared/data/lfw_view1/deepfunneled --json docs/lfw_view1_tuning.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from streamrec.backends import Backend, open_backend
from streamrec.embed.align import box_crops, warp_crops
from streamrec.embed.facenet import EmbedConfig
from streamrec.embed.select import SELECTIONS, main_face
from streamrec.engines import ENGINE_FILES, ensure_engines
from streamrec.faces import FaceModels
from streamrec.images import load_image
from streamrec.verify.metrics import best_threshold, kfold_accuracy
from streamrec.verify.pairs import PairList, read_pairs


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class Study:
    """The pairs, their images and detections, and how to score a set of embeddings."""

    def __init__(self, pair_list: PairList, models: FaceModels) -> None:
        self.pairs = pair_list
        self.paths = pair_list.images
        self.images = [load_image(p).rgb for p in self.paths]
        start = time.monotonic()
        self.faces = models.detect_images(self.images)
        print(f"detected {len(self.images)} images in {time.monotonic() - start:.1f} s", file=sys.stderr)
        index = {p: i for i, p in enumerate(self.paths)}
        self.a = np.array([index[p.a] for p in pair_list.pairs])
        self.b = np.array([index[p.b] for p in pair_list.pairs])
        self.same = np.array([p.same for p in pair_list.pairs])
        self.folds = np.array([p.fold for p in pair_list.pairs])

    def crops(self, rule: str, alignment: str, margin: float) -> np.ndarray:
        out = []
        for image, found in zip(self.images, self.faces):
            i = main_face(found, image.shape[1], image.shape[0], rule)  # type: ignore[arg-type]
            face = found[[i]]  # every LFW View 1 image has a face (checked by eval-pairs)
            out.append(warp_crops(image, face.landmarks) if alignment == "warp" else box_crops(image, face.boxes, margin))
        return np.concatenate(out)

    def accuracy(self, vectors: np.ndarray, centred: bool = False) -> tuple[float, float]:
        if not centred:
            dist = np.linalg.norm(vectors[self.a] - vectors[self.b], axis=1)
            result = kfold_accuracy(dist, self.same, self.folds)
            return result.accuracy, result.accuracy_std
        # cosine after subtracting the mean embedding of the training folds, fold by fold
        # (for unit vectors, Euclidean distance and cosine rank pairs identically)
        scores = []
        for k in np.unique(self.folds):
            train, test = self.folds != k, self.folds == k
            mean = np.concatenate([vectors[self.a[train]], vectors[self.b[train]]]).mean(axis=0)
            centred_vectors = _normalise(vectors - mean)
            dist = np.linalg.norm(centred_vectors[self.a] - centred_vectors[self.b], axis=1)
            threshold = best_threshold(dist[train], self.same[train])
            scores.append(float(((dist[test] < threshold) == self.same[test]).mean()))
        return float(np.mean(scores)), float(np.std(scores))


def _embed(backend: Backend, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    plain = backend.run(crops)[0]
    mirrored = backend.run(np.ascontiguousarray(crops[:, :, ::-1]))[0]
    return plain, _normalise(plain + mirrored)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--margins", default="0,0.1,0.15,0.2,0.3,0.4", help="comma-separated box margins")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()

    models = FaceModels(report=lambda s: print(s, file=sys.stderr))
    study = Study(read_pairs(args.pairs, args.images), models)
    default = EmbedConfig()
    rows: list[dict[str, object]] = []

    def record(**row: object) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    crops_of = [("box", float(m)) for m in args.margins.split(",")] + [("warp", 0.0)]
    for alignment, margin in crops_of:
        plain, flipped = _embed(models.embedder.backend, study.crops("centre", alignment, margin))
        for flip, vectors in (("no", plain), ("yes", flipped)):
            acc, std = study.accuracy(vectors)
            record(study="crop", selection="centre", alignment=alignment, margin=margin, flip=flip, accuracy=round(acc, 4), std=round(std, 4))
        if alignment == default.alignment and margin == default.margin:
            acc, std = study.accuracy(plain, centred=True)
            record(study="distance", distance="cosine, mean subtracted", accuracy=round(acc, 4), std=round(std, 4))
    for rule in SELECTIONS:
        if rule != "centre":
            plain = models.embedder.backend.run(study.crops(rule, default.alignment, default.margin))[0]
            acc, std = study.accuracy(plain)
            record(study="selection", selection=rule, accuracy=round(acc, 4), std=round(std, 4))
    int8 = open_backend("onnxruntime", ensure_engines() / ENGINE_FILES["facenet_int8"])
    acc, std = study.accuracy(int8.run(study.crops("centre", default.alignment, default.margin))[0])
    record(study="precision", precision="int8", accuracy=round(acc, 4), std=round(std, 4))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
