"""``streamrec demo``: the embedded default run, as a real process on a fresh data directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from streamrec.cli.demo import _http_address
from tests.conftest import cli_command, run_cli
from tests.support.ports import free_port


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


def _door_answers(address: str) -> bool:
    try:
        return urllib.request.urlopen(f"http://{address}/api/state", timeout=2).status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the demos of this module: the clip and watchlist are made once."""
    return tmp_path_factory.mktemp("demo")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_demo_forever_stopped_by_a_signal_leaves_nothing_running(demo_data: Path, how: signal.Signals):
    door = f"127.0.0.1:{free_port()}"
    log = demo_data / f"demo-{how.name}.log"
    with open(log, "w") as out:
        demo = subprocess.Popen([*cli_command(), "demo", "--forever", "--http", door], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "STREAMREC_DATA": str(demo_data)})
    try:
        deadline = time.monotonic() + 300
        while not _door_answers(door):
            assert demo.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        stages = json.loads((demo_data / "demo" / "run.json").read_text())["stages"].values()
        demo.send_signal(how)
        demo.wait(60)
        deadline = time.monotonic() + 40  # a killed demo's pipeline hears of it from the kernel, and stops cleanly
        while _processes_mentioning(str(demo_data)) or any(Path(f"/proc/{pid}").exists() for pid in stages):
            assert time.monotonic() < deadline, _processes_mentioning(str(demo_data))
            time.sleep(0.5)
        assert not _door_answers(door)
    finally:
        if demo.poll() is None:
            demo.kill()
    if how == signal.SIGTERM:  # handled like Ctrl-C: the run stopped cleanly, then the summary
        assert demo.returncode in (0, 1) and "Eileen Collins: " in log.read_text(), log.read_text()


def test_a_port_with_only_closed_connections_on_it_is_free():
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server's does
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        server.close()  # the side that closes first keeps the port in TIME_WAIT
        client.close()
    assert any(f":{port:04X} " in line and line.split()[3] == "06" for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
    assert _http_address(f"127.0.0.1:{port}") == f"127.0.0.1:{port}"
