"""Render the demo clip: a slow camera move over the astronaut portrait, then over Grace
Hopper's, as a 640x360 video file.

Both photos ship inside installed packages (scikit-image, matplotlib) and are public-domain
portraits, so the demo runs on any machine with no camera and no data of its own. The
astronaut is enrolled from a *different* crop of her photo (tight, mirrored, rescaled), so the
match the demo shows is a real recognition across framings, not a pixel-for-pixel lookup; Grace
Hopper is not enrolled and must come out as unknown.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from streamrec.images import load_image
from streamrec.samples import sample_path

__all__ = ["CLIP_SIZE", "enrollment_photo", "render_clip"]

CLIP_SIZE = (640, 360)


def _camera_move(photo: np.ndarray, frames: int, size: tuple[int, int], zoom: tuple[float, float], pan: float) -> list[np.ndarray]:
    """Frames of a camera slowly zooming from ``zoom[0]`` to ``zoom[1]`` and panning
    horizontally by ``pan`` of the photo's width, letterboxed into ``size``."""
    width, height = size
    h, w = photo.shape[:2]
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        scale = zoom[0] + (zoom[1] - zoom[0]) * t
        view_w, view_h = w / scale, w / scale * height / width
        view_h = min(view_h, h)
        cx = w / 2 + pan * w * (t - 0.5)
        x0 = int(np.clip(cx - view_w / 2, 0, w - view_w))
        y0 = int(np.clip(h * 0.35 - view_h / 2, 0, h - view_h))
        view = photo[y0 : y0 + int(view_h), x0 : x0 + int(view_w)]
        out.append(cv2.resize(view, (width, height), interpolation=cv2.INTER_AREA))
    return out


def render_clip(path: Path, fps: int = 25, seconds_each: float = 4.0) -> Path:
    """Write the demo clip (MPEG-4, ``CLIP_SIZE``) to ``path`` and return it."""
    frames_each = int(fps * seconds_each)
    astronaut = load_image(sample_path("astronaut")).rgb
    hopper = load_image(sample_path("grace_hopper")).rgb
    frames = _camera_move(astronaut, frames_each, CLIP_SIZE, (1.0, 1.3), 0.1)
    frames += _camera_move(hopper, frames_each, CLIP_SIZE, (1.0, 1.2), -0.1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, CLIP_SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MPEG-4 video to {tmp}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    tmp.replace(path)
    return path


def enrollment_photo(path: Path) -> Path:
    """Write the astronaut's enrollment photo: a tight crop around her face, mirrored and at
    60% size, so it differs from every frame of the clip. Returns ``path``."""
    astronaut = load_image(sample_path("astronaut")).rgb
    h, w = astronaut.shape[:2]
    crop = astronaut[int(0.02 * h) : int(0.45 * h), int(0.25 * w) : int(0.62 * w)][:, ::-1]
    small = cv2.resize(crop, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"cannot write {path}")
    return path
