"""Every bad input gets one clear line, a non-zero exit where it is an error, and no traceback."""

from __future__ import annotations

import json
import resource
import signal
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import cli_command, run_cli


def _no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory, faces_dir: Path) -> dict[str, Path]:
    """Real photos re-encoded as the formats people actually feed in."""
    folder = tmp_path_factory.mktemp("odd")
    bgr = cv2.imread(str(faces_dir / "barack_obama" / "2.jpg"))
    assert bgr is not None
    made: dict[str, tuple[Path, np.ndarray]] = {
        "gray": (folder / "gray.png", cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)),
        "sixteen_bit": (folder / "sixteen.png", bgr.astype(np.uint16) * 257),
        "bmp": (folder / "photo.bmp", bgr),
    }
    for path, pixels in made.values():
        assert cv2.imwrite(str(path), pixels)
    huge = cv2.resize(bgr, (6000, 11500), interpolation=cv2.INTER_LINEAR)  # 69 MP
    cv2.imwrite(str(folder / "huge.jpg"), huge, [cv2.IMWRITE_JPEG_QUALITY, 80])
    paths = {name: path for name, (path, _) in made.items()}
    paths["huge"] = folder / "huge.jpg"
    # A PNG whose header claims 20000 x 20000 pixels (1.2 GB decoded): refused before decoding.
    data = bytearray((folder / "gray.png").read_bytes())
    ihdr = struct.pack(">II", 20000, 20000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (folder / "bomb.png").write_bytes(bytes(data))
    paths["bomb"] = folder / "bomb.png"
    return paths


@pytest.mark.parametrize(
    "name, message",
    [
        ("cf_corrupted.png", "corrupt PNG"),
        ("cf_empty.png", "not a readable image"),
        ("cf_truncated.jpg", "truncated JPEG"),
    ],
)
def test_broken_files(edge_cases: Path, name: str, message: str):
    result = run_cli("detect", str(edge_cases / "broken" / name))
    assert result.returncode == 1
    assert message in result.stderr and result.stdout == ""
    _no_traceback(result)


def test_missing_file_and_directory(tmp_path: Path):
    result = run_cli("detect", str(tmp_path / "nope.jpg"), str(tmp_path))
    assert result.returncode == 1
    assert "nope.jpg: no such file" in result.stderr and "is a directory" in result.stderr
    _no_traceback(result)
    result = run_cli("compare", str(tmp_path / "nope.jpg"), str(tmp_path / "nope2.jpg"))
    assert result.returncode == 1 and result.stderr.startswith("streamrec: error:") and "no such file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_one_bad_file_loses_nothing_else(edge_cases: Path, faces_dir: Path):
    result = run_cli(
        "detect", str(faces_dir / "joe_biden" / "1.jpg"), str(edge_cases / "broken" / "cf_truncated.jpg"),
        str(faces_dir / "rose_leslie" / "1.jpg"), "--json",
    )
    import json

    items = json.loads(result.stdout)
    assert result.returncode == 1
    assert [("error" in item) for item in items] == [False, True, False]
    assert len(items[0]["faces"]) >= 1 and len(items[2]["faces"]) >= 1


@pytest.mark.parametrize("kind", ["gray", "sixteen_bit", "bmp"])
def test_unusual_formats_work(odd_images, kind: str):
    result = run_cli("detect", str(odd_images[kind]), "--json")
    assert result.returncode == 0, result.stderr
    import json

    assert len(json.loads(result.stdout)[0]["faces"]) == 1


def test_detect_and_embed_report_unusable_files_on_stderr(tmp_path: Path, edge_cases: Path, faces_dir: Path):
    good, broken = str(faces_dir / "joe_biden" / "1.jpg"), str(edge_cases / "broken" / "cf_truncated.jpg")
    detect = run_cli("detect", broken, good)
    assert detect.returncode == 1
    assert detect.stdout.splitlines()[0] == f"{good}: 1 face (970x2204)" and "truncated" not in detect.stdout
    assert detect.stderr.splitlines() == [f"streamrec: error: {broken}: truncated JPEG (the file ends before the image data does)"]
    embed = run_cli("embed", broken, good, "--out", str(tmp_path / "v.npy"))
    assert embed.returncode == 1
    first, last = embed.stdout.splitlines()
    assert first.startswith(f"{good}: row 1: box ")
    assert last == (f"wrote 2 rows (512-d) to {tmp_path / 'v.npy'}: 1 embedding and 1 row of NaN (image without a usable "
                    "face)")
    assert embed.stderr.splitlines() == [
        f"streamrec: error: {broken}: truncated JPEG (the file ends before the image data does) (row 0 is NaN)"]
    compare = run_cli("compare", good, broken, "--json")
    assert compare.returncode == 1 and compare.stderr == ""
    assert json.loads(compare.stdout) == {
        "image": broken, "error": f"{broken}: truncated JPEG (the file ends before the image data does)"}
    text = run_cli("compare", good, broken)
    assert text.returncode == 1 and text.stdout == ""
    assert text.stderr.splitlines() == [f"streamrec: error: {broken}: truncated JPEG (the file ends before the image data does)"]
    _no_traceback(detect)
    _no_traceback(embed)


def test_rgba_png(edge_cases: Path):
    result = run_cli("detect", str(edge_cases / "fr_32bit_rgba.png"))
    assert result.returncode == 0 and "1 face" in result.stdout


def _peak_rss_kib(*args: str) -> int:
    """Peak resident memory of ``streamrec ARGS`` run as the only child of a fresh process."""
    import subprocess
    import sys

    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True, check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *cli_command(), *args], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_huge_jpeg_is_decoded_small(odd_images, faces_dir: Path):
    result = run_cli("detect", str(odd_images["huge"]), "--json")
    assert result.returncode == 0, result.stderr
    import json

    item = json.loads(result.stdout)[0]
    assert (item["width"], item["height"]) == (6000, 11500) and len(item["faces"]) == 1
    # Decoding the 69 MP file at full size would take 207 MB more than a normal photo (and as
    # much again for the colour conversion); it is decoded at a quarter of its size instead.
    extra_kib = _peak_rss_kib("detect", str(odd_images["huge"])) - _peak_rss_kib("detect", str(faces_dir / "barack_obama" / "2.jpg"))
    assert extra_kib < 150_000, f"{extra_kib} KiB more than for a normal photo"


def test_decompression_bomb_is_refused(odd_images):
    result = run_cli("detect", str(odd_images["bomb"]))
    assert result.returncode == 1 and "20000x20000 is too large" in result.stderr
    _no_traceback(result)


def test_no_face_is_not_an_error_for_detect_but_is_for_compare(nonfaces: Path, faces_dir: Path):
    dog = str(nonfaces / "trt_dog.jpg")
    result = run_cli("detect", dog)
    assert result.returncode == 0 and "0 faces" in result.stdout
    result = run_cli("compare", dog, str(faces_dir / "joe_biden" / "1.jpg"))
    assert result.returncode == 1 and "trt_dog.jpg: no face found" in result.stderr
    _no_traceback(result)


@pytest.mark.parametrize(
    "args, message",
    [
        (["detect", "x.jpg", "--min-face-size", "3"], "argument --min-face-size: must be a finite number between 12 and 8192 (got 3)"),
        (["detect", "x.jpg", "--margin", "2"], "argument --margin: must be a finite number between 0 and 1 (got 2)"),
        (["detect", "x.jpg", "--threads", "0"], "argument --threads: must be a whole number between 1 and"),
        (["detect", "x.jpg", "--backend", "tpu"], "invalid choice: 'tpu'"),
        (["detect", "x.jpg", "--precision", "bf16"], "streamrec: error: the onnxruntime backend runs fp32 and int8 only (got precision 'bf16')"),
    ],
)
def test_bad_options(args, message):
    result = run_cli(*args)
    assert result.returncode == 2 or result.returncode == 1
    assert message in result.stderr
    _no_traceback(result)


def _limit_file_size() -> None:
    # As on a full disk: writes beyond 8 KiB fail (EFBIG) instead of killing the process; the
    # six embeddings take 12 KiB.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 1024, 8 * 1024))


def test_failed_write_leaves_no_partial_file(tmp_path: Path, scenes: Path):
    out = tmp_path / "vectors.npy"
    result = run_cli("embed", str(scenes / "fapi_bbt4.jpg"), "--all-faces", "--out", str(out),
                     preexec_fn=_limit_file_size)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"streamrec: error: cannot write {out}")
    assert not out.exists() and not list(tmp_path.iterdir())
    _no_traceback(result)
