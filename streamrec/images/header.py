"""What an image file says about itself before any pixel is decoded: its format and size.

OpenCV allocates an image (and, for some formats, large working buffers) from the size its
decoder reads in the header, so a few kilobytes that claim 20000 x 20000 pixels cost gigabytes
once decoded. OpenCV's own guard, ``OPENCV_IO_MAX_IMAGE_PIXELS``, is read once, when the
library is loaded, and counts the image alone (not a TIFF's tile buffers, not a progressive
JPEG's coefficients), so it cannot enforce this project's limit. Instead every file is
identified here from its signature and its header is read for the sizes the decoder will
allocate; a file whose format is not one of :data:`FORMATS` is never handed to OpenCV.

Only the formats people feed a face tool are accepted: each one costs a header reader here,
and every decoder OpenCV is never asked to run is one less to trust with untrusted files.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FORMATS", "Header", "HeaderError", "image_format", "read_header"]


class HeaderError(ValueError):
    """The file is not an image of an accepted format, or its header is damaged; the message
    is the reason, without the file name."""


@dataclass(frozen=True)
class Header:
    """``width`` x ``height``: the image as stored. ``buffer_pixels``: the largest working
    buffer the decoder allocates besides the image, in pixels (a TIFF's tile or strip; 0 for
    formats decoded row by row)."""

    format: str
    width: int
    height: int
    buffer_pixels: int = 0


def _u16(data: bytes, at: int, order: str = ">") -> int:
    return int(struct.unpack_from(order + "H", data, at)[0])


def _u32(data: bytes, at: int, order: str = ">") -> int:
    return int(struct.unpack_from(order + "I", data, at)[0])


# JPEG start-of-frame markers (C4 = DHT, C8 = JPG and CC = DAC are not frames)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> Header:
    """The frame header (SOFn), found by walking the marker segments from the start."""
    pos = 2
    while True:
        if data[pos] != 0xFF:
            raise HeaderError("corrupt JPEG (damaged header)")
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before a marker
            pos += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif marker in (0xDA, 0xD9):
            raise HeaderError("corrupt JPEG (image data before its frame header)")
        elif marker in _SOF:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return Header("JPEG", width, height)
        else:
            pos += 2 + _u16(data, pos + 2)


def _png(data: bytes) -> Header:
    if len(data) >= 16 and data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise HeaderError("corrupt PNG (damaged header)")
    return Header("PNG", _u32(data, 16), _u32(data, 20))


def _gif(data: bytes) -> Header:
    return Header("GIF", _u16(data, 6, "<"), _u16(data, 8, "<"))  # the logical screen


def _bmp(data: bytes) -> Header:
    info_size = _u32(data, 14, "<")
    if info_size == 12:  # OS/2 1.x: 16-bit sizes
        return Header("BMP", _u16(data, 18, "<"), _u16(data, 20, "<"))
    width, height = struct.unpack_from("<ii", data, 18)
    return Header("BMP", abs(width), abs(height))  # a negative height means top-down rows


def _webp(data: bytes) -> Header:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended (alpha, animation): the canvas, 24-bit sizes minus one
        return Header("WebP", int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        return Header("WebP", _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF)
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14-bit sizes minus one
        bits = _u32(data, 21, "<")
        return Header("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    raise HeaderError("corrupt WebP (damaged header)")


_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_ROWS_PER_STRIP, _TIFF_TILE_WIDTH, _TIFF_TILE_HEIGHT = 256, 257, 278, 322, 323


def _tiff(data: bytes) -> Header:
    """Sizes from the first directory (the page OpenCV decodes), classic or BigTIFF. The
    decoder reads a tile, or a strip of ``RowsPerStrip`` rows, into a buffer of its own."""
    order = "<" if data[:2] == b"II" else ">"
    big = _u16(data, 2, order) == 43
    offset = struct.unpack_from(order + "Q", data, 8)[0] if big else _u32(data, 4, order)
    count_format, entry_size, value_size = ("Q", 20, 8) if big else ("H", 12, 4)
    count = struct.unpack_from(order + count_format, data, offset)[0]
    first = offset + struct.calcsize(count_format)
    if first + count * entry_size > len(data):
        raise HeaderError("corrupt TIFF (damaged header)")
    tags: dict[int, int] = {}
    for entry in range(first, first + count * entry_size, entry_size):
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        value_format = {3: "H", 4: "I", 16: "Q"}.get(kind)  # SHORT, LONG, LONG8, left in the field
        if value_format is not None and struct.calcsize(value_format) <= value_size:
            tags[tag] = struct.unpack_from(order + value_format, data, entry + entry_size - value_size)[0]
    width, height = tags.get(_TIFF_WIDTH, 0), tags.get(_TIFF_HEIGHT, 0)
    if _TIFF_TILE_WIDTH in tags or _TIFF_TILE_HEIGHT in tags:
        buffer = tags.get(_TIFF_TILE_WIDTH, 0) * tags.get(_TIFF_TILE_HEIGHT, 0)
    else:
        rows = tags.get(_TIFF_ROWS_PER_STRIP, 0)
        buffer = width * (height if rows in (0, 0xFFFFFFFF) else rows)
    return Header("TIFF", width, height, buffer)


_PNM_SIZE = re.compile(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)\s")


def _pnm(data: bytes) -> Header:
    found = _PNM_SIZE.match(data[:1024])
    if found is None:
        raise HeaderError("corrupt PNM (damaged header)")
    return Header("PNM", int(found[1]), int(found[2]))


#: (format, signature test, header reader) for each accepted format
_READERS: tuple[tuple[str, Callable[[bytes], bool], Callable[[bytes], Header]], ...] = (
    ("JPEG", lambda d: d[:3] == b"\xff\xd8\xff", _jpeg),
    ("PNG", lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", _png),
    ("WebP", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    ("TIFF", lambda d: d[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    ("BMP", lambda d: d[:2] == b"BM", _bmp),
    ("GIF", lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
    ("PNM", lambda d: d[:1] == b"P" and d[1:2] in b"123456" and d[2:3].isspace(), _pnm),
)
FORMATS = tuple(name for name, _, _ in _READERS)  #: the formats accepted


def image_format(data: bytes) -> str | None:
    """The accepted format whose signature ``data`` (a file's first bytes) starts with, else
    None: a cheap look at the content, for whoever must tell a photo from a video by more than
    its file name."""
    return next((name for name, matches, _ in _READERS if matches(data)), None)


def read_header(data: bytes) -> Header:
    """The format and sizes of an encoded image, read from its header alone.

    Raises :class:`HeaderError` for a format not in :data:`FORMATS` or a header too short or
    damaged to give its sizes.
    """
    for name, matches, reader in _READERS:
        if matches(data):
            try:
                return reader(data)
            except (struct.error, IndexError):
                raise HeaderError(f"truncated {name} (the file ends inside its header)") from None
    raise HeaderError(f"not a readable image (not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} file)")
