"""What the pipeline keeps about a track beside its boxes: its embedding history and identity.

The tracker creates it with every track and never reads it; the embedding policy and the face
work of the inference stage fill it in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamrec.track.identity import Decision, TrackIdentity

__all__ = ["FaceSample", "TrackState"]


@dataclass(frozen=True)
class FaceSample:
    """One embedded face of a track: its ``crop`` (RGB uint8, with a margin), ``vector``
    ``(512,)``, face ``quality`` and its frame's capture time ``ts``."""

    crop: np.ndarray
    vector: np.ndarray
    quality: float
    ts: float


@dataclass
class TrackState:
    """``embeddings``: how often the track's face was embedded, ``last_embed_ts`` when last (its
    frame's capture time), ``best_quality`` the best face score embedded so far (what a better
    face must beat). ``last_vector``: the latest embedding (a jump away from it means another
    person took the track's place). ``identity``: the decision so far, once there is an
    embedding to base it on. ``best_face``: the best-quality face embedded so far (what the
    face library keeps of a track decided unknown)."""

    embeddings: int = 0
    last_embed_ts: float | None = None
    best_quality: float = 0.0
    last_vector: np.ndarray | None = None
    identity: TrackIdentity | None = None
    best_face: FaceSample | None = None

    @property
    def decision(self) -> Decision | None:
        """The track's decision, ``None`` until it has one."""
        return self.identity.decision if self.identity is not None else None
