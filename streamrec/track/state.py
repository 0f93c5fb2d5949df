"""What the pipeline keeps about a track beside its boxes: its embedding history and identity.

The tracker creates it with every track and never reads it; the embedding policy and the face
work of the inference stage fill it in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamrec.track.identity import Decision, TrackIdentity

__all__ = ["TrackState"]


@dataclass
class TrackState:
    """``embeddings``: how often the track's face was embedded, ``last_embed_ts`` when last (its
    frame's capture time), ``best_quality`` the best face score embedded so far (what a better
    face must beat). ``last_vector``: the latest embedding (a jump away from it means another
    person took the track's place). ``identity``: the decision so far, once there is an
    embedding to base it on."""

    embeddings: int = 0
    last_embed_ts: float | None = None
    best_quality: float = 0.0
    last_vector: np.ndarray | None = None
    identity: TrackIdentity | None = None

    @property
    def decision(self) -> Decision | None:
        """The track's decision, ``None`` until it has one."""
        return self.identity.decision if self.identity is not None else None
