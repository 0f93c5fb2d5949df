"""``streamrec events`` as a real process against a real ZeroMQ publisher that comes and goes."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
import time
from pathlib import Path

import zmq

from streamrec.bus.messages import EVENT_TYPES, Event
from streamrec.bus.sockets import Publisher
from tests.conftest import cli_command, run_cli


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def _next_line(lines: queue.Queue, timeout: float) -> str:
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line within {timeout:.0f} s") from None


def test_events_says_when_no_pipeline_publishes_and_keeps_waiting(tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    waiting = f"streamrec: no pipeline is publishing on {address}; waiting"
    process = subprocess.Popen([*cli_command(), "events", "--json", "--address", address, "--data-dir", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout: queue.Queue[str] = queue.Queue()
    stderr: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, stdout), daemon=True).start()
    threading.Thread(target=_lines, args=(process.stderr, stderr), daemon=True).start()
    ctx = zmq.Context()
    try:
        assert _next_line(stderr, 30) == waiting
        assert process.poll() is None  # still waiting
        publisher = Publisher(ctx, address, EVENT_TYPES, hwm=100)  # a pipeline starts
        deadline = time.monotonic() + 30
        while stdout.empty():
            assert time.monotonic() < deadline, "nothing received from the publisher"
            publisher.send("match", Event("match", "cam", time.time(), track_id=1, name="Ann"))
            time.sleep(0.1)
        assert '"name": "Ann"' in stdout.get()
        assert stderr.empty()  # not said again while it waited, nor once connected
        publisher.close()  # ... and stops: said again, once
        assert _next_line(stderr, 30) == waiting
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(10)
        ctx.destroy(linger=0)
    remaining = []
    while not stderr.empty():
        remaining.append(stderr.get())
    assert waiting not in remaining  # once per time without a publisher, not over and over


def test_access_events_read_as_a_line_each():
    from streamrec.bus.messages import Event
    from streamrec.cli.events import format_event

    common = {"track_id": 3, "person_id": "ann", "name": "Ann", "direction": "left"}
    asked = format_event(Event("access", "door", 1e9, result="challenge", **common).to_json())
    denied = format_event(Event("access", "door", 1e9, result="denied", reason="no_movement", detail="moved 1 deg", **common).to_json())
    assert asked.endswith("access        door track 3: Ann asked to turn left")
    assert denied.endswith("access        door track 3: Ann denied (no_movement): moved 1 deg")


def test_replaying_a_missing_data_dir_is_refused(tmp_path: Path):
    missing = tmp_path / "nosuch"
    result = run_cli("events", "--since", "1d", "--no-follow", "--data-dir", str(missing))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"streamrec: error: no data directory {missing}: no journal to replay"]
    assert not missing.exists()
