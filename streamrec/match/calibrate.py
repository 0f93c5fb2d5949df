"""Threshold calibration on your own photos: the distance that gives a chosen false-accept rate.

The default threshold (1.12) is the best one for LFW *pairs*; a watchlist compares each face with
everyone enrolled, and cameras see other faces than LFW's, so the threshold should come from
photos like the ones the cameras will see. Given one folder of photos per person, every
same-person pair and every different-person pair is scored; the proposed threshold is the
largest (rounded down to 0.001) at which at most ``far`` of the different-person pairs would be
accepted (``distance < threshold``), and the false-reject rate is measured there. As with
Sandberg's ``validate_on_lfw``, this is VAL (1 - false-reject rate) at a chosen FAR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamrec.embed.facenet import DEFAULT_THRESHOLD, EMBEDDING_SIZE
from streamrec.match.search import distances

__all__ = ["Calibration", "CalibrationError", "Rates", "calibrate", "person_folders"]


class CalibrationError(ValueError):
    """Too few people or photos to calibrate."""


@dataclass(frozen=True)
class Rates:
    """Error rates at one ``threshold``: false accepts among the different-person pairs, false
    rejects among the same-person pairs (counts and fractions)."""

    threshold: float
    false_accepts: int
    far: float
    false_rejects: int
    frr: float


@dataclass(frozen=True)
class Calibration:
    """The proposal (``proposed``) for ``target_far``, the same rates at the default threshold,
    the counts and the distance ranges (min, max) of both kinds of pair. ``warning`` says when
    there are too few different-person pairs to measure ``target_far``."""

    target_far: float
    proposed: Rates
    default: Rates
    people: int
    photos: int
    same_pairs: int
    different_pairs: int
    same_range: tuple[float, float]
    different_range: tuple[float, float]
    warning: str | None


def person_folders(root: Path) -> dict[str, list[Path]]:
    """``root``'s sub-folders (one per person) and the files in each, by name; hidden ones skipped."""
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    return {f.name: sorted(p for p in f.iterdir() if p.is_file() and not p.name.startswith(".")) for f in folders}


def _rates(threshold: float, same: np.ndarray, different: np.ndarray) -> Rates:
    accepts, rejects = int((different < threshold).sum()), int((same >= threshold).sum())
    return Rates(threshold, accepts, accepts / len(different), rejects, rejects / len(same))


def _pairs(embeddings: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distances of every same-person pair and every different-person pair."""
    vectors = np.concatenate([np.asarray(v, np.float32).reshape(-1, EMBEDDING_SIZE) for v in embeddings.values()])
    labels = np.repeat(np.arange(len(embeddings)), [len(v) for v in embeddings.values()])
    upper = np.triu_indices(len(vectors), k=1)
    dist = distances(vectors, vectors)[upper]
    same = labels[upper[0]] == labels[upper[1]]
    return dist[same], dist[~same]


def calibrate(embeddings: Mapping[str, np.ndarray], far: float = 0.001) -> Calibration:
    """Propose a threshold from ``embeddings``: person -> ``(n, 512)`` unit vectors (one per photo)."""
    if not 0.0 < far < 1.0:
        raise ValueError(f"the false-accept rate must be between 0 and 1 (got {far})")
    people = {name: v for name, v in embeddings.items() if len(v)}
    if len(people) < 2:
        raise CalibrationError(f"calibration needs usable photos of at least 2 people (found {len(people)})")
    same, different = _pairs(people)
    if not len(same):
        raise CalibrationError("calibration needs at least one person with 2 or more usable photos")
    ordered = np.sort(different)
    allowed = math.floor(far * len(ordered))  # false accepts the target permits
    threshold = math.floor(float(ordered[allowed]) * 1000) / 1000
    needed = math.ceil(1 / far)
    warning = None
    if len(ordered) < needed:
        warning = (
            f"only {len(ordered)} different-person pairs: measuring a false-accept rate of {far:g} needs "
            f"at least {needed}; the threshold proposed accepts none of these pairs (add photos of more people)"
        )
    return Calibration(
        far, _rates(threshold, same, different), _rates(DEFAULT_THRESHOLD, same, different),
        len(people), sum(len(v) for v in people.values()), len(same), len(different),
        (float(same.min()), float(same.max())), (float(different.min()), float(different.max())), warning,
    )
