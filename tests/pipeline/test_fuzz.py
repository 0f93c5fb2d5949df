"""Ten thousand generated messages against every socket of a running pipeline that takes input.

``streamrec run`` runs as a real process on the hamilton clip (looping, like a camera), with its
stages as it starts them. Hypothesis generates well-formed, malformed, oversized, deeply nested,
wrongly typed and wrongly framed messages and random bytes for the internal inputs (``frames``,
``status``, ``overlays``, ``events``, ``stats``) and subscriptions, or anything else, for the
subscription side of the three publishers (``monitor``, and the public events and frames). Then:
no stage crashed or restarted, no process grew by more than ``GROWTH_LIMIT_MB``, and every
message is accounted for on ``/metrics``: each malformed one in its socket's counter, each
well-formed one about no configured source or stage in its own counter, each well-formed event
in the journal.

Every message here fits its socket's ``ZMQ_MAXMSGSIZE`` (a larger frame ends its connection in
ZeroMQ before the stage reads it, so it cannot be counted; ``test_frames_over_the_socket_limit``
checks that those cost nothing), and no publisher receives more refused subscriptions than it
keeps before starting afresh (then its subscribers resend theirs, which would count twice).
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from streamrec.events.journal import read_journal
from tests.conftest import cli_command
from tests.pipeline.conftest import stop_process
from tests.support.attack import peak_rss, rss_mb
from tests.support.ports import free_port

SOURCE = "short_hamilton_clip"  #: the clip's source name, the one configured source
EVENT_TYPES = ["match", "unknown", "track_end", "source_status", "access"]
ACCESS_RESULTS = ["challenge", "granted", "denied"]
BATCHES, BATCH = 200, 50  #: 10,000 messages (a few at a time: Hypothesis bounds the data of one example)
GROWTH_LIMIT_MB = 100
REFUSED_SUBSCRIPTIONS_MAX = 900  #: per publisher, under the count at which it starts afresh
PUBLISHERS = {"monitor": ("supervisor", "monitor", ["stats"]), "events_pub": ("events", "events", EVENT_TYPES),
              "jpeg_pub": ("render", "frames", [SOURCE])}  # socket: (stage, output name, its topics)

# -- what the pipeline expects (written out from the documented schema, not taken from the code) --
TIME = st.floats(0, 4e9, allow_nan=False)
NAME = st.text(st.sampled_from('aZ 0_-é名"\\\n\t\x00😀'), max_size=30)  #: what needs escaping or is not ASCII
FUZZ_NAME = st.integers(0, 10**6).map(lambda n: f"fuzz {n}")  #: a source or stage nobody configured
WRONG = {  # values that are wrong for a field of each type, whatever else the message holds
    "str": [7, 7.5, [], {}, True, None, "x" * 201],
    "enum": ["nope", "MATCH", 7, None, []],
    "time": ["1", [], True, None, -1, 1e300, math.nan, math.inf],
    "count": ["7", 7.5, True, None, -1, [], 2**64],
    "side": [0, -1, 8193, 7.5, "7", None],
    "rate": [-1, "7", None, math.inf],
}
REQUIRED = {
    "source_status": {"source": "str", "state": "enum", "ts": "time"},
    "event": {"type": "enum", "source": "str", "ts": "time"},
    "overlay": {"source": "str", "index": "count", "ts": "time", "height": "side", "width": "side", "fps": "rate"},
    "stats": {"stage": "str", "pid": "count", "ts": "time"},
}


def _json(body: object) -> bytes:
    return json.dumps(body).encode()  # NaN and Infinity as JavaScript writes them


def _frame(source: str, ring: str, height: int = 360, width: int = 640, version: int = 3, index: int = 1, ts: float = 1.0) -> bytes:
    """A frame message by its documented layout (streamrec.bus.messages.FrameHeader), its pixels
    in a ring, aged 0, with no media time."""
    names = source.encode() + ring.encode()
    head = struct.pack("<4sHqdIIqIQBddHH", b"SRFH", version, index, ts, height, width, 0, 0, 1, 0, 0.0, math.nan,
                       len(source.encode()), len(ring.encode()))
    return head + names


@st.composite
def valid_header(draw: st.DrawFn, kind: str, source: str | None = None) -> dict:
    """A well-formed JSON header of ``kind`` (for ``overlay``, 1 to 8 pixels a side)."""
    who = source if source is not None else draw(FUZZ_NAME)
    body: dict = {"v": 1, "kind": kind, "ts": draw(TIME)}
    if kind == "source_status":
        body |= {"source": who, "state": draw(st.sampled_from(["opening", "open", "lost", "reconnecting", "ended", "failed"])),
                 "reason": draw(NAME), "frames": draw(st.integers(0, 10**9))}
    elif kind == "event":
        body |= {"type": draw(st.sampled_from(EVENT_TYPES)), "source": who, "name": draw(st.none() | NAME),
                 "score": draw(st.none() | st.floats(0, 1)), "box": draw(st.sampled_from([None, [1, 2, 3, 4], [-1e4, 0.5, 1e4, 7]])),
                 "detail": draw(NAME), "result": draw(st.sampled_from([None, *ACCESS_RESULTS])),
                 "direction": draw(st.sampled_from([None, "left", "right"])), "reason": draw(st.none() | NAME),
                 "added_later": draw(st.integers())}  # a field from a newer version: ignored
    elif kind == "overlay":
        body |= {"source": who, "index": draw(st.integers(0, 10**9)), "height": draw(st.integers(1, 8)),
                 "width": draw(st.integers(1, 8)), "fps": draw(st.floats(0, 100)),
                 "faces": [{"box": [1, 2, 3, 4], "track_id": 1, "label": draw(NAME), "score": 0.5, "known": False}]}
    else:
        body |= {"stage": who, "pid": draw(st.integers(1, 2**22)), "counters": {"faces": draw(st.integers(0, 10**6))},
                 "gauges": {"fps[x]": draw(st.floats(0, 100))}, "latencies": {"detect": draw(st.lists(st.floats(0, 1), max_size=5))}}
    return body


def _with_payload(kind: str, header: bytes, body: dict) -> list[bytes]:
    """Topic, header and, for an overlay, the pixels its (well-formed) size calls for."""
    if kind == "overlay":
        return [b"t", header, b"\0" * (body["height"] * body["width"] * 3)]
    return [b"t", header]


TEMPLATES = {  #: one well-formed header of each kind, about the configured source
    "source_status": {"v": 1, "kind": "source_status", "source": SOURCE, "state": "open", "ts": 1.0, "reason": "", "frames": 3},
    "event": {"v": 1, "kind": "event", "type": "match", "source": SOURCE, "ts": 1.0, "box": [1, 2, 3, 4], "detail": ""},
    "overlay": {"v": 1, "kind": "overlay", "source": SOURCE, "index": 1, "ts": 1.0, "height": 2, "width": 3, "fps": 9.5,
                "faces": [{"box": [1, 2, 3, 4], "track_id": 1, "label": "x", "score": 0.5, "known": False}]},
    "stats": {"v": 1, "kind": "stats", "stage": "render", "pid": 7, "ts": 1.0, "counters": {"a": 1}, "gauges": {"b": 1.5},
              "latencies": {"c": [0.1]}},
}


@st.composite
def malformed(draw: st.DrawFn, kind: str) -> list[bytes]:
    """A message of ``kind`` broken in one of many ways; every one of them must be refused."""
    well_formed = TEMPLATES[kind]
    body = json.loads(json.dumps(well_formed))
    how = draw(st.sampled_from(["field", "missing", "envelope", "deep", "not an object", "bytes", "parts", "oversized", "nested"]))
    if how == "field":
        field, kind_of = draw(st.sampled_from(sorted(REQUIRED[kind].items())))
        body[field] = draw(st.sampled_from(WRONG[kind_of]))
    elif how == "missing":
        del body[draw(st.sampled_from(sorted(REQUIRED[kind])))]
    elif how == "envelope":
        body |= draw(st.sampled_from([{"v": 2}, {"v": "1"}, {"v": None}, {"kind": "nope"}, {"kind": None},
                                      {"kind": next(k for k in REQUIRED if k != kind)}]))
    elif how == "deep":
        depth = draw(st.integers(201, 20_000))
        return [b"t", b'{"v": 1, "kind": "' + kind.encode() + b'", "x": ' + b"[" * depth + b"]" * depth + b"}"]
    elif how == "not an object":
        return [b"t", _json(draw(st.lists(st.integers(), max_size=3) | st.text(max_size=10) | st.integers() | st.none()))]
    elif how == "bytes":
        return [draw(st.binary(max_size=20)), bytes([draw(st.sampled_from(b"\x00[1x\xff"))]) + draw(st.binary(max_size=300))]
    elif how == "parts":
        parts = _with_payload(kind, _json(body), well_formed)
        return draw(st.sampled_from([parts[:1], [*parts, b"extra"], [*parts, b"", b"", b""]] + ([parts[:2]] if kind == "overlay" else [])))
    elif how == "oversized":  # well-formed JSON, over the kind's header limit or a field's
        body["reason" if kind == "source_status" else "detail" if kind == "event" else "stage" if kind == "stats" else "source"] = "x" * draw(
            st.sampled_from([1001, 20_000, 100_000])
        )
    elif kind == "overlay":  # nested: a face or the pixels
        body["faces"] = draw(st.sampled_from([[{"box": [1, 2, 3], "track_id": 1, "label": "x", "score": 1, "known": False}],
                                              [{"box": [1, 2, 3, math.nan], "track_id": 1, "label": "x", "score": 1, "known": False}],
                                              [{"box": [1, 2, 3, 4]}]] + [[body["faces"][0]] * 257]))
    elif kind == "stats":
        body[draw(st.sampled_from(["counters", "gauges", "latencies"]))] = draw(st.sampled_from([{"x": "1"}, {"x": [[1]]}, [1], {"x": None}]))
    else:
        body["box" if kind == "event" else "frames"] = draw(st.sampled_from([[1, 2, 3], [1, 2, 3, "4"], -5, {"a": 1}]))
    parts = _with_payload(kind, _json(body), well_formed)
    if kind == "overlay" and how == "nested" and draw(st.booleans()):
        parts[2] = parts[2][:-1]  # one pixel byte short
    return parts


@st.composite
def frames_message(draw: st.DrawFn) -> tuple[list[bytes], str]:
    how = draw(st.sampled_from(["unknown", "bytes", "version", "length", "range", "ring", "parts", "utf8", "oversized"]))
    if how == "unknown":  # well-formed, from a source nobody configured
        return [_frame(draw(FUZZ_NAME), draw(st.text(max_size=30)))], "frames_unknown_source"
    if how == "bytes":
        return [b"X" + draw(st.binary(max_size=300))], "malformed_frames"  # no frame message starts with X
    good = _frame(SOURCE, "not-a-ring")  # the configured source, naming a ring that cannot exist
    parts = {
        "version": [_frame(SOURCE, "x", version=1)],
        "length": [good + draw(st.binary(min_size=1, max_size=10))],
        "range": [_frame(SOURCE, "x", height=draw(st.sampled_from([0, 9000])), width=640)],
        "ring": [good],
        "parts": [good, good],
        "utf8": [_frame(SOURCE, "x")[:-1] + b"\xff"],
        "oversized": [good + b"x" * draw(st.integers(2_000, 200_000))],
    }[how]
    return parts, "malformed_frames"


def message_for(socket: str) -> st.SearchStrategy[tuple[str, list[bytes], str]]:
    """``(socket, parts, counter it must land in)``."""
    kinds = {"status": ("source_status", "statuses_unknown_source"), "overlays": ("overlay", "frames_unknown_source"),
             "events": ("event", "fuzz_journaled"), "stats": ("stats", "stats_unknown_stage")}
    if socket == "frames":
        return frames_message().map(lambda m: (socket, *m))
    if socket in kinds:
        kind, counter = kinds[socket]
        valid = valid_header(kind).map(lambda body: (_with_payload(kind, _json(body), body), counter))
        bad = malformed(kind).map(lambda parts: (parts, f"malformed_{socket}"))
        return st.one_of(valid, bad).map(lambda m: (socket, *m))
    topics = PUBLISHERS[socket][2]
    prefixes = st.sampled_from(sorted({topic[:end].encode() for topic in topics for end in range(len(topic) + 1)}))
    # no topic starts with 0xff, and none is a prefix of another, so a topic and more is none either
    refused = st.tuples(st.sampled_from([b"\xff", *(t.encode() for t in topics)]), st.binary(min_size=1, max_size=150)).map(b"".join)
    return st.one_of(
        prefixes.map(lambda p: ([b"\x01" + p], "kept")),  # subscriptions that can match
        prefixes.map(lambda p: ([b"\x00" + p], "kept")),  # unsubscriptions
        refused.map(lambda p: ([b"\x00" + p], "kept")),  # unsubscriptions of nothing cost nothing
        refused.map(lambda p: ([b"\x01" + p], "subscriptions_refused")),
        st.tuples(st.integers(2, 255), st.binary(max_size=200)).map(lambda m: ([bytes([m[0]]) + m[1]], "not_subscriptions")),
        st.just(([b""], "not_subscriptions")),
    ).map(lambda m: (socket, *m))


SOCKETS = ["frames", "status", "overlays", "events", "stats", *PUBLISHERS]
MESSAGES = st.one_of([message_for(socket) for socket in SOCKETS])


# -- the running pipeline ------------------------------------------------------------------------
@dataclass
class Running:
    process: subprocess.Popen
    data_dir: Path
    http: str
    log: Path

    @property
    def state(self) -> dict:
        return json.loads((self.data_dir / "run.json").read_text())

    def metrics(self) -> dict[tuple[str, str], float]:
        """``(sample name, stage) -> value`` of every counter and gauge without a source."""
        text = urllib.request.urlopen(f"http://{self.http}/metrics", timeout=10).read().decode()
        return {
            (sample.name, sample.labels.get("stage", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if not sample.labels.get("source")
        }


@pytest.fixture(scope="module")
def running(hamilton_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("fuzz")
    http = f"127.0.0.1:{free_port()}"
    log = folder / "run.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [*cli_command(), "run", "--source", str(hamilton_clip), "--loop", "--data-dir", str(folder), "--http", http,
             "--events", f"tcp://127.0.0.1:{free_port()}", "--frames", f"tcp://127.0.0.1:{free_port()}"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    pipeline = Running(process, folder, http, log)
    try:
        deadline = time.monotonic() + 60
        while True:  # every stage has reported, and frames go all the way through
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                figures = pipeline.metrics()
            except OSError:
                figures = {}
            stages = {stage for (name, stage) in figures if name == "streamrec_stage_last_report_timestamp_seconds"}
            if figures.get(("streamrec_frames_rendered_total", "render"), 0) > 0 and len(stages) >= 6:
                break
            time.sleep(0.2)
        _warm_up(int(pipeline.state["stages"]["inference"]))
        yield pipeline
    finally:
        stop_process(process, 30)


def _warm_up(inference: int, timeout_s: float = 30.0) -> None:
    """Wait for the inference stage's memory to settle: ONNX Runtime's arenas grow by about
    100 MB in its first seconds, as it meets new batch shapes, and that is no leak."""
    deadline = time.monotonic() + timeout_s
    previous = rss_mb(inference)
    while time.monotonic() < deadline:
        time.sleep(2)
        now = rss_mb(inference)
        if now - previous < 3:
            return
        previous = now


def _senders(ctx: zmq.Context, running: Running) -> dict[str, zmq.Socket]:
    run_dir = Path(running.state["run_dir"])
    addresses = {"frames": f"ipc://{run_dir}/frames", "status": f"ipc://{run_dir}/status", "overlays": f"ipc://{run_dir}/overlays",
                 "events": f"ipc://{run_dir}/events", "stats": f"ipc://{run_dir}/stats", "monitor": f"ipc://{run_dir}/monitor",
                 "events_pub": running.state["events"], "jpeg_pub": running.state["frames"]}
    senders = {}
    for name, address in addresses.items():
        sock = ctx.socket(zmq.XSUB if name in PUBLISHERS else zmq.PUSH)
        sock.connect(address)
        senders[name] = sock
    return senders


def test_ten_thousand_generated_messages_are_all_accounted_for(running: Running):
    pids = {**{name: int(pid) for name, pid in running.state["stages"].items()}, "supervisor": running.state["pid"]}
    before = running.metrics()
    sent: Counter[tuple[str, str]] = Counter()
    ctx = zmq.Context()
    senders = _senders(ctx, running)

    # generated, never shrunk: shrinking would send messages again, and the first failure says enough
    @settings(max_examples=BATCHES, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(MESSAGES, min_size=BATCH, max_size=BATCH))
    def send_batch(batch: list[tuple[str, list[bytes], str]]) -> None:
        for socket, parts, counter in batch:
            if counter == "subscriptions_refused" and sent[(socket, counter)] >= REFUSED_SUBSCRIPTIONS_MAX:
                continue
            senders[socket].send_multipart(parts)  # waits while the stage's queue is full
            sent[(socket, counter)] += 1
        assert running.process.poll() is None, "the pipeline ended"

    try:
        with peak_rss(list(pids.values())) as peaks:
            baseline = dict(peaks)
            send_batch()
            # the senders stay open until everything is counted: libzmq 4.3.5 drops what a closed
            # PUSH socket had queued for a reader whose own queue was full, whatever its linger
            expected = _expected(sent, before)
            deadline = time.monotonic() + 30
            while True:  # stages report their counters about once a second
                figures = running.metrics()
                got = {key: figures.get(key, 0) for key in expected}
                if got == expected or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
    finally:
        ctx.destroy(linger=0)
    assert sum(sent.values()) >= 10_000 - BATCH, sent
    assert got == expected
    journaled = [e for e in read_journal(running.data_dir / "events") if e["source"].startswith("fuzz ")]
    assert len(journaled) == sent[("events", "fuzz_journaled")]
    after = {**{name: int(pid) for name, pid in running.state["stages"].items()}, "supervisor": running.state["pid"]}
    assert after == pids and running.process.poll() is None  # nothing crashed, nothing restarted
    for name, pid in pids.items():
        assert peaks[pid] - baseline[pid] < GROWTH_LIMIT_MB, f"{name} grew from {baseline[pid]:.0f} MB to {peaks[pid]:.0f} MB"
    figures = running.metrics()
    assert figures[("streamrec_frames_rendered_total", "render")] > before[("streamrec_frames_rendered_total", "render")]
    assert not any(value for (name, _), value in figures.items() if name.startswith("streamrec_publisher_resets"))


def _expected(sent: Counter[tuple[str, str]], before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """The counters on /metrics, ``(sample, stage)``, once every message sent is counted."""
    stage_of = {"frames": "inference", "status": "inference", "overlays": "render", "events": "events", "stats": "supervisor"}
    expected: Counter[tuple[str, str]] = Counter()
    for (socket, counter), count in sent.items():
        if counter in ("kept", "fuzz_journaled"):
            continue
        if socket in PUBLISHERS:
            stage, output, _ = PUBLISHERS[socket]
            expected[(f"streamrec_subscriptions_refused_{output}_total", stage)] += count
        else:
            expected[(f"streamrec_{counter}_total", stage_of[socket])] += count
            if counter.startswith("malformed_"):
                expected[("streamrec_malformed_messages_total", stage_of[socket])] += count
    return {key: before.get(key, 0) + count for key, count in expected.items()}


def test_frames_over_the_socket_limit_cost_nothing(running: Running):
    """A frame larger than its socket accepts ends that connection in ZeroMQ, before anything is
    allocated: nothing grows, nothing stops."""
    run_dir = Path(running.state["run_dir"])
    pids = {name: int(pid) for name, pid in running.state["stages"].items()}
    ctx = zmq.Context()
    try:
        with peak_rss(list(pids.values())) as peaks:
            baseline = dict(peaks)
            for name in ("frames", "status", "overlays", "events", "stats"):
                sock = ctx.socket(zmq.PUSH)
                sock.setsockopt(zmq.LINGER, 10_000)
                sock.connect(f"ipc://{run_dir}/{name}")
                sock.send_multipart([b"t", b"x" * 40_000_000])
                sock.close()
    finally:
        ctx.destroy(linger=10_000)
    assert {name: int(pid) for name, pid in running.state["stages"].items()} == pids
    for name, pid in pids.items():
        assert peaks[pid] - baseline[pid] < GROWTH_LIMIT_MB, f"{name} grew from {baseline[pid]:.0f} MB to {peaks[pid]:.0f} MB"
