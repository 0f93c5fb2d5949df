"""The web stage's routes over real HTTP, fed by a real render stage and real ZeroMQ feeds."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from streamrec.bus.messages import Event, StageStats
from streamrec.config.model import OutputsConfig
from tests.web.conftest import Web, refused_start


def _ok(status: int, _: bytes) -> bool:
    return status == 200


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return image


def _parts(response, count: int) -> list[bytes]:
    """The first ``count`` JPEG parts of a ``multipart/x-mixed-replace`` response."""
    found = re.search(r"boundary=(\S+)", response.headers["Content-Type"])
    assert found is not None, "no boundary"
    boundary = found[1].encode()
    parts: list[bytes] = []
    while len(parts) < count:
        assert response.readline().strip() == b"--" + boundary
        headers = {}
        while (line := response.readline().strip()) != b"":
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(response.read(int(headers["content-length"])))
        assert response.readline() == b"\r\n"
    return parts


def test_frame_jpg_is_the_newest_overlaid_frame(web: Web):
    jpeg = web.wait_for("/frame.jpg?source=front", _ok)
    assert _decode(jpeg).shape == (360, 640, 3)
    status, headers, body = web.get("/frame.jpg")  # no source: the first configured camera
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and _decode(body).shape == (360, 640, 3)


def test_errors_are_short_and_clear(web: Web):
    web.wait_for("/frame.jpg?source=front", _ok)
    status, _, body = web.get("/frame.jpg?source=side")  # configured, but no frame yet
    assert status == 503 and body == b"no frame yet from side"
    status, _, body = web.get("/frame.jpg?source=garage")
    assert status == 404 and b"no camera named 'garage'" in body and b"front, side" in body
    status, _, body = web.get("/stream.mjpg?source=garage")
    assert status == 404
    status, _, body = web.get("/nothing/here")
    assert status == 404 and body.startswith(b"not found: /nothing/here") and len(body) < 200


def test_mjpeg_stream_gives_new_frames(web: Web):
    web.wait_for("/frame.jpg?source=front", _ok)
    with urllib.request.urlopen(web.url + "/stream.mjpg?source=front", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        first, second = _parts(response, 2)
    assert _decode(first).shape == _decode(second).shape == (360, 640, 3)
    assert first != second  # each part is a newer frame, never the same one again


def test_a_client_that_stops_reading_blocks_nobody(web: Web):
    web.wait_for("/frame.jpg?source=front", _ok)
    with socket.create_connection(("127.0.0.1", int(web.url.rsplit(":", 1)[1]))) as stalled:
        stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # and never reads a byte
        state = json.loads(web.wait_for("/api/state", _ok, timeout_s=5))
        assert state["default_source"] == "front"
        with urllib.request.urlopen(web.url + "/stream.mjpg", timeout=10) as response:
            assert len(_parts(response, 2)) == 2


def test_api_state_has_sources_and_the_last_decisions(web: Web):
    now = time.time()
    web.feeder.events = [
        Event("unknown", "front", now - 5, track_id=3, score=0.8, seq=21),
        Event("match", "front", now, track_id=4, person_id="p1", name="Barack Obama", score=0.97, seq=22),
    ]

    def updated(status: int, body: bytes) -> bool:
        state = json.loads(body) if status == 200 else {}
        # (the recent events still list those of earlier tests until these two, republished, push them out)
        recent = {e["seq"] for e in state.get("events", [])}
        return state.get("decisions", {}).get("front", {}).get("seq") == 22 and state["sources"][0]["fps"] is not None and recent == {21, 22}

    state = json.loads(web.wait_for("/api/state", updated))
    assert [s["name"] for s in state["sources"]] == ["front", "side"]
    front, side = state["sources"]
    assert front["fps"] == 12.5 and front["frame"]["width"] == 640 and front["frame"]["labels"] == ["Barack Obama"]
    assert side == {"name": "side", "fps": None, "frame": None}
    assert state["decisions"]["front"]["name"] == "Barack Obama"
    assert state["door"]["front"]["state"] == "match" and state["door"]["front"]["on_screen"] is True
    assert state["door"]["front"]["event"]["seq"] == 22
    assert state["door"]["side"] == {"state": "waiting", "event": None, "on_screen": False}
    assert state["last_decision"]["type"] == "match" and state["last_decision"]["ts"] == now
    assert {e["type"] for e in state["events"]} == {"match", "unknown"}


_STATS = [
    StageStats(
        "inference", 101, 0.0,
        counters={"faces": 42, "embeddings": 17, "decisions_match": 3, "decisions_unknown": 1, "frames[front]": 120},
        gauges={"fps[front]": 12.5, "dropped[front]": 4.0},
        latencies={"detect": [0.004, 0.02, 0.2], "capture_to_detect[front]": [0.05]},
    ),
    StageStats("capture:front", 102, 0.0, counters={"reconnects": 2, "frames_dropped": 4}),
    StageStats("events", 103, 0.0, counters={"events_match": 3}, latencies={"capture_to_event": [0.3]}),
]


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", family.name), family.name
        for sample in family.samples:
            assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) for label in sample.labels)
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_metrics_expose_what_the_stages_report(web: Web):
    web.feeder.stats = _STATS

    def reported(_: int, body: bytes) -> bool:
        """Every stage has reported, the render stage after rendering a frame."""
        if b"streamrec_reconnects_total" not in body or b'stage="web"' not in body:
            return False
        rendered = frozenset({"stage": "render", "source": ""}.items())
        return _samples(body.decode()).get(("streamrec_frames_rendered_total", rendered), 0) > 0

    text = web.wait_for("/metrics", reported).decode()
    assert web.get("/metrics")[1]["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = _samples(text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    inference = {"stage": "inference", "source": ""}
    assert value("streamrec_source_fps", stage="inference", source="front") == 12.5
    assert value("streamrec_source_dropped_frames", stage="inference", source="front") == 4
    assert value("streamrec_frames_total", stage="inference", source="front") == 120
    assert value("streamrec_faces_total", **inference) == 42
    assert value("streamrec_embeddings_total", **inference) == 17
    assert value("streamrec_decisions_match_total", **inference) == 3
    assert value("streamrec_reconnects_total", stage="capture:front", source="front") == 2
    assert value("streamrec_frames_dropped_total", stage="capture:front", source="front") == 4
    assert value("streamrec_events_match_total", stage="events", source="") == 3
    assert value("streamrec_frames_rendered_total", stage="render", source="") > 0  # the real render stage
    # each report's samples went into the histogram: 3 detect samples per report received
    detect = {"stage": "inference", "step": "detect", "source": ""}
    reports = value("streamrec_stage_latency_seconds_count", **detect) / 3
    assert reports >= 1 and reports == int(reports)
    assert abs(value("streamrec_stage_latency_seconds_sum", **detect) - reports * 0.224) < 1e-6
    assert value("streamrec_stage_latency_seconds_bucket", le="0.005", **detect) == reports
    assert value("streamrec_stage_latency_seconds_bucket", le="0.025", **detect) == 2 * reports
    per_source = {"stage": "inference", "step": "capture_to_detect", "source": "front"}
    assert value("streamrec_stage_latency_seconds_count", **per_source) == reports
    assert value("streamrec_stage_latency_seconds_count", stage="events", step="capture_to_event", source="") >= 1
    assert ("streamrec_stage_latency_seconds_count", frozenset({"stage": "render", "step": "encode", "source": ""}.items())) in samples


def test_a_busy_port_is_one_clear_line(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        errors = refused_start(OutputsConfig(http=address), tmp_path)
    assert len(errors) == 1
    assert errors[0].endswith(f"http: cannot listen on {address} (Address already in use)")


def test_an_open_server_answers_loopback_names_only(web: Web):
    """A page of a site whose name resolves to 127.0.0.1 (DNS rebinding) is another origin to the
    browser, which would let it read the answers: such requests get one line and no data."""
    web.wait_for("/api/state", _ok)
    port = int(web.url.rsplit(":", 1)[1])
    for host, allowed in ((f"localhost:{port}", True), (f"127.0.0.1:{port}", True), (f"[::1]:{port}", True),
                          (f"evil.example:{port}", False), (f"127.0.0.1.nip.io:{port}", False), ("[bad", False)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(f"GET /api/state HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        if allowed:
            assert head.startswith(b"HTTP/1.0 200") and "sources" in json.loads(body), (host, head)
        else:
            assert head.startswith(b"HTTP/1.0 403"), (host, head)
            assert json.loads(body) == {
                "error": "this server is open to this machine only: address it as localhost, 127.0.0.1 or [::1]"}
