"""Rendering: recognition results drawn on the frames, published as JPEG frames."""

from streamrec.render.annotate import Style, annotate
from streamrec.render.stage import RenderStage, encode_jpeg

__all__ = ["RenderStage", "Style", "annotate", "encode_jpeg"]
