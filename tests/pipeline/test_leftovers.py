"""What a run killed with SIGKILL leaves behind (its run directory in /dev/shm with the frame
rings, its ``run.json``) is removed by the next ``streamrec run``, which says so; a live run's
directory is never touched, and its data directory is refused to a second pipeline."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

from streamrec.events.journal import read_journal
from streamrec.events.tracks import DECISIONS
from tests.conftest import cli_command, run_cli
from tests.support.ports import free_port


def _outputs() -> list[str]:
    return ["--http", "", "--events", f"tcp://127.0.0.1:{free_port()}", "--frames", f"tcp://127.0.0.1:{free_port()}"]


def _start(source: Path, data_dir: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([*cli_command(), "run", "--source", str(source), "--loop", "--data-dir", str(data_dir), *_outputs()],
                                stdout=out, stderr=subprocess.STDOUT)


def _state_with_rings(data_dir: Path, process: subprocess.Popen, log: Path) -> dict:
    """``run.json`` once the run's camera ring is in its run directory."""
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        try:
            state = json.loads((data_dir / "run.json").read_text())
        except (OSError, ValueError):
            state = None
        if state and any(Path(state["run_dir"]).glob("ring-*")):
            return state
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_what_a_killed_run_left_is_removed_by_the_next_and_a_live_run_is_untouched(hamilton_clip: Path, tmp_path: Path):
    live_data, killed_data = tmp_path / "live", tmp_path / "killed"
    live = _start(hamilton_clip, live_data, tmp_path / "live.log")
    killed = _start(hamilton_clip, killed_data, tmp_path / "killed.log")
    try:
        live_state = _state_with_rings(live_data, live, tmp_path / "live.log")
        killed_state = _state_with_rings(killed_data, killed, tmp_path / "killed.log")
        deadline = time.monotonic() + 120
        while not any(e["type"] in DECISIONS for e in read_journal(killed_data / "events")):  # a track is open
            assert time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
            time.sleep(0.2)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert Path(killed_state["run_dir"]).is_dir() and (killed_data / "run.json").exists()  # leaked

        again = run_cli("run", "--source", "7", "--data-dir", str(killed_data), *_outputs(), timeout=60)  # starts, then fails: no camera 7
        lines = [line for line in again.stderr.splitlines() if "left behind" in line]
        assert len(lines) == 1, again.stderr
        expected = f"streamrec: removed what a previous run (pid {killed_state['pid']}) left behind: {killed_state['run_dir']} ("
        assert lines[0].startswith(expected), lines
        size = re.search(r"\((\d+\.\d) MB\), (.*)$", lines[0])
        assert size and float(size.group(1)) >= 8.3 and size.group(2) == str(killed_data / "run.json"), lines  # 12 slots of 640x360
        assert not Path(killed_state["run_dir"]).exists()
        assert not any(_alive(pid) for pid in killed_state["stages"].values())
        assert again.returncode == 1 and "Traceback" not in again.stderr
        journal = list(read_journal(killed_data / "events"))  # the stages it left ended their tracks, and journaled that
        ends = {e["track_id"] for e in journal if e["type"] == "track_end"}
        assert {e["track_id"] for e in journal if e["type"] in DECISIONS} <= ends, (tmp_path / "killed.log").read_text()[-6000:]

        assert live.poll() is None and Path(live_state["run_dir"]).is_dir()
        assert json.loads((live_data / "run.json").read_text()) == live_state
        second = run_cli("run", "--source", "7", "--data-dir", str(live_data), *_outputs(), timeout=60)
        assert second.returncode == 1
        assert f"streamrec: error: another pipeline (pid {live_state['pid']}) is running with the data directory {live_data}" in second.stderr
        assert live.poll() is None and json.loads((live_data / "run.json").read_text()) == live_state
    finally:
        for process in (live, killed):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    assert live.returncode == 0
    assert not Path(live_state["run_dir"]).exists() and not (live_data / "run.json").exists()

