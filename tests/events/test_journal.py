"""The event journal and the events stage, over real files and real ZeroMQ sockets."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import zmq

from streamrec.bus.messages import Event
from streamrec.bus.sockets import Endpoints, new_run_dir, push_socket, receive, send, sub_socket
from streamrec.events.journal import Journal, read_journal
from streamrec.events.stage import EventsStage


def _next(subscriber: zmq.Socket) -> Event:
    assert subscriber.poll(5000), "nothing published"
    message = receive(subscriber)[1]
    assert isinstance(message, Event)
    return message


def _event(i: int, ts: float | None = None) -> dict:
    return Event("match", "cam", ts if ts is not None else 1_700_000_000.0 + i, track_id=i, name="Ann").to_json()


def test_numbers_continue_across_restarts_and_partial_lines_are_skipped(tmp_path: Path):
    journal = Journal(tmp_path)
    written = journal.append([_event(i) for i in range(3)])
    assert [e["seq"] for e in written] == [1, 2, 3]
    path = next(tmp_path.glob("events-*.jsonl"))
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 4, "type": "mat')  # a crash in the middle of a line
    reopened = Journal(tmp_path)
    assert reopened.seq == 3
    assert [e["seq"] for e in reopened.append([_event(9)])] == [4]
    assert [e["seq"] for e in read_journal(tmp_path)] == [1, 2, 3]  # the cut line hides what follows it


def test_read_since_and_after(tmp_path: Path):
    journal = Journal(tmp_path)
    journal.append([_event(i, ts=1_700_000_000.0 + 86400 * i) for i in range(3)])  # three UTC days
    assert len(list(tmp_path.glob("events-*.jsonl"))) == 3
    assert [e["seq"] for e in read_journal(tmp_path, since_ts=1_700_000_000.0 + 86400)] == [2, 3]
    assert [e["seq"] for e in read_journal(tmp_path, after_seq=2)] == [3]


def test_a_full_disk_loses_nothing(tmp_path: Path):
    journal = Journal(tmp_path)
    day = time.strftime("%Y%m%d", time.gmtime(1_700_000_000.0))
    (tmp_path / f"events-{day}.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    numbered = journal.number([_event(0)])
    with pytest.raises(OSError) as caught:
        journal.write(numbered)
    assert caught.value.errno == 28
    (tmp_path / f"events-{day}.jsonl").unlink()
    journal.write(numbered)  # the disk has room again: the same events, same numbers
    assert [e["seq"] for e in read_journal(tmp_path)] == [1]


@pytest.fixture()
def events_stage(tmp_path: Path):
    """An events stage driven step by step in this process, on real sockets."""
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/pub", "ipc://unused")
    stage = EventsStage(endpoints, tmp_path / "events")
    stage.ctx = zmq.Context()
    stage.setup()
    producer = push_socket(stage.ctx, endpoints.events_in)
    subscriber = sub_socket(stage.ctx, endpoints.events_pub, ["match", "track_end"])
    time.sleep(0.2)  # let the subscription reach the publisher
    yield stage, producer, subscriber
    stage.teardown()
    stage.ctx.destroy(linger=0)
    shutil.rmtree(run_dir)


def test_events_are_journaled_and_published_by_topic(events_stage, tmp_path: Path):
    stage, producer, subscriber = events_stage
    for kind in ("match", "unknown", "track_end"):
        send(producer, kind, Event(kind, "cam", time.time(), track_id=1, capture_ts=time.time() - 0.05))
    producer.send_multipart([b"match", b"{broken"])
    deadline = time.monotonic() + 5
    while (stage.counters.get("journaled", 0) < 3 or not stage.counters.get("malformed_events")) and time.monotonic() < deadline:
        stage.step()
    received = [_next(subscriber) for _ in range(2)]
    assert [e.type for e in received] == ["match", "track_end"]  # filtered by topic
    assert [e.seq for e in received] == [1, 3]
    assert stage.counters["malformed_events"] == stage.counters["malformed_messages"] == 1
    assert [e["type"] for e in read_journal(tmp_path / "events")] == ["match", "unknown", "track_end"]
    assert 0 < stage.latencies["capture_to_event"][0] < 5


def test_events_stage_keeps_publishing_when_the_disk_is_full(events_stage, tmp_path: Path):
    stage, producer, subscriber = events_stage
    day = time.strftime("%Y%m%d", time.gmtime())
    full = tmp_path / "events" / f"events-{day}.jsonl"
    full.symlink_to("/dev/full")
    send(producer, "match", Event("match", "cam", time.time(), track_id=7))
    for _ in range(10):
        stage.step()
        if stage.unwritten:
            break
    assert _next(subscriber).track_id == 7  # published all the same
    assert stage.gauges["journal_failing"] == 1.0 and len(stage.unwritten) == 1
    full.unlink()
    stage.step()
    assert not stage.unwritten and [e["track_id"] for e in read_journal(tmp_path / "events")] == [7]
    assert json.loads(full.read_text())["seq"] == 1
    assert os.path.getsize(full) > 0


def test_hostile_events_never_reach_the_journal_and_are_counted(events_stage, tmp_path: Path):
    """One 50 MB event once grew the journal by 50 MB (and the door page's state with it); a
    deeply nested one crashed the stage."""
    stage, producer, subscriber = events_stage
    well_formed = Event("match", "cam", time.time(), track_id=1).header()
    refused = [
        [b"match", well_formed.replace(b'"detail":""', b'"detail":"' + b"x" * 20_000 + b'"')],  # over its 16 KB limit
        [b"match", well_formed.replace(b'"name":null', b'"name":"' + b"n" * 201 + b'"')],
        [b"x", b"[" * 100_000],
        [b"match", well_formed.replace(b'"ts":', b'"ts":"now","was":')],
    ]
    for parts in refused:
        producer.send_multipart(parts)
    cut = push_socket(stage.ctx, stage.endpoints.events_in)  # on a connection of its own: ZeroMQ ends it
    cut.send_multipart([b"match", well_formed.replace(b'"detail":""', b'"detail":"' + b"x" * 50_000_000 + b'"')])
    send(producer, "match", Event("match", "cam", time.time(), track_id=2))
    deadline = time.monotonic() + 10
    while (stage.counters.get("journaled", 0) < 1 or stage.counters.get("malformed_events", 0) < len(refused)) and time.monotonic() < deadline:
        stage.step()
    assert [e["track_id"] for e in read_journal(tmp_path / "events")] == [2]
    assert _next(subscriber).track_id == 2
    assert stage.counters["malformed_events"] == len(refused)
    assert sum(path.stat().st_size for path in (tmp_path / "events").glob("*.jsonl")) < 1000
