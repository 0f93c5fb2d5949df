"""Two inference workers, each its own ``streamrec stage inference --worker K`` process, as on two
hosts: the events stage, the two workers (each with its own copy of the data directory) and two
captures (the hamilton clip looping, at 10 frames a second) are separate ``streamrec stage``
processes linked by loopback TCP ports, with the people of ../shared/data/faces enrolled.

Each camera is served by the one worker rendezvous hashing gives it and the person is named on
both; worker 2 killed with SIGKILL, its camera moves to worker 1, where the person is named again,
and the events stage ends the tracks worker 2 left open; worker 2 started again with the same
command, the camera comes back to it, and no track id is ever given twice."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from streamrec.pipeline.workers import rendezvous
from tests.conftest import cli_command
from tests.pipeline.conftest import Events, stop_process
from tests.pipeline.test_links import _stage, enrolled, outputs  # noqa: F401 - a shared fixture
from tests.pipeline.test_workers import DECISIONS, TAKEOVER, _is_lin_on
from tests.support.ports import free_port
from tests.support.wait import wait_until

#: the cameras, the first of them on worker 2 and the second on worker 1 (checked below)
CAMERAS = ("door", "hall")


def _config(path: Path, events_address: str, clip: Path) -> Path:
    """Every link on a loopback port, two workers, and the two cameras playing ``clip`` at 10
    frames a second (the first is the source :func:`outputs` writes, whose table the ``fps``
    line after it ends)."""
    workers = "".join(f'[[links.workers]]\nframes = "tcp://127.0.0.1:{free_port()}"\n'
                      f'status = "tcp://127.0.0.1:{free_port()}"\n' for _ in range(2))
    path.write_text(f'[links]\nevents_in = "tcp://127.0.0.1:{free_port()}"\noverlays = "tcp://127.0.0.1:{free_port()}"\n'
                    f'frame_pixels = "raw"\n{workers}{outputs(events_address, str(clip))}fps = 10\n'
                    f'[[sources]]\nurl = "{clip}"\nname = "{CAMERAS[1]}"\nloop = true\nfps = 10\n')
    return path


def _worker(track_id: int) -> int:
    """The worker (of 2) that hands out ``track_id``: worker K gives K, K + 2, K + 4..."""
    return 2 - track_id % 2


def _decisions(events: Events, camera: str) -> list[dict]:
    return [e for e in events.received if e["type"] in DECISIONS and e["source"] == camera]


def _named_on(camera: str, worker: int) -> Callable[[dict], bool]:
    """An event naming the person on ``camera``, on a track of ``worker``."""
    return lambda event: _is_lin_on(camera)(event) and _worker(event["track_id"]) == worker


def test_worker_stages_share_the_cameras_and_a_killed_worker_s_camera_moves_and_comes_back(
    hamilton_clip: Path, enrolled: Callable[[Path], Path], tmp_path: Path  # noqa: F811
):
    moved, kept = CAMERAS
    assert rendezvous(moved, {1, 2}) == 2 and rendezvous(kept, {1, 2}) == 1
    events_address = f"tcp://127.0.0.1:{free_port()}"
    config = _config(tmp_path / "workers.toml", events_address, hamilton_clip)
    data = {name: enrolled(tmp_path / name) for name in ("inference:1", "inference:2")}  # each on a host of its own
    data["events"] = tmp_path / "events"  # the journal
    commands = {
        "events": _stage("events", config, data["events"]),
        **{f"inference:{k}": [*_stage("inference", config, data[f"inference:{k}"]), "--worker", str(k)] for k in (1, 2)},
        **{f"capture:{camera}": _stage(f"capture:{camera}", config, None) for camera in CAMERAS},
    }
    logs = {name: tmp_path / f"{name}.log" for name in commands}
    stages: dict[str, subprocess.Popen] = {}

    def start(name: str) -> None:
        with open(logs[name], "a") as out:
            stages[name] = subprocess.Popen(commands[name], stdout=out, stderr=subprocess.STDOUT)

    moves = lambda: [line for line in logs[f"capture:{moved}"].read_text().splitlines() if "now served by worker" in line]
    events = Events(subprocess.Popen([*cli_command(), "events", "--json", "--address", events_address, "--data-dir",
                                      str(data["events"])], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    try:
        for name in commands:
            start(name)
        for camera, worker in ((moved, 2), (kept, 1)):
            events.wait_for(_named_on(camera, worker), timeout=240)
        for camera, worker in ((moved, 2), (kept, 1)):
            assert {_worker(e["track_id"]) for e in _decisions(events, camera)} == {worker}, f"{camera} on both workers"
        assert len(moves()) == 1 and moves()[0].endswith(f"{moved}: now served by worker 2"), moves()

        # worker 2 killed while its camera has a track open there
        decided = events.wait_for(lambda e: e["type"] in DECISIONS and e["source"] == moved, timeout=90,
                                  after_seq=events.last_seq)
        stages["inference:2"].send_signal(signal.SIGKILL)
        stages["inference:2"].wait(30)
        killed_at = events.last_seq
        left_open = {e["track_id"] for e in _decisions(events, moved)}
        ended = events.wait_for(lambda e: e["type"] == "track_end" and e["track_id"] == decided["track_id"], timeout=60,
                                after_seq=decided["seq"])
        assert ended["detail"] == TAKEOVER, ended
        events.wait_for(_named_on(moved, 1), timeout=120, after_seq=killed_at)
        closed = {e["track_id"] for e in events.received if e["type"] == "track_end"}
        assert left_open <= closed, f"tracks of the killed worker never ended: {left_open - closed}"
        assert f"{moved}: now served by worker 1; worker 2 is gone" in moves()[-1], moves()

        # worker 2 back, by the same command: the camera returns to it, on track ids never given
        given = max(e["track_id"] for e in events.received if e.get("track_id") and _worker(e["track_id"]) == 2)
        back_at = events.last_seq
        start("inference:2")
        wait_until(lambda: f"{moved}: now served by worker 2; worker 1 is still linked" in moves()[-1], 120,
                   f"the camera did not come back to worker 2: {moves()}", every=0.5)
        again = events.wait_for(_named_on(moved, 2), timeout=180, after_seq=back_at)
        assert again["track_id"] > given, f"worker 2 gave track id {again['track_id']} again"
        # worker 1 says it serves the camera a little longer, but never takes it back
        for track_id in {e["track_id"] for e in _decisions(events, moved) if e["seq"] > back_at and _worker(e["track_id"]) == 2}:
            end = events.wait_for(lambda e, t=track_id: e["type"] == "track_end" and e["track_id"] == t, timeout=60)
            assert end["detail"] != TAKEOVER, f"worker 2's track {track_id} was ended as taken over while it served the camera"
        assert {_worker(e["track_id"]) for e in _decisions(events, kept)} == {1}, f"{kept} left worker 1"
        sources: dict[int, set[str]] = {}
        for event in events.received:
            if event["type"] in DECISIONS:
                sources.setdefault(event["track_id"], set()).add(event["source"])
        assert all(len(named) == 1 for named in sources.values()), f"a track id was given twice: {sources}"
    finally:
        for process in (*reversed(stages.values()), events.process):
            stop_process(process)
