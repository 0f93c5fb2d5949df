"""``streamrec demo``: the embedded default run, as a real process on a fresh data directory."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from tests.conftest import run_cli


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command:
                found.append(command)
    return found


def test_demo_recognises_the_enrolled_astronaut_and_no_one_else(tmp_path: Path):
    env = {**os.environ, "STREAMREC_DATA": str(tmp_path)}
    with socket.socket() as taken:  # the door display moves to a free port rather than failing
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("demo", "--seconds", "14", "--json", "--http", f"127.0.0.1:{port}", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{port} is taken" in result.stderr
    report = json.loads(result.stdout)
    assert report["recognised"] and report["named"]["Eileen Collins"] >= 1 and report["wrongly_named"] == []
    assert report["unknown_decisions"] >= 1  # Grace Hopper is in the clip, not in the watchlist
    opened = [e for e in report["events"] if e["type"] == "source_status" and e["detail"].startswith("open")]
    assert opened and report["door"].startswith("http://127.0.0.1:") and f":{port}/" not in report["door"]
    assert (tmp_path / "demo" / "watchlist.sqlite3").is_file()
    assert _processes_mentioning(str(tmp_path)) == []  # the pipeline is gone, stages included
