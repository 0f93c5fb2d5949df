"""``eval-pairs``: embed every image of a pair list and score it with the LFW protocol.

Images where no face is found are handled as Sandberg's ``validate_on_lfw`` does (the reference
protocol for this model): a pair with such an image is left out and counted. Because leaving pairs
out flatters the result, the report also gives the accuracy with every left-out pair counted as
an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.faces import FaceModels
from streamrec.verify.metrics import best_threshold, kfold_accuracy, roc_summary, val_at_far
from streamrec.verify.pairs import PairList

__all__ = ["PairsReport", "evaluate_pairs", "pair_distances", "score_pairs"]


@dataclass
class PairsReport:
    """What ``eval-pairs`` prints; JSON keys are the field names."""

    accuracy: float
    accuracy_std: float
    val_at_far_1e_3: float
    val_std: float
    far: float
    auc: float
    eer: float
    threshold: float
    fold_thresholds: list[float]
    pairs: int
    pairs_scored: int
    skipped_pairs: int
    accuracy_counting_skipped: float
    failed_detections: int
    unreadable_images: int
    failures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["val_at_far_1e-3"] = data.pop("val_at_far_1e_3")
        return data


def pair_distances(embeddings: dict[Path, np.ndarray], pair_list: PairList) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of each pair (NaN where an image has no embedding), and which pairs
    are same-person."""
    dist = np.full(len(pair_list.pairs), np.nan)
    for k, pair in enumerate(pair_list.pairs):
        if pair.a in embeddings and pair.b in embeddings:
            dist[k] = float(np.linalg.norm(embeddings[pair.a] - embeddings[pair.b]))
    return dist, np.array([p.same for p in pair_list.pairs])


def evaluate_pairs(
    models: FaceModels, pair_list: PairList, progress: Callable[[int, int], None] | None = None
) -> PairsReport:
    """Embed the main face of every image of ``pair_list`` and run the 10-fold protocol."""
    images = pair_list.images
    embeddings: dict[Path, np.ndarray] = {}
    failures: dict[str, str] = {}
    no_face = unreadable = 0
    for done, result in enumerate(models.analyse(images), start=1):
        if result.error:
            unreadable += 1
            failures[str(result.path)] = result.error
        elif not len(result.embeddings):
            no_face += 1
            failures[str(result.path)] = "no face found"
        else:
            embeddings[result.path] = result.embeddings[0]
        if progress:
            progress(done, len(images))
    return score_pairs(embeddings, pair_list, failures, no_face, unreadable)


def score_pairs(
    embeddings: dict[Path, np.ndarray],
    pair_list: PairList,
    failures: dict[str, str] | None = None,
    no_face: int = 0,
    unreadable: int = 0,
) -> PairsReport:
    """The 10-fold protocol on embeddings already made (one per image path; a pair with an
    image missing from ``embeddings`` is left out and counted), however they were made: by
    :func:`evaluate_pairs`, or by a network being trained, scored as ``eval-pairs`` scores."""
    dist, same = pair_distances(embeddings, pair_list)
    folds = np.array([p.fold for p in pair_list.pairs])
    ok = ~np.isnan(dist)
    if not ok.any():
        raise ValueError("no pair has a face in both images")
    kfold = kfold_accuracy(dist[ok], same[ok], folds[ok])
    val, val_std, far = val_at_far(dist[ok], same[ok], folds[ok])
    auc, eer = roc_summary(dist[ok], same[ok])
    skipped = int((~ok).sum())
    return PairsReport(
        accuracy=kfold.accuracy,
        accuracy_std=kfold.accuracy_std,
        val_at_far_1e_3=val,
        val_std=val_std,
        far=far,
        auc=auc,
        eer=eer,
        threshold=best_threshold(dist[ok], same[ok]),
        fold_thresholds=kfold.fold_thresholds,
        pairs=len(pair_list.pairs),
        pairs_scored=int(ok.sum()),
        skipped_pairs=skipped,
        accuracy_counting_skipped=kfold.accuracy * ok.sum() / len(ok),
        failed_detections=no_face,
        unreadable_images=unreadable,
        failures=failures or {},
    )
