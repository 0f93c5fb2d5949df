"""``streamrec stage`` and ``streamrec keys``: what they refuse, each in one line, before any stage starts (the stages
themselves, linked over TCP: tests/pipeline/test_links.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

LINKED = '[links]\nframes = "tcp://127.0.0.1:5801"\nstatus = "tcp://127.0.0.1:5802"\n'
CURVE = ('curve_server_key = "/nowhere/links.key"\ncurve_server_secret = "/nowhere/links.key_secret"\n'
         'curve_client_secret = "/nowhere/host.key_secret"\ncurve_clients = "/nowhere/clients"\n')
SOURCE = '[[sources]]\nurl = "rtsp://camera.local/stream"\nname = "door"\n'


@pytest.mark.parametrize(
    "name, config, message",
    [
        ("detector", SOURCE, "no stage 'detector': give capture, capture:LABEL, inference, events, mqtt, render or web"),
        ("render:door", SOURCE, "no stage 'render:door'"),
        ("capture:gate", LINKED + 'frame_pixels = "raw"\n' + SOURCE, "capture:gate: no source 'gate' in the configuration (its sources: door)"),
        ("capture", LINKED + 'frame_pixels = "raw"\n', "capture: the configuration has no [[sources]]"),
        ("capture:door", SOURCE, "links.frames must be set for the capture stage to reach the others"),
        ("capture", LINKED + SOURCE, 'links.frame_pixels: "ring" needs capture and inference in one `streamrec run`; set "raw" or "jpeg"'),
        ("inference", LINKED + 'frame_pixels = "jpeg"\n' + SOURCE, "links.events_in must be set for the inference stage"),
        ("web", '[outputs]\nhttp = ""\n', 'web: [outputs] http is "": the configuration has no web server'),
        ("mqtt", SOURCE, 'mqtt: [mqtt] broker is "": the configuration publishes to no MQTT broker'),
        ("events", '[links]\nevents_in = "tcp://*:5803"\n', "links.events_in: both ends of a link use this address"),
        ("capture:door", LINKED + 'frame_pixels = "raw"\n' + CURVE + SOURCE,
         "links: cannot read the CURVE certificate /nowhere/links.key"),
    ],
)
def test_a_stage_that_cannot_run_is_refused_in_one_line(tmp_path: Path, name: str, config: str, message: str):
    path = tmp_path / "stage.toml"
    path.write_text(config)
    result = run_cli("stage", name, "--config", str(path), timeout=120)
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_keys_refuses_a_bad_name_and_never_overwrites_a_certificate(tmp_path: Path):
    assert run_cli("keys", "links", "--out", str(tmp_path), timeout=60).returncode == 0
    before = (tmp_path / "links.key_secret").read_bytes()
    again = run_cli("keys", "links", "--out", str(tmp_path), timeout=60)
    assert again.returncode == 1 and again.stderr == f"streamrec: error: {tmp_path / 'links.key'} exists: give another NAME or --out, or remove it first\n"
    assert (tmp_path / "links.key_secret").read_bytes() == before
    bad = run_cli("keys", "../links", "--out", str(tmp_path), timeout=60)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "is not a certificate name" in bad.stderr

