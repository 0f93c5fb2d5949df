"""A real Mosquitto broker for the tests, on a free loopback port, and a real paho subscriber.

The broker runs from a configuration file written here, with a password file made by
``mosquitto_passwd`` when users are given (``allow_anonymous`` otherwise) and TLS only when a
certificate is given; it is stopped, or
killed, by its PID, and can be started again on the same port. Changing its users and sending
it SIGHUP makes it read the password file again, as a running broker does.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.support.needs import require
from tests.support.ports import free_port

MOSQUITTO = "/usr/sbin/mosquitto"
PASSWD = "mosquitto_passwd"


def need_mosquitto() -> None:
    """Go on when Mosquitto is installed, else skip (fail under ``CI``) naming what installs it."""
    require("mqtt")


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)  # polling interval


class Broker:
    """A Mosquitto process serving ``host:port`` (loopback by default); ``users`` (name ->
    password) or anonymous. ``prefix``: what runs it elsewhere (another host's ``ip netns
    exec``). ``persistent``: it writes its clients' sessions and queued messages to disk at every
    change, so that one killed and started again still has them, as a broker that must lose
    nothing is set up."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None,
                 host: str = "127.0.0.1", prefix: list[str] | None = None, persistent: bool = False) -> None:
        self.folder, self.port, self.host, self.prefix = folder, free_port(), host, prefix or []
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_file = folder / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.users = users
        if users is not None:
            self.set_users(users)
        lines = [
            f"listener {self.port} {host}", "user root",
            *(["persistence true", f"persistence_location {folder}/", "autosave_on_changes true", "autosave_interval 1"]
              if persistent else ["persistence false"]),
            f"log_dest file {self.log_file}", "log_type error", "log_type warning", "log_type notice",
            "log_type information", "connection_messages true",
        ]
        lines += [f"password_file {folder / 'passwords'}", "allow_anonymous false"] if users is not None else [
            "allow_anonymous true"]
        if tls is not None:  # (certificate, key): TLS only, the certificate its own authority
            lines += [f"cafile {tls[0]}", f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set_users(self, users: dict[str, str]) -> None:
        """Write the password file anew (a running broker reads it on :meth:`reload`)."""
        path = self.folder / "passwords"
        path.unlink(missing_ok=True)
        for index, (name, password) in enumerate(users.items()):
            subprocess.run([PASSWD, "-b", *(["-c"] if index == 0 else []), str(path), name, password], check=True)

    def start(self) -> Broker:
        self.process = subprocess.Popen([*self.prefix, MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")])
        wait_for(self._accepts, f"mosquitto to listen on {self.address}")
        return self

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"mosquitto exited with {self.process.returncode}: {self.log_file.read_text()}")
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0

    def reload(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """End it at once (SIGKILL): no goodbye to its clients, nothing saved."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Subscriber:
    """A paho client subscribed with QoS 1 to ``topics``, again after every reconnection, with a
    session the broker keeps; ``messages`` holds what it received, in order."""

    def __init__(
        self, broker: Broker, topics: list[str], user: tuple[str, str] | None = None, tls_ca: Path | None = None,
    ) -> None:
        self.topics = topics
        self.messages: list[Received] = []
        self.subscriptions = 0  #: subscriptions the broker granted, one per connection
        self._lock = threading.Lock()
        # a session the broker keeps while the connection is down (a broker that reloads its
        # password file drops its clients), so that nothing published meanwhile is missed
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watcher-{id(self)}", clean_session=False)
        if user is not None:
            self.client.username_pw_set(*user)
        if tls_ca is not None:
            self.client.tls_set(str(tls_ca))
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda client, *_: client.subscribe([(topic, 1) for topic in topics])
        self.client.on_subscribe = self._subscribed
        self.client.on_message = self._message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_for(lambda: self.subscriptions, f"a subscription to {topics}")

    def _subscribed(self, *_: object) -> None:
        with self._lock:
            self.subscriptions += 1

    def _message(self, _: mqtt.Client, __: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, message.qos, bool(message.retain)))

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
