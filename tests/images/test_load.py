"""The image loader: every accepted format is read at the size its decoder gives, and a file
whose header claims too many pixels, in any format, is refused from its header alone.

The huge files here are a few hundred bytes whose header claims 20000 x 20000 pixels: nothing
of that size is ever allocated, and a refusal that names the claimed size can only come from
reading the header, since the pixel data is that of a tiny image."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from streamrec.images import ImageError, load_image
from streamrec.images.header import FORMATS, read_header
from streamrec.images.load import MAX_PIXELS, decode_image
from tests.images.craft import ENCODERS, claim_size, encode, tiff

_RNG = np.random.default_rng(7)
_PIXELS: dict[str, np.ndarray] = {
    "grey": _RNG.integers(0, 256, (21, 34), dtype=np.uint8),
    "colour": _RNG.integers(0, 256, (21, 34, 3), dtype=np.uint8),
    "alpha": _RNG.integers(0, 256, (21, 34, 4), dtype=np.uint8),
    "16-bit": _RNG.integers(0, 65536, (21, 34, 3), dtype=np.uint16),
}
#: what each OpenCV encoder accepts of the pixel kinds above
_KINDS = {
    "JPEG": ("grey", "colour"), "PNG": ("grey", "colour", "alpha", "16-bit"), "WebP": ("colour", "alpha"),
    "TIFF": ("grey", "colour", "alpha", "16-bit"), "BMP": ("grey", "colour", "alpha"), "GIF": ("colour",),
    "PNM": ("grey", "colour", "16-bit"),
}


def _refusal(data: bytes, name: str = "claimed.img") -> str:
    with pytest.raises(ImageError) as refused:
        decode_image(data, name)
    message = str(refused.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    return message


def test_every_accepted_format_is_covered():
    assert set(_KINDS) == set(ENCODERS) == set(FORMATS)


@pytest.mark.parametrize("format, kind", [(f, k) for f, kinds in _KINDS.items() for k in kinds])
def test_each_format_is_read_at_the_size_its_decoder_gives(format: str, kind: str):
    data = ENCODERS[format](_PIXELS[kind])
    header = read_header(data)
    assert (header.format, header.width, header.height) == (format, 34, 21)
    assert Image.open(io.BytesIO(data)).size == (34, 21)  # another reader of the same header
    loaded = decode_image(data, f"photo.{format.lower()}")
    assert loaded.rgb.shape == (21, 34, 3) and loaded.rgb.dtype == np.uint8
    assert loaded.original_size == (34, 21) and loaded.scale == 1.0


@pytest.mark.parametrize("layout", [
    {}, {"order": ">"}, {"big": True}, {"big": True, "order": ">"}, {"tile": 64}, {"rows_per_strip": 64},
])
def test_tiff_byte_orders_bigtiff_tiles_and_strips(layout: dict):
    grey = _PIXELS["grey"]
    loaded = decode_image(tiff(grey, **layout), "scan.tif")
    assert loaded.original_size == (34, 21)
    assert np.array_equal(loaded.rgb[:, :, 0], grey)


def _claims(width: int, height: int) -> list[tuple[str, bytes]]:
    """One file per accepted format (and per TIFF layout) claiming ``width`` x ``height``."""
    colour = _PIXELS["colour"]
    files = [(f, claim_size(ENCODERS[f](colour), f, width, height)) for f in FORMATS if f != "WebP"]
    progressive = encode(colour, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    files.append(("JPEG progressive", claim_size(progressive, "JPEG", width, height)))
    grey, claim = _PIXELS["grey"], (width, height)
    files += [
        ("TIFF big-endian", tiff(grey, order=">", claim=claim)),
        ("TIFF BigTIFF", tiff(grey, big=True, claim=claim)),
        ("TIFF tiled", tiff(grey, tile=64, claim=claim)),
    ]
    return files


@pytest.mark.parametrize("data", [pytest.param(data, id=name) for name, data in _claims(20000, 20000)])
def test_a_header_claiming_20000x20000_is_refused_in_every_format(data: bytes):
    assert _refusal(data).endswith(": 20000x20000 is too large (limit 120 MP)")


@pytest.mark.parametrize("chunk", ["VP8 ", "VP8L", "VP8X"])
def test_webp_headers_claiming_too_much_are_refused(chunk: str):
    # lossy and lossless WebP hold at most 16383 px a side (268 MP); the extended header 2^24
    params = {"VP8 ": (90, _PIXELS["colour"]), "VP8L": (101, _PIXELS["colour"]), "VP8X": (90, _PIXELS["alpha"])}[chunk]
    data = encode(params[1], ".webp", cv2.IMWRITE_WEBP_QUALITY, params[0])
    assert data[12:16] == chunk.encode()
    assert _refusal(claim_size(data, "WebP", 16383, 16383)).endswith(": 16383x16383 is too large (limit 120 MP)")


def test_the_limit_is_120_megapixels_exactly():
    data = ENCODERS["PNG"](_PIXELS["colour"])
    just_over = claim_size(data, "PNG", 12000, 10001)
    assert "12000x10001 is too large" in _refusal(just_over)
    at_limit = claim_size(data, "PNG", 12000, 10000)  # allowed by size, then fails on its tiny data
    assert 12000 * 10000 == MAX_PIXELS and "too large" not in _refusal(at_limit)


@pytest.mark.parametrize("layout, megapixels", [({"tile": 16384}, 268), ({"rows_per_strip": 1 << 24}, 570)])
def test_tiff_tiles_and_strips_count_against_the_limit(layout: dict, megapixels: int):
    """A 34 x 21 TIFF whose one tile, or one strip, the decoder would read into a buffer of
    hundreds of megapixels."""
    message = _refusal(tiff(_PIXELS["grey"], **layout))
    assert message.endswith(f"its TIFF tiles or strips of {megapixels} MP are too large (limit 120 MP)")


@pytest.mark.parametrize("format", ["PNG", "GIF", "BMP", "TIFF", "PNM", "JPEG"])
def test_an_image_without_pixels_is_refused(format: str):
    data = claim_size(ENCODERS[format](_PIXELS["colour"]), format, 0, 21)
    assert _refusal(data).endswith(f": empty {format} (0x21 pixels)")


@pytest.mark.parametrize("data, reason", [
    (encode(np.full((64, 64, 3), 128, np.uint8), ".jp2"), "not a readable image"),
    (encode(_PIXELS["colour"].astype(np.float32) / 255, ".hdr"), "not a readable image"),
    (bytes(range(256)) * 4, "not a readable image"),
    (ENCODERS["PNG"](_PIXELS["colour"])[:20], "truncated PNG (the file ends inside its header)"),
    (ENCODERS["TIFF"](_PIXELS["colour"])[:9], "truncated TIFF (the file ends inside its header)"),
    (ENCODERS["JPEG"](_PIXELS["colour"])[:40], "truncated JPEG (the file ends inside its header)"),
    (b"", "empty file"),
], ids=["JPEG 2000", "Radiance HDR", "bytes", "PNG header cut", "TIFF header cut", "JPEG header cut", "empty"])
def test_unsupported_and_truncated_headers_get_one_line(data: bytes, reason: str):
    assert reason in _refusal(data)


def test_a_reduced_jpeg_keeps_the_file_s_orientation(tmp_path: Path):
    """A large JPEG is decoded at reduced size; its EXIF orientation is ignored as it is for a
    small one, so boxes stay in the pixels of the file."""
    wide = np.zeros((1000, 4000, 3), np.uint8)
    wide[:, :2000] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    for width, path in ((4000, tmp_path / "large.jpg"), (800, tmp_path / "small.jpg")):
        Image.fromarray(cv2.resize(wide, (width, width // 4))).save(path, exif=exif)
    large, small = load_image(tmp_path / "large.jpg"), load_image(tmp_path / "small.jpg")
    assert large.original_size == (4000, 1000) and large.rgb.shape == (400, 1600, 3)
    assert large.scale == pytest.approx(0.4)
    assert small.rgb.shape == (200, 800, 3)
    for loaded in (large, small):
        assert loaded.rgb[:, : loaded.rgb.shape[1] // 2 - 8].min() > 200  # white on the left, as stored


def test_files_that_are_not_regular_files_are_refused_without_waiting(tmp_path: Path):
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    outcome: list[str] = []

    def load() -> None:
        with pytest.raises(ImageError) as refused:
            load_image(fifo)
        outcome.append(str(refused.value))

    reader = threading.Thread(target=load, daemon=True)  # daemon: a reader stuck on the FIFO is left behind
    reader.start()
    reader.join(10)
    assert outcome == [f"{fifo}: not a regular file"]
    with pytest.raises(ImageError, match="is a directory, not an image"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
