"""P x K batches and the triplets mined inside them (FaceNet, Schroff et al. 2015; Hermans et al. 2017).

A batch holds P people with K photos each, so every photo has K - 1 positives and (P - 1) K
negatives in the same batch and triplets can be chosen from distances already computed, instead
of from a separate pass over the data. Every valid (anchor, positive) pair is used; what differs
between the strategies is the negative each pair gets:

* ``semi-hard``: the closest negative that is still farther from the anchor than the positive
  (``d_ap < d_an < d_ap + margin``, squared distances); a pair without one gives no triplet.
  FaceNet trained so: the hardest negatives, early in training, are often mislabelled or
  degenerate photos and pull every embedding together.
* ``hardest``: the closest negative, whatever its distance.
* ``batch-all``: every negative of the pair, each as its own triplet.

Distances are squared Euclidean on L2-normalised embeddings, ``2 - 2 a.b``, in ``[0, 4]``; the
margin ``alpha`` is on that scale (FaceNet used 0.2). Ties between equally close negatives go to
the lowest index, so the choice is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

__all__ = [
    "STRATEGIES", "Mined", "PKSampler", "Strategy", "mine_triplets", "squared_distances", "triplet_loss",
]

Strategy = Literal["semi-hard", "hardest", "batch-all"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


class PKSampler:
    """Batches of indices into ``labels``: ``p`` people, ``k`` photos each, drawn by ``rng``.

    Only people with at least two photos can give a positive, so only they are drawn. A person
    with fewer than ``k`` photos gives all of them, then repeats drawn at random to fill ``k``
    (a repeat is a pair at distance 0 without augmentation, and a differently augmented view
    with it). One epoch visits every person once: ``ceil(people / p)`` batches, the last one
    filled up with people drawn again.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, p: int, k: int, rng: np.random.Generator) -> None:
        if p < 2:
            raise ValueError(f"a batch needs at least 2 people (got p={p})")
        if k < 2:
            raise ValueError(f"a batch needs at least 2 photos per person (got k={k})")
        by_person: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            by_person.setdefault(int(label), []).append(index)
        self.people = {label: np.array(idx) for label, idx in by_person.items() if len(idx) >= 2}
        if len(self.people) < 2:
            raise ValueError(f"batches need at least 2 people with 2 or more photos (got {len(self.people)})")
        self.p, self.k, self.rng = min(p, len(self.people)), k, rng

    def __len__(self) -> int:
        return math.ceil(len(self.people) / self.p)

    def __iter__(self) -> Iterator[np.ndarray]:
        labels = np.array(sorted(self.people))
        order = self.rng.permutation(labels)
        for start in range(0, len(order), self.p):
            chosen = list(order[start : start + self.p])
            if len(chosen) < self.p:
                rest = np.setdiff1d(labels, chosen)
                chosen += list(self.rng.choice(rest, self.p - len(chosen), replace=False))
            yield np.concatenate([self._photos(self.people[int(label)]) for label in chosen])

    def _photos(self, photos: np.ndarray) -> np.ndarray:
        if len(photos) >= self.k:
            return self.rng.choice(photos, self.k, replace=False)
        extra = self.rng.choice(photos, self.k - len(photos), replace=True)
        return np.concatenate([self.rng.permutation(photos), extra])


def squared_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` squared Euclidean distances between ``(n, d)`` unit vectors: ``2 - 2 a.b``,
    clamped at 0 against rounding (a gradient through ``sqrt`` at 0 would be infinite)."""
    return (2.0 - 2.0 * embeddings @ embeddings.T).clamp_min(0.0)


@dataclass(frozen=True)
class Mined:
    """Triplets as index tensors into the batch, and what the progress line reports.

    ``candidates``: the valid (anchor, positive) pairs (``batch-all``: the valid triplets) the
    triplets were chosen for; ``active``: the mined triplets whose loss is above zero.
    """

    anchors: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor
    candidates: int
    active: int

    @property
    def active_fraction(self) -> float:
        """Of the candidates, the fraction that gave a triplet that still teaches something."""
        return self.active / self.candidates if self.candidates else 0.0


def mine_triplets(distances: torch.Tensor, labels: torch.Tensor, margin: float, strategy: Strategy) -> Mined:
    """The triplets ``strategy`` chooses in a batch with ``(n, n)`` squared ``distances`` and
    ``(n,)`` integer ``labels``. Selection never needs gradients, so it runs detached."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
    d = distances.detach()
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=d.device)
    anchors, positives = torch.nonzero(same & ~eye, as_tuple=True)
    d_ap = d[anchors, positives]
    d_an = d[anchors]  # (pairs, n): every candidate negative of each pair's anchor
    negative = ~same[anchors]
    if strategy == "batch-all":
        pair, negatives = torch.nonzero(negative, as_tuple=True)
        loss = d_ap[pair] - d_an[pair, negatives] + margin
        return Mined(anchors[pair], positives[pair], negatives, len(pair), int((loss > 0).sum()))
    allowed = negative
    if strategy == "semi-hard":
        allowed = allowed & (d_an > d_ap[:, None]) & (d_an < d_ap[:, None] + margin)
    masked = torch.where(allowed, d_an, torch.full_like(d_an, torch.inf))
    # argmin returns the first of equal minima: the lowest index
    negatives = masked.argmin(dim=1)
    has = allowed.any(dim=1)
    loss = d_ap[has] - d_an[has, negatives[has]] + margin
    return Mined(anchors[has], positives[has], negatives[has], len(anchors), int((loss > 0).sum()))


def triplet_loss(distances: torch.Tensor, mined: Mined, margin: float) -> torch.Tensor:
    """``mean(max(d_ap - d_an + margin, 0))`` over the mined triplets (0 when there are none),
    differentiable through ``distances``."""
    if not len(mined.anchors):
        return distances.sum() * 0.0  # still a tensor of the graph: callers need no special case
    d_ap = distances[mined.anchors, mined.positives]
    d_an = distances[mined.anchors, mined.negatives]
    return torch.relu(d_ap - d_an + margin).mean()
