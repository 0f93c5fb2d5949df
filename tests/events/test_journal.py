"""The event journal and the events stage, over real files and real ZeroMQ sockets."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import zmq

from streamrec.bus.messages import EndTracks, Event, Serving
from streamrec.bus.sockets import Endpoints, new_run_dir, push_socket, receive, send, sub_socket
from streamrec.events.journal import Journal, JournalTail, last_seq, read_journal, rename_person
from streamrec.events.stage import JOURNAL_BACKLOG, ORPHAN_DRAIN_S, EventsStage
from streamrec.events.tracks import SILENT_S
from streamrec.pipeline.stage import run_stage
from tests.support.disk import small_disk

PROBE = "probe"


def _next(subscriber: zmq.Socket) -> Event:
    assert subscriber.poll(5000), "nothing published"
    message = receive(subscriber)[1]
    assert isinstance(message, Event)
    return message


def _event(i: int, ts: float | None = None) -> dict:
    return Event("match", "cam", ts if ts is not None else 1_700_000_000.0 + i, track_id=i, name="Ann").to_json()


def test_numbers_continue_across_restarts_and_a_partial_last_line_is_cut_before_the_next_write(tmp_path: Path):
    journal = Journal(tmp_path)
    written = journal.append([_event(i) for i in range(3)])
    assert [e["seq"] for e in written] == [1, 2, 3]
    path = next(tmp_path.glob("events-*.jsonl"))
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 4, "type": "mat')  # a crash in the middle of a line
    assert [e["seq"] for e in read_journal(tmp_path)] == [1, 2, 3]  # readers skip it
    reopened = Journal(tmp_path)
    assert reopened.seq == 3 and path.read_bytes().endswith(b"\n")  # repaired on open
    assert [e["seq"] for e in reopened.append([_event(9)])] == [4]
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 5, "ty')  # cut short while this writer is open
    reopened.append([_event(10)])
    assert [(e["seq"], e["track_id"]) for e in read_journal(tmp_path)] == [(1, 0), (2, 1), (3, 2), (4, 9), (5, 10)]


def test_read_since_and_after(tmp_path: Path):
    journal = Journal(tmp_path)
    journal.append([_event(i, ts=1_700_000_000.0 + 86400 * i) for i in range(3)])  # three UTC days
    assert len(list(tmp_path.glob("events-*.jsonl"))) == 3
    assert [e["seq"] for e in read_journal(tmp_path, since_ts=1_700_000_000.0 + 86400)] == [2, 3]
    assert [e["seq"] for e in read_journal(tmp_path, after_seq=2)] == [3]


def test_a_tail_follows_the_journal_in_order_once_across_days_partial_lines_and_rewrites(tmp_path: Path):
    journal = Journal(tmp_path)
    journal.append([_event(i) for i in range(3)])
    tail = JournalTail(tmp_path, after_seq=1)
    assert [item["seq"] for item in tail.poll()] == [2, 3]
    journal.append([_event(3), _event(4, ts=1_700_000_000.0 + 86400)])  # one batch, two days' files
    with open(next(tmp_path.glob("events-*.jsonl")), "ab") as handle:
        handle.write(b'{"seq":99,')  # a line being written
    assert [item["seq"] for item in tail.poll(limit=1)] == [4]  # the next day's file waits for this one
    assert [item["seq"] for item in tail.poll()] == [5]
    assert last_seq(tmp_path) == 5
    rename_person(tmp_path, "p1")  # no change: Ann has no person id here
    journal.append([{**_event(6), "person_id": "p1"}])
    assert rename_person(tmp_path, "p1") == 1  # the file is replaced by a rewritten one
    assert [(item["seq"], item["name"]) for item in tail.poll()] == [(6, "p1")]
    assert tail.poll() == []
    assert [item["seq"] for item in JournalTail(tmp_path, after_seq=5).poll()] == [6]


def test_a_full_disk_loses_nothing(tmp_path: Path):
    journal = Journal(tmp_path)
    first, second = (tmp_path / f"events-{time.strftime('%Y%m%d', time.gmtime(t))}.jsonl" for t in (1_700_000_000.0, 1_700_086_400.0))
    second.symlink_to("/dev/full")  # every write: ENOSPC
    numbered = journal.number([_event(0), _event(1, ts=1_700_086_400.0)])  # two days, two files
    with pytest.raises(OSError) as caught:
        journal.write(numbered)
    assert caught.value.errno == 28
    assert first.read_bytes() == b""  # all or nothing: the first day's file is rolled back
    second.unlink()
    journal.write(numbered)  # the disk has room again: the same events, same numbers
    assert [e["seq"] for e in read_journal(tmp_path)] == [1, 2]


@contextmanager
def _running_stage(
    journal_dir: Path, topics: list[str] | None = None, backlog: int = JOURNAL_BACKLOG, journal_days: float = 0.0,
    silent_s: float = SILENT_S,
) -> Iterator[tuple[EventsStage, zmq.Socket, zmq.Socket]]:
    """An events stage driven step by step in this process, on real sockets, with a producer
    and a subscriber to ``topics`` (all when None), connected."""
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/pub", "ipc://unused")
    stage = EventsStage(endpoints, journal_dir, None, backlog=backlog, journal_days=journal_days, silent_s=silent_s)
    stage.ctx = zmq.Context()
    stage.setup()
    producer = push_socket(stage.ctx, endpoints.events_in)
    subscriber = sub_socket(stage.ctx, endpoints.events_pub, topics and [*topics, "source_status"])
    try:
        _connected(producer, subscriber, stage.step)
        yield stage, producer, subscriber
    finally:
        stage.teardown()
        stage.ctx.destroy(linger=0)
        shutil.rmtree(run_dir)


def _connected(producer: zmq.Socket, subscriber: zmq.Socket, step: Callable[[], object] = lambda: None) -> list[Event]:
    """Wait until the subscription has reached the publisher: send probes (source statuses of
    source ``probe``, journaled like any event) until one is published (``step``: what makes an
    events stage run in this process), then take them all; returns them."""
    deadline = time.monotonic() + 20
    while not subscriber.poll(100):
        assert time.monotonic() < deadline, "the subscriber never connected"
        send(producer, "source_status", Event("source_status", PROBE, time.time(), detail="probe"))
        step()
    probes = []
    while subscriber.poll(300):
        probes.append(_next(subscriber))
    return probes


def _journaled(folder: Path) -> list[dict]:
    """The journal without the probes."""
    return [e for e in read_journal(folder) if e["source"] != PROBE]


def _step_until(stage: EventsStage, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done within {timeout:.0f} s: {dict(stage.counters)}"
        stage.step()


def _step_until_numbered(stage: EventsStage, seq: int) -> None:
    _step_until(stage, lambda: stage.journal.seq == seq)


def test_events_are_journaled_and_published_by_topic(tmp_path: Path):
    with _running_stage(tmp_path / "events", ["match", "track_end"]) as (stage, producer, subscriber):
        first = stage.journal.seq + 1
        for kind in ("match", "unknown", "track_end"):
            send(producer, kind, Event(kind, "cam", time.time(), track_id=1, capture_ts=time.time() - 0.05))
        producer.send_multipart([b"match", b"{broken"])
        _step_until(stage, lambda: stage.journal.seq == first + 2 and bool(stage.counters.get("malformed_events")))
        received = [_next(subscriber) for _ in range(2)]
        assert [e.type for e in received] == ["match", "track_end"]  # filtered by topic
        assert [e.seq for e in received] == [first, first + 2]
        assert stage.counters["malformed_events"] == stage.counters["malformed_messages"] == 1
        assert [e["type"] for e in _journaled(tmp_path / "events")] == ["match", "unknown", "track_end"]
        assert 0 < stage.latencies["capture_to_event"][0] < 5


def test_events_stage_keeps_publishing_when_the_disk_is_full(tmp_path: Path):
    folder = tmp_path / "events"
    with _running_stage(folder) as (stage, producer, subscriber):
        full = folder / f"events-{time.strftime('%Y%m%d', time.gmtime(1_700_000_000.0))}.jsonl"
        full.symlink_to("/dev/full")
        send(producer, "match", Event(**{**_event(7), "seq": 0}))
        _step_until(stage, lambda: bool(stage.unwritten))
        assert _next(subscriber).track_id == 7  # published all the same
        assert stage.gauges["journal_failing"] == 1.0 and len(stage.unwritten) == 1
        full.unlink()
        _step_until(stage, lambda: not stage.unwritten)
        assert [e["track_id"] for e in _journaled(folder)] == [7]
        assert json.loads(full.read_text())["seq"] == stage.journal.seq


def _send(producer: zmq.Socket, track_id: int) -> None:
    send(producer, "match", Event("match", "cam", time.time(), track_id=track_id, name="Ann", detail="x" * 100))


def _whole_lines(folder: Path) -> list[dict]:
    """Every line of the journal, each of which must be one whole event."""
    lines = b"".join(path.read_bytes() for path in sorted(folder.glob("events-*.jsonl"))).split(b"\n")
    assert lines[-1] == b"", "a partial last line"
    return [json.loads(line) for line in lines[:-1]]


def test_a_full_disk_splits_merges_and_loses_no_event(tmp_path: Path):
    with small_disk(tmp_path, "1m") as disk, _running_stage(disk.path / "events") as (stage, producer, subscriber):
        folder = disk.path / "events"
        base = stage.journal.seq
        disk.fill()  # the journal file's last page still has room for part of the next events
        sent = 0
        while not stage.gauges.get("journal_failing") or sent < 20:
            assert sent < 200, "the journal never found the disk full"
            _send(producer, sent)
            sent += 1
            _step_until_numbered(stage, base + sent)
        published = [_next(subscriber) for _ in range(sent)]
        assert [e.seq for e in published] == list(range(base + 1, base + sent + 1))  # published all the same
        on_disk = [e for e in _whole_lines(folder) if e["source"] == "cam"]
        assert on_disk == _journaled(folder) and 0 < len(on_disk) < sent
        assert len(on_disk) + len(stage.unwritten) == sent and stage.counters["journaled"] == base + len(on_disk)
        disk.free()
        _step_until(stage, lambda: not stage.unwritten)
        events = _journaled(folder)
        assert [e["seq"] for e in events] == list(range(base + 1, base + sent + 1))
        assert [e["track_id"] for e in events] == list(range(sent))
        assert len(_whole_lines(folder)) == base + sent
        assert stage.counters["journaled"] == base + sent and stage.gauges["journal_failing"] == 0.0
        assert not stage.counters.get("journal_dropped")


def test_a_full_backlog_counts_and_logs_what_it_could_not_keep(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    folder = tmp_path / "events"
    with _running_stage(folder, backlog=3) as (stage, producer, subscriber):
        full = folder / f"events-{time.strftime('%Y%m%d', time.gmtime())}.jsonl"
        full.rename(tmp_path / "saved.jsonl")
        full.symlink_to("/dev/full")
        base = stage.journal.seq
        for track_id in range(5):
            _send(producer, track_id)
        _step_until(stage, lambda: stage.journal.seq == base + 5)
        assert [_next(subscriber).track_id for _ in range(5)] == list(range(5))  # every one published
        assert stage.counters["journal_dropped"] == 2 and len(stage.unwritten) == 3
        full.unlink()
        (tmp_path / "saved.jsonl").rename(full)
        _step_until(stage, lambda: not stage.unwritten)
    assert [e["track_id"] for e in _journaled(folder)] == [0, 1, 2]
    logged = [r.getMessage() for r in caplog.records if r.name == "events" and r.levelno >= logging.WARNING]
    assert sum("backlog is full" in line for line in logged) == 1, logged  # once, not per event
    assert any(f"2 events were not journaled (seq {base + 4}-{base + 5})" in line for line in logged), logged


def test_the_open_tracks_of_a_dead_inference_stage_are_ended_with_the_reason(tmp_path: Path):
    folder = tmp_path / "events"
    with _running_stage(folder) as (stage, producer, _):
        base = stage.journal.seq
        for kind, source, track_id in [("match", "cam", 1), ("unknown", "cam", 2), ("match", "door", 3), ("track_end", "cam", 2)]:
            send(producer, kind, Event(kind, source, time.time(), track_id=track_id, name="Ann" if kind == "match" else None, box=[1.0, 2.0, 3.0, 4.0]))
        why = "ended when the inference stage died (signal 9)"
        send(producer, "end_tracks", EndTracks("cam", time.time(), why))  # what the supervisor sends
        _step_until(stage, lambda: stage.journal.seq == base + 5)
    events = _journaled(folder)
    assert [(e["type"], e["source"], e["track_id"]) for e in events] == [
        ("match", "cam", 1), ("unknown", "cam", 2), ("match", "door", 3), ("track_end", "cam", 2), ("track_end", "cam", 1),
    ]  # track 2 had ended already, track 3 is another camera's
    assert events[-1]["detail"] == why and events[-1]["name"] == "Ann" and events[-1]["box"] == [1.0, 2.0, 3.0, 4.0]


def _decision(producer: zmq.Socket, kind: str, source: str, track_id: int) -> None:
    send(producer, kind, Event(kind, source, time.time(), track_id=track_id, name="Ann" if kind == "match" else None))


def test_a_stage_that_takes_over_a_camera_ends_the_tracks_its_predecessor_left_open(tmp_path: Path):
    """An inference stage restarted by whatever runs it on its host (no supervisor to tell), or
    another that a camera moved to: the tracks announced before it said it serves the camera end,
    in order, before its own decisions; other cameras' tracks stay open."""
    folder = tmp_path / "events"
    with _running_stage(folder) as (stage, producer, _):
        base = stage.journal.seq
        send(producer, "serving", Serving("first", ("cam", "door"), time.time(), ("cam", "door")))
        for kind, source, track_id in [("match", "cam", 1), ("unknown", "cam", 2), ("match", "door", 3)]:
            _decision(producer, kind, source, track_id)
        send(producer, "serving", Serving("first", ("cam", "door"), time.time()))  # a beat changes nothing
        send(producer, "serving", Serving("second", ("cam",), time.time(), ("cam",)))
        _decision(producer, "match", "cam", 4)
        _step_until(stage, lambda: stage.journal.seq == base + 6)
        assert stage.counters["tracks_ended_for_a_dead_stage"] == 2
    events = _journaled(folder)
    assert [(e["type"], e["source"], e["track_id"]) for e in events] == [
        ("match", "cam", 1), ("unknown", "cam", 2), ("match", "door", 3), ("track_end", "cam", 1), ("track_end", "cam", 2),
        ("match", "cam", 4),
    ]
    assert {e["detail"] for e in events[3:5]} == {"ended when another inference stage took over its camera"}


def test_a_track_ended_at_a_takeover_is_not_ended_again_by_the_worker_the_camera_left(tmp_path: Path):
    """A camera moved from one inference worker to another while both live (the first came back
    after a restart, and the camera with it): the worker it left ends the tracks it still holds
    later, when the camera comes back to it or when it stops; each track ends once."""
    folder = tmp_path / "events"
    with _running_stage(folder) as (stage, producer, _):
        base = stage.journal.seq
        send(producer, "serving", Serving("first", ("cam",), time.time(), ("cam",)))
        _decision(producer, "match", "cam", 1)
        _decision(producer, "match", "cam", 3)
        send(producer, "track_end", Event("track_end", "cam", time.time(), track_id=3, name="Ann"))
        send(producer, "serving", Serving("second", ("cam",), time.time(), ("cam",)))  # the takeover ends track 1
        send(producer, "track_end", Event("track_end", "cam", time.time(), track_id=1, name="Ann"))  # "first" stops
        send(producer, "track_end", Event("track_end", "cam", time.time(), track_id=3, name="Ann"))  # ended twice by its stage
        _decision(producer, "match", "cam", 2)
        _step_until(stage, lambda: stage.journal.seq == base + 6)
        assert stage.counters["track_ends_repeated"] == 1
    events = _journaled(folder)
    assert [(e["type"], e["track_id"]) for e in events] == [
        ("match", 1), ("match", 3), ("track_end", 3), ("track_end", 1), ("track_end", 3), ("match", 2),
    ]
    assert events[3]["detail"] == "ended when another inference stage took over its camera"


def test_a_worker_that_a_camera_left_names_it_a_while_longer_but_never_takes_it_back(tmp_path: Path):
    """A camera moved from worker "first" to "second": until "first" notices (no frames for a few
    seconds) its beats still name the camera, which must not end the tracks "second" opens there;
    only a camera taken (new to a stage, or back after a break) ends its predecessor's tracks."""
    folder = tmp_path / "events"
    with _running_stage(folder) as (stage, producer, _):
        base = stage.journal.seq
        send(producer, "serving", Serving("first", ("cam",), time.time(), ("cam",)))
        _decision(producer, "match", "cam", 1)
        send(producer, "serving", Serving("second", ("cam",), time.time(), ("cam",)))  # ends track 1
        _decision(producer, "match", "cam", 2)
        send(producer, "serving", Serving("first", ("cam",), time.time()))  # a beat of the worker the camera left
        _decision(producer, "match", "cam", 4)
        send(producer, "serving", Serving("first", ("cam",), time.time(), ("cam",)))  # the camera back on "first"
        _step_until(stage, lambda: stage.journal.seq == base + 6)
    events = _journaled(folder)
    assert [(e["type"], e["track_id"]) for e in events] == [
        ("match", 1), ("track_end", 1), ("match", 2), ("match", 4), ("track_end", 2), ("track_end", 4),
    ]


def test_the_tracks_of_a_stage_that_falls_silent_end(tmp_path: Path):
    """An inference stage whose host is gone says nothing more: after ``silent_s`` the tracks of
    the cameras it served end; a stage that keeps saying it serves keeps its tracks."""
    folder = tmp_path / "events"
    with _running_stage(folder, silent_s=1.0) as (stage, producer, _):
        base = stage.journal.seq
        send(producer, "serving", Serving("gone", ("cam",), time.time()))
        send(producer, "serving", Serving("alive", ("door",), time.time()))
        _decision(producer, "match", "cam", 1)
        _decision(producer, "match", "door", 2)
        _step_until(stage, lambda: stage.journal.seq == base + 2)
        silent_since = time.monotonic()

        def ended() -> bool:
            send(producer, "serving", Serving("alive", ("door",), time.time()))
            return stage.journal.seq == base + 3

        _step_until(stage, ended)
        assert time.monotonic() - silent_since >= 0.9
        for _ in range(20):  # ten more beats of the stage alive: its track stays open
            ended()
            stage.step()
        assert stage.journal.seq == base + 3
    events = _journaled(folder)
    assert [(e["type"], e["source"], e["track_id"]) for e in events] == [("match", "cam", 1), ("match", "door", 2), ("track_end", "cam", 1)]
    assert events[-1]["detail"] == "ended when the inference stage serving it fell silent (nothing for 1 s)"


def _events_process(
    endpoints: Endpoints, journal_dir: Path, run_dir: Path, orphan_drain_s: float = ORPHAN_DRAIN_S,
) -> multiprocessing.process.BaseProcess:
    stage = EventsStage(endpoints, journal_dir, None, orphan_drain_s=orphan_drain_s)
    stage.run_dir = run_dir  # as the supervisor hands it over
    process = multiprocessing.get_context("spawn").Process(target=run_stage, args=(stage,))
    process.start()
    return process


def _supervise(endpoints: Endpoints, journal_dir: Path, run_dir: Path, pids: multiprocessing.Queue) -> None:
    """The body of a parent process that runs an events stage (waiting 3 s for the last events
    once orphaned) as a supervisor does, reports its pid, and waits: the test kills it with
    SIGKILL."""
    child = _events_process(endpoints, journal_dir, run_dir, orphan_drain_s=3.0)
    pids.put(child.pid)
    child.join()


def test_tracks_left_open_when_the_supervisor_is_killed_are_ended_by_the_events_stage(tmp_path: Path):
    """Killed with SIGKILL, the supervisor can ask no one to end the tracks of an inference stage
    that sends no ends: the events stage waits for them, then ends those still open itself."""
    folder = tmp_path / "events"
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/pub", "ipc://unused")
    ctx = zmq.Context()
    producer = push_socket(ctx, endpoints.events_in)
    subscriber = sub_socket(ctx, endpoints.events_pub)
    spawn = multiprocessing.get_context("spawn")
    pids: multiprocessing.Queue = spawn.Queue()
    supervisor = spawn.Process(target=_supervise, args=(endpoints, folder, run_dir, pids))
    supervisor.start()
    stage_pid = 0
    try:
        stage_pid = pids.get(timeout=60)
        _connected(producer, subscriber)
        _decision(producer, "match", "cam", 1)
        _decision(producer, "unknown", "door", 2)
        send(producer, "track_end", Event("track_end", "door", time.time(), track_id=2))
        assert [_next(subscriber).type for _ in range(3)] == ["match", "unknown", "track_end"]
        os.kill(supervisor.pid or 0, signal.SIGKILL)
        supervisor.join()
        assert subscriber.poll(30_000), "the events stage ended no track"
        ended = receive(subscriber)[1]
    finally:
        if stage_pid and Path(f"/proc/{stage_pid}").exists():
            os.kill(stage_pid, signal.SIGKILL)
        ctx.destroy(linger=0)
        shutil.rmtree(run_dir)
    assert isinstance(ended, Event) and (ended.type, ended.source, ended.track_id) == ("track_end", "cam", 1)
    journal = _journaled(folder)
    assert [(e["type"], e["source"], e["track_id"]) for e in journal] == [
        ("match", "cam", 1), ("unknown", "door", 2), ("track_end", "door", 2), ("track_end", "cam", 1),
    ]
    assert re.fullmatch(r"ended when the run stopped: its supervisor was killed and no end came within [345] s", journal[-1]["detail"])


def test_an_events_stage_killed_on_a_full_disk_gives_no_number_twice_and_its_tracks_still_end(tmp_path: Path):
    with small_disk(tmp_path, "1m") as disk:
        folder = disk.path / "events"
        run_dir = new_run_dir()
        endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/pub", "ipc://unused")
        ctx = zmq.Context()
        producer = push_socket(ctx, endpoints.events_in)
        subscriber = sub_socket(ctx, endpoints.events_pub)
        processes = [_events_process(endpoints, folder, run_dir)]
        try:
            published = _connected(producer, subscriber)
            _send(producer, 1)
            published.append(_next(subscriber))
            disk.fill()
            disk.fill_last_page(next(folder.glob("events-*.jsonl")))
            _send(producer, 2)  # published, but it can only wait in memory
            published.append(_next(subscriber))
            os.kill(processes[0].pid or 0, signal.SIGKILL)  # and it is lost with the process
            processes[0].join()
            disk.free()
            processes.append(_events_process(endpoints, folder, run_dir))
            published += _connected(producer, subscriber)
            why = "ended when the inference stage died (signal 9)"
            send(producer, "end_tracks", EndTracks("cam", time.time(), why))
            published += [_next(subscriber), _next(subscriber)]
        finally:
            for process in processes:
                process.terminate()
                process.join(10)
            ctx.destroy(linger=0)
            shutil.rmtree(run_dir)
        seqs = [e.seq for e in published]
        assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs), seqs  # no number given twice
        assert {(e.type, e.track_id, e.detail) for e in published[-2:]} == {("track_end", 1, why), ("track_end", 2, why)}
        journal = _journaled(folder)
        assert [(e["type"], e["track_id"]) for e in journal] == [("match", 1), ("track_end", 1), ("track_end", 2)]


def test_hostile_events_never_reach_the_journal_and_are_counted(tmp_path: Path):
    """One 50 MB event once grew the journal by 50 MB (and the door page's state with it); a
    deeply nested one crashed the stage."""
    folder = tmp_path / "events"
    with _running_stage(folder) as (stage, producer, subscriber):
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
        _step_until(stage, lambda: any(e["source"] == "cam" for e in _journaled(folder)) and stage.counters.get("malformed_events", 0) >= len(refused))
        assert [e["track_id"] for e in _journaled(folder)] == [2]
        assert _next(subscriber).track_id == 2
        assert stage.counters["malformed_events"] == len(refused)
        assert sum(path.stat().st_size for path in folder.glob("*.jsonl")) < 2000
