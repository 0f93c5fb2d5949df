"""Four hosts made by the test (network namespaces on a segment of their own): A runs a camera
(an RTSP server on its own loopback) and its capture stage; B the inference, events and MQTT
stages, with the watchlist and the journal; C a Triton Inference Server serving the engines; D a
Mosquitto broker and a subscriber. A and B are linked under CURVE, B reaches D with a login over
TLS, and every process is a real one started by ``ip netns exec``, as an orchestrator would on
four machines.

The person enrolled on B is named on D. Then B's inference stage, C's server and D's broker are
each killed (SIGKILL) and started again: after each, D hears the person named again, on tracks
whose ids were never given before, and at the end every event of B's journal has reached D, in
order of first arrival (at least once: an event in flight when a connection broke may come
twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamrec.events.journal import read_journal
from tests.conftest import cli_command, run_cli
from tests.pipeline.conftest import JsonLines, stop_process
from tests.pipeline.test_links import curve_keys, enrolled  # noqa: F401 - a shared fixture
from tests.support.mosquitto import Broker, need_mosquitto
from tests.support.netns import Site, SiteHost, site
from tests.support.rtsp import RtspServer
from tests.support.tls import self_signed
from tests.support.triton import TritonServer, require_triton

LIN = "lin_manuel_miranda"
ROOT = Path(__file__).resolve().parents[2]
WATCHER_PASSWORD, STAGE_PASSWORD = "watch-2026-secret", "door-2026-secret"


class Watcher:
    """The subscriber on D (:mod:`tests.support.mqtt_watch`): the messages it printed, as they come."""

    def __init__(self, host: SiteHost, broker: Broker, folder: Path, ca: Path) -> None:
        (folder / "watcher-password").write_text(WATCHER_PASSWORD + "\n")
        command = host.command(sys.executable, "-m", "tests.support.mqtt_watch", broker.host, str(broker.port), "streamrec/#",
                               "--user", "watcher", "--password-file", str(folder / "watcher-password"), "--tls-ca", str(ca))
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=(folder / "watcher.log").open("ab"), text=True,
                                        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines = JsonLines(self.process)
        self.messages: list[dict] = []  #: the events received, with their topic, in order
        self.subscriptions = 0

    def _take(self, timeout: float) -> None:
        line = self.lines.take(timeout)
        if line is None:
            return
        if line.get("subscribed"):
            self.subscriptions += 1
        elif line["topic"] != "streamrec/status":  # online/offline; the others carry events
            self.messages.append({**json.loads(line["payload"]), "topic": line["topic"], "retain": line["retain"]})

    def until(self, condition: Callable[[], object], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s; last: {self.messages[-5:]}"
            self._take(0.5)

    def named_after(self, seq: int) -> bool:
        return any(m["type"] == "match" and m["name"] == LIN and m["seq"] > seq and not m["retain"] for m in self.messages)


@pytest.fixture
def four_hosts() -> Iterator[Site]:
    with site("a", "b", "c", "d") as made:
        yield made


def _config(path: Path, hosts: dict[str, SiteHost], camera: str, triton: str, broker: Broker, keys: str, ca: Path) -> Path:
    b = hosts["b"].ip
    (path.parent / "stage-password").write_text(STAGE_PASSWORD + "\n")
    path.write_text(f"""[[sources]]
url = "{camera}"
name = "door"

[pipeline]
backend = "triton"

[triton]
url = "{triton}"

[links]
frames = "tcp://{b}:5600"
status = "tcp://{b}:5601"
events_in = "tcp://{b}:5602"
overlays = "tcp://{b}:5603"
frame_pixels = "jpeg"
{keys}
[outputs]
http = ""

[mqtt]
broker = "{broker.address}"
username = "streamrec"
password_file = "{path.parent / 'stage-password'}"
tls = true
tls_ca = "{ca}"
""")
    return path


def test_four_hosts_name_the_person_on_d_and_survive_each_being_killed(
    four_hosts: Site, rtsp_clip: Path, engine_dir: Path, enrolled: Callable[[Path], Path], tmp_path: Path  # noqa: F811
):
    need_mosquitto()
    require_triton()
    hosts = four_hosts.hosts
    export = run_cli("engines", "export", "--triton", str(tmp_path / "repository"), "--platform", "python",
                     "--threads", "1", "--engines", str(engine_dir), timeout=300)
    assert export.returncode == 0, export.stderr
    triton = TritonServer(tmp_path / "repository", tmp_path / "tritonserver.log", address=hosts["c"].ip,
                          prefix=hosts["c"].command())
    cert, key = self_signed(tmp_path / "tls", hosts["d"].ip)
    broker = Broker(tmp_path / "broker", {"streamrec": STAGE_PASSWORD, "watcher": WATCHER_PASSWORD}, tls=(cert, key),
                    host=hosts["d"].ip, prefix=hosts["d"].command(), persistent=True)
    camera = RtspServer(rtsp_clip, tmp_path / "rtsp_server.log", prefix=hosts["a"].command())
    data = enrolled(tmp_path)  # B's watchlist, journal and kept faces
    processes: dict[str, subprocess.Popen] = {}
    log = (tmp_path / "stages.log").open("ab")

    def start(name: str, host: str) -> None:
        argv = [*cli_command(), "stage", name, "--config", str(config), *(["--data-dir", str(data)] if host == "b" else [])]
        processes[name] = subprocess.Popen(hosts[host].command(*argv), stdout=log, stderr=subprocess.STDOUT)

    watcher: Watcher | None = None
    try:
        triton.start()
        broker.start()
        camera.start()
        config = _config(tmp_path / "site.toml", hosts, camera.url, triton.url, broker, curve_keys(tmp_path / "keys"), cert)
        watcher = Watcher(hosts["d"], broker, tmp_path, cert)
        watcher.until(lambda: watcher.subscriptions, "the subscriber on D subscribed", 30)
        for name, host in (("events", "b"), ("mqtt", "b"), ("inference", "b"), ("capture:door", "a")):
            start(name, host)
        watcher.until(lambda: watcher.named_after(0), "the person named on D", 240)
        watcher.until(lambda: any(m["topic"] == "streamrec/door/decision" and m["name"] == LIN for m in watcher.messages),
                      "the door's retained decision naming the person", 30)

        for what, kill, restart in (
            ("B's inference stage", lambda: processes["inference"].send_signal(signal.SIGKILL), lambda: start("inference", "b")),
            ("C's Triton server", triton.kill, triton.restart),
            ("D's broker", broker.kill, broker.start),
        ):
            since = max(m["seq"] for m in watcher.messages)
            tracks = max(m["track_id"] or 0 for m in watcher.messages)
            kill()
            if what.startswith("B"):
                processes["inference"].wait(30)
            restart()
            watcher.until(lambda since=since: watcher.named_after(since), f"the person named on D after {what} came back", 240)
            later = [m["track_id"] for m in watcher.messages if m["seq"] > since and m["type"] in ("match", "unknown")]
            assert min(later) > tracks, f"a track id was given again after {what}: {later} after {tracks}"

        # from the first event D heard on (a first start of the MQTT stage skips older history)
        first = min(m["seq"] for m in watcher.messages if not m["retain"])
        journal = {e["seq"] for e in read_journal(data / "events") if e["seq"] >= first}
        watcher.until(lambda: {m["seq"] for m in watcher.messages if not m["retain"]} >= journal,
                      "every journaled event on D", 120)
        firsts = list(dict.fromkeys(m["seq"] for m in watcher.messages if not m["retain"] and not m["topic"].endswith("/decision")))
        assert firsts == sorted(firsts)
    finally:
        for process in processes.values():
            stop_process(process)
        if watcher is not None:
            stop_process(watcher.process)
        camera.stop()
        broker.stop()
        triton.stop()
        log.close()
