"""The supervisor's own input, its stats socket, as every stage sees it: a real supervisor
process with a real stage process, and hostile reports sent to it over real ZeroMQ sockets.

One deeply nested message there once ended the whole run at once (an internal error), and so
did a report with text where a counter belongs (in the status line)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import zmq

from streamrec.bus.messages import StageStats
from streamrec.bus.sockets import Endpoints, new_run_dir, push_socket, receive, send, sub_socket
from streamrec.config.model import RunConfig, SourceConfig
from streamrec.pipeline.stage import Stage
from streamrec.pipeline.supervisor import Supervisor


class Idle(Stage):
    """A stage that only reports its counters."""

    name = "inference"

    def step(self) -> bool:
        time.sleep(0.05)  # the stage's own pace, not a synchronisation
        return True


def _supervise(data_dir: Path, run_dir: Path) -> None:
    """A supervisor of one stage, as ``streamrec run`` starts it (status line included)."""
    config = RunConfig(sources=[SourceConfig(url="0", name="cam")])
    endpoints = Endpoints.for_run(run_dir, "ipc://unused-events", "ipc://unused-jpeg")
    supervisor = Supervisor(config, data_dir, {"inference": lambda: Idle(endpoints.stats)}, endpoints, run_dir)
    raise SystemExit(supervisor.run())


def test_hostile_reports_are_counted_and_the_run_goes_on(tmp_path: Path):
    run_dir = new_run_dir()
    process = multiprocessing.get_context("spawn").Process(target=_supervise, args=(tmp_path, run_dir))
    process.start()
    ctx = zmq.Context()
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "run.json").exists():
            assert process.is_alive() and time.monotonic() < deadline, "the supervisor did not start"
            time.sleep(0.05)
        stages = json.loads((tmp_path / "run.json").read_text())["stages"]
        endpoints = Endpoints.for_run(run_dir, "ipc://unused-events", "ipc://unused-jpeg")
        monitor = sub_socket(ctx, endpoints.monitor, accepts=StageStats)
        reports = push_socket(ctx, endpoints.stats)
        hostile = [
            [b"x", b"[" * 100_000],
            [b"stats", b'{"v":1,"kind":"stats","stage":"inference","pid":1,"ts":1,"counters":{"skipped[cam]":"x"}}'],
            [b"stats", b'{"v":1,"kind":"stats","stage":"inference","pid":1,"ts":1,"gauges":{"fps[cam]":"fast"}}'],
            [b"stats", b'{"v":1,"kind":"stats","stage":"inference","pid":1,"ts":1,"latencies":{"detect":[1,[2]]}}'],
            [b"stats", b"\x00" * 1000],
            [b"stats"],
        ]
        for parts in hostile:
            reports.send_multipart(parts)
        send(reports, "stats", StageStats("ghost", 1, time.time(), {"faces": 1}))  # well-formed, from no stage of this run
        deadline = time.monotonic() + 30
        while True:
            assert process.is_alive(), f"the supervisor ended (status {process.exitcode})"
            assert time.monotonic() < deadline, "no report of the supervisor counting them"
            if monitor.poll(200):
                report = receive(monitor, expect=StageStats)[1]
                assert isinstance(report, StageStats)
                if report.stage == "supervisor" and report.counters["malformed_stats"] == len(hostile):
                    break
        assert report.counters["malformed_messages"] == len(hostile) and report.counters["stats_unknown_stage"] == 1
        assert json.loads((tmp_path / "run.json").read_text())["stages"] == stages  # no stage restarted
    finally:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
        process.join(30)
        ctx.destroy(linger=0)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert process.exitcode == 0
