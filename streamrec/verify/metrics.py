"""The LFW verification protocol on pair distances.

``kfold_accuracy`` follows the standard protocol (and Sandberg's ``validate_on_lfw``): for each
fold, the threshold is the one with the best accuracy on the other folds (swept over 0 to 4 in
steps of 0.01; ties resolved by :func:`best_threshold`), and accuracy is measured on the held-out
fold. ``val_at_far`` picks, per fold,
the threshold giving the target false-accept rate on the other folds and reports the
validation rate (true accepts) on the held-out fold. ``roc_summary`` gives AUC and EER over all
pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["THRESHOLDS", "KFoldResult", "best_threshold", "kfold_accuracy", "roc_summary", "val_at_far"]

THRESHOLDS = np.round(np.arange(0.0, 4.0, 0.01), 2)


@dataclass(frozen=True)
class KFoldResult:
    accuracy: float
    accuracy_std: float
    fold_thresholds: list[float]


def _accuracy(dist: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy at each threshold: pairs closer than it are called "same"."""
    predicted = dist[None, :] < thresholds[:, None]
    return (predicted == same[None, :]).mean(axis=1)


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs.

    Where several thresholds tie, the middle one: Sandberg's implementation takes the smallest,
    which sits right at the edge of the same-person distances it has seen and misclassifies the
    next slightly harder pair; the middle of the plateau leaves the same margin to both sides.
    """
    accuracy = _accuracy(dist, same, THRESHOLDS)
    best = THRESHOLDS[accuracy == accuracy.max()]
    return float(best[(len(best) - 1) // 2])


def kfold_accuracy(dist: np.ndarray, same: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """Accuracy with the threshold chosen on the other folds, mean and std over folds."""
    accuracies, thresholds = [], []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        threshold = best_threshold(dist[train], same[train])
        thresholds.append(threshold)
        accuracies.append(float(_accuracy(dist[test], same[test], np.array([threshold]))[0]))
    return KFoldResult(float(np.mean(accuracies)), float(np.std(accuracies)), thresholds)


def _val_far(dist: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    accept = dist < threshold
    val = accept[same].mean() if same.any() else 0.0
    far = accept[~same].mean() if (~same).any() else 0.0
    return float(val), float(far)


def val_at_far(
    dist: np.ndarray, same: np.ndarray, folds: np.ndarray, target_far: float = 1e-3
) -> tuple[float, float, float]:
    """Mean VAL, its std, and mean FAR on held-out folds at thresholds set for ``target_far``.

    On each training split the threshold is where the FAR curve of the sweep reaches
    ``target_far``, interpolated linearly between the two sweep points around it.
    """
    vals, fars = [], []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        far_train = np.array([_val_far(dist[train], same[train], t)[1] for t in THRESHOLDS])
        if far_train.max() <= target_far:
            threshold = float(THRESHOLDS[-1])
        else:
            # FAR grows with the threshold; keep the last point at or under the target and
            # interpolate towards the next.
            below = np.flatnonzero(far_train <= target_far)
            i = int(below[-1]) if len(below) else 0
            lo, hi = far_train[i], far_train[min(i + 1, len(THRESHOLDS) - 1)]
            frac = 0.0 if hi == lo else (target_far - lo) / (hi - lo)
            threshold = float(THRESHOLDS[i] + frac * (THRESHOLDS[min(i + 1, len(THRESHOLDS) - 1)] - THRESHOLDS[i]))
        val, far = _val_far(dist[test], same[test], threshold)
        vals.append(val)
        fars.append(far)
    return float(np.mean(vals)), float(np.std(vals)), float(np.mean(fars))


def roc_summary(dist: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(AUC, EER) over all pairs, with smaller distance meaning "same"."""
    order = np.argsort(dist, kind="stable")
    positives = same[order]
    tpr = np.concatenate([[0.0], np.cumsum(positives) / max(positives.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(~positives) / max((~positives).sum(), 1)])
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    fnr = 1.0 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return auc, float((fnr[i] + fpr[i]) / 2)
