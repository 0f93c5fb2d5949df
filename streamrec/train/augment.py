"""Random changes to face crops during training, so the network sees each photo as a camera
might show it another time: mirrored, framed a little differently, lit more or less brightly."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Augment"]


@dataclass(frozen=True)
class Augment:
    """``flip``: mirror half the crops. ``crop``: keep a random square of ``1 - crop`` to 1 of
    the side and scale it back to the full size (0: never). ``brightness``: multiply the pixels
    by a random factor in ``[1 - brightness, 1 + brightness]`` (0: never)."""

    flip: bool = True
    crop: float = 0.1
    brightness: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.crop < 1.0:
            raise ValueError(f"crop must be >= 0 and < 1 (got {self.crop})")
        if not 0.0 <= self.brightness < 1.0:
            raise ValueError(f"brightness must be >= 0 and < 1 (got {self.brightness})")

    @property
    def none(self) -> bool:
        """True when every crop comes out unchanged."""
        return not self.flip and self.crop == 0 and self.brightness == 0

    def __call__(self, crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """New ``(n, S, S, 3)`` uint8 crops from ``crops`` of that shape; ``crops`` is untouched."""
        out = np.empty_like(crops)
        size = crops.shape[1]
        for i, crop in enumerate(crops):
            if self.crop:
                side = round(size * rng.uniform(1.0 - self.crop, 1.0))
                y, x = rng.integers(0, size - side + 1, 2)
                crop = cv2.resize(crop[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_LINEAR)
            if self.flip and rng.random() < 0.5:
                crop = crop[:, ::-1]
            if self.brightness:
                factor = rng.uniform(1.0 - self.brightness, 1.0 + self.brightness)
                crop = np.clip(crop.astype(np.float32) * factor, 0, 255).astype(np.uint8)
            out[i] = crop
        return out
