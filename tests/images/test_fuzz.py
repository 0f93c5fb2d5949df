"""Generated image files, good and bad, given to the loader in-process (many) and to the verbs
that read photos as real processes (a sample): nothing crashes, each bad file gets one line
naming it, the good ones are still processed, and enroll stores all the usable photos in one
write or none.

Files are real encodings of random pixels in every accepted format and pixel type, then left
as they are, cut short, with bytes overwritten, with a header claiming a huge or an empty
image, or replaced by random bytes."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.images import ImageError
from streamrec.images.header import FORMATS
from streamrec.images.load import MAX_PIXELS, decode_image
from streamrec.match.store import Watchlist
from tests.conftest import run_cli
from tests.images.craft import ENCODERS, claim_size, encode, tiff

#: the pixel types each OpenCV encoder writes
KINDS = {
    "JPEG": ("grey", "colour"), "PNG": ("grey", "colour", "alpha", "grey16", "colour16"), "WebP": ("colour", "alpha"),
    "TIFF": ("grey", "colour", "alpha", "grey16", "colour16"), "BMP": ("grey", "colour", "alpha"),
    "GIF": ("colour",), "PNM": ("grey", "colour", "grey16", "colour16"),
}
MUTATIONS = ("none", "cut", "overwrite", "huge", "empty image", "random bytes", "empty file")
MAX_SIDE = 32  #: small, so that downscaling is exercised too


def _pixels(kind: str, height: int, width: int, seed: int) -> np.ndarray:
    channels = {"grey": 1, "colour": 3, "alpha": 4}[kind.removesuffix("16")]
    dtype = np.uint16 if kind.endswith("16") else np.uint8
    values = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, (height, width, channels), dtype=dtype)
    return np.ascontiguousarray(values[:, :, 0]) if channels == 1 else values


def _huge_claim(draw: st.DrawFn, format: str, data: bytes) -> tuple[int, int]:
    """A size over the limit that the format's header can hold."""
    side = 16383 if format == "WebP" and data[12:16] != b"VP8X" else 65535
    width = draw(st.integers(math.isqrt(MAX_PIXELS) + 1, side))
    return width, draw(st.integers(MAX_PIXELS // width + 1, side))


@dataclass(frozen=True)
class Sample:
    """A generated file: the ``format`` and (width, height) ``size`` it was encoded with, then
    what was done to it."""

    data: bytes
    format: str
    size: tuple[int, int]
    mutation: str


@st.composite
def image_files(draw: st.DrawFn) -> Sample:
    format = draw(st.sampled_from(FORMATS))
    size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    pixels = _pixels(draw(st.sampled_from(KINDS[format])), size[1], size[0], draw(st.integers(0, 2**32 - 1)))
    data = ENCODERS[format](pixels)
    # a WebP stores its sizes minus one (lossless, extended): it cannot claim an empty image
    mutation = draw(st.sampled_from([m for m in MUTATIONS if not (format == "WebP" and m == "empty image")]))
    if mutation == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif mutation == "overwrite":
        patched = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            patched[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(patched)
    elif mutation == "huge":
        data = claim_size(data, format, *_huge_claim(draw, format, data))
    elif mutation == "empty image":
        data = claim_size(data, format, *draw(st.sampled_from([(0, size[1]), (size[0], 0)])))
    elif mutation == "random bytes":
        data = draw(st.binary(min_size=1, max_size=512))
    elif mutation == "empty file":
        data = b""
    return Sample(data, format, size, mutation)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image_files(), st.sampled_from([".jpg", ".png", ".tif", ".webp", ".bmp", ".gif", ".ppm", ""]))
def test_the_loader_reads_or_refuses_in_one_line(sample: Sample, extension: str):
    name = f"photos/generated{extension}"  # the extension says nothing: the content decides
    try:
        loaded = decode_image(sample.data, name, MAX_SIDE)
    except ImageError as refused:
        message = str(refused)
        assert message.startswith(f"{name}: ") and "\n" not in message, message
        assert sample.mutation != "none", f"a good {sample.format} file was refused: {message}"
        if sample.mutation == "huge":
            assert "is too large (limit 120 MP)" in message
        if sample.mutation == "empty image":
            assert f"empty {sample.format}" in message
        return
    assert sample.mutation not in ("huge", "empty image", "empty file"), f"{sample.mutation}: not refused"
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.ndim == 3 and loaded.rgb.shape[2] == 3
    assert max(loaded.rgb.shape[:2]) <= MAX_SIDE
    if sample.mutation == "none":
        assert loaded.original_size == sample.size


# -- the verbs, as real processes -----------------------------------------------------------------

def _bad_files(folder: Path) -> dict[str, str]:
    """One file of each kind of trouble, written into ``folder``: name -> why it is bad."""
    colour = _pixels("colour", 40, 60, 1)
    png, jpeg = ENCODERS["PNG"](colour), ENCODERS["JPEG"](colour)
    corrupt_png = bytearray(png)
    corrupt_png[60:80] = bytes(20)  # inside the image data: its checksum fails
    files = {
        "huge.tif": (claim_size(ENCODERS["TIFF"](colour), "TIFF", 20000, 20000), "20000x20000 is too large"),
        "huge_progressive.jpg": (
            claim_size(encode(colour, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "JPEG", 20000, 20000), "too large"
        ),
        "huge_tiles.tif": (tiff(colour[:, :, 0], tile=16384), "tiles or strips"),
        "huge.webp": (claim_size(ENCODERS["WebP"](colour), "WebP", 16383, 16383), "too large"),
        "no_pixels.gif": (claim_size(ENCODERS["GIF"](colour), "GIF", 0, 40), "empty GIF"),
        "cut.jpg": (jpeg[: len(jpeg) // 2], "truncated JPEG"),
        "cut_header.png": (png[:20], "truncated PNG"),
        "corrupt.png": (bytes(corrupt_png), "corrupt PNG"),
        "random.jpg": (bytes(np.random.default_rng(3).integers(0, 256, 700, dtype=np.uint8)), "not a readable image"),
        "empty.png": (b"", "empty file"),
        "jpeg2000.jp2": (encode(np.full((64, 64, 3), 128, np.uint8), ".jp2"), "not a readable image"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: reason for name, (_, reason) in files.items()}


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> tuple[Path, list[str], dict[str, str]]:
    """Two real photos of one person (one of them a PNG named .jpg) among the bad files."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(faces_dir / "barack_obama" / "1.jpg", folder / "obama_1.jpg")
    photo = cv2.imread(str(faces_dir / "barack_obama" / "2.jpg"))
    assert photo is not None
    (folder / "obama_2.jpg").write_bytes(encode(photo, ".png"))  # a PNG behind a .jpg name
    return folder, ["obama_1.jpg", "obama_2.jpg"], _bad_files(folder)


def _mixed(folder: Path, good: list[str], bad: dict[str, str]) -> list[str]:
    names = [*bad][:5] + good[:1] + [*bad][5:] + good[1:]
    return [str(folder / name) for name in names]


def _one_line_each(result, folder: Path, bad: dict[str, str]) -> None:
    output = (result.stdout + result.stderr).splitlines()
    assert "Traceback" not in result.stdout + result.stderr and result.returncode == 1, result.stderr
    for name, reason in bad.items():
        lines = [line for line in output if str(folder / name) in line]
        assert len(lines) == 1, f"{name}: {lines}"
        assert reason in lines[0], lines[0]


def test_detect_names_each_bad_file_once_and_reads_the_good_ones(photo_folder):
    folder, good, bad = photo_folder
    result = run_cli("detect", *_mixed(folder, good, bad))
    _one_line_each(result, folder, bad)
    for name in good:
        assert re.search(rf"^{re.escape(str(folder / name))}: [1-9]\d* faces? \(", result.stdout, re.MULTILINE), name


def test_embed_gives_every_image_its_row(photo_folder, tmp_path: Path):
    folder, good, bad = photo_folder
    paths = _mixed(folder, good, bad)
    result = run_cli("embed", *paths, "--out", str(tmp_path / "vectors.npy"))
    _one_line_each(result, folder, bad)
    rows = np.load(tmp_path / "vectors.npy")
    assert rows.shape == (len(paths), 512)
    usable = [Path(p).name in good for p in paths]
    assert [bool(np.isfinite(row).all()) for row in rows] == usable
    first, second = rows[np.flatnonzero(usable)]
    assert np.linalg.norm(first - second) < 1.12, "the two photos of one person"


def test_enroll_stores_the_usable_photos_together_or_nothing(photo_folder, tmp_path: Path):
    folder, good, bad = photo_folder
    data = tmp_path / "data"
    nothing = run_cli("enroll", "--name", "Barack Obama", "--data-dir", str(data), *[str(folder / n) for n in bad])
    _one_line_each(nothing, folder, bad)
    assert "nothing enrolled" in nothing.stderr
    assert _enrolled(data) == []
    result = run_cli("enroll", "--name", "Barack Obama", "--data-dir", str(data), *_mixed(folder, good, bad))
    _one_line_each(result, folder, bad)
    assert f"enrolled 2 of {len(good) + len(bad)} photos: new person Barack Obama" in result.stdout
    assert _enrolled(data) == [("Barack Obama", 2)]


def _enrolled(data: Path) -> list[tuple[str, int]]:
    """(name, photos) of everyone in the watchlist of ``data``."""
    with Watchlist(data) as store, store.read() as view:
        return [(person.name, person.embeddings) for person in view.persons()]
