"""Load a still image as 8-bit RGB, refusing bad files with a one-line reason.

Handles what users actually feed a face tool: grayscale, RGBA, 16-bit and palette images,
truncated JPEGs (which OpenCV silently returns half-grey), corrupt and empty files, and photos of
tens of megapixels, which are decoded at reduced size where the format allows (JPEG DCT scaling)
and downscaled so the longer side is at most ``max_side``, keeping memory bounded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["DEFAULT_MAX_SIDE", "MAX_PIXELS", "ImageError", "LoadedImage", "load_image"]

#: Longer side images are brought down to before detection.
DEFAULT_MAX_SIDE = 1600
#: Images above this many pixels are refused unless JPEG (decodable at reduced size).
MAX_PIXELS = 120_000_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class LoadedImage:
    """``rgb``: ``(H, W, 3)`` uint8. ``scale``: pixels of ``rgb`` per pixel of the original file
    (1.0 unless it was downscaled). ``original_size``: ``(width, height)`` of the file."""

    path: Path
    rgb: np.ndarray
    scale: float
    original_size: tuple[int, int]


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def _header_size(data: bytes, name: str) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None for other formats."""
    if data[:8] == _PNG_SIGNATURE:
        if data[8:16] != b"\x00\x00\x00\x0dIHDR":
            raise ImageError(f"{name}: corrupt PNG (damaged header)")
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _check_complete(data: bytes, name: str) -> None:
    if data[:2] == b"\xff\xd8":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise ImageError(f"{name}: truncated JPEG (the file ends before the image data does)")
    elif data[:8] == _PNG_SIGNATURE and b"IEND" not in data[-64:]:
        raise ImageError(f"{name}: truncated PNG (no end chunk)")


def _to_rgb8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"{name}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:  # alpha is dropped, as image viewers show the opaque colours
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ImageError(f"{name}: unsupported channel count {channels}")


def _reduced_flag(size: tuple[int, int] | None, max_side: int) -> int:
    """The largest JPEG DCT reduction that still leaves the longer side >= ``max_side``."""
    if size is None:
        return cv2.IMREAD_UNCHANGED
    longest = max(size)
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if longest // factor >= max_side:
            return flag
    return cv2.IMREAD_UNCHANGED


def decode_image(data: bytes, name: str, max_side: int = DEFAULT_MAX_SIDE) -> LoadedImage:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF, WebP...) into a :class:`LoadedImage`."""
    if not data:
        raise ImageError(f"{name}: empty file")
    _check_complete(data, name)
    size = _header_size(data, name)
    is_jpeg = data[:2] == b"\xff\xd8"
    if size is not None and size[0] * size[1] > MAX_PIXELS and not is_jpeg:
        raise ImageError(f"{name}: {size[0]}x{size[1]} is too large (limit {MAX_PIXELS // 1_000_000} MP)")
    flag = _reduced_flag(size, max_side) if is_jpeg else cv2.IMREAD_UNCHANGED
    buffer = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(buffer, flag)
    if image is None:
        raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)")
    rgb = _to_rgb8(image, name)
    original = size or (rgb.shape[1], rgb.shape[0])
    longest = max(rgb.shape[:2])
    if longest > max_side:
        factor = max_side / longest
        target = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        rgb = cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)
    return LoadedImage(Path(name), np.ascontiguousarray(rgb), rgb.shape[1] / original[0], original)


def load_image(path: str | Path, max_side: int = DEFAULT_MAX_SIDE) -> LoadedImage:
    """Read ``path`` as RGB uint8, downscaled so its longer side is at most ``max_side``.

    Raises :class:`ImageError` with a one-line reason for a missing, unreadable, empty, corrupt,
    truncated or oversized file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    loaded = decode_image(data, str(path), max_side)
    return LoadedImage(path, loaded.rgb, loaded.scale, loaded.original_size)
