"""Configuration files: defaults, the shipped configs, and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.config import ConfigError, RunConfig, load_config, parse_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path):
    config = load_config(path)
    assert isinstance(config, RunConfig)
    assert config.outputs.http.startswith("127.0.0.1:") or config.outputs.http == ""
    assert "127.0.0.1" in config.outputs.events


def test_shipped_configs_exist():
    assert {p.name for p in CONFIGS.glob("*.toml")} >= {"default.toml", "door.toml", "cameras.toml"}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"tracker": {"max_missed_s": "soon"}}, "tracker.max_missed_s: expected a number, got 'soon'"),
        ({"tracker": {"bogus": 1}}, "unknown key 'tracker.bogus'"),
        ({"trackers": {}}, "unknown section 'trackers'"),
        ({"tracker": {"max_missed_s": -1}}, "tracker.max_missed_s: must be > 0"),
        ({"sources": [{"url": "a.mp4", "loop": 1}]}, "sources[0].loop: expected true or false"),
        ({"sources": [{"loop": True}]}, "sources[0].url: must not be empty"),
        ({"detector": {"thresholds": [0.5, "x", 1]}}, "detector.thresholds[1]: expected a number"),
        ({"batch": {"max_frames": 2.5}}, "batch.max_frames: expected a whole number"),
        ({"matcher": {"sure_distance": 2.0}}, "matcher.sure_distance: must be <= threshold"),
        ({"pipeline": {"precision": "fp16"}}, "pipeline.precision"),
        ({"outputs": "loud"}, "outputs: expected a table"),
    ],
)
def test_bad_settings_name_the_key(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in str(caught.value)


def test_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[tracker\nmax_missed_s = 1\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[tracker]\nmax_missed_s = true\n")
    with pytest.raises(ConfigError, match="wrong.toml: tracker.max_missed_s: expected a number, got True"):
        load_config(wrong)


def test_source_labels_hide_credentials():
    from streamrec.config.model import SourceConfig

    assert SourceConfig(url="rtsp://admin:secret@10.0.0.5:554/stream1").label == "10.0.0.5:554/stream1"
    assert SourceConfig(url="0").label == "camera0"
    assert SourceConfig(url="clips/door.mp4").label == "door"
    assert SourceConfig(url="clips/door.mp4", name="front").label == "front"
