"""Load a still image as 8-bit RGB, refusing bad files with a one-line reason.

Handles what users actually feed a face tool: grayscale, RGBA, 16-bit and palette images,
truncated JPEGs (which OpenCV silently returns half-grey), corrupt and empty files, and photos of
tens of megapixels, which are decoded at reduced size where the format allows (JPEG DCT scaling)
and downscaled so the longer side is at most ``max_side``, keeping memory bounded.

Memory is bounded before anything is decoded: the header of every file is read first
(:mod:`streamrec.images.header`), and a file claiming more than :data:`MAX_PIXELS` pixels, in
the image or in a decoder's working buffer, is refused without decoding. JPEGs get no
exemption: a progressive JPEG holds the coefficients of the whole image however small it is
decoded (a 20000 x 20000 one takes over a gigabyte at an eighth of its size).
"""

from __future__ import annotations

import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamrec.images.header import Header, HeaderError, read_header

__all__ = ["DEFAULT_MAX_SIDE", "MAX_PIXELS", "ImageError", "LoadedImage", "load_image"]

#: Longer side images are brought down to before detection.
DEFAULT_MAX_SIDE = 1600
#: Images (and decoder buffers) above this many pixels are refused before decoding: 120 MP is
#: above every camera's photos, and a decoded 16-bit RGBA image of that size already takes 1 GB.
MAX_PIXELS = 120_000_000
#: Files above this size (1 GiB) are not read: an uncompressed 120 MP image with alpha fits.
MAX_FILE_BYTES = 1 << 30


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


def _check_size(header: Header, name: str) -> None:
    """Refuse, from the header alone, an image without pixels or one too large to decode."""
    width, height = header.width, header.height
    if width == 0 or height == 0:
        raise ImageError(f"{name}: empty {header.format} ({width}x{height} pixels)")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} is too large (limit {MAX_PIXELS // 1_000_000} MP)")
    if header.buffer_pixels > MAX_PIXELS:
        raise ImageError(
            f"{name}: its {header.format} tiles or strips of {header.buffer_pixels / 1e6:.0f} MP are too large "
            f"(limit {MAX_PIXELS // 1_000_000} MP)"
        )


def _check_complete(data: bytes, header: Header, name: str) -> None:
    """A truncated JPEG or PNG decodes to a half-grey image without an error, and libpng
    prints its own complaints about a damaged PNG: both are found here first."""
    if header.format == "JPEG":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise ImageError(f"{name}: truncated JPEG (the file ends before the image data does)")
    elif header.format == "PNG":
        _check_png_chunks(data, name)


def _check_png_chunks(data: bytes, name: str) -> None:
    """Every chunk up to IEND is whole, and every critical one (IHDR, PLTE, IDAT, IEND: an
    upper-case first letter) matches its CRC, as libpng itself requires; a few milliseconds
    for a large photo."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        kind = data[pos + 4 : pos + 8]
        critical = kind[:1].isupper()
        if critical and zlib.crc32(data[pos + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            raise ImageError(f"{name}: corrupt PNG (bad checksum in its {kind.decode('latin-1')!r} chunk)")
        if kind == b"IEND":
            return
        pos = end + 4
    raise ImageError(f"{name}: truncated PNG (the file ends before its end chunk)")


def _to_rgb8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):  # 0-1 floats; NaN becomes black
        image = np.clip(np.nan_to_num(image * 255.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"{name}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels in (1, 2):  # grey, or grey and alpha
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:  # alpha is dropped, as image viewers show the opaque colours
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ImageError(f"{name}: unsupported channel count {channels}")


def _decode_flag(header: Header, max_side: int) -> int:
    """For a JPEG, the largest DCT reduction that still leaves the longer side >= ``max_side``
    (EXIF orientation ignored, as without reduction, so sizes stay those of the file)."""
    longest = max(header.width, header.height)
    if header.format == "JPEG":
        for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if longest // factor >= max_side:
                return flag | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.IMREAD_UNCHANGED


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs a decoder's complaints (several lines for one bad TIFF) on stderr; the
    caller reports the file in one line instead."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def decode_image(data: bytes, name: str, max_side: int = DEFAULT_MAX_SIDE) -> LoadedImage:
    """Decode encoded image bytes (one of :data:`~streamrec.images.header.FORMATS`) into a
    :class:`LoadedImage`; raises :class:`ImageError` for a bad, unsupported or oversized one."""
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        header = read_header(data)
    except HeaderError as exc:
        raise ImageError(f"{name}: {exc}") from None
    _check_size(header, name)
    _check_complete(data, header, name)
    flag = _decode_flag(header, max_side)
    with _quiet_opencv():
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        except cv2.error:  # a decoder's own checks (sizes, tiles, channels) failed
            image = None
    if image is None or image.size == 0:
        raise ImageError(f"{name}: corrupt {header.format} (its image data cannot be decoded)")
    rgb = _to_rgb8(image, name)
    # a JPEG decoded at reduced size keeps the file's own size; others are as decoded (a TIFF
    # is turned upright by its orientation tag)
    original = (header.width, header.height) if flag != cv2.IMREAD_UNCHANGED else (rgb.shape[1], rgb.shape[0])
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
        facts = path.stat()  # before opening: opening a FIFO would wait for a writer
        if stat.S_ISDIR(facts.st_mode):
            raise ImageError(f"{path}: is a directory, not an image")
        if not stat.S_ISREG(facts.st_mode):
            raise ImageError(f"{path}: not a regular file")
        if facts.st_size > MAX_FILE_BYTES:
            raise ImageError(f"{path}: {facts.st_size / 2**30:.1f} GiB is too large for an image (limit 1 GiB)")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    loaded = decode_image(data, str(path), max_side)
    return LoadedImage(path, loaded.rgb, loaded.scale, loaded.original_size)
