"""Access decisions through the real pipeline (``streamrec run``, its stage processes, the real
models and watchlist), on real footage: the head turns of the hamilton clip, and clips rendered
from a still photo of an enrolled person, held still and moved about as a hand-held print is."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamrec.events.journal import read_journal
from streamrec.images import load_image
from tests.conftest import cli_command, run_cli
from tests.door.footage import LEFT_TURN, RIGHT_TURN, frames
from tests.pipeline.conftest import Events, enroll_people, quiet_outputs, stop_process
from tests.support.clips import write_clip
from tests.support.ports import free_port

FPS = 29.97
SIZE = (640, 360)


def photo_clip(photo: Path, path: Path, seconds: float, moving: bool, away_s: float = 0.0) -> Path:
    """A print of ``photo`` on a grey wall: held still, or slowly panned across the picture and
    brought closer (scaled from 0.8 to 1.1), with a slight sway, as a hand holds it; then
    ``away_s`` seconds of the bare wall (looped, the print comes and goes)."""
    picture = load_image(photo).rgb
    h, w = picture.shape[:2]
    base = 0.8 * SIZE[1] / h

    def pictures() -> Iterator[np.ndarray]:
        for index in range(int(seconds * FPS)):
            progress = index / (seconds * FPS) if moving else 0.0
            scale = base * (1 + 0.35 * progress)
            angle = 4 * math.sin(progress * 2 * math.pi) if moving else 0.0
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
            matrix[:, 2] += (SIZE[0] / 2 - w / 2 + (progress - 0.5) * 160, SIZE[1] / 2 - h / 2)
            yield cv2.warpAffine(picture, matrix, SIZE, borderValue=(120, 120, 120))
        for _ in range(int(away_s * FPS)):
            yield np.full((SIZE[1], SIZE[0], 3), 120, np.uint8)

    return write_clip(path, pictures(), FPS, SIZE)


@pytest.fixture(scope="module")
def door_data(faces_dir: Path, models, hamilton_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The enrolled watchlist and the door clips: ``right_turn`` and ``left_turn`` (the hamilton
    segments), ``photo`` (still), ``print`` (moved) and ``visits`` (still for 8 s, then gone for
    1.5 s), of Lin-Manuel Miranda's enrolled photo."""
    folder = tmp_path_factory.mktemp("door")
    enroll_people(faces_dir, folder / "watchlist", models)
    photo = faces_dir / "lin_manuel_miranda" / "1.png"
    return {
        "watchlist": folder / "watchlist",
        "right_turn": write_clip(folder / "right_turn.mp4", (rgb for _, rgb in frames(hamilton_clip, *RIGHT_TURN)), FPS, SIZE),
        "left_turn": write_clip(folder / "left_turn.mp4", (rgb for _, rgb in frames(hamilton_clip, *LEFT_TURN)), FPS, SIZE),
        "photo": photo_clip(photo, folder / "photo.mp4", 7.0, moving=False),
        "print": photo_clip(photo, folder / "print.mp4", 7.0, moving=True),
        "visits": photo_clip(photo, folder / "visits.mp4", 8.0, moving=False, away_s=1.5),
    }


def door_config(path: Path, clips: dict[str, Path], door: str, loop: bool = False, fast: bool = True) -> Path:
    """A configuration with each of ``clips`` as a door source named after it."""
    sources = "".join(
        f'\n[[sources]]\nname = "{name}"\nurl = "{clip}"\nrole = "door"\nfast = {str(fast).lower()}\nloop = {str(loop).lower()}\n'
        for name, clip in clips.items()
    )
    path.write_text(f"[door]\n{door}\n{sources}")
    return path


def access_events(data_dir: Path) -> dict[str, list[dict]]:
    """The journaled ``access`` events, by source."""
    found: dict[str, list[dict]] = {}
    for event in read_journal(data_dir / "events"):
        if event["type"] == "access":
            found.setdefault(event["source"], []).append(event)
    return found


@pytest.mark.parametrize("asked", ["right", "left"])
def test_the_asked_turn_is_granted_the_other_and_a_photo_denied(asked: str, door_data: dict[str, Path], tmp_path: Path):
    data = tmp_path / "data"
    subprocess.run(["cp", "-r", str(door_data["watchlist"]), str(data)], check=True)
    clips = {name: door_data[name] for name in ("right_turn", "left_turn", "photo", "print")}
    # a relay script as a door action: it gets each answer as JSON on stdin
    relay, opened = tmp_path / "relay.py", tmp_path / "relay.jsonl"
    relay.write_text("import sys\nwith open(sys.argv[1], 'a') as out:\n    out.write(sys.stdin.read().strip() + '\\n')\n")
    action = f'[[door.actions]]\ntype = "command"\nargv = {json.dumps([sys.executable, str(relay), str(opened)])}\ntimeout_s = 20'
    config = door_config(tmp_path / "door.toml", clips, f'challenge = "{asked}"\n{action}')
    result = run_cli("run", "--config", str(config), "--data-dir", str(data), *quiet_outputs(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    events = access_events(data)
    actions = {source: [e for e in found if e["result"] == "action"] for source, found in events.items()}
    events = {source: [e for e in found if e["result"] != "action"] for source, found in events.items()}
    # every answer ran the relay once, with the answer, and its result is journaled after it
    relayed = sorted((answer["source"], answer["outcome"]) for answer in map(json.loads, opened.read_text().splitlines()))
    assert relayed == sorted((source, found[-1]["result"]) for source, found in events.items())
    for source, ran in actions.items():
        assert [(e["reason"], e["track_id"]) for e in ran] == [("done", events[source][-1]["track_id"])], ran
        assert ran[0]["seq"] > events[source][-1]["seq"] and "exit status 0" in ran[0]["detail"], ran
    summary = {source: [(e["result"], e["reason"]) for e in found] for source, found in events.items()}
    turned = "right_turn" if asked == "right" else "left_turn"
    other = "left_turn" if asked == "right" else "right_turn"
    assert summary[turned] == [("challenge", None), ("granted", None)], summary
    assert summary[other] == [("challenge", None), ("denied", "wrong_direction")], summary
    for photo in ("photo", "print"):
        assert summary[photo] == [("challenge", None), ("denied", "no_movement")], summary
    for found in events.values():
        assert {(e["name"], e["direction"]) for e in found} == {("lin_manuel_miranda", asked)}


@contextmanager
def live_door(
    door_data: dict[str, Path], folder: Path, door: str = "challenge_s = 60", http: str = "", clip: str = "photo",
) -> Iterator[tuple[Path, Events]]:
    """``streamrec run`` on one door (``clip``, by default the still photo, looping, at its own
    rate), with ``streamrec events`` subscribed; yields the data directory and the events. By
    default challenges last a minute: still running, whatever the machine's speed, when a test
    interferes with one. ``http``: where the web server listens (none by default)."""
    data = folder / "data"
    subprocess.run(["cp", "-r", str(door_data["watchlist"]), str(data)], check=True)
    config = door_config(folder / "door.toml", {"door": door_data[clip]}, door, loop=True, fast=False)
    outputs = [*quiet_outputs(), "--http", http]  # the last --http wins
    log = folder / "run.log"
    with open(log, "w") as out:
        run = subprocess.Popen([*cli_command(), "run", "--config", str(config), "--data-dir", str(data), *outputs],
                               stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    address = outputs[outputs.index("--events") + 1]
    subscriber = subprocess.Popen([*cli_command(), "events", "--json", "--address", address, "--data-dir", str(data)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield data, Events(subscriber)
    finally:
        for process in (subscriber, run):
            stop_process(process)
    granted = [e for e in read_journal(data / "events") if e["type"] == "access" and e["result"] == "granted"]
    assert granted == [], log.read_text()[-3000:]


def _answer(events: Events, challenge: dict) -> dict:
    """The answer to ``challenge``."""
    return events.wait_for(
        lambda e: e["type"] == "access" and e["track_id"] == challenge["track_id"] and e["result"] != "challenge",
        timeout=120, after_seq=challenge["seq"],
    )


def _challenged(events: Events, after_seq: int = 0) -> dict:
    return events.wait_for(lambda e: e["type"] == "access" and e["result"] == "challenge", timeout=180, after_seq=after_seq)


def _stage_pid(data: Path, stage: str) -> int:
    return int(json.loads((data / "run.json").read_text())["stages"][stage])


def test_a_challenge_whose_stage_is_killed_is_denied_never_granted(door_data: dict[str, Path], tmp_path: Path):
    """kill -9 of the inference stage mid-challenge: the supervisor restarts it, and the restarted
    stage denies the challenge it finds open (``restarted``)."""
    with live_door(door_data, tmp_path) as (data, events):
        challenge = _challenged(events)
        os.kill(_stage_pid(data, "inference"), signal.SIGKILL)
        answer = _answer(events, challenge)
        assert (answer["result"], answer["reason"]) == ("denied", "restarted"), answer
        assert answer["name"] == challenge["name"] == "lin_manuel_miranda"
        # the restarted stage goes on deciding: the photo, on a new track, is challenged afresh
        _challenged(events, after_seq=answer["seq"])


def test_a_challenge_whose_camera_stalls_is_denied(door_data: dict[str, Path], tmp_path: Path):
    """The door's capture process frozen (SIGSTOP) mid-challenge: no frame comes, and the
    challenge is denied (``stalled``) on the inference stage's own clock."""
    with live_door(door_data, tmp_path) as (data, events):
        challenge = _challenged(events)
        capture = _stage_pid(data, "capture:door")
        os.kill(capture, signal.SIGSTOP)
        try:
            answer = _answer(events, challenge)
        finally:
            os.kill(capture, signal.SIGCONT)
        assert (answer["result"], answer["reason"]) == ("denied", "stalled"), answer


def test_the_door_page_of_a_running_pipeline_asks_then_denies_a_photo(door_data: dict[str, Path], tmp_path: Path, browser):
    """Chromium on the door page of a real run: the photo is asked to turn (an arrow, no name),
    then denied with the reason in words. The print comes and goes, each visit challenged
    afresh, so the page sees a whole challenge however long it took to open."""
    address = f"127.0.0.1:{free_port()}"
    with live_door(door_data, tmp_path, "challenge_s = 3", http=address, clip="visits") as (_, events):
        host, port = address.split(":")
        deadline = time.monotonic() + 120
        while True:  # the web stage starts with the run, the engines take a while
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nothing listens on {address}"
                time.sleep(0.2)
        page = browser.new_page(viewport={"width": 800, "height": 1280})
        try:
            page.goto(f"http://{address}/", wait_until="load")
            page.wait_for_function("document.getElementById('decision').dataset.state === 'challenge'", timeout=180_000)
            page.evaluate(RECORD_NAMES)
            asked = page.inner_text("#name")
            assert asked in ("Turn your head left", "Turn your head right") and page.inner_text("#arrow") in ("\u2190", "\u2192")
            page.wait_for_function("document.getElementById('decision').dataset.state === 'denied'", timeout=60_000)
            assert page.inner_text("#detail") == "no head movement"
            assert page.evaluate("window.names") == [asked, "DENIED"]  # and no name in between
        finally:
            page.close()
        events.wait_for(lambda e: e["type"] == "access" and e["result"] == "denied" and e["reason"] == "no_movement", timeout=30)


#: records, in the page, every text its large line shows from now on
RECORD_NAMES = """() => {
  window.names = [document.getElementById("name").textContent];
  new MutationObserver(() => {
    const text = document.getElementById("name").textContent;
    if (window.names[window.names.length - 1] !== text) window.names.push(text);
  }).observe(document.getElementById("decision"), {childList: true, subtree: true, characterData: true});
}"""
