"""``streamrec run`` refuses a bad configuration value or option value before it starts anything:
one ``streamrec: error:`` line naming the file (or the option), the key and the value, exit 1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamrec.backends import default_threads
from tests.cli.test_bad_input import _no_traceback
from tests.config.test_found_faults import FOUND, NAMES
from tests.conftest import run_cli
from tests.pipeline.conftest import quiet_outputs
from tests.support.clips import tiny_clip
from tests.support.ports import free_port

GARBAGE_ENDPOINT = ('must be tcp://HOST:PORT (HOST an IPv4 address, * for every interface, or a host name) or '
                    'ipc://PATH (got "garbage")')


def _run(tmp_path: Path, *arguments: str):
    """``streamrec run`` on a video file that is not there: a configuration problem must be
    reported before the sources are even looked at."""
    result = run_cli("run", "--source", str(tmp_path / "no-such-clip.mp4"), "--data-dir", str(tmp_path / "data"),
                     *arguments, timeout=60)
    _no_traceback(result)
    return result


@pytest.mark.parametrize("content, line", FOUND, ids=NAMES)
def test_bad_file_values_stop_run_before_anything_starts(tmp_path: Path, content: bytes, line: str):
    path = tmp_path / "door.toml"
    path.write_bytes(content)
    result = _run(tmp_path, "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"streamrec: error: {path}: {line}"]
    assert not (tmp_path / "data").exists()  # nothing started, not even the data directory


@pytest.mark.parametrize(
    "arguments, line",
    [
        (["--threads", "100000"], (f"--threads: must be a whole number between 0 and {default_threads()}, the cores this "
         "process may use (got 100000)")),
        (["--threads", "-1"], "--threads: must be a whole number from 0 to the number of cores this process may use (got -1)"),
        (["--min-face-size", "nan"], "--min-face-size: must be a finite number between 12 and 8192 (got nan)"),
        (["--http", "127.0.0.1:99999"], '--http: the port must be a whole number from 1 to 65535 (got "127.0.0.1:99999")'),
        (["--events", "garbage"], f"--events: {GARBAGE_ENDPOINT}"),
        (["--frames", "garbage"], f"--frames: {GARBAGE_ENDPOINT}"),
        (["--events", "tcp://127.0.0.1:5599", "--frames", "tcp://127.0.0.1:5599"],
         '--frames: binds the same address as events (tcp://127.0.0.1:5599) (got "tcp://127.0.0.1:5599")'),
        (["--fps", "inf"], "--fps: must be a finite number between 0 and 1000 (got inf)"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_bad_option_values_are_checked_like_the_file(tmp_path: Path, arguments: list[str], line: str):
    result = _run(tmp_path, *arguments)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"streamrec: error: {line}"]
    assert not (tmp_path / "data").exists()


def test_an_option_that_breaks_a_rule_of_the_file(tmp_path: Path):
    path = tmp_path / "door.toml"
    path.write_text('[outputs]\nframes = "tcp://127.0.0.1:5599"\n')
    result = _run(tmp_path, "--config", str(path), "--http", "127.0.0.1:5599")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        'streamrec: error: --http: binds the same address as frames (tcp://127.0.0.1:5599) (got "127.0.0.1:5599")']


def test_two_sources_with_one_name(tmp_path: Path):
    result = run_cli("run", "--source", str(tmp_path / "a" / "door.mp4"), "--source", str(tmp_path / "b" / "door.mp4"),
                     "--data-dir", str(tmp_path / "data"), timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        ("streamrec: error: --source: sources[1].name: sources[0] has the same name (names derive from the URL where "
        'none is given): give each source its own name (got "door")')]


def test_a_precision_that_does_not_exist(tmp_path: Path):
    result = _run(tmp_path, "--precision", "fp8")
    assert result.returncode == 2 and "argument --precision: invalid choice: 'fp8'" in result.stderr


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A short video that plays: `run` checks a file source before anything else, and these
    tests are about what it checks next."""
    return tiny_clip(tmp_path / "clip.mp4")


def test_an_output_beyond_this_machine_gets_one_warning_before_the_start(tmp_path: Path, clip: Path):
    added = run_cli("users", "add", "ann", "--password-stdin", "--data-dir", str(tmp_path / "data"),
                    input="a long password\n", timeout=60)
    assert added.returncode == 0, added.stderr  # beyond this machine someone must be able to log in
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run_cli("run", "--source", str(clip), "--data-dir", str(tmp_path / "data"), "--http", f"0.0.0.0:{free_port()}",
                         "--events", f"tcp://127.0.0.1:{busy}", "--frames", f"tcp://127.0.0.1:{free_port()}", timeout=60)
    _no_traceback(result)
    warning, error = result.stderr.splitlines()
    assert warning.startswith("streamrec: warning: outputs.http binds 0.0.0.0:") and "beyond this machine" in warning
    assert "without TLS" in warning and "set [auth] tls_cert and tls_key" in warning
    # the check that the port is free comes after the warning, and nothing starts
    assert error == f"streamrec: error: outputs.events: cannot listen on tcp://127.0.0.1:{busy} (Address already in use)"
    assert result.returncode == 1 and not (tmp_path / "data" / "run.json").exists()


def test_a_link_on_a_port_in_use_stops_run_in_one_line(tmp_path: Path, clip: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        (tmp_path / "links.toml").write_text(f'[links]\nstatus = "tcp://127.0.0.1:{busy}"\n')
        result = run_cli("run", "--source", str(clip), "--config", str(tmp_path / "links.toml"), "--data-dir", str(tmp_path / "data"),
                         *quiet_outputs(), timeout=60)
    _no_traceback(result)
    assert result.stderr.splitlines() == [f"streamrec: error: links.status: cannot listen on tcp://127.0.0.1:{busy} (Address already in use)"]
    assert result.returncode == 1 and not (tmp_path / "data" / "run.json").exists()


def test_an_ipc_socket_in_a_missing_folder(tmp_path: Path, clip: Path):
    address = f"ipc://{tmp_path}/no/such/events"
    result = run_cli("run", "--source", str(clip), "--data-dir", str(tmp_path / "data"), "--http", "", "--events", address, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"streamrec: error: outputs.events: cannot bind {address}: no folder {tmp_path}/no/such"]
