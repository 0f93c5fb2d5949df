"""Configuration files: defaults, the shipped configs, and clear errors naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamrec.config import ConfigError, RunConfig, SourceConfig, load_config, override, parse_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path):
    config = load_config(path)
    assert isinstance(config, RunConfig)
    assert config.outputs.http.startswith("127.0.0.1:") or config.outputs.http == ""
    assert "127.0.0.1" in config.outputs.events
    assert list(config.outputs.beyond_loopback()) == []  # nothing shipped is reachable from elsewhere


def test_shipped_configs_exist():
    assert {p.name for p in CONFIGS.glob("*.toml")} >= {"default.toml", "door.toml", "cameras.toml", "wide.toml"}


#: a complete [links] CURVE setting (the files are read only by the stages that use them)
CURVE = {"curve_server_key": "k/links.key", "curve_server_secret": "k/links.key_secret",
         "curve_client_secret": "k/host.key_secret", "curve_clients": "k/clients"}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"tracker": {"max_missed_s": "soon"}}, 'tracker.max_missed_s: must be a finite number > 0 and <= 60 (got "soon")'),
        ({"tracker": {"bogus": 1}}, "tracker.bogus: unknown key (known: iou_threshold, max_missed_s,"),
        ({"trackers": {}}, "trackers: unknown section; did you mean tracker?"),
        ({"detector": {"min_face_sise": 40}}, "detector.min_face_sise: unknown key; did you mean min_face_size?"),
        ({"tracker": {"max_missed_s": -1}}, "tracker.max_missed_s: must be a finite number > 0 and <= 60 (got -1)"),
        ({"sources": [{"url": "a.mp4", "loop": 1}]}, "sources[0].loop: must be true or false (got 1)"),
        ({"sources": [{"loop": True}]}, "sources[0].url: is required: a webcam index"),
        ({"sources": [{"url": " "}]}, 'sources[0].url: must not be empty (got " ")'),
        ({"detector": {"thresholds": [0.5, "x", 0.5]}}, 'detector.thresholds[1]: must be a finite number > 0 and < 1 (got "x")'),
        ({"detector": {"thresholds": [0.5, 0.5]}}, "detector.thresholds: must be a list of 3 values, each a finite number"),
        ({"batch": {"max_frames": 2.5}}, "batch.max_frames: must be a whole number between 1 and 256 (got 2.5)"),
        ({"batch": {"max_frames": True}}, "batch.max_frames: must be a whole number between 1 and 256 (got true)"),
        ({"matcher": {"sure_distance": 2.0}}, "matcher.sure_distance: must be at most threshold (0.9)"),
        ({"door": {"threshold": 0.95}}, "door.threshold: must be at most [matcher] threshold (0.9): a door names"),
        ({"door": {"challenge": "up"}}, 'door.challenge: must be one of "random", "left", "right" (got "up")'),
        ({"sources": [{"url": "0", "role": "gate"}]}, 'sources[0].role: must be one of "camera", "door" (got "gate")'),
        ({"pipeline": {"precision": "fp8"}}, 'pipeline.precision: must be one of "auto", "fp32", "bf16", "fp16", "int8" (got "fp8")'),
        ({"outputs": "loud"}, 'outputs: must be a table of settings (got "loud")'),
        ({"sources": {"url": "0"}}, "sources: must be [[sources]] tables, one per source, at most 256"),
        ({"sources": [{"url": "0", "name": "door\nway"}]}, 'sources[0].name: must not contain control characters'),
        ({"links": {"frames": "udp://1.2.3.4:5"}}, "links.frames: must be tcp://HOST:PORT"),
        ({"links": {"status": "tcp://127.0.0.1:70000"}}, "links.status: the port must be a whole number from 1 to 65535"),
        ({"links": {"overlays": "tcp://*:5600"}}, "links.overlays: both ends of a link use this address, and no stage can connect to *"),
        ({"links": {"stats": "tcp://0.0.0.0:5600"}}, "links.stats: both ends of a link use this address"),
        ({"links": {"frames": "tcp://127.0.0.1:5600", "status": "tcp://localhost:5600"}},
         "links.status: binds the same address as links.frames (tcp://127.0.0.1:5600)"),
        ({"links": {"events_in": "tcp://127.0.0.1:5571"}},
         "links.events_in: binds the same address as outputs.events (tcp://127.0.0.1:5571)"),
        ({"links": {"frames": "tcp://10.0.0.2:5600", **CURVE}},
         'links.frame_pixels: a frames link beyond this machine needs the pixels in the message: set frame_pixels = "raw" or "jpeg" (got "ring")'),
        ({"links": {"status": "tcp://camera-host:5600"}},
         ("links.status: a link beyond this machine needs CURVE: set curve_server_key, curve_server_secret, "
         "curve_client_secret, curve_clients (`streamrec keys NAME --out DIR` makes the certificates) (got \"tcp://camera-host:5600\")")),
        ({"links": {**CURVE, "curve_clients": ""}},
         'links.curve_clients: CURVE needs all of curve_server_key, curve_server_secret, curve_client_secret, curve_clients'),
        ({"links": {"frame_pixels": "png"}}, 'links.frame_pixels: must be one of "ring", "raw", "jpeg" (got "png")'),
        ({"links": {"frame_quality": 5}}, "links.frame_quality: must be a whole number between 10 and 100 (got 5)"),
    ],
)
def test_bad_settings_name_the_key(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_problem_is_listed_and_the_first_is_the_message():
    with pytest.raises(ConfigError) as caught:
        parse_config({"batch": {"max_wait_ms": 0}, "matcher": {"votes": 0}}, origin="x.toml")
    assert caught.value.problems == [
        "x.toml: batch.max_wait_ms: must be a finite number > 0 and <= 1000 (got 0)",
        "x.toml: matcher.votes: must be a whole number between 1 and 1000 (got 0)",
    ]
    assert str(caught.value) == caught.value.problems[0] + " (and 1 more problem)"


def test_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="none.toml: no such file"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[tracker\nmax_missed_s = 1\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: .*line 1"):
        load_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[tracker]\nmax_missed_s = true\n")
    with pytest.raises(ConfigError, match=r"wrong.toml: tracker.max_missed_s: must be a finite number > 0 and <= 60 \(got true\)"):
        load_config(wrong)


def test_a_directory_or_an_unreadable_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read"):
        load_config(tmp_path)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.toml"
        locked.write_text("")
        locked.chmod(0)
        with pytest.raises(ConfigError, match="locked.toml: cannot read"):
            load_config(locked)


def test_a_byte_order_mark_is_accepted(tmp_path: Path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[matcher]\nvotes = 3\n")
    assert load_config(path).matcher.votes == 3


def test_source_labels_hide_credentials():
    assert SourceConfig(url="rtsp://admin:secret@10.0.0.5:554/stream1").label == "10.0.0.5:554/stream1"
    assert SourceConfig(url="0").label == "camera0"
    assert SourceConfig(url="clips/door.mp4").label == "door"
    assert SourceConfig(url="clips/door.mp4", name="front").label == "front"


def test_errors_never_show_a_password():
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": [{"url": "rtsp://admin:secret@10.0.0.5:99999/stream1"}]})
    assert "secret" not in str(caught.value) and "admin" not in str(caught.value)
    assert 'sources[0].url: rtsp://10.0.0.5/stream1: invalid port in URL (got "rtsp://***@10.0.0.5:99999' in str(caught.value)


def test_a_checked_configuration_cannot_be_changed_in_place():
    config = RunConfig()
    with pytest.raises(ValidationError):
        config.pipeline.threads = 100000  # type: ignore[misc]


def test_an_override_is_checked_like_the_file_and_named_after_its_option():
    config = parse_config({"pipeline": {"threads": 1}})
    changed = override(config, {"pipeline": {"precision": "int8"}, "outputs": {"http": ""}})
    assert (changed.pipeline.threads, changed.pipeline.precision, changed.outputs.http) == (1, "int8", "")
    assert config.pipeline.precision == "auto"  # the original is untouched
    with pytest.raises(ConfigError) as caught:
        override(config, {"detector": {"min_face_size": float("nan")}}, {"detector.min_face_size": "--min-face-size"}, "x.toml")
    assert str(caught.value) == "--min-face-size: must be a finite number between 12 and 8192 (got nan)"


def test_a_leading_tilde_is_the_home_folder():
    assert parse_config({"pipeline": {"data_dir": "~/streamrec"}}).pipeline.data_dir == str(Path.home() / "streamrec")
