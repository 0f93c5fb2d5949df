"""Synthetic identities whose embeddings resemble FaceNet's, for index tests and tuning.

Measured on the 1,549 LFW View 1 photos embedded with the default options: the embeddings span
only ~80 of the 512 dimensions (99% of the variance in 74), their mean has norm 0.21, and the
variance splits ~2:1 between people and within a person. This generator reproduces that (a
random 80-d subspace, exponentially decaying variances, a lognormal per-photo spread) and with it
LFW's distance distributions (5/50/95th percentiles; docs/watchlist.md):

=========================  ==================  ==================
distance                   LFW View 1          this generator
=========================  ==================  ==================
same person                0.54 / 0.76 / 1.03  0.52 / 0.75 / 1.02
different people (1/5/50)  1.11 / 1.20 / 1.39  1.10 / 1.18 / 1.38
nearest other person (5/50)  0.88 / 1.00       0.90 / 0.98
=========================  ==================  ==================
"""

from __future__ import annotations

import numpy as np

RANK = 80
MEAN_NORM = 0.214
BETWEEN_VARIANCE = 0.65
WITHIN_VARIANCE = 0.31
DECAY = 20.0
SPREAD = 0.3


class FaceLikeSpace:
    """A fixed subspace and mean shared by all the identities drawn from it."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.basis, _ = np.linalg.qr(self.rng.standard_normal((512, RANK)))
        weights = np.exp(-np.arange(RANK) / DECAY)
        self.weights = weights / weights.sum()
        mean = self.basis @ self.rng.standard_normal(RANK)
        self.mean = mean * (MEAN_NORM / np.linalg.norm(mean))

    def identities(self, count: int) -> np.ndarray:
        """``(count, 512)`` identity centres (not unit vectors)."""
        z = self.rng.standard_normal((count, RANK)) * np.sqrt(BETWEEN_VARIANCE * self.weights)
        return self.mean + z @ self.basis.T

    def photos(self, centres: np.ndarray, per_identity: int) -> np.ndarray:
        """``(len(centres), per_identity, 512)`` float32 unit "embeddings" of each identity."""
        shape = (len(centres), per_identity)
        spread = np.exp(SPREAD * self.rng.standard_normal((*shape, 1)))
        spread /= np.sqrt((spread**2).mean())
        noise = (self.rng.standard_normal((*shape, RANK)) * np.sqrt(WITHIN_VARIANCE * self.weights)) @ self.basis.T
        x = centres[:, None, :] + spread * noise
        return (x / np.linalg.norm(x, axis=2, keepdims=True)).astype(np.float32)
