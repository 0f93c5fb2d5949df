"""The render stage as a real process: overlays in over ipc PUSH/PULL, labelled JPEG frames out
on its PUB socket, statistics on the supervisor's socket."""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from streamrec.bus.messages import Event, JpegFrame, Overlay, StageStats
from streamrec.bus.sockets import Endpoints, new_run_dir, pull_socket, push_socket, receive, send, sub_socket
from streamrec.config.model import OutputsConfig
from streamrec.render.annotate import KNOWN, UNDECIDED, UNKNOWN
from streamrec.render.stage import RenderStage
from tests.render.frames import centre_box, face, overlay, start_stage, stop_stage, video_frame
from tests.support.wait import wait_until

Output = tuple[str, JpegFrame, bytes]


@dataclass
class Rig:
    """A running render stage and the test's ends of its sockets."""

    endpoints: Endpoints
    process: multiprocessing.process.BaseProcess
    overlays: zmq.Socket  #: PUSH into the stage
    jpegs: zmq.Socket  #: SUB on its output
    stats: zmq.Socket  #: PULL, the supervisor's end
    reports: list[StageStats] = field(default_factory=list)

    def render(self, inputs: list[tuple[Overlay, np.ndarray]], timeout_s: float = 30.0) -> dict[str, Output]:
        """Send ``inputs`` again and again until a JPEG frame of each of their sources comes
        out (a subscriber misses what was published before its subscription arrived)."""
        wanted = {message.source for message, _ in inputs}
        seen: dict[str, Output] = {}
        deadline = time.monotonic() + timeout_s
        while not wanted <= seen.keys() and time.monotonic() < deadline:
            for message, pixels in inputs:
                send(self.overlays, message.source, message, pixels)
            while self.jpegs.poll(100):
                topic, header, jpeg = receive(self.jpegs)
                assert isinstance(header, JpegFrame) and isinstance(jpeg, bytes)
                seen[header.source] = (topic, header, jpeg)
        assert wanted <= seen.keys(), f"no JPEG frame of {sorted(wanted - seen.keys())} within {timeout_s} s"
        return seen

    def counters_when(self, done, timeout_s: float = 20.0) -> dict[str, int]:
        """The stage's counters from the first report for which ``done(report, every report)``."""
        deadline = time.monotonic() + timeout_s
        while self.stats.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            report = receive(self.stats)[1]
            assert isinstance(report, StageStats) and report.stage == "render"
            self.reports.append(report)
            if done(report, self.reports):
                return report.counters
        raise AssertionError(f"no such report within {timeout_s} s; last: {self.reports[-1:] }")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/events-pub", f"ipc://{run_dir}/jpeg-pub")
    ctx = zmq.Context()
    stats = pull_socket(ctx, endpoints.stats)
    log_file = tmp_path_factory.mktemp("render") / "render.log"
    process = start_stage(RenderStage(OutputsConfig(jpeg_quality=90), endpoints, log_file, sources=["front", "hall", "porch"]))
    try:
        yield Rig(endpoints, process, push_socket(ctx, endpoints.overlays), sub_socket(ctx, endpoints.jpeg_pub), stats)
    finally:
        stop_stage(process)
        ctx.destroy(linger=0)
        shutil.rmtree(run_dir)


def _rgb(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _nearest(colour: np.ndarray) -> tuple[int, int, int]:
    return min((KNOWN, UNKNOWN, UNDECIDED), key=lambda c: float(np.abs(colour - np.array(c)).sum()))


def test_overlays_come_out_as_labelled_jpeg_frames_per_source(rig: Rig, faces_dir: Path):
    front = video_frame(faces_dir / "barack_obama" / "1.jpg", 640, 360)
    hall = video_frame(faces_dir / "joe_biden" / "1.jpg", 1280, 720)
    front_faces = [face(centre_box(640, 360), "Barack Obama", True), face([20.0, 150.0, 120.0, 260.0], "...", False, 0.0, 2)]
    inputs = [(overlay("front", 3, front, front_faces), front), (overlay("hall", 5, hall, [face(centre_box(1280, 720), "unknown", False)]), hall)]
    out = rig.render(inputs)
    for (message, pixels), colour in zip(inputs, (KNOWN, UNKNOWN)):
        topic, header, jpeg = out[message.source]
        assert topic == message.source
        assert (header.index, header.width, header.height, header.fps) == (message.index, message.width, message.height, message.fps)
        image = _rgb(jpeg)
        assert image.shape == pixels.shape
        x1, y1, _, y2 = (round(v) for v in centre_box(message.width, message.height))
        edge = image[y1 + 10 : y2 - 10, x1 - 1 : x1 + 2].reshape(-1, 3).mean(axis=0)
        assert _nearest(edge) == colour, f"box edge of {message.source} is {edge}"
        # away from boxes, tags and the corner, only JPEG's loss separates output from input
        height, width = pixels.shape[:2]
        calm = (slice(int(0.8 * height), height), slice(int(0.7 * width), width))
        assert np.abs(image[calm].astype(int) - pixels[calm]).mean() < 6
    assert out["front"][1].labels == ("Barack Obama", "...")  # "...": a face on screen, undecided
    assert out["hall"][1].labels == ("unknown",)


def test_counts_and_times_its_work_and_survives_malformed_messages(rig: Rig, faces_dir: Path):
    frame = video_frame(faces_dir / "kit_harington" / "1.jpg", 640, 360)
    rig.overlays.send_multipart([b"front", b"{not a header"])
    faceless = overlay("porch", 1, frame, []).header().replace(b'"faces":[]', b'"faces":[{"box":[1,2,30,40],"label":"x"}]')
    rig.overlays.send_multipart([b"porch", faceless, frame])  # a face without score, track and decision
    rig.render([(overlay("front", 1, frame, []), frame)])
    counters = rig.counters_when(
        lambda report, reports: report.counters.get("malformed_messages", 0) >= 2
        and any(r.latencies.get("encode") for r in reports)
    )
    assert counters["frames_rendered"] >= 1
    rendered = counters["frames_rendered"]
    rig.render([(overlay("front", 2, frame, []), frame)])  # still rendering after the bad message
    assert rig.counters_when(lambda report, _: report.counters["frames_rendered"] > rendered)["malformed_messages"] >= 2
    samples = [s for r in rig.reports for s in r.latencies.get("encode", []) + r.latencies.get("annotate", [])]
    assert samples and all(0 < s < 5 for s in samples)


def _hostile(frame: np.ndarray) -> list[list[bytes]]:
    """Overlays that once crashed the stage or slipped through, and other ways to be wrong."""
    good = overlay("front", 1, frame, [face([1, 2, 30, 40], "Ann", True)])
    header, pixels = good.header(), frame.tobytes()
    return [
        [b"front", header.replace(b'"height":360,"width":640', b'"height":-1,"width":-1'), b"abc"],  # -1 x -1 = 3 bytes
        [b"front", header.replace(b'"height":360', b'"height":0').replace(b'"width":640', b'"width":5'), b""],
        [b"x", b"[" * 100_000],  # RecursionError in the stage, once
        [b"front", header.replace(b'"score":0.9', b'"score":"high"'), pixels],
        [b"front", header.replace(b'"box":[1.0,2.0,30.0,40.0]', b'"box":[1.0,2.0,30.0]'), pixels],
        [b"front", header.replace(b'"ts":', b'"ts":1e300,"was":'), pixels],
        [b"front", header, pixels[:-1]],
        [b"front", header, pixels, b"one frame too many"],
        [b"front", header],
        [b"front", Event("match", "front", 1.0).header()],
        [b"\xff\xfe", header, pixels],
    ]


def test_hostile_overlays_are_all_counted_and_never_stop_it(rig: Rig, faces_dir: Path):
    frame = video_frame(faces_dir / "kit_harington" / "1.jpg", 640, 360)
    before = rig.counters_when(lambda report, _: True).get("malformed_overlays", 0)
    hostile = _hostile(frame) * 20
    for parts in hostile:
        rig.overlays.send_multipart(parts)  # waits while the stage's queue is full: nothing is lost on the way
    rig.render([(overlay("front", 2, frame, []), frame)])
    counters = rig.counters_when(lambda report, _: report.counters.get("malformed_overlays", 0) >= before + len(hostile))
    assert counters["malformed_overlays"] == before + len(hostile)
    assert rig.process.is_alive() and rig.process.exitcode is None


def test_only_the_newest_overlay_of_a_source_is_rendered(faces_dir: Path):
    """Stepped in this process: every overlay is either rendered or counted as dropped, and
    the newest one is always rendered."""
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, f"ipc://{run_dir}/events-pub", f"ipc://{run_dir}/jpeg-pub")
    stage = RenderStage(OutputsConfig(), endpoints, sources=["front"])
    stage.ctx = zmq.Context()
    try:
        stage.setup()
        push = push_socket(stage.ctx, endpoints.overlays)
        jpegs = sub_socket(stage.ctx, endpoints.jpeg_pub)
        frame = video_frame(faces_dir / "barack_obama" / "2.jpg", 320, 180)

        def subscribed() -> bool:
            send(push, "front", overlay("front", 0, frame, []), frame)
            stage.step()
            return bool(jpegs.poll(0))

        def handled() -> int:
            """Overlays the stage has taken in: each one is either rendered or dropped."""
            return stage.counters["frames_rendered"] + stage.counters["frames_dropped"]

        wait_until(subscribed, 30, "no JPEG frame on the stage's PUB: the subscription never reached it")
        while jpegs.poll(100):
            receive(jpegs)
        before = handled()
        for index in (10, 11, 12):
            send(push, "front", overlay("front", index, frame, []), frame)

        def took_all() -> bool:
            """One step takes whatever has arrived, one to three of them; each step renders its newest."""
            stage.step()
            return handled() >= before + 3

        wait_until(took_all, 30, lambda: f"the stage took in {handled() - before} of the 3 overlays sent")
        published = []
        while jpegs.poll(100):
            header = receive(jpegs)[1]
            assert isinstance(header, JpegFrame)
            published.append(header.index)
        assert handled() == before + 3
        assert published and published[-1] == 12 and published == sorted(published)
    finally:
        stage.teardown()
        stage.ctx.destroy(linger=0)
        shutil.rmtree(run_dir)
