"""``streamrec bench transport``: what moving one frame between two processes costs.

Our transport (a frame ring in shared memory, :mod:`streamrec.bus.ring`, with the binary frame
header over ZeroMQ PUSH/PULL on an ``ipc://`` endpoint: :func:`~streamrec.bus.sockets.send_frame`
and :func:`~streamrec.bus.sockets.drain_frames`, as the capture and inference stages use them)
is measured side by side with two others: ``multipart``, the pixels as a zero-copy ZeroMQ frame
behind a JSON header (how overlays travel to the renderer), and ``mp_queue``, what people
usually write: a ``multiprocessing.Queue`` of ``(dict, ndarray)`` tuples, pickled. Same frame
size, a real sender process and this process as the receiver, at the sender's maximum rate and
paced at a camera's rate; trials alternate round by round so machine noise hits both alike.

Beside them, the transports of stages on two hosts (``[links] frame_pixels``): the pixels inline
in the frame message over ``tcp://`` on loopback, through the same
:func:`~streamrec.bus.messages.encode_frame_pixels`, :func:`~streamrec.bus.sockets.send_frame`
and :func:`~streamrec.bus.sockets.drain_frames` as the capture and inference stages: ``raw_tcp``
(the RGB array), ``jpeg_tcp`` (JPEG at the default ``frame_quality``, the encode inside the send
call and the decode inside the receive call, as the stages pay them) and ``jpeg_tcp_curve`` (the
same under CURVE, :mod:`streamrec.bus.curve`, with certificates made for the trial). Loopback
takes the network out: what is left is what the two hosts' CPUs pay per frame.

The frame is a synthetic picture, the same for every transport: smooth regions and a little
sensor noise, so that JPEG compresses it about as much as a camera frame (the scenes of the test
data give 50-100 KB at 640x480 and quality 90; random pixels would not compress at all).

The sender writes every frame into a buffer first, as a capture decodes every frame into one: a
new array, or, for ``ring``, a free slot of the ring (where the capture stage decodes). That
write is the decoder's, not the transport's, and is part of the baseline below.

Per frame: the CPU time spent inside the send and the receive call (process CPU clock, so it
includes other threads of the process working at that moment), the wall time of the send call,
and the one-way latency (stamped before the send, read after the receive). Per trial: the CPU
time of both processes, every thread included (ZeroMQ's I/O threads, the Queue's feeder
thread), divided by the frames. At the paced rate part of that is the sender's own loop waking
up for every frame and writing it, which a camera process pays anyway: a trial named ``none``
runs the same paced loop sending nothing, and its CPU per frame is subtracted to give the
transport's cost, also given as a percentage of the frame budget at ``budget_fps``.

Result keys (times in milliseconds): ``machine``; ``frame`` (``WxH``), ``frame_bytes``;
``budget_fps``, ``budget_ms`` (1000 / budget_fps), ``goal_percent``; ``rows``: one per
``transport`` (``ring``, ``multipart``, ``mp_queue``, ``raw_tcp``, ``jpeg_tcp`` or
``jpeg_tcp_curve``) and ``rate`` (``"max"`` or the paced
fps), with ``frames`` (measured), ``fps`` (achieved), ``cpu_per_frame_ms`` (both processes, all
threads), ``pacing_cpu_per_frame_ms`` (the ``none`` baseline; 0 at the maximum rate),
``transport_cpu_per_frame_ms`` (the difference), ``budget_percent``
(``transport_cpu_per_frame_ms`` / ``budget_ms`` * 100), ``call_cpu_ms`` (send + receive call,
``{"median", "p95"}``) and ``call_cpu_budget_percent`` (the same in percent of the budget),
``send_wall_ms`` (``{"median", "p95"}``), ``latency_ms`` (``{"p50", "p95", "p99"}``),
``latency_budget_percent`` (the p95 latency in percent of the budget), ``message_bytes_per_frame``
(bytes of the ZeroMQ message frames of one frame, the same every time: for the ``tcp`` rows what crosses the
network, less ZeroMQ's framing, CURVE's 33 bytes per message frame and TCP/IP's headers; None for
``mp_queue``); ``verdict``:
``percent`` (``budget_percent`` of ``ring`` at the paced rate), ``meets_goal`` (it is below
``goal_percent``), ``call_percent`` (the median send + receive call CPU of ``ring`` at the paced
rate, in percent of the budget; ``percent`` is the stricter figure, also counting background
threads and wake-ups), ``calls_meet_goal`` (it is below ``goal_percent``),
``multipart_percent`` (``budget_percent`` of ``multipart`` at the paced rate),
``queue_cpu_ratio`` (the Queue's transport CPU per frame over the ring's, at the paced rate),
``raw_tcp_percent``, ``jpeg_tcp_percent`` and ``jpeg_tcp_curve_percent`` (their ``budget_percent``
at the paced rate), ``jpeg_cpu_ratio`` (``jpeg_tcp``'s transport CPU per frame over
``raw_tcp``'s, at the paced rate), ``curve_cpu_ratio`` (``jpeg_tcp_curve``'s over ``jpeg_tcp``'s)
and ``jpeg_bytes_ratio`` (``raw_tcp``'s message bytes per frame over ``jpeg_tcp``'s).
"""

from __future__ import annotations

import multiprocessing
import queue
import shutil
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq
import zmq.auth

from streamrec.bus.curve import LinkContext, LinkCurve
from streamrec.bus.messages import FrameHeader, FramePixels, Overlay, encode_frame_pixels
from streamrec.bus.ring import FrameRing, RingReader
from streamrec.bus.sockets import (
    drain_frames,
    new_run_dir,
    pull_socket,
    push_socket,
    receive_pending,
    send,
    send_frame,
)
from streamrec.config.model import LinksConfig

__all__ = ["GOAL_PERCENT", "TRANSPORTS", "bench_transport"]

TRANSPORTS = ("ring", "multipart", "mp_queue", "raw_tcp", "jpeg_tcp", "jpeg_tcp_curve")
TCP_PIXELS: dict[str, FramePixels] = {"raw_tcp": "raw", "jpeg_tcp": "jpeg", "jpeg_tcp_curve": "jpeg"}  #: ``frame_pixels`` of each tcp transport
LOOPBACK = "tcp://127.0.0.1:*"  #: where a tcp transport's receiver binds
JPEG_QUALITY: int = LinksConfig.model_fields["frame_quality"].default  #: the stages' default ``frame_quality``
GOAL_PERCENT = 2.0
QUEUE_LENGTH = 2  #: as the capture stage's send queue
WARMUP_FRAMES = 10
_END = "end"  #: source name of the message that ends a trial


def _frame(size: tuple[int, int]) -> np.ndarray:
    """A picture a camera could give: random colours 16 pixels apart, interpolated, plus noise."""
    width, height = size
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), np.int16)
    return np.clip(smooth + np.asarray(rng.normal(0, 2, smooth.shape), np.int16), 0, 255).astype(np.uint8)


def _pace(fps: float | None, start: float, index: int) -> None:
    if fps:
        delay = start + index / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def _certificates(folder: Path) -> None:
    """A server certificate and one client's in ``folder``, the client's public key alone in
    ``folder / "clients"``, as ``streamrec keys`` makes them for two hosts."""
    zmq.auth.create_certificates(folder, "server")
    zmq.auth.create_certificates(folder, "client")
    (folder / "clients").mkdir()
    shutil.copy(folder / "client.key", folder / "clients")


def _curve(address: str, folder: str) -> LinkCurve:
    """CURVE on ``address`` with the certificates :func:`_certificates` made in ``folder``."""
    keys = Path(folder)
    return LinkCurve(frozenset({address}), str(keys / "server.key"), str(keys / "server.key_secret"),
                     str(keys / "client.key_secret"), str(keys / "clients"))


def _message_bytes(transport: str, frame: np.ndarray, ring_name: str | None) -> int | None:
    """Bytes of the ZeroMQ message frames that carry ``frame``, counted apart from the timed
    sends (the frame is the same every time); None for the Queue, which pickles."""
    height, width = frame.shape[:2]
    if transport == "multipart":
        return len(b"frame") + len(Overlay("bench", WARMUP_FRAMES, time.time(), height, width, 0.0).header()) + frame.nbytes
    if transport == "ring" and ring_name is not None:
        return len(FrameHeader("bench", WARMUP_FRAMES, time.time(), height, width, 0, ring_name).pack())
    if transport in TCP_PIXELS:
        pixels = encode_frame_pixels(frame, TCP_PIXELS[transport], JPEG_QUALITY)
        header = FrameHeader("bench", WARMUP_FRAMES, time.time(), height, width, 0, pixels=TCP_PIXELS[transport])
        return len(header.pack()) + (pixels.nbytes if isinstance(pixels, np.ndarray) else len(pixels))
    return None


def _sender(transport: str, target: Any, size: tuple[int, int], fps: float | None, seconds: float, control: Connection) -> None:
    """The sending process: ``WARMUP_FRAMES`` frames, then frames for ``seconds``, then an end
    marker; waits for the receiver to confirm it has everything, then reports its figures.
    Transport ``none`` runs the same loop, paced alike, sending nothing: the baseline."""
    decoded = _frame(size)
    height, width = decoded.shape[:2]
    ctx = zmq.Context() if transport not in TCP_PIXELS else LinkContext(_curve(*target) if len(target) > 1 else None)
    ring: FrameRing | None = None

    def buffer() -> np.ndarray:
        """The frame "decoded": into a free ring slot for ``ring``, else into a new array."""
        slot = ring.claim(height, width) if ring is not None else None
        pixels = slot if slot is not None else np.empty_like(decoded)
        np.copyto(pixels, decoded)
        return pixels

    if transport == "ring":
        address, directory = target
        sock = push_socket(ctx, address, hwm=QUEUE_LENGTH)
        ring = FrameRing(Path(directory), "bench")

        def put(index: int, pixels: np.ndarray, source: str = "bench") -> None:
            while (place := ring.publish(pixels)) is None:  # as a file read fast: wait for a slot
                time.sleep(0.0005)
            send_frame(sock, FrameHeader(source, index, time.time(), height, width, 0, *place))
    elif transport == "multipart":
        sock = push_socket(ctx, target, hwm=QUEUE_LENGTH)

        def put(index: int, pixels: np.ndarray, source: str = "bench") -> None:
            send(sock, "frame", Overlay(source, index, time.time(), height, width, 0.0), pixels)
    elif transport in TCP_PIXELS:
        sock = push_socket(ctx, target[0], hwm=QUEUE_LENGTH)
        kind = TCP_PIXELS[transport]

        def put(index: int, pixels: np.ndarray, source: str = "bench") -> None:
            encoded = encode_frame_pixels(pixels, kind, JPEG_QUALITY)
            send_frame(sock, FrameHeader(source, index, time.time(), height, width, 0, pixels=kind), pixels=encoded)
    elif transport == "mp_queue":

        def put(index: int, pixels: np.ndarray, source: str = "bench") -> None:
            target.put(({"source": source, "index": index, "ts": time.time()}, pixels))
    else:

        def put(index: int, pixels: np.ndarray, source: str = "bench") -> None:
            pass

    calls_cpu: list[float] = []
    calls_wall: list[float] = []
    start = time.perf_counter()
    for index in range(WARMUP_FRAMES):
        _pace(fps, start, index)
        put(index, buffer())
    cpu0 = time.process_time()
    begin = time.perf_counter()
    index = WARMUP_FRAMES
    while time.perf_counter() - begin < seconds:
        _pace(fps, start, index)
        pixels = buffer()
        c0, t0 = time.process_time(), time.perf_counter()
        put(index, pixels)
        del pixels  # a capture lets go of the frame it sent
        calls_wall.append(time.perf_counter() - t0)
        calls_cpu.append(time.process_time() - c0)
        index += 1
    if transport != "none":
        put(index, buffer(), _END)
        control.recv()  # the receiver has every frame: background threads are done with them
    control.send({"cpu": time.process_time() - cpu0, "frames": len(calls_cpu), "calls_cpu": calls_cpu, "calls_wall": calls_wall,
                  "message_bytes": _message_bytes(transport, decoded, ring.name if ring is not None else None)})
    ctx.destroy(linger=0)


def _receive_all(transport: str, source: Any, rings: RingReader | None, sender: multiprocessing.process.BaseProcess) -> tuple[list[float], list[float], float, float]:
    """Receive until the end marker. Returns per measured frame the CPU time inside the receive
    call (shared among the frames one call returns) and the one-way latency, this process's
    CPU time over the measured frames, and the wall time from the first to the last measured
    frame."""
    calls_cpu: list[float] = []
    latencies: list[float] = []
    cpu0 = wall0 = wall1 = 0.0
    while True:
        if transport == "mp_queue":
            c0 = time.process_time()  # a blocked get() costs no CPU time
            items = [_get(source, sender)]
        else:
            while not zmq.zmq_poll([(source, zmq.POLLIN)], 500):  # waiting is not the transport's cost
                _check_alive(sender)
            c0 = time.process_time()
            items = _drain(transport, source, rings)
        now, c1 = time.time(), time.process_time()
        for name, index, ts in items:
            if name == _END:
                return calls_cpu, latencies, time.process_time() - cpu0, wall1 - wall0
            if index == WARMUP_FRAMES - 1:
                cpu0, wall0 = c1, time.perf_counter()
            elif index >= WARMUP_FRAMES:
                calls_cpu.append((c1 - c0) / len(items))
                latencies.append(now - ts)
                wall1 = time.perf_counter()


def _drain(transport: str, sock: zmq.Socket, rings: RingReader | None) -> list[tuple[str, int, float]]:
    """``(source, index, ts)`` of every message waiting, received as the pipeline receives it."""
    if transport == "ring" or transport in TCP_PIXELS:
        assert rings is not None
        frames, errors, stale, _ = drain_frames(sock, rings, 0)
        if errors or stale:
            raise RuntimeError(f"{transport}: {len(errors)} malformed and {stale} stale frames")
        return [(h.source, h.index, h.ts) for items in frames.values() for h, _ in items]
    messages, errors = receive_pending(sock, expect=Overlay)
    if errors:
        raise RuntimeError(f"multipart: {len(errors)} malformed messages (the last: {errors[-1]})")
    return [(m.source, m.index, m.ts) for _, m, _ in messages if isinstance(m, Overlay)]


def _get(source: Any, sender: multiprocessing.process.BaseProcess) -> tuple[str, int, float]:
    while True:
        try:
            header, _ = source.get(timeout=0.5)
            return header["source"], header["index"], header["ts"]
        except queue.Empty:
            _check_alive(sender)


def _check_alive(sender: multiprocessing.process.BaseProcess) -> None:
    if not sender.is_alive():
        raise RuntimeError(f"the sending process ended unexpectedly (status {sender.exitcode})")


def _trial(transport: str, size: tuple[int, int], fps: float | None, seconds: float) -> dict[str, Any]:
    """One sender process and this process as receiver, for ``seconds`` of measured frames."""
    mp = multiprocessing.get_context("spawn")
    control, remote = mp.Pipe()
    run_dir = new_run_dir()
    ctx = None
    source: Any = None
    target: Any = None
    rings: RingReader | None = None
    try:
        if transport in ("ring", "multipart"):
            ctx = zmq.Context()
            target = f"ipc://{run_dir / 'frames'}"
            source = pull_socket(ctx, target, hwm=QUEUE_LENGTH)
        if transport == "ring":
            rings = RingReader(run_dir)
            target = (target, str(run_dir))
        elif transport in TCP_PIXELS:
            secured = transport.endswith("_curve")
            if secured:
                _certificates(run_dir)
            ctx = LinkContext(_curve(LOOPBACK, str(run_dir)) if secured else None)
            source = pull_socket(ctx, LOOPBACK, hwm=QUEUE_LENGTH, accepts=FrameHeader, inline_pixels=True)
            rings = RingReader(run_dir)  # as the inference stage holds one, unused by inline pixels
            address = source.getsockopt(zmq.LAST_ENDPOINT).decode()
            target = (address, str(run_dir)) if secured else (address,)
        elif transport == "mp_queue":
            source = target = mp.Queue(QUEUE_LENGTH)
        process = mp.Process(target=_sender, args=(transport, target, size, fps, seconds, remote), name="streamrec.bench-sender")
        process.start()
        try:
            calls_cpu: list[float] = []
            latencies: list[float] = []
            cpu = wall = 0.0
            if transport != "none":
                calls_cpu, latencies, cpu, wall = _receive_all(transport, source, rings, process)
                control.send("done")
            while not control.poll(0.5):
                _check_alive(process)
            sender = control.recv()
        finally:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    finally:
        if ctx is not None:
            ctx.destroy(linger=0)
        shutil.rmtree(run_dir, ignore_errors=True)
    frames = sender["frames"]
    if transport != "none" and len(latencies) != frames:
        raise RuntimeError(f"{transport}: {frames} frames sent but {len(latencies)} received")
    return {
        "frames": frames,
        "wall": wall,
        "cpu": cpu + sender["cpu"],
        "call_cpu": [a + b for a, b in zip(sender["calls_cpu"], calls_cpu)],
        "send_wall": sender["calls_wall"],
        "latency": latencies,
        "message_bytes": sender["message_bytes"],
    }


def _quantiles(seconds: list[float], names: dict[str, float]) -> dict[str, float]:
    values = np.percentile(np.asarray(seconds, dtype=np.float64) * 1e3, list(names.values())) if seconds else [float("nan")] * len(names)
    return {name: float(v) for name, v in zip(names, values)}


def _row(transport: str, rate: float | None, trials: list[dict[str, Any]], pacing_ms: float, budget_ms: float) -> dict[str, Any]:
    frames = sum(t["frames"] for t in trials)
    cpu_ms = 1e3 * sum(t["cpu"] for t in trials) / max(frames, 1)
    transport_ms = max(cpu_ms - pacing_ms, 0.0)
    call_cpu = _quantiles([v for t in trials for v in t["call_cpu"]], {"median": 50, "p95": 95})
    latency = _quantiles([v for t in trials for v in t["latency"]], {"p50": 50, "p95": 95, "p99": 99})
    return {
        "transport": transport,
        "rate": "max" if rate is None else rate,
        "frames": frames,
        "fps": frames / max(sum(t["wall"] for t in trials), 1e-9),
        "cpu_per_frame_ms": cpu_ms,
        "pacing_cpu_per_frame_ms": pacing_ms,
        "transport_cpu_per_frame_ms": transport_ms,
        "budget_percent": 100.0 * transport_ms / budget_ms,
        "call_cpu_ms": call_cpu,
        "call_cpu_budget_percent": {k: 100.0 * v / budget_ms for k, v in call_cpu.items()},
        "send_wall_ms": _quantiles([v for t in trials for v in t["send_wall"]], {"median": 50, "p95": 95}),
        "latency_ms": latency,
        "latency_budget_percent": 100.0 * latency["p95"] / budget_ms,
        "message_bytes_per_frame": trials[0]["message_bytes"],
    }


def bench_transport(
    size: tuple[int, int], paced_fps: float, seconds: float, rounds: int, report: Callable[[str], None], budget_fps: float = 30.0
) -> dict[str, Any]:
    """Every transport at the maximum rate and at ``paced_fps`` (with the ``none`` baseline),
    ``rounds`` interleaved rounds of ``seconds / rounds`` measured seconds each; see the module
    docstring for the keys."""
    budget_ms = 1e3 / budget_fps
    plan: list[tuple[str, float | None]] = [(t, None) for t in TRANSPORTS] + [(t, paced_fps) for t in ("none", *TRANSPORTS)]
    pooled: dict[tuple[str, float | None], list[dict[str, Any]]] = {key: [] for key in plan}
    for round_index in range(rounds):
        for transport, rate in plan:
            trial = _trial(transport, size, rate, seconds / rounds)
            pooled[(transport, rate)].append(trial)
            per_frame = 1e3 * trial["cpu"] / max(trial["frames"], 1)
            report(
                f"round {round_index + 1}/{rounds}, {transport} at {'max rate' if rate is None else f'{rate:g} fps'}: "
                f"{trial['frames']} frames, {per_frame:.3f} ms CPU per frame"
            )
    baseline = pooled[("none", paced_fps)]
    pacing_ms = 1e3 * sum(t["cpu"] for t in baseline) / max(sum(t["frames"] for t in baseline), 1)
    rows = [
        _row(transport, rate, trials, 0.0 if rate is None else pacing_ms, budget_ms)
        for (transport, rate), trials in pooled.items()
        if transport != "none"
    ]
    paced = {row["transport"]: row for row in rows if row["rate"] != "max"}
    ring = paced["ring"]
    cpu = {name: row["transport_cpu_per_frame_ms"] for name, row in paced.items()}
    width, height = size
    return {
        "frame": f"{width}x{height}",
        "frame_bytes": width * height * 3,
        "budget_fps": budget_fps,
        "budget_ms": budget_ms,
        "goal_percent": GOAL_PERCENT,
        "rows": rows,
        "verdict": {
            "percent": ring["budget_percent"],
            "meets_goal": ring["budget_percent"] < GOAL_PERCENT,
            "call_percent": ring["call_cpu_budget_percent"]["median"],
            "calls_meet_goal": ring["call_cpu_budget_percent"]["median"] < GOAL_PERCENT,
            "multipart_percent": paced["multipart"]["budget_percent"],
            "queue_cpu_ratio": cpu["mp_queue"] / max(cpu["ring"], 1e-9),
            **{f"{name}_percent": paced[name]["budget_percent"] for name in TCP_PIXELS},
            "jpeg_cpu_ratio": cpu["jpeg_tcp"] / max(cpu["raw_tcp"], 1e-9),
            "curve_cpu_ratio": cpu["jpeg_tcp_curve"] / max(cpu["jpeg_tcp"], 1e-9),
            "jpeg_bytes_ratio": paced["raw_tcp"]["message_bytes_per_frame"] / paced["jpeg_tcp"]["message_bytes_per_frame"],
        },
    }
