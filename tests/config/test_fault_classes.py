"""The classes of fault the values in test_found_faults.py stand for: every number finite and
bounded, every address bindable, every enumeration checked, the rules between keys."""

from __future__ import annotations

import math

import pytest

from streamrec.config import ConfigError, parse_config
from streamrec.config.schema import run_schema


def _numeric_keys() -> list[tuple[str, str, dict]]:
    """Every number in the schema: (section, key, its schema), arrays by their items."""
    schema = run_schema()
    found = []
    for section, ref in schema["properties"].items():
        name = (ref.get("items") or ref)["$ref"].rsplit("/", 1)[-1]
        for key, node in schema["$defs"][name]["properties"].items():
            node = node.get("items", node)
            if node.get("type") in ("number", "integer"):
                found.append((section, key, node))
    return found


NUMBERS = _numeric_keys()


def test_every_number_has_a_lower_and_an_upper_bound():
    unbounded = [f"{s}.{k}" for s, k, node in NUMBERS
                 if not ({"minimum", "exclusiveMinimum"} & node.keys() and
                         ({"maximum", "exclusiveMaximum"} & node.keys() or "allowed" in node))]
    assert not unbounded


def _table(section: str, key: str, value: object) -> dict:
    values = {key: [0.5, value, 0.5] if key == "thresholds" else value}
    return {"sources": [{"url": "0", **values}]} if section == "sources" else {section: values}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e308, -1e308, 10**30, "1", True])
@pytest.mark.parametrize("section, key", [(s, k) for s, k, _ in NUMBERS])
def test_every_number_refuses_nonsense(section: str, key: str, value: object):
    with pytest.raises(ConfigError) as caught:
        parse_config(_table(section, key, value), origin="f.toml")
    where = f"sources[0].{key}" if section == "sources" else f"{section}.{key}" + ("[1]" if key == "thresholds" else "")
    assert str(caught.value).startswith(f"f.toml: {where}: must be ")


@pytest.mark.parametrize(
    "outputs, says",
    [
        ({"events": "tcp://127.0.0.1:0"}, "outputs.events: the port must be a whole number from 1 to 65535"),
        ({"events": "tcp://127.0.0.1:5571x"}, "outputs.events: the port must be"),
        ({"events": "tcp://:5571"}, "outputs.events: must be tcp://HOST:PORT"),
        ({"events": "tcp://127.0.0.1"}, "outputs.events: must be tcp://HOST:PORT"),
        ({"events": "tcp://[::1]:5571"}, "outputs.events: IPv6 is not supported for ZeroMQ outputs"),
        ({"events": "tcp://300.1.1.1:5571"}, "outputs.events: 300.1.1.1 is not an IPv4 address"),
        ({"events": "tcp://bad_host!:5571"}, "outputs.events: the host must be an IP address or a host name"),
        ({"events": "udp://127.0.0.1:5571"}, "outputs.events: must be tcp://HOST:PORT"),
        ({"events": "ipc://"}, "outputs.events: ipc:// needs a socket path"),
        ({"frames": "ipc:///tmp/" + "x" * 120}, "outputs.frames: the ipc socket path is longer than 107 bytes"),
        ({"frames": ""}, "outputs.frames: must be tcp://HOST:PORT"),
        ({"http": "8080"}, "outputs.http: must be HOST:PORT"),
        ({"http": "127.0.0.1:"}, "outputs.http: the port must be"),
        ({"http": "::1:8080"}, "outputs.http: an IPv6 address goes in brackets"),
        ({"http": "[::g]:8080"}, "outputs.http: [::g] is not an IPv6 address"),
        ({"http": "*:8080"}, "outputs.http: give 0.0.0.0 for every interface"),
        ({"frames": "tcp://127.0.0.1:5571"}, "outputs.frames: binds the same address as events (tcp://127.0.0.1:5571)"),
        ({"frames": "tcp://*:5571"}, "outputs.frames: binds the same address as events"),
        ({"http": "localhost:5572"}, "outputs.http: binds the same address as frames (tcp://127.0.0.1:5572)"),
        ({"events": "ipc:///tmp/x", "frames": "ipc:///tmp/x"}, "outputs.frames: binds the same address as events"),
    ],
)
def test_addresses_must_be_bindable(outputs: dict, says: str):
    with pytest.raises(ConfigError) as caught:
        parse_config({"outputs": outputs})
    assert str(caught.value).startswith(says)


@pytest.mark.parametrize(
    "outputs",
    [
        {"events": "tcp://*:5571", "frames": "tcp://localhost:5572", "http": "[::1]:8080"},
        {"events": "ipc:///tmp/streamrec-events", "frames": "ipc://@streamrec-frames", "http": ""},
        {"events": "tcp://192.168.1.5:5571", "frames": "tcp://127.0.0.1:5571", "http": "0.0.0.0:8080"},
        {"events": "tcp://camera-host.local:65535", "frames": "tcp://127.0.0.1:1", "http": ":8080"},
    ],
)
def test_good_addresses_pass(outputs: dict):
    assert parse_config({"outputs": outputs}).outputs.model_dump(include=set(outputs)) == outputs


@pytest.mark.parametrize(
    "outputs, exposed",
    [
        ({}, []),
        ({"http": ":8080", "events": "tcp://localhost:5571", "frames": "ipc:///tmp/f"}, []),
        ({"http": "0.0.0.0:8080"}, ["http"]),
        ({"events": "tcp://*:5571", "http": "[::]:8080"}, ["events", "http"]),
        ({"frames": "tcp://192.168.1.5:5572", "http": "[::1]:8080"}, ["frames"]),
        ({"events": "tcp://camera-host:5571"}, ["events"]),  # a name may resolve to anything
    ],
)
def test_outputs_beyond_this_machine_are_known(outputs: dict, exposed: list[str]):
    assert [key for key, _ in parse_config({"outputs": outputs}).outputs.beyond_loopback()] == exposed


@pytest.mark.parametrize(
    "data, says",
    [
        ({"matcher": {"threshold": 0.7}}, "matcher.sure_distance: must be at most threshold (0.7): a sure match is a match first (got 0.8)"),
        ({"matcher": {"votes": 13}}, "matcher.votes: must be at most [tracker] max_embeddings (12): a track has no more embeddings (got 13)"),
        ({"tracker": {"max_embeddings": 2}}, "matcher.unknown_after: must be at most [tracker] max_embeddings (2)"),
        ({"tracker": {"min_gap_s": 2}}, "tracker.min_gap_s: must be at most embed_interval_s (1): a track is re-embedded that often (got 2)"),
        ({"sources": [{"url": "a/door.mp4"}, {"url": "b/door.mp4"}]},
         ('sources[1].name: sources[0] has the same name (names derive from the URL where none is given): give each '
         'source its own name (got "door")')),
        ({"sources": [{"url": "0", "name": "door"}, {"url": "1", "name": "door"}]}, "sources[1].name: sources[0] has the same name"),
        ({"sources": [{"url": "0", "min_face_size": 5}]}, "sources[0].min_face_size: must be 0 or a finite number between 12 and 8192 (got 5)"),
        ({"sources": [{"url": "0", "name": "x" * 65}]}, "sources[0].name: must be a string of at most 64 characters"),
        ({"sources": [{"url": "ftp://host/x"}]}, "sources[0].url: unsupported scheme ftp:// in video source"),
        ({"sources": [{"url": "-1"}]}, "sources[0].url: webcam index -1 is negative"),
        ({"sources": [{"url": "100"}]}, "sources[0].url: webcam index too large"),
        ({"sources": [{"url": "rtsp://cam/x?transport=sctp"}]}, "sources[0].url: rtsp://cam/x: unknown RTSP transport 'sctp'"),
        ({"sources": [{"url": "0"}] * 257}, "sources: must be [[sources]] tables, one per source, at most 256"),
        ({"pipeline": {"data_dir": "/srv/\u0000x"}}, 'pipeline.data_dir: must not contain control characters'),
    ],
)
def test_rules_between_keys_and_of_each_kind(data: dict, says: str):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(says)


def test_rules_hold_where_they_do_not_apply():
    # every frame embedded: max_embeddings does not bound the votes
    config = parse_config({"tracker": {"embed_every_frame": True, "max_embeddings": 1}, "matcher": {"votes": 5}})
    assert config.matcher.votes == 5
    assert parse_config({"matcher": {"threshold": 0.9, "sure_distance": 0.9}}).matcher.sure_distance == 0.9
    names = [s.label for s in parse_config({"sources": [{"url": "a/door.mp4"}, {"url": "b/door.mp4", "name": "back"}]}).sources]
    assert names == ["door", "back"]
