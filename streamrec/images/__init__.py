"""Reading still images from disk into RGB arrays the detector accepts."""

from streamrec.images.load import DEFAULT_MAX_SIDE, ImageError, LoadedImage, load_image

__all__ = ["DEFAULT_MAX_SIDE", "ImageError", "LoadedImage", "load_image"]
