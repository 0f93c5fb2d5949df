"""``streamrec run`` on inputs that end or fail: a file that ends, a camera that does not exist,
a URL nobody serves, bad configuration. Each gets a clear message, and nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from streamrec.backends.cpu import cpu_info
from streamrec.events.journal import read_journal
from tests.conftest import cli_command, run_cli
from tests.pipeline.conftest import enroll_people, quiet_outputs
from tests.support.ports import free_port


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("streamrec: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_file_that_ends_flushes_its_events_and_exits_0(hamilton_clip: Path, faces_dir: Path, models, tmp_path: Path):
    enroll_people(faces_dir, tmp_path, models)
    result = run_cli("run", "--source", str(hamilton_clip), "--fast", "--data-dir", str(tmp_path), *quiet_outputs(), timeout=300)
    assert result.returncode == 0, result.stderr
    events = list(read_journal(tmp_path / "events"))
    matches = [e for e in events if e["type"] == "match"]
    assert "lin_manuel_miranda" in {e["name"] for e in matches}
    ended = {e["track_id"] for e in events if e["type"] == "track_end"}
    assert {e["track_id"] for e in matches} <= ended  # every decided track was closed at the end
    # capture_ts is when the frame was read, not the file's time line, which --fast runs ahead of
    assert matches and all(0 <= e["ts"] - e["capture_ts"] < 60 for e in matches), [(e["ts"], e["capture_ts"]) for e in matches]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] in ("track_end", "source_status")


def test_a_camera_that_does_not_exist_is_a_clear_error(tmp_path: Path):
    result = run_cli("run", "--source", "7", "--data-dir", str(tmp_path), *quiet_outputs(), timeout=120)
    assert result.returncode == 1
    assert "cannot open camera index 7 (no such camera, or it is in use)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    failed = [e for e in read_journal(tmp_path / "events") if e["type"] == "source_status"]
    assert failed and "7" in failed[-1]["source"]


def test_a_dead_url_is_retried_until_sigterm(tmp_path: Path):
    url = f"rtsp://127.0.0.1:{free_port()}/nobody"
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        process = subprocess.Popen([*cli_command(), "run", "--source", url, "--data-dir", str(tmp_path), *quiet_outputs()], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        retries: list[dict] = []
        while len(retries) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
            retries = [e for e in read_journal(tmp_path / "events") if e["type"] == "source_status" and e["detail"].startswith("reconnecting")]
            assert process.poll() is None, log.read_text()
        assert len(retries) >= 3, log.read_text()  # still trying, not given up, not crashed
        stages = [int(pid) for pid in json.loads((tmp_path / "run.json").read_text())["stages"].values()]
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(30)
    assert status == 0, log.read_text()
    assert not any(_alive(pid) for pid in stages)
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ('[detector]\nmin_face_sise = 40\n', "detector.min_face_sise"),
        ('[tracker]\nmax_missed_s = "soon"\n', "tracker.max_missed_s"),
        ('[[sources]]\nurl = "0"\nfps = -5\n', "fps"),
        ("[pipeline\n", "line 1"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, config: str, named: str):
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = run_cli("run", "--config", str(path), "--source", "0", "--data-dir", str(tmp_path), timeout=60)
    assert result.returncode != 0
    assert named in _one_error_line(result.stderr)
    assert not (tmp_path / "run.json").exists()  # nothing was started


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ([], "no sources"),
        (["--source", "/no/such/clip.mp4"], "/no/such/clip.mp4"),
        (["--source", "ftp://example.invalid/x"], "ftp"),
        (["--source", "rtsp://camera.invalid/" + "x" * 300], "characters, at most 200: give it a shorter name"),
    ],
)
def test_unusable_sources_say_why(tmp_path: Path, arguments: list[str], says: str):
    result = run_cli("run", *arguments, "--data-dir", str(tmp_path), timeout=60)
    assert result.returncode != 0
    assert says in _one_error_line(result.stderr)


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("photo.jpg", None, "photo.jpg: a JPEG still image, not a video: use `streamrec detect` or `streamrec enroll` for photos"),
        ("text.jpg", b"not a photo\n", "text.jpg: not a readable video (unsupported format or corrupt file)"),
    ],
)
def test_a_photo_or_a_file_named_like_one_is_refused_in_one_line_before_anything_starts(
    faces_dir: Path, tmp_path: Path, name: str, content: bytes | None, says: str
):
    source = tmp_path / name
    source.write_bytes(content if content is not None else (faces_dir / "barack_obama" / "1.jpg").read_bytes())
    data = tmp_path / "data"
    result = run_cli("run", "--source", str(source), "--data-dir", str(data), *quiet_outputs(), timeout=120)
    assert result.returncode == 1
    assert says in _one_error_line(result.stderr)
    assert len(result.stderr.splitlines()) == 1, result.stderr  # not a word from OpenCV or FFmpeg
    assert not data.exists()  # nothing was started


def _inference_refusals() -> list[tuple[str, list[str], str]]:
    """(configuration file, options, what the error line says) for inference this machine cannot run."""
    import torch

    cases = [
        ("", ["--backend", "onnxruntime", "--precision", "fp16"],
         "--backend, --precision: the onnxruntime backend runs fp32 and int8 only (got precision 'fp16')"),
        ('[pipeline]\nbackend = "onnxruntime"\ndevice = "cuda:1"\n', [],
         "pipeline: the onnxruntime backend runs on the CPU only (got device 'cuda:1')"),
        ("", ["--backend", "torch", "--device", "tpu"], "--backend, --device: unknown device 'tpu'; use cpu, cuda or cuda:N"),
    ]
    if not torch.cuda.is_available():
        cases.append(("", ["--backend", "torch", "--device", "cuda"], "device 'cuda': no CUDA device is visible"))
        # what auto would take is not here: the line says what was tried and why each was passed over
        cases.append(("", ["--precision", "fp16"], "--precision: nothing here runs backend auto precision fp16: "))
    if not cpu_info().bf16:
        cases.append(('[pipeline]\nbackend = "torch"\nprecision = "bf16"\n', [], "pipeline: bf16 needs a CPU with AVX-512 BF16 or AMX"))
    return cases


@pytest.mark.parametrize(("config", "options", "says"), _inference_refusals())
def test_inference_this_machine_cannot_run_is_one_line_before_anything_starts(
    hamilton_clip: Path, tmp_path: Path, config: str, options: list[str], says: str
):
    path = tmp_path / "door.toml"
    path.write_text(config)
    result = run_cli("run", "--config", str(path), "--source", str(hamilton_clip), "--data-dir", str(tmp_path), *options,
                     *quiet_outputs(), timeout=120)
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert line.startswith("streamrec: error: ") and says in line, line
    assert (str(path) in line) == (not options)  # named by the file, or by the options that set it
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "events").exists()  # nothing was started
