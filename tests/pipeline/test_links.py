"""Stages linked over TCP, as they would be on several hosts: ``streamrec run`` with every
internal link on a loopback port and the frames' pixels in the frame messages, and each stage
started by its own ``streamrec stage`` process with the links under CURVE; on a real RTSP camera, with the people of
../shared/data/faces enrolled."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from streamrec.bus.curve import LinkContext, LinkCurve
from streamrec.bus.messages import StageStats
from streamrec.bus.sockets import pull_socket, receive
from streamrec.config import load_config
from streamrec.events.journal import read_journal
from tests.conftest import cli_command, run_cli
from tests.pipeline.conftest import Events, enroll_people, start_pipeline, stop_process
from tests.support.netns import remote_host
from tests.support.ports import free_port
from tests.support.rtsp import RtspServer

LIN = "lin_manuel_miranda"
LINKS = ("frames", "status", "overlays", "events_in", "stats", "monitor", "events_feed", "jpeg_feed")


def _is_lin(event: dict) -> bool:
    return event["type"] == "match" and event["name"] == LIN


def links_config(path: Path, pixels: str, extra: str = "") -> Path:
    """A configuration file with every link on its own loopback port and ``pixels`` frames."""
    lines = ["[links]", *(f'{link} = "tcp://127.0.0.1:{free_port()}"' for link in LINKS), f'frame_pixels = "{pixels}"']
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture(scope="module")
def enrolled(faces_dir: Path, models, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """A new data directory with the people of ../shared/data/faces enrolled (copied from one
    enrolment)."""
    first = tmp_path_factory.mktemp("enrolled") / "data"
    enroll_people(faces_dir, first, models)

    def copy(folder: Path) -> Path:
        return Path(shutil.copytree(first, folder / "data"))

    return copy


@pytest.mark.parametrize("pixels", ["raw", "jpeg"])
def test_every_link_on_tcp_with_the_pixels_in_the_messages_names_the_person(
    rtsp_clip: Path, enrolled: Callable[[Path], Path], tmp_path: Path, pixels: str
):
    config = links_config(tmp_path / "links.toml", pixels)
    pipeline = start_pipeline(rtsp_clip, enrolled(tmp_path), tmp_path, ["--config", str(config)])
    try:
        found = pipeline.events.wait_for(_is_lin, timeout=120)
        assert 0 < found["ts"] - found["capture_ts"] < 5
        run_dir = Path(pipeline.state()["run_dir"])
        assert not list(run_dir.glob("ring-*")), "the frames went through a ring"
        assert not {"frames", "status", "events", "overlays", "stats"} & {p.name for p in run_dir.iterdir()}
    finally:
        pipeline.close()
    assert pipeline.process.returncode == 0, pipeline.log.read_text()[-3000:]


def _stats_from(stats: zmq.Socket, stages: set[str], timeout_s: float) -> set[str]:
    """The stages among ``stages`` whose statistics report arrived within ``timeout_s``."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while seen != stages and time.monotonic() < deadline:
        if stats.poll(500):
            _, report, _ = receive(stats, expect=StageStats)
            assert isinstance(report, StageStats)
            seen.add(report.stage)
    return seen


def curve_keys(folder: Path) -> str:
    """Certificates made by ``streamrec keys`` (real processes): the links' server and one client
    let in; the ``[links]`` lines that name them."""
    for name in ("links", "host"):
        assert run_cli("keys", name, "--out", str(folder), timeout=60).returncode == 0
    (folder / "clients").mkdir()
    shutil.copy(folder / "host.key", folder / "clients")
    return (f'curve_server_key = "{folder}/links.key"\ncurve_server_secret = "{folder}/links.key_secret"\n'
            f'curve_client_secret = "{folder}/host.key_secret"\ncurve_clients = "{folder}/clients"\n')


def outputs(events_address: str, source: str) -> str:
    """``[outputs]`` on free loopback ports (no web server) and one ``door`` source."""
    return (f'[outputs]\nevents = "{events_address}"\nframes = "tcp://127.0.0.1:{free_port()}"\nhttp = ""\n'
            f'[[sources]]\nurl = "{source}"\nname = "door"\nloop = true\n')


def named_then_stopped(commands: dict[str, list[str]], events_address: str, data: Path, logs: Path,
                       while_running: Callable[[], None] = lambda: None) -> None:
    """Start each stage's command, wait for the door to name the person (``streamrec events``
    subscribed), call ``while_running``, then SIGTERM each stage, which must exit 0."""
    subscriber = subprocess.Popen([*cli_command(), "events", "--json", "--address", events_address, "--data-dir", str(data)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events = Events(subscriber)
    stages: dict[str, subprocess.Popen] = {}
    try:
        with open(logs, "a") as out:
            for name, command in commands.items():
                stages[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        found = events.wait_for(lambda e: e["type"] == "match" and e["name"] == LIN, timeout=150)
        assert found["source"] == "door"
        while_running()
        for name in reversed(commands):
            stages[name].send_signal(signal.SIGTERM)
            assert stages[name].wait(30) == 0, f"{name}: {logs.read_text()[-3000:]}"
    finally:
        for process in (*stages.values(), subscriber):
            stop_process(process)


def _stage(name: str, config: Path, data: Path | None) -> list[str]:
    return [*cli_command(), "stage", name, "--config", str(config), *(["--data-dir", str(data)] if data else [])]


def test_each_stage_in_its_own_streamrec_stage_process_over_curve_names_the_person_and_stops_on_sigterm(
    rtsp_clip: Path, enrolled: Callable[[Path], Path], tmp_path: Path
):
    server = RtspServer(rtsp_clip, tmp_path / "rtsp_server.log").start()
    events_address = f"tcp://127.0.0.1:{free_port()}"
    config = links_config(tmp_path / "stages.toml", "jpeg", curve_keys(tmp_path / "keys") + outputs(events_address, server.url))
    data = enrolled(tmp_path)
    loaded = load_config(config)
    ctx = LinkContext(LinkCurve.from_links(loaded.links))  # a supervisor's, with the server certificate
    stats = pull_socket(ctx, loaded.links.stats, accepts=StageStats)
    every = {"events", "inference", "capture:door"}

    def every_stage_reports() -> None:
        assert _stats_from(stats, every, 10) == every

    try:
        named_then_stopped(
            {name: _stage(name, config, data if name != "capture:door" else None) for name in ("events", "inference", "capture:door")},
            events_address, data, tmp_path / "stages.log", every_stage_reports,
        )
        assert any(e.get("name") == LIN for e in read_journal(data / "events"))
    finally:
        server.stop()
        ctx.destroy(linger=0)


def test_a_capture_in_another_network_namespace_reaches_inference_over_a_veth_pair_with_curve(
    hamilton_clip: Path, enrolled: Callable[[Path], Path], tmp_path: Path
):
    with remote_host() as host:
        events_address = f"tcp://127.0.0.1:{free_port()}"
        beyond = {"frames": f"tcp://{host.server_ip}:{free_port()}", "status": f"tcp://{host.server_ip}:{free_port()}"}
        here = {"events_in": f"tcp://127.0.0.1:{free_port()}", "overlays": f"tcp://127.0.0.1:{free_port()}"}
        config = tmp_path / "hosts.toml"
        config.write_text(
            "[links]\n" + "".join(f'{link} = "{address}"\n' for link, address in {**beyond, **here}.items())
            + 'frame_pixels = "jpeg"\n' + curve_keys(tmp_path / "keys") + outputs(events_address, str(hamilton_clip))
        )
        data = enrolled(tmp_path)
        named_then_stopped({
            "events": _stage("events", config, data),
            "inference": _stage("inference", config, data),
            # the other host: it reaches this one only over the veth pair
            "capture:door": ["ip", "netns", "exec", host.name, *_stage("capture:door", config, None)],
        }, events_address, data, tmp_path / "stages.log")
