"""What strangers can make a publishing stage hold: a real events stage process publishing on
TCP, hostile subscribers in processes of their own, and a well-behaved subscriber beside them.

libzmq keeps subscriptions in a trie that allocates per byte and subscriber; before the
publisher bounded them, one 10 MB subscription took a stage from about 100 MB to over 500 MB,
and thousands of random ones grew it by hundreds of megabytes more."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq

from streamrec.bus.messages import Event, StageStats
from streamrec.bus.sockets import (
    MAX_SUBSCRIBERS,
    DropLog,
    Endpoints,
    new_run_dir,
    pull_socket,
    push_socket,
    receive,
    send,
    sub_socket,
)
from streamrec.events.stage import EventsStage
from tests.render.frames import start_stage, stop_stage
from tests.support.attack import peak_rss, rss_mb, start_attacker, stop_attacker
from tests.support.ports import free_port
from tests.support.wait import wait_until

GROWTH_LIMIT_MB = 100  #: what subscribers may add to the publisher's resident memory


@dataclass
class Publishing:
    """An events stage as a process, fed events 50 times a second by a thread of the test, and a
    well-behaved subscriber to ``match`` counting what it receives."""

    endpoints: Endpoints
    pid: int
    received: list[float] = field(default_factory=list)  #: monotonic times the good subscriber got an event
    stop: threading.Event = field(default_factory=threading.Event)

    def received_between(self, start: float, end: float) -> int:
        return sum(start <= at < end for at in list(self.received))

    def feed(self) -> None:
        ctx = zmq.Context()
        try:
            producer = push_socket(ctx, self.endpoints.events_in, linger_ms=0)
            good = sub_socket(ctx, self.endpoints.events_pub, ["match"], accepts=Event)
            while not self.stop.is_set():
                send(producer, "match", Event("match", "door", time.time(), track_id=1, name="Ann"))
                while good.poll(20):
                    receive(good, expect=Event)
                    self.received.append(time.monotonic())
        finally:
            ctx.destroy(linger=0)

    def report(self, stats: zmq.Socket, timeout_s: float = 20.0) -> StageStats:
        """The stage's next statistics report."""
        assert stats.poll(int(timeout_s * 1000)), "no statistics report"
        report = receive(stats, expect=StageStats)[1]
        assert isinstance(report, StageStats)
        return report


@pytest.fixture()
def publishing(tmp_path: Path) -> Iterator[tuple[Publishing, zmq.Socket]]:
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"tcp://127.0.0.1:{free_port()}", "ipc://unused")
    ctx = zmq.Context()
    stats = pull_socket(ctx, endpoints.stats, accepts=StageStats)
    process = start_stage(EventsStage(endpoints, tmp_path / "events", tmp_path / "events.log"))
    assert process.pid is not None
    running = Publishing(endpoints, process.pid)
    feeder = threading.Thread(target=running.feed, daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 30
        while len(running.received) < 20:  # the good subscriber is subscribed and served
            assert time.monotonic() < deadline and process.is_alive(), "the good subscriber receives nothing"
            time.sleep(0.05)
        yield running, stats
    finally:
        running.stop.set()
        feeder.join(10)
        assert process.is_alive(), f"the events stage died (status {process.exitcode})"
        stop_stage(process)
        ctx.destroy(linger=0)
        shutil.rmtree(run_dir)


@pytest.mark.parametrize(
    "mode, count",
    [("big", 10_000_000), ("many", 60_000), ("connections", MAX_SUBSCRIBERS + 100)],
    ids=["one 10 MB subscription", "60,000 random subscriptions", "too many connections"],
)
def test_subscribers_cannot_make_a_publisher_hold_more_than_its_bound(publishing, mode: str, count: int):
    running, stats = publishing
    baseline = rss_mb(running.pid)
    with peak_rss([running.pid]) as peaks:
        attacked = time.monotonic()
        attacker = start_attacker(running.endpoints.events_pub, mode, count)
        try:
            time.sleep(5)  # the attack goes on; memory is sampled meanwhile
            during = running.received_between(attacked, time.monotonic())
        finally:
            stop_attacker(attacker)
        over = time.monotonic()
        deadline = over + 10
        while running.received_between(over, deadline) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    growth = peaks[running.pid] - baseline
    assert growth < GROWTH_LIMIT_MB, f"{mode}: the publisher grew by {growth:.0f} MB (from {baseline:.0f} MB)"
    # while more connections than it keeps come back again and again, it drops them all again and again
    assert during > 0 or mode == "connections", f"{mode}: the well-behaved subscriber received nothing during the attack"
    assert running.received_between(over, deadline) >= 20, f"{mode}: the well-behaved subscriber stopped receiving"
    if mode != "big":  # an oversized subscription ends its connection in ZeroMQ, before the stage sees it
        reports: list[StageStats] = []

        def resets_counted() -> bool:
            reports.append(running.report(stats))
            return reports[-1].counters.get("publisher_resets_events", 0) > 0

        wait_until(resets_counted, 30, lambda: f"{mode}: no publisher reset in the stage's statistics "
                   f"({reports[-1].counters if reports else 'no report'})")
        assert reports[-1].counters.get("subscriptions_refused_events", 0) > 0 or mode == "connections"


def test_warnings_about_drops_are_one_line_per_trouble_and_interval(caplog: pytest.LogCaptureFixture):
    drops = DropLog(logging.getLogger("test.drops"), interval_s=0.2)
    with caplog.at_level(logging.WARNING, logger="test.drops"):
        for index in range(1000):
            drops.dropped("malformed message(s) on status", 1, f"bad {index}")
            drops.dropped("malformed message(s) on frames", 2, "worse")
        assert [r.getMessage() for r in caplog.records] == [
            "dropped 1 malformed message(s) on status; the last: bad 0",
            "dropped 2 malformed message(s) on frames; the last: worse",
        ]
        deadline = time.monotonic() + 5
        while len(caplog.records) < 4 and time.monotonic() < deadline:
            drops.flush()
        lines = [r.getMessage() for r in caplog.records[2:]]
    assert len(lines) == 2 and lines[0].startswith("dropped 999 malformed message(s) on status in the last")
    assert lines[0].endswith("the last: bad 999") and lines[1].startswith("dropped 1998 malformed message(s) on frames")
