"""The MQTT stage: every journaled event published to an MQTT broker, none lost (README.md, "MQTT").

It reads the event journal, not the events stage's PUB socket, so it depends on nothing but the
journal: it follows it as it is written (:class:`~streamrec.events.journal.JournalTail`) and
publishes each event with QoS 1 on ``<prefix>/<camera>/<type>`` (``<prefix>/<type>`` for an event
without a source), the payload the very JSON header ZeroMQ subscribers receive. A decision
(``match``, ``unknown``, a door's ``granted`` or ``denied``) is also published, retained, on
``<prefix>/<camera>/decision``; ``<prefix>/status`` says ``online``, and ``offline`` when the stage
stops or, through the broker's last will, when it is lost. With ``discovery`` on, each camera is
announced to Home Assistant as a sensor whose state is the name on its latest decision.

Delivery is at least once and in ``seq`` order: the newest ``seq`` whose publishes (and those of
every event before it) the broker acknowledged is kept in ``state_file``, rewritten whole at
every advance. When the broker is lost, or the stage restarts, publishing starts again from the
journal after that ``seq``; whatever was in flight is published again, so a subscriber drops the
``seq`` numbers it has already seen. The first time (no ``state_file``) it starts at the
journal's end: the events of before MQTT was set up are not sent. A broker that cannot be reached
or refuses the login is tried again, at growing intervals up to ``retry_max_s``, with one log
line when the outage starts (and when its reason changes) and one when it ends.

Counters: ``mqtt_published`` (events the broker acknowledged), ``mqtt_outages``,
``mqtt_connect_failures`` (connections tried in vain, or lost), ``mqtt_malformed`` (journal lines
that are no event); gauges ``mqtt_connected`` (1 or 0) and
``mqtt_backlog`` (journaled events not acknowledged yet, by ``seq``).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from streamrec.bus.curve import LinkCurve
from streamrec.bus.messages import DECISION_TYPES, Event
from streamrec.config.addresses import parse_broker_address
from streamrec.config.model import MqttConfig
from streamrec.events.journal import JournalTail, last_seq, replace_file
from streamrec.pipeline.stage import Stage

__all__ = ["MqttStage", "discovery_config", "topic_name"]

#: events published and not yet acknowledged, at most
WINDOW = 100
#: how long one step waits for the broker (and so how soon a new journal line is seen)
STEP_S = 0.1
#: a connection whose broker has not answered the login in this long is given up and tried again
CONNECT_TIMEOUT_S = 10.0
#: how long a clean stop waits for the last acknowledgements
DRAIN_S = 2.0
#: the door's answers that are a camera's latest decision, besides the decision events
_DOOR_DECISIONS = ("granted", "denied")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def topic_name(label: str) -> str:
    """A source label as one topic level (and a Home Assistant object id): every run of
    characters other than letters, digits, ``_`` and ``-`` becomes one ``_``
    (``127.0.0.1:8554/door`` -> ``127_0_0_1_8554_door``); ``""`` stays ``""``."""
    return _UNSAFE.sub("_", label).strip("_") or ("_" if label else "")


def _is_decision(event: dict[str, Any]) -> bool:
    return event["type"] in DECISION_TYPES or (event["type"] == "access" and event.get("result") in _DOOR_DECISIONS)


def discovery_config(config: MqttConfig, source: str) -> tuple[str, dict[str, Any]]:
    """The Home Assistant discovery topic and message of ``source``'s sensor: its state is the
    name on the camera's latest decision when it is a match or a door's grant, else ``unknown``;
    its attributes that whole event."""
    node, camera = config.client_id, topic_name(source)
    decision = f"{config.prefix}/{camera}/decision"
    return f"{config.discovery_prefix}/sensor/{node}_{camera}/config", {
        "name": f"{source} face",
        "unique_id": f"{node}_{camera}_face",
        "icon": "mdi:face-recognition",
        "state_topic": decision,
        "value_template": "{{ value_json.name if value_json.name and (value_json.type == 'match' "
                          "or value_json.result == 'granted') else 'unknown' }}",
        "json_attributes_topic": decision,
        "availability_topic": f"{config.prefix}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {"identifiers": [node], "name": f"streamrec {node}", "manufacturer": "streamrec",
                   "model": "face recognition pipeline"},
    }


@dataclass
class _InFlight:
    """An event published and the message ids the broker has still to acknowledge."""

    seq: int
    waiting: set[int] = field(default_factory=set)


class MqttStage(Stage):
    """Publishes the journal in ``journal_dir`` to ``config.broker``, announcing ``sources`` to
    Home Assistant; the newest delivered ``seq`` lives in ``state_file``. Retries wait 1 s,
    doubling up to ``retry_max_s``. ``curve``: the links secured with CURVE (its statistics' among
    them, when ``[links] stats`` is set)."""

    name = "mqtt"

    def __init__(
        self, config: MqttConfig, journal_dir: Path, state_file: Path, sources: list[str], stats_address: str | None,
        log_file: Path | None = None, retry_max_s: float = 30.0, curve: LinkCurve | None = None,
    ) -> None:
        super().__init__(stats_address, log_file, curve)
        self.config, self.journal_dir, self.state_file, self.sources = config, journal_dir, state_file, sources
        self.address = parse_broker_address(config.broker)
        self.retry_max_s = retry_max_s
        self.client: mqtt.Client | None = None
        self.connected = False
        self.in_flight: deque[_InFlight] = deque()
        self.pending: deque[dict[str, Any]] = deque()  #: read from the journal, not published yet
        self._by_mid: dict[int, _InFlight] = {}
        self._retry_s, self._retry_at, self._connect_deadline = 1.0, 0.0, 0.0
        self._outage: str | None = None  #: why the broker cannot be used now (None: it can, or never tried)
        self._outage_since = 0.0
        self._gauged_at = 0.0

    # -- the stage ---------------------------------------------------------------------------
    def setup(self) -> None:
        self.delivered = self._load_delivered()
        self.tail = JournalTail(self.journal_dir, self.delivered)
        self.gauges["mqtt_connected"] = 0.0
        self.log.info("publishing events to the MQTT broker at %s after seq %d", self.config.broker, self.delivered)

    def step(self) -> bool:
        if self.client is None:
            if time.monotonic() < self._retry_at:
                time.sleep(min(STEP_S, self._retry_at - time.monotonic()))  # pacing the retries, not waiting for anything
            else:
                self._connect()
        else:
            result = self.client.loop(timeout=STEP_S)
            if self.client is not None and result != mqtt.MQTT_ERR_SUCCESS:
                self._lost(mqtt.error_string(result))
            elif not self.connected and time.monotonic() > self._connect_deadline:
                self._lost(f"no answer to the login in {CONNECT_TIMEOUT_S:g} s")
            if self.connected:
                self._acknowledged()
                self._publish_new()
        self._update_gauges()
        return True

    def teardown(self) -> None:
        if self.client is None:
            return
        if self.connected:
            deadline = time.monotonic() + DRAIN_S
            while self.in_flight and self.connected and time.monotonic() < deadline:
                self.client.loop(timeout=STEP_S)
                self._acknowledged()
            if self.connected:
                info = self.client.publish(f"{self.config.prefix}/status", "offline", qos=1, retain=True)
                while not info.is_published() and self.connected and time.monotonic() < deadline:
                    self.client.loop(timeout=STEP_S)
        if self.client is not None:  # (a connection lost meanwhile is closed already)
            self.client.disconnect()
        self.log.info("stopped after seq %d", self.delivered)

    # -- the connection ----------------------------------------------------------------------
    def _connect(self) -> None:
        """Start a connection with a fresh client: nothing of a lost one is sent again but what
        the journal holds after the delivered ``seq``."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id, clean_session=True)
        client.max_inflight_messages_set(2 * WINDOW)  # an event and its retained decision
        client.will_set(f"{self.config.prefix}/status", "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        try:
            if self.config.username:
                client.username_pw_set(self.config.username, self._password())
            if self.config.tls:
                client.tls_set(self.config.tls_ca or None, self.config.tls_cert or None, self.config.tls_key or None)
            client.connect(self.address.host, self.address.port, keepalive=self.config.keepalive)
        except (OSError, ValueError) as exc:
            self._failed(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
            return
        self.client, self._connect_deadline = client, time.monotonic() + CONNECT_TIMEOUT_S

    def _password(self) -> str:
        """The first line of ``password_file``, read at every login so that a corrected file is
        taken without a restart."""
        if not self.config.password_file:
            return ""
        try:
            with open(self.config.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read password_file {self.config.password_file}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None

    def _on_connect(self, client: mqtt.Client, _: Any, __: Any, reason: Any, ___: Any) -> None:
        if reason.is_failure:
            self._lost(f"the broker refused the login: {reason}")
            return
        self.connected = True
        self._retry_s = 1.0
        if self._outage is not None:
            self.log.info("the MQTT broker at %s is back after %.0f s; publishing again after seq %d",
                          self.config.broker, time.monotonic() - self._outage_since, self.delivered)
        else:
            self.log.info("connected to the MQTT broker at %s", self.config.broker)
        self._outage = None
        client.publish(f"{self.config.prefix}/status", "online", qos=1, retain=True)
        if self.config.discovery:
            for source in self.sources:
                topic, message = discovery_config(self.config, source)
                client.publish(topic, json.dumps(message), qos=1, retain=True)

    def _on_disconnect(self, _: mqtt.Client, __: Any, ___: Any, reason: Any, ____: Any) -> None:
        if self.client is not None:
            self._lost(f"lost the connection ({reason})")

    def _on_publish(self, _: mqtt.Client, __: Any, mid: int, ___: Any, ____: Any) -> None:
        entry = self._by_mid.pop(mid, None)
        if entry is not None:
            entry.waiting.discard(mid)

    def _lost(self, reason: str) -> None:
        """Drop the client and what it had in flight: the journal has it all, after ``delivered``."""
        client, self.client, self.connected = self.client, None, False
        if client is not None:
            client.on_disconnect = None
            client.disconnect()
        self.in_flight.clear()
        self.pending.clear()
        self._by_mid.clear()
        self.tail = JournalTail(self.journal_dir, self.delivered)
        self._failed(reason)

    def _failed(self, reason: str) -> None:
        """Log the outage once as it starts (and again if its reason changes), and wait before
        trying again."""
        self.count("mqtt_connect_failures")
        if self._outage is None:
            self._outage_since = time.monotonic()
            self.count("mqtt_outages")
        if reason != self._outage:
            self.log.warning("cannot publish to the MQTT broker at %s: %s; trying again, up to every %g s",
                             self.config.broker, reason, self.retry_max_s)
        self._outage = reason
        self._retry_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, self.retry_max_s)

    # -- the events --------------------------------------------------------------------------
    def _publish_new(self) -> None:
        client = self.client
        assert client is not None
        room = WINDOW - len(self.in_flight)
        if room > len(self.pending):
            self.pending.extend(self.tail.poll(limit=room - len(self.pending)))
        while self.pending and len(self.in_flight) < WINDOW and self.connected:
            item = self.pending.popleft()
            try:
                payload = Event(**item).header()
            except (ValidationError, TypeError) as exc:
                self.count("mqtt_malformed")
                self.log.warning("skipped journal line seq %d, which is no event: %s", item["seq"], str(exc).splitlines()[0])
                self.in_flight.append(_InFlight(item["seq"]))
                continue
            entry = _InFlight(item["seq"])
            for topic, retain in self._topics(item):
                info = client.publish(topic, payload, qos=1, retain=retain)
                if not self.connected:  # the connection broke under this publish: all starts again from the journal
                    return
                entry.waiting.add(info.mid)
                self._by_mid[info.mid] = entry
            self.in_flight.append(entry)

    def _topics(self, item: dict[str, Any]) -> list[tuple[str, bool]]:
        """Where an event goes, each with whether it is retained there."""
        camera = topic_name(item.get("source") or "")
        base = f"{self.config.prefix}/{camera}" if camera else self.config.prefix
        return [(f"{base}/{item['type']}", False)] + ([(f"{base}/decision", True)] if _is_decision(item) else [])

    def _acknowledged(self) -> None:
        """Advance ``delivered`` over the events whose publishes are all acknowledged, in order."""
        done = 0
        while self.in_flight and not self.in_flight[0].waiting:
            self.delivered = self.in_flight.popleft().seq
            done += 1
        if done:
            self.count("mqtt_published", done)
            self._save_delivered()

    def _load_delivered(self) -> int:
        newest = last_seq(self.journal_dir)
        try:
            seq = json.loads(self.state_file.read_text())["seq"]
            if not isinstance(seq, int) or seq < 0:
                raise ValueError(f"seq {seq!r} is no event number")
        except FileNotFoundError:
            self.log.info("first start: events after the journal's newest (seq %d) will be published", newest)
            return newest
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log.error("cannot read %s (%s): publishing the whole journal again", self.state_file, exc)
            return 0
        if seq > newest:
            self.log.warning("the journal ends at seq %d, before the delivered seq %d kept in %s (a new journal?): "
                             "publishing it from its start", newest, seq, self.state_file)
            return 0
        return seq

    def _save_delivered(self) -> None:
        try:
            replace_file(self.state_file, json.dumps({"seq": self.delivered}).encode())
        except OSError as exc:
            self.drops.dropped(f"write(s) of {self.state_file}", 1, exc.strerror or str(exc))

    def _update_gauges(self) -> None:
        now = time.monotonic()
        if now - self._gauged_at < 1.0:
            return
        self._gauged_at = now
        self.gauges["mqtt_connected"] = 1.0 if self.connected else 0.0
        self.gauges["mqtt_backlog"] = float(max(0, last_seq(self.journal_dir) - self.delivered))
