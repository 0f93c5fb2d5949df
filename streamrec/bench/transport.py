"""``streamrec bench transport``: what moving one frame between two processes costs.

Our transport (a frame ring in shared memory, :mod:`streamrec.bus.ring`, with the binary frame
header over ZeroMQ PUSH/PULL on an ``ipc://`` endpoint: :func:`~streamrec.bus.sockets.send_frame`
and :func:`~streamrec.bus.sockets.drain_frames`, as the capture and inference stages use them)
is measured side by side with two others: ``multipart``, the pixels as a zero-copy ZeroMQ frame
behind a JSON header (how overlays travel to the renderer), and ``mp_queue``, what people
usually write: a ``multiprocessing.Queue`` of ``(dict, ndarray)`` tuples, pickled. Same frame
size, a real sender process and this process as the receiver, at the sender's maximum rate and
paced at a camera's rate; trials alternate round by round so machine noise hits both alike.

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
``transport`` (``ring``, ``multipart`` or ``mp_queue``) and ``rate`` (``"max"`` or the paced
fps), with ``frames`` (measured), ``fps`` (achieved), ``cpu_per_frame_ms`` (both processes, all
threads), ``pacing_cpu_per_frame_ms`` (the ``none`` baseline; 0 at the maximum rate),
``transport_cpu_per_frame_ms`` (the difference), ``budget_percent``
(``transport_cpu_per_frame_ms`` / ``budget_ms`` * 100), ``call_cpu_ms`` (send + receive call,
``{"median", "p95"}``) and ``call_cpu_budget_percent`` (the same in percent of the budget),
``send_wall_ms`` (``{"median", "p95"}``), ``latency_ms`` (``{"p50", "p95", "p99"}``),
``latency_budget_percent`` (the p95 latency in percent of the budget); ``verdict``:
``percent`` (``budget_percent`` of ``ring`` at the paced rate), ``meets_goal`` (it is below
``goal_percent``), ``call_percent`` (the median send + receive call CPU of ``ring`` at the paced
rate, in percent of the budget; ``percent`` is the stricter figure, also counting background
threads and wake-ups), ``calls_meet_goal`` (it is below ``goal_percent``),
``multipart_percent`` (``budget_percent`` of ``multipart`` at the paced rate) and
``queue_cpu_ratio`` (the Queue's transport CPU per frame over the ring's, at the paced rate).
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

import numpy as np
import zmq

from streamrec.bus.messages import FrameHeader, Overlay
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

__all__ = ["GOAL_PERCENT", "TRANSPORTS", "bench_transport"]

TRANSPORTS = ("ring", "multipart", "mp_queue")
GOAL_PERCENT = 2.0
QUEUE_LENGTH = 2  #: as the capture stage's send queue
WARMUP_FRAMES = 10
_END = "end"  #: source name of the message that ends a trial


def _frame(size: tuple[int, int]) -> np.ndarray:
    width, height = size
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _pace(fps: float | None, start: float, index: int) -> None:
    if fps:
        delay = start + index / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def _sender(transport: str, target: Any, size: tuple[int, int], fps: float | None, seconds: float, control: Connection) -> None:
    """The sending process: ``WARMUP_FRAMES`` frames, then frames for ``seconds``, then an end
    marker; waits for the receiver to confirm it has everything, then reports its figures.
    Transport ``none`` runs the same loop, paced alike, sending nothing: the baseline."""
    decoded = _frame(size)
    height, width = decoded.shape[:2]
    ctx = zmq.Context()
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
    control.send({"cpu": time.process_time() - cpu0, "frames": len(calls_cpu), "calls_cpu": calls_cpu, "calls_wall": calls_wall})
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
    if transport == "ring":
        assert rings is not None
        frames, errors, stale, _ = drain_frames(sock, rings, 0)
        if errors or stale:
            raise RuntimeError(f"ring: {len(errors)} malformed and {stale} stale frames")
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
            "queue_cpu_ratio": paced["mp_queue"]["transport_cpu_per_frame_ms"] / max(ring["transport_cpu_per_frame_ms"], 1e-9),
        },
    }
