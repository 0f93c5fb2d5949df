"""Rewriting the journal: a person's name replaced by their id while a writer appends, and
retention of whole days."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from streamrec.bus.messages import Event
from streamrec.events.journal import Journal, prune_journal, read_journal, rename_person

DAY = 86400.0
T0 = 1_700_000_000.0

# appends COUNT events of Ann and Bo, ten per write, as the events stage does
_WRITER = """
import sys
from streamrec.bus.messages import Event
from streamrec.events.journal import Journal
journal, count = Journal(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
for start in range(0, count, 10):
    journal.append([Event("match", "cam", 1_700_000_000.0 + (i % 3) * 86400, track_id=i, person_id="ann" if i % 2 else "bo",
                          name="Ann" if i % 2 else "Bo").to_json() for i in range(start, start + 10)])
"""


def test_the_name_becomes_the_id_in_every_event_and_no_event_is_lost_while_the_stage_writes(tmp_path: Path):
    folder = tmp_path / "events"
    Journal(folder).append([Event("match", "cam", T0, track_id=0, person_id="ann", name="Ann").to_json()])
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), "3000"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    renamed = 0
    while writer.poll() is None:  # rewrites race the writer's appends
        renamed += rename_person(folder, "ann")
    assert writer.returncode == 0
    renamed += rename_person(folder, "ann")
    events = list(read_journal(folder))
    assert sorted(e["seq"] for e in events) == list(range(1, 3002))  # every event, once
    assert renamed == 1501
    assert {e["name"] for e in events if e["person_id"] == "ann"} == {"ann"}
    assert {e["name"] for e in events if e["person_id"] == "bo"} == {"Bo"}
    assert "Ann" not in "".join(p.read_text() for p in folder.glob("events-*.jsonl"))
    assert not list(folder.glob(".*.tmp"))
    assert rename_person(folder, "ann") == 0 and rename_person(tmp_path / "none", "ann") == 0


def test_retention_removes_the_files_of_days_past_it(tmp_path: Path):
    journal = Journal(tmp_path)
    journal.append([Event("unknown", "cam", T0 + day * DAY).to_json() for day in range(4)])
    files = sorted(tmp_path.glob("events-*.jsonl"))
    assert len(files) == 4
    assert prune_journal(tmp_path, 0, now=T0 + 10 * DAY) == []  # 0: kept for ever
    removed = prune_journal(tmp_path, 2, now=T0 + 3 * DAY + 1)
    assert removed == files[:1] and sorted(tmp_path.glob("events-*.jsonl")) == files[1:]
    assert [e["seq"] for e in read_journal(tmp_path)] == [2, 3, 4]
    assert Journal(tmp_path).seq == 4  # numbering continues


def test_the_running_events_stage_applies_journal_days(tmp_path: Path):
    from tests.events.test_journal import _running_stage

    folder = tmp_path / "events"
    Journal(folder).append([Event("unknown", "cam", time.time() - 30 * DAY).to_json(), Event("unknown", "cam", time.time()).to_json()])
    assert len(list(folder.glob("events-*.jsonl"))) == 2
    with _running_stage(folder, journal_days=7) as (stage, _, _):
        deadline = time.monotonic() + 20
        while len(list(folder.glob("events-*.jsonl"))) != 1:
            assert time.monotonic() < deadline, "the old day's file was not removed"
            stage.step()
        assert stage.counters["journal_files_pruned"] == 1
