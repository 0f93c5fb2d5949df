"""Number options refuse what makes no sense (NaN, infinities, negative or zero counts, values
outside their range) with one argparse error line naming the option, and still take every
sensible value they took before."""

from __future__ import annotations

import pytest

from streamrec.backends import default_threads
from streamrec.cli import build_parser
from tests.conftest import run_cli

CORES = default_threads()

REFUSED = [
    (["compare", "a.jpg", "b.jpg", "--threshold", "-1"], "--threshold: must be a finite number > 0 and <= 2 (got -1)"),
    (["compare", "a.jpg", "b.jpg", "--threshold", "nan"], "--threshold: must be a finite number > 0 and <= 2 (got nan)"),
    (["compare", "a.jpg", "b.jpg", "--threshold", "3"], "--threshold: must be a finite number > 0 and <= 2 (got 3)"),
    (["events", "--count", "0"], "--count: must be a whole number >= 1 (got 0)"),
    (["events", "--count", "-1"], "--count: must be a whole number >= 1 (got -1)"),
    (["events", "--count", "2.5"], "--count: must be a whole number >= 1 (got '2.5')"),
    (["events", "--since", "nan"], "--since: must be a time between 1970 and the year 9999 (got nan)"),
    (["events", "--since", "1e400"], "--since: must be a time between 1970 and the year 9999 (got 1e400)"),
    (["events", "--since", "-5"], "--since: must be a time between 1970 and the year 9999 (got -5)"),
    (["events", "--since", "99999999999d"], "--since: must be a time between 1970 and the year 9999 (got 99999999999d)"),
    (["calibrate", "--images", "d", "--far", "0"], "--far: must be a finite number > 0 and < 1 (got 0)"),
    (["calibrate", "--images", "d", "--far", "nan"], "--far: must be a finite number > 0 and < 1 (got nan)"),
    (["calibrate", "--images", "d", "--open-set", "--track-length", "0"], "--track-length: must be a whole number >= 1 (got 0)"),
    (["calibrate", "--images", "d", "--open-set", "--draws", "-3"], "--draws: must be a whole number >= 1 (got -3)"),
    (["calibrate", "--images", "d", "--open-set", "--seed", "-1"], "--seed: must be a whole number >= 0 (got -1)"),
    (["demo", "--seconds", "0"], "--seconds: must be a finite number > 0 (got 0)"),
    (["demo", "--seconds", "inf"], "--seconds: must be a finite number > 0 (got inf)"),
    (["demo", "--http", "127.0.0.1:99999"], "--http: the port must be a whole number from 1 to 65535 (got '127.0.0.1:99999')"),
    (["detect", "x.jpg", "--threads", "0"], f"--threads: must be a whole number between 1 and {CORES} (got 0)"),
    (["detect", "x.jpg", "--threads", "100000"], f"--threads: must be a whole number between 1 and {CORES} (got 100000)"),
    (["detect", "x.jpg", "--min-face-size", "nan"], "--min-face-size: must be a finite number between 12 and 8192 (got nan)"),
    (["detect", "x.jpg", "--min-face-size", "3"], "--min-face-size: must be a finite number between 12 and 8192 (got 3)"),
    (["embed", "x.jpg", "--out", "x.npy", "--margin", "nan"], "--margin: must be a finite number between 0 and 1 (got nan)"),
    (["enroll", "x.jpg", "--name", "x", "--max-side", "0"], "--max-side: must be a whole number >= 1 (got 0)"),
    (["train", "--faces", "d", "--name", "n", "--epochs", "0"], "--epochs: must be a whole number >= 1 (got 0)"),
    (["train", "--faces", "d", "--name", "n", "--people", "1"], "--people: must be a whole number >= 2 (got 1)"),
    (["train", "--faces", "d", "--name", "n", "--photos", "1"], "--photos: must be a whole number >= 2 (got 1)"),
    (["train", "--faces", "d", "--name", "n", "--alpha", "0"], "--alpha: must be a finite number > 0 and <= 4 (got 0)"),
    (["train", "--faces", "d", "--name", "n", "--alpha", "nan"], "--alpha: must be a finite number > 0 and <= 4 (got nan)"),
    (["train", "--faces", "d", "--name", "n", "--train-blocks", "24"], "--train-blocks: must be a whole number between 0 and 23 (got 24)"),
    (["train", "--faces", "d", "--name", "n", "--learning-rate", "inf"], "--learning-rate: must be a finite number > 0 and <= 1 (got inf)"),
    (["train", "--faces", "d", "--name", "n", "--heldout", "1"], "--heldout: must be a finite number > 0 and < 1 (got 1)"),
    (["train", "--faces", "d", "--name", "n", "--crop-jitter", "1"], "--crop-jitter: must be a finite number >= 0 and < 1 (got 1)"),
    (["train", "--faces", "d", "--name", "n", "--brightness", "-0.1"], "--brightness: must be a finite number >= 0 and < 1 (got -0.1)"),
    (["bench", "models", "--duration", "nan"], "--duration: must be a finite number > 0 (got nan)"),
    (["bench", "models", "--rounds", "0"], "--rounds: must be a whole number >= 1 (got 0)"),
    (["bench", "models", "--min-face-sizes", "40,5"], "--min-face-sizes: must be a whole number between 12 and 8192 (got 5)"),
    (["bench", "models", "--size", "0x480"], "--size: expected WIDTHxHEIGHT, each from 1 to 8192 (got '0x480')"),
    (["bench", "pipeline", "--source", "x.mp4", "--streams", "0"], "--streams: must be a whole number between 1 and 256 (got 0)"),
    (["bench", "pipeline", "--source", "x.mp4", "--duration", "inf"], "--duration: must be a finite number > 0 (got inf)"),
    (["bench", "pipeline", "--source", "x.mp4", "--warmup", "-1"], "--warmup: must be a finite number >= 0 (got -1)"),
    (["bench", "transport", "--fps", "inf"], "--fps: must be a finite number > 0 (got inf)"),
    (["bench", "peers", "--source", "x.mp4", "--duration", "inf"], "--duration: must be a finite number > 0 (got inf)"),
    (["bench", "peers", "--source", "x.mp4", "--frames", "0"], "--frames: must be a whole number >= 1 (got 0)"),
    (["bench", "peers", "--source", "x.mp4", "--threads", "0"], f"--threads: must be a whole number between 1 and {CORES} (got 0)"),
]


@pytest.mark.parametrize("argv, says", REFUSED, ids=[" ".join(argv) for argv, _ in REFUSED])
def test_nonsense_is_refused_naming_the_option(capsys, argv: list[str], says: str):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()[-1:]
    assert line.endswith(f"error: argument {says}"), line


TAKEN = [
    ["compare", "a.jpg", "b.jpg", "--threshold", "2"],
    ["compare", "a.jpg", "b.jpg", "--threshold", "0.9"],
    ["events", "--count", "1"],
    ["events", "--since", "10m"],
    ["events", "--since", "2026-11-24T09:30"],
    ["events", "--since", "0"],
    ["calibrate", "--images", "d", "--far", "0.5"],
    ["calibrate", "--images", "d", "--open-set", "--track-length", "1", "--draws", "1", "--seed", "0"],
    ["demo", "--seconds", "0.5", "--http", "[::1]:8080"],
    ["detect", "x.jpg", "--threads", "1", "--min-face-size", "12", "--margin", "0", "--max-side", "1"],
    ["bench", "models", "--duration", "0.1", "--rounds", "1", "--min-face-sizes", "12,8192", "--size", "1x8192", "--threads", str(CORES)],
    ["bench", "pipeline", "--source", "x.mp4", "--streams", "256", "--warmup", "0", "--threads", "0"],
    ["bench", "transport", "--fps", "0.5", "--duration", "0.1", "--rounds", "1"],
    ["bench", "peers", "--source", "x.mp4", "--frames", "1", "--threads", "1"],
]


@pytest.mark.parametrize("argv", TAKEN, ids=" ".join)
def test_sensible_values_are_still_taken(argv: list[str]):
    build_parser().parse_args(argv)  # raises SystemExit if refused


@pytest.mark.parametrize("argv", [["compare", "a.jpg", "b.jpg", "--threshold", "-1"], ["events", "--count", "0"], ["events", "--since", "nan"]])
def test_as_a_real_process(argv: list[str]):
    result = run_cli(*argv, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"streamrec {argv[0]}: error: argument {argv[-2]}: must be")
