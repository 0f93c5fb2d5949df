"""When a track's face is worth an embedding.

Embedding every face of every frame wastes most of the CPU on faces already known. A track is
embedded when it first shows a usable face, again whenever its face gets clearly better
(quality grows by ``improve_factor``), every ``min_gap_s`` until its identity is decided (a
decision needs several embeddings, and a person walking past a door is in view for a second or
two), then every ``embed_interval_s`` while it lasts; at most ``max_embeddings`` times. Faces smaller than
``min_face_px`` or blurrier than ``min_sharpness`` are tracked but never embedded.

A track a door waits on (its person is being recognised or challenged) is *eager*: embedded every
``min_gap_s`` whatever its decision and its count, since a door decides on fresh embeddings.

With ``embed_every_frame`` set, none of this applies: every tracked face is embedded on every
frame (the naive pipeline, kept as the baseline the benchmark compares with).
"""

from __future__ import annotations

from streamrec.config.model import TrackerConfig
from streamrec.track.quality import FaceQuality
from streamrec.track.tracker import Track

__all__ = ["EmbedPolicy"]


class EmbedPolicy:
    """Decides, per track and frame, whether to embed the track's current face."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config

    def usable(self, quality: FaceQuality) -> bool:
        """Large and sharp enough to embed at all."""
        return quality.size >= self.config.min_face_px and quality.sharpness >= self.config.min_sharpness

    def wants(self, track: Track, quality: FaceQuality, ts: float, eager: bool = False) -> bool:
        """Whether to embed ``track``'s face seen at ``ts`` with ``quality`` (``eager``: a door
        waits on it)."""
        if self.config.embed_every_frame:
            return True
        if not self.usable(quality):
            return False
        state = track.state
        if state.embeddings >= self.config.max_embeddings and not eager:
            return False
        if state.last_embed_ts is None:
            return True
        if ts - state.last_embed_ts < self.config.min_gap_s:
            return False
        if eager:
            return True
        better = quality.score >= state.best_quality * self.config.improve_factor
        decided = state.decision is not None
        return better or not decided or ts - state.last_embed_ts >= self.config.embed_interval_s

    def record(self, track: Track, quality: FaceQuality, ts: float) -> None:
        """Note that ``track`` was embedded at ``ts``."""
        state = track.state
        state.embeddings += 1
        state.last_embed_ts = ts
        state.best_quality = max(state.best_quality, quality.score)
