"""CURVE on the links between stages: a real events stage process binds its links with the
server certificate and lets in only the clients whose public keys it was given; a client with
another key, or none, gets nothing through and nothing out, and one with its key does both."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from streamrec.bus.curve import LinkContext, LinkCurve
from streamrec.bus.messages import Event, StageStats
from streamrec.bus.sockets import Endpoints, new_run_dir, pull_socket, push_socket, receive, send, sub_socket
from streamrec.events.journal import read_journal
from streamrec.events.stage import EventsStage
from tests.conftest import run_cli
from tests.render.frames import start_stage, stop_stage
from tests.support.ports import free_port


def _keys(folder: Path, name: str) -> Path:
    """``streamrec keys NAME``, run as a real process; the secret certificate's path."""
    result = run_cli("keys", name, "--out", str(folder), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(folder / f"{name}.key"), str(folder / f"{name}.key_secret")]
    return folder / f"{name}.key_secret"


@dataclass
class Secured:
    endpoints: Endpoints
    curve: LinkCurve
    keys: Path
    journal: Path

    def as_client(self, secret: Path) -> LinkContext:
        """A context whose sockets present ``secret`` on the secured links."""
        return LinkContext(LinkCurve(self.curve.links, self.curve.server_key, "", str(secret), ""))


@pytest.fixture()
def secured(tmp_path: Path) -> Iterator[Secured]:
    """An events stage whose internal links (events in, feed, statistics) are secured, with
    the client ``camera`` let in and ``stranger`` not."""
    keys, clients = tmp_path / "keys", tmp_path / "clients"
    server = _keys(keys, "links")
    camera = _keys(keys, "camera")
    _keys(keys, "stranger")
    clients.mkdir()
    shutil.copy(keys / "camera.key", clients)
    links = {name: f"tcp://127.0.0.1:{free_port()}" for name in ("events_in", "events_feed", "stats")}
    curve = LinkCurve(frozenset(links.values()), str(keys / "links.key"), str(server), str(camera), str(clients))
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"tcp://127.0.0.1:{free_port()}", "ipc://unused", links, curve)
    stage = start_stage(EventsStage(endpoints, tmp_path / "events"))
    try:
        yield Secured(endpoints, curve, keys, tmp_path / "events")
    finally:
        stop_stage(stage)
        shutil.rmtree(run_dir)


def _names(sock: zmq.Socket, until: str | None, timeout_s: float) -> list[str]:
    """The names of the events received within ``timeout_s`` (stopping at ``until``)."""
    names: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and until not in names:
        if sock.poll(200):
            _, event, _ = receive(sock, expect=Event)
            assert isinstance(event, Event) and event.name is not None
            names.append(event.name)
    return names


def test_only_a_client_with_a_known_key_gets_through_and_hears_back(secured: Secured):
    stranger, plain = secured.as_client(secured.keys / "stranger.key_secret"), zmq.Context()
    camera = secured.as_client(secured.keys / "camera.key_secret")
    public = zmq.Context()
    stats = LinkContext(secured.curve)  # what a supervisor binds, with the server certificate
    try:
        report_in = pull_socket(stats, secured.endpoints.stats, accepts=StageStats)
        subscriber = sub_socket(public, secured.endpoints.events_pub)  # the public output stays plain
        feeds = {name: sub_socket(ctx, secured.endpoints.events_feed)
                 for name, ctx in (("stranger", stranger), ("plain", plain), ("camera", camera))}
        senders = {name: push_socket(ctx, secured.endpoints.events_in, linger_ms=0)
                   for name, ctx in (("stranger", stranger), ("plain", plain), ("camera", camera))}
        for name, sender in senders.items():
            send(sender, "match", Event("match", "door", time.time(), track_id=1, name=name), block=False)
        # the public subscriber joins while the stage runs: wait for the camera's event, resent
        # until the subscription has reached the publisher
        names: list[str] = []
        deadline = time.monotonic() + 30
        while "camera" not in names and time.monotonic() < deadline:
            names += _names(subscriber, "camera", 1.0)
            if "camera" not in names:
                send(senders["camera"], "match", Event("match", "door", time.time(), track_id=1, name="camera"))
        names += _names(subscriber, None, 3.0)  # what else arrives: nothing from the others
        assert "camera" in names and set(names) == {"camera"}, names
        assert {e["name"] for e in read_journal(secured.journal) if e["type"] == "match"} == {"camera"}
        send(senders["camera"], "match", Event("match", "door", time.time(), track_id=1, name="camera"))
        assert "camera" in _names(feeds["camera"], "camera", 10.0)
        assert _names(feeds["stranger"], None, 1.0) == [] and _names(feeds["plain"], None, 1.0) == []
        assert report_in.poll(10_000), "no statistics over the secured stats link"
        _, report, _ = receive(report_in, expect=StageStats)
        assert isinstance(report, StageStats) and report.stage == "events"
    finally:
        for ctx in (stranger, plain, camera, public, stats):
            ctx.destroy(linger=0)
