"""Draw one frame's recognition results: a box and a filled name tag per face, and the source,
time and stream rate in the bottom-left corner.

Colours tell the decision apart at a glance from across a room: green for a watchlist person,
red for a face that matches nobody, amber while a track is still undecided (label ``...``).
Sizes follow the frame's shorter side, so a tag is as readable on a 640x360 stream as on a
1920x1080 one. OpenCV 5 (which the project requires) draws any Unicode text, so names are
drawn as enrolled ("José", "李小龍"), not folded to ASCII.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from streamrec.bus.messages import FaceOverlay, Overlay

__all__ = ["KNOWN", "UNDECIDED", "UNKNOWN", "Style", "annotate", "face_colour", "tag_text"]

#: RGB box and tag colours.
KNOWN = (40, 200, 70)
UNKNOWN = (230, 50, 50)
UNDECIDED = (250, 190, 20)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INFO_BACKGROUND = 0.35  #: the corner's dark backdrop keeps this much of the picture


@dataclass(frozen=True)
class Style:
    """Pixel sizes for one frame size: font scale, stroke and box widths, tag padding."""

    font_scale: float
    text_thickness: int
    box_thickness: int
    padding: int

    @classmethod
    def for_frame(cls, height: int, width: int) -> Style:
        """Scale with the shorter side: a 360-line frame gets ~13 px letters, 1080 lines ~40 px."""
        unit = min(height, width) / 360.0
        font_scale = max(0.4, 0.6 * unit)
        return cls(
            font_scale=font_scale,
            text_thickness=max(1, round(font_scale * 1.7)),
            box_thickness=max(2, round(2 * unit)),
            padding=max(3, round(4 * unit)),
        )


def face_colour(face: FaceOverlay) -> tuple[int, int, int]:
    """The colour of a face's box and tag: known, unknown or undecided."""
    if face.known:
        return KNOWN
    return UNDECIDED if face.label == "..." else UNKNOWN


def tag_text(face: FaceOverlay) -> str:
    """The tag's text: the name and the decision's score; just ``...`` while undecided."""
    if face.label == "..." and not face.known:
        return "..."
    return f"{face.label} {face.score:.2f}"


def annotate(frame: np.ndarray, overlay: Overlay) -> np.ndarray:
    """A new RGB image: ``frame`` with ``overlay``'s faces and the corner information drawn on.

    ``frame`` is left untouched: the caller's buffer may be a received message's memory, or a
    frame that another output still needs clean.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {frame.dtype} {frame.shape}")
    image = np.ascontiguousarray(frame).copy()
    style = Style.for_frame(image.shape[0], image.shape[1])
    clock = time.strftime("%H:%M:%S", time.localtime(overlay.ts))
    _draw_info(image, f"{overlay.source}  {clock}  {overlay.fps:.1f} fps", style)
    for face in overlay.faces:  # after the corner: a face's tag matters more
        _draw_face(image, face, style)
    return image


def _draw_face(image: np.ndarray, face: FaceOverlay, style: Style) -> None:
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in face.box)
    x1, x2 = sorted((min(max(x1, 0), width - 1), min(max(x2, 0), width - 1)))
    y1, y2 = sorted((min(max(y1, 0), height - 1), min(max(y2, 0), height - 1)))
    colour = face_colour(face)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, style.box_thickness, cv2.LINE_AA)
    _draw_tag(image, tag_text(face), (x1, y1, y2), colour, style)


def _draw_tag(image: np.ndarray, text: str, anchor: tuple[int, int, int], colour: tuple[int, int, int], style: Style) -> None:
    """A filled tag above the box, or below it when the box touches the top of the frame,
    kept inside the frame horizontally."""
    x1, top, bottom = anchor
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, style.font_scale, style.text_thickness)
    tag_w, tag_h = text_w + 2 * style.padding, text_h + baseline + 2 * style.padding
    height, width = image.shape[:2]
    x = max(0, min(x1, width - tag_w))
    y = top - tag_h if top - tag_h >= 0 else min(bottom, height - tag_h)
    cv2.rectangle(image, (x, max(y, 0)), (x + tag_w, y + tag_h), colour, cv2.FILLED)
    origin = (x + style.padding, y + style.padding + text_h)
    cv2.putText(image, text, origin, _FONT, style.font_scale, _ink(colour), style.text_thickness, cv2.LINE_AA)


def _draw_info(image: np.ndarray, text: str, style: Style) -> None:
    """White text on a darkened strip in the bottom-left corner, where faces are rarest."""
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, style.font_scale, style.text_thickness)
    height = image.shape[0]
    right = min(image.shape[1], text_w + 2 * style.padding)
    top = max(0, height - (text_h + baseline + 2 * style.padding))
    corner = image[top:, :right]
    corner[:] = (corner * _INFO_BACKGROUND).astype(np.uint8)
    origin = (style.padding, top + style.padding + text_h)
    cv2.putText(image, text, origin, _FONT, style.font_scale, (255, 255, 255), style.text_thickness, cv2.LINE_AA)


def _ink(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light tags, white on dark ones (ITU-R BT.601 luma)."""
    r, g, b = colour
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
