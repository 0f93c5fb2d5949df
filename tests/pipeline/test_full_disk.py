"""``streamrec run`` with its data directory on a real, small filesystem that fills up while it
runs: a stage crash on the full disk is survived, logging to the full disk crashes nothing, and
every event published meanwhile reaches the journal once there is room again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from streamrec.events.journal import read_journal
from tests.conftest import cli_command
from tests.pipeline.conftest import Events, enroll_people
from tests.support.disk import small_disk
from tests.support.ports import free_port


def _wait(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s; log:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def _started(log: Path, stage: str) -> list[int]:
    """The pids the supervisor reported starting ``stage`` with, in order."""
    return [int(pid) for pid in re.findall(rf"started {re.escape(stage)} \(pid (\d+)\)", log.read_text())]


def test_a_stage_crash_on_a_full_disk_is_survived_and_no_event_is_lost(hamilton_clip: Path, faces_dir: Path, models, tmp_path: Path):
    with small_disk(tmp_path, "8m") as disk:
        data = disk.path / "data"
        enroll_people(faces_dir, data, models)
        log = tmp_path / "run.log"
        events_address = f"tcp://127.0.0.1:{free_port()}"
        with open(log, "w") as out:
            run = subprocess.Popen(
                [*cli_command(), "run", "--source", str(hamilton_clip), "--loop", "--data-dir", str(data), "--http", "",
                 "--events", events_address, "--frames", f"tcp://127.0.0.1:{free_port()}"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        _wait(lambda: (data / "run.json").exists() or run.poll() is not None, 120, "run.json", log)
        subscriber = subprocess.Popen(
            [*cli_command(), "events", "--json", "--since", "1d", "--data-dir", str(data), "--address", events_address],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        events = Events(subscriber)
        try:
            events.wait_for(lambda e: e["type"] == "source_status" and e["detail"].startswith("open"), timeout=120)
            disk.fill()
            disk.fill_last_page(data / "logs" / "streamrec.log")
            os.kill(_started(log, "render")[-1], signal.SIGKILL)
            _wait(lambda: len(_started(log, "render")) == 2, 30, "render restarted", log)
            _wait(lambda: "cannot write the event journal" in log.read_text(), 120, "the journal found the disk full", log)
            seq = events.last_seq
            events.wait_for(lambda e: e["type"] in ("match", "unknown", "track_end"), timeout=60, after_seq=seq)
            assert run.poll() is None, log.read_text()
            disk.free()
            received = events.last_seq
            _wait(lambda: any(e["seq"] >= received for e in read_journal(data / "events")), 30, "backlog written", log)
            new_render = _started(log, "render")[-1]
            _wait(lambda: json.loads((data / "run.json").read_text())["stages"]["render"] == new_render, 30, "run.json", log)
            run.send_signal(signal.SIGTERM)
            assert run.wait(60) == 0, log.read_text()
        finally:
            for process in (subscriber, run):
                if process.poll() is None:
                    process.kill()
                    process.wait()
        journal = list(read_journal(data / "events"))
        assert [e["seq"] for e in journal] == list(range(1, len(journal) + 1))  # none lost, none twice
        published = {e["seq"]: e for e in events.received}
        assert all(journal[seq - 1] == event for seq, event in published.items())
    text = log.read_text()
    assert "Traceback" not in text and "Logging error" not in text, text
    complaints = re.findall(r"(\S+\[\d+\]): cannot write the log file", text)
    assert complaints and len(complaints) == len(set(complaints)), complaints  # once per process, not per line
    assert len(re.findall(r"cannot write .*run\.json", text)) == 1, text
    assert len(re.findall(r"cannot keep face crops", text)) <= 1, text  # once, not once per face
    assert "internal error" not in text
