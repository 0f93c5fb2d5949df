"""The MQTT stage as a real process, publishing a real journal to a real Mosquitto broker, read by
a real paho subscriber: topics, payloads, QoS, retained decisions, Home Assistant discovery, and
nothing lost when the broker is killed or the stage restarted."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from streamrec.bus.messages import Event, StageStats
from streamrec.bus.sockets import pull_socket, receive
from streamrec.config import ConfigError, parse_config
from streamrec.config.model import MqttConfig, SourceConfig
from streamrec.events.journal import Journal, read_journal
from streamrec.events.mqtt import MqttStage, topic_name
from streamrec.pipeline.stage import run_stage
from tests.pipeline.conftest import enroll_people, start_pipeline
from tests.support.mosquitto import Broker, Received, Subscriber, need_mosquitto, wait_for
from tests.web.test_tls import certificate  # noqa: F401 - a shared fixture

SOURCES = ["front door", "127.0.0.1:8554/clip"]
STARTED = "publishing events to the MQTT broker"  #: what the stage logs once it is set up


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    need_mosquitto()
    broker = Broker(tmp_path / "broker").start()
    yield broker
    broker.stop()


class StageProcess:
    """The stage in its own process, logging to ``log_file``."""

    def __init__(self, config: MqttConfig, folder: Path, stats_address: str | None = None) -> None:
        self.config, self.folder, self.stats_address = config, folder, stats_address
        self.log_file, self.state_file = folder / "mqtt.log", folder / "mqtt-delivered.json"
        self.process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> StageProcess:
        stage = MqttStage(self.config, self.folder / "events", self.state_file, SOURCES, self.stats_address, self.log_file,
                          retry_max_s=1.0)
        self.process = multiprocessing.get_context("spawn").Process(target=run_stage, args=(stage,))
        started = self.log().count(STARTED)
        self.process.start()
        try:
            wait_for(lambda: self.log().count(STARTED) > started, "the stage to start")
        except BaseException:  # the caller never gets the stage to track, so it is ended here
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the process if it is still running, and reap it."""
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(10)

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def delivered(self) -> int:
        return json.loads(self.state_file.read_text())["seq"] if self.state_file.exists() else 0

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            assert self.process.pid is not None
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.join(20)
            assert self.process.exitcode == 0, self.log()


@pytest.fixture
def stages() -> Iterator[list[StageProcess]]:
    started: list[StageProcess] = []
    yield started
    for stage in started:
        stage.kill()


def _event(kind: str, source: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "source": source, "ts": time.time(), **fields}


def _seqs(messages: list[Received], suffix: str = "/match") -> list[int]:
    return [json.loads(m.payload)["seq"] for m in messages if m.topic.endswith(suffix)]


def _matches(journal: Journal, first: int, stop: int) -> list[dict[str, Any]]:
    """Journal matches ``n<first>`` to ``n<stop - 1>``; their numbered copies."""
    return journal.append([_event("match", "front door", name=f"n{i}") for i in range(first, stop)])


def _publishing(broker: Broker, tmp_path: Path, stages: list[StageProcess]) -> tuple[Journal, Subscriber, StageProcess]:
    """A journal, a subscriber to the matches, and a stage publishing the journal to ``broker``."""
    journal = Journal(tmp_path / "events")
    watcher = Subscriber(broker, ["streamrec/+/match"])
    stage = StageProcess(MqttConfig(broker=broker.address), tmp_path).start()
    stages.append(stage)
    return journal, watcher, stage


def test_events_arrive_on_their_topics_with_retained_decisions_and_discovery(broker: Broker, tmp_path: Path, stages):
    journal = Journal(tmp_path / "events")
    journal.append([_event("match", "front door", name="Old")])  # before the first start: not sent
    watcher = Subscriber(broker, ["streamrec/#", "homeassistant/#"])
    stage = StageProcess(MqttConfig(broker=broker.address), tmp_path).start()
    stages.append(stage)
    wait_for(lambda: len([m for m in watcher.received() if m.topic.startswith("homeassistant/")]) == 2, "discovery")
    written = journal.append([
        _event("match", "front door", track_id=1, person_id="p1", name="Ann", distance=0.5, score=0.9),
        _event("unknown", "127.0.0.1:8554/clip", track_id=2, distance=1.3, score=0.7),
        _event("track_end", "front door", track_id=1),
        _event("source_status", "", detail="no source"),
        _event("access", "front door", track_id=1, person_id="p1", name="Ann", result="granted"),
    ])
    expected = {
        "streamrec/front_door/match": written[0], "streamrec/127_0_0_1_8554_clip/unknown": written[1],
        "streamrec/front_door/track_end": written[2], "streamrec/source_status": written[3],
        "streamrec/front_door/access": written[4],
    }
    wait_for(lambda: {m.topic for m in watcher.received()} >= set(expected), "every event")
    events = {m.topic: m for m in watcher.received() if m.topic in expected}
    for topic, item in expected.items():
        assert events[topic].payload == Event(**item).header()  # what ZeroMQ subscribers receive
        assert events[topic].qos == 1
    assert [m for m in watcher.received() if b'"Old"' in m.payload] == []
    wait_for(lambda: stage.delivered() == written[-1]["seq"], "the delivered seq to be kept")

    late = Subscriber(broker, ["streamrec/+/decision", "streamrec/status", "homeassistant/#"])
    wait_for(lambda: len(late.received()) == 5, "the retained messages")
    retained = {m.topic: m for m in late.received()}
    assert all(m.retain for m in retained.values())
    assert retained["streamrec/status"].payload == b"online"
    assert retained["streamrec/front_door/decision"].payload == Event(**written[4]).header()  # the door's answer
    assert retained["streamrec/127_0_0_1_8554_clip/decision"].payload == Event(**written[1]).header()
    sensor = json.loads(retained["homeassistant/sensor/streamrec_front_door/config"].payload)
    assert sensor["state_topic"] == sensor["json_attributes_topic"] == "streamrec/front_door/decision"
    assert sensor["unique_id"] == "streamrec_front_door_face"
    assert sensor["availability_topic"] == "streamrec/status" and sensor["payload_not_available"] == "offline"
    assert sensor["device"]["identifiers"] == ["streamrec"]
    state = pytest.importorskip("jinja2").Environment().from_string(sensor["value_template"])  # as Home Assistant renders it
    denied = {**written[4], "result": "denied", "reason": "timeout"}
    assert [state.render(value_json=item) for item in (*written[:2], written[4], denied)] == ["Ann", "unknown", "Ann", "unknown"]

    stage.stop()
    wait_for(lambda: late.received()[-1].payload == b"offline", "the offline status")
    watcher.close()
    late.close()


def test_a_restarted_stage_resumes_after_the_delivered_seq(broker: Broker, tmp_path: Path, stages):
    journal, watcher, stage = _publishing(broker, tmp_path, stages)
    first = _matches(journal, 0, 10)
    wait_for(lambda: stage.delivered() == first[-1]["seq"], "the first events to be delivered")
    stage.stop()
    second = _matches(journal, 10, 20)
    before = len(watcher.received())
    stages.append(stage.start())
    wait_for(lambda: stage.delivered() == second[-1]["seq"], "the events written while it was down")
    wait_for(lambda: len(watcher.received()) - before == len(second), "their messages")
    assert _seqs(watcher.received()[before:]) == [item["seq"] for item in second]
    stage.stop()
    watcher.close()


def test_a_stage_killed_mid_stream_loses_nothing(broker: Broker, tmp_path: Path, stages):
    journal, watcher, stage = _publishing(broker, tmp_path, stages)
    _matches(journal, 0, 300)
    wait_for(lambda: stage.delivered() > 0, "publishing to begin")
    assert stage.process is not None
    stage.process.kill()  # SIGKILL: no goodbye, acknowledgements received but not recorded are lost
    stage.process.join(10)
    delivered = stage.delivered()
    last = _matches(journal, 300, 310)[-1]["seq"]
    stages.append(stage.start())
    assert stage.log().rsplit(STARTED, 1)[1].split("\n")[0].endswith(f"after seq {delivered}")
    wait_for(lambda: stage.delivered() == last, "the restarted stage to deliver the rest")
    wait_for(lambda: set(_seqs(watcher.received())) == set(range(1, last + 1)), "every event at the subscriber")
    stage.stop()
    watcher.close()


def test_a_killed_broker_and_a_refused_login_lose_nothing(tmp_path: Path, stages):
    need_mosquitto()
    users = {"streamrec": "door-secret", "watcher": "watch-secret"}
    broker = Broker(tmp_path / "broker", users).start()
    try:
        (tmp_path / "password").write_text("door-secret\n")
        config = MqttConfig(broker=broker.address, username="streamrec", password_file=str(tmp_path / "password"))
        journal = Journal(tmp_path / "events")
        watcher = Subscriber(broker, ["streamrec/+/match"], user=("watcher", "watch-secret"))
        stage = StageProcess(config, tmp_path).start()
        stages.append(stage)
        first = _matches(journal, 0, 30)
        wait_for(lambda: stage.delivered() == first[-1]["seq"], "the first events to be delivered")

        _matches(journal, 30, 60)
        broker.kill()  # while the stage publishes them
        wait_for(lambda: "lost the connection" in stage.log(), "the outage to be logged")
        delivered = stage.delivered()  # final: nothing can be acknowledged without a broker
        assert first[-1]["seq"] <= delivered
        last = _matches(journal, 60, 90)[-1]["seq"]

        broker.set_users({"watcher": "watch-secret"})  # back, but refusing the stage's login
        broker.start()
        after = len(watcher.received())
        wait_for(lambda: watcher.subscriptions == 2, "the watcher to subscribe again")
        refusals = "Client <unknown> disconnected, not authorised."  # only the stage is refused
        wait_for(lambda: broker.log_file.read_text().count(refusals) >= 3, "the stage to try its login 3 times")
        refused = [line for line in stage.log().splitlines() if "refused the login" in line]
        assert len(refused) == 1 and "Not authorized" in refused[0], stage.log()

        broker.set_users(users)
        broker.reload()
        wait_for(lambda: stage.delivered() == last, "every event to be delivered after the outage")
        seqs = _seqs(watcher.received()[after:])
        assert sorted(set(seqs)) == list(range(delivered + 1, last + 1))
        firsts = list(dict.fromkeys(seqs))  # what was in flight when a connection broke comes again
        assert firsts == sorted(firsts)  # in seq order
        assert "is back after" in stage.log()
        stage.stop()
        watcher.close()
    finally:
        broker.stop()


def test_a_broker_down_at_the_start_is_retried_with_one_line_and_its_figures_reported(tmp_path: Path, stages):
    need_mosquitto()
    broker = Broker(tmp_path / "broker")  # not started yet
    ctx = zmq.Context()
    stats = pull_socket(ctx, f"ipc://{tmp_path}/stats", accepts=StageStats)
    figures: dict[str, float] = {}

    def reported(condition: Callable[[dict[str, float]], bool]) -> bool:
        while stats.poll(100):
            report = receive(stats)[1]
            assert isinstance(report, StageStats) and report.stage == "mqtt"
            figures.update({**report.counters, **report.gauges})
        return condition(figures)

    try:
        journal = Journal(tmp_path / "events")
        stage = StageProcess(MqttConfig(broker=broker.address), tmp_path, f"ipc://{tmp_path}/stats").start()
        stages.append(stage)
        written = _matches(journal, 0, 7)
        wait_for(lambda: reported(lambda f: f.get("mqtt_connect_failures", 0) >= 3 and f.get("mqtt_backlog") == 7),
                 "three refused connections and the backlog")
        assert figures["mqtt_connected"] == 0 and figures["mqtt_outages"] == 1
        assert len([line for line in stage.log().splitlines() if "cannot publish" in line]) == 1, stage.log()

        broker.start()
        wait_for(lambda: reported(lambda f: f["mqtt_connected"] == 1 and f["mqtt_backlog"] == 0), "the backlog to empty")
        assert figures["mqtt_published"] == 7 and stage.delivered() == written[-1]["seq"]
        assert "is back after" in stage.log()
        stage.stop()
    finally:
        broker.stop()
        ctx.destroy(linger=0)


def test_tls_checks_the_broker_against_the_given_authority(certificate: tuple[Path, Path], tmp_path: Path, stages):  # noqa: F811
    need_mosquitto()
    broker = Broker(tmp_path / "broker", {"streamrec": "door-secret"}, tls=certificate).start()
    try:
        (tmp_path / "password").write_text("door-secret\n")
        login = {"broker": broker.address, "username": "streamrec", "password_file": str(tmp_path / "password"), "tls": True}
        untrusted = StageProcess(MqttConfig(**login), tmp_path / "untrusted").start()  # the system's authorities
        stages.append(untrusted)
        wait_for(lambda: "certificate verify failed" in untrusted.log(), "the untrusted certificate to be refused")
        untrusted.stop()

        watcher = Subscriber(broker, ["streamrec/+/match"], user=("streamrec", "door-secret"), tls_ca=certificate[0])
        stage = StageProcess(MqttConfig(**login, tls_ca=str(certificate[0])), tmp_path).start()
        stages.append(stage)
        written = Journal(tmp_path / "events").append([_event("match", "front door", name="Ann")])
        wait_for(lambda: _seqs(watcher.received()) == [written[0]["seq"]], "the event over TLS")
        stage.stop()
        watcher.close()
    finally:
        broker.stop()


@pytest.mark.parametrize(("mqtt", "problem"), [
    ({"broker": "192.0.2.7:1883"}, "mqtt.broker: is beyond this machine"),
    ({"broker": "broker.example.com:8883", "username": "door"}, "mqtt.broker: is beyond this machine"),
    ({"broker": "broker.example.com:8883", "tls": True}, "mqtt.broker: is beyond this machine"),
    ({"broker": "127.0.0.1:70000"}, "mqtt.broker: the port must be a whole number from 1 to 65535"),
    ({"broker": "localhost"}, "mqtt.broker: must be HOST:PORT"),
    ({"keepalive": float("nan")}, "mqtt.keepalive: must be"),
    ({"username": "door", "password_file": "/no/such/file"}, "mqtt.password_file: no such file"),
    ({"prefix": "streamrec/#"}, "mqtt.prefix: must be topic levels"),
    ({"tls": True, "tls_cert": "/etc/hostname"}, "mqtt.tls_key: tls_cert and tls_key go together"),
])
def test_bad_mqtt_settings_are_one_line(mqtt: dict[str, Any], problem: str):
    with pytest.raises(ConfigError) as caught:
        parse_config({"mqtt": mqtt}, origin="run.toml")
    assert str(caught.value).startswith(f"run.toml: {problem}") and "\n" not in str(caught.value)


def test_a_remote_broker_with_a_login_and_tls_is_taken(tmp_path: Path):
    (tmp_path / "password").write_text("secret\n")
    config = parse_config({"mqtt": {"broker": "broker.example.com:8883", "username": "door", "tls": True,
                                    "password_file": str(tmp_path / "password")}})
    assert config.mqtt.broker == "broker.example.com:8883"


def test_a_running_pipeline_publishes_its_decisions(broker: Broker, rtsp_clip: Path, faces_dir: Path, models, tmp_path: Path):
    data_dir = tmp_path / "data"
    enroll_people(faces_dir, data_dir, models)
    (tmp_path / "mqtt.toml").write_text(f'[mqtt]\nbroker = "{broker.address}"\n')
    watcher = Subscriber(broker, ["streamrec/#", "homeassistant/#"])
    pipeline = start_pipeline(rtsp_clip, data_dir, tmp_path, ["--config", str(tmp_path / "mqtt.toml")])
    try:
        camera = topic_name(SourceConfig(url=pipeline.server.url).label)

        def matches() -> list[Received]:
            return [m for m in watcher.received() if m.topic == f"streamrec/{camera}/match"]

        wait_for(matches, "a match published by the pipeline", timeout=240)
        event = json.loads(matches()[0].payload)
        journaled = {item["seq"]: item for item in read_journal(data_dir / "events")}
        assert matches()[0].payload == Event(**journaled[event["seq"]]).header()
        topics = {m.topic for m in watcher.received()}
        assert {f"homeassistant/sensor/streamrec_{camera}/config", f"streamrec/{camera}/decision"} <= topics

        def published() -> bool:
            text = urllib.request.urlopen(f"http://{pipeline.http}/metrics", timeout=10).read().decode()
            return any('stage="mqtt"' in line and "mqtt_published" in line and not line.endswith(" 0.0")
                       for line in text.splitlines())

        wait_for(published, "mqtt_published on /metrics", timeout=30)
    finally:
        pipeline.close()
        watcher.close()
