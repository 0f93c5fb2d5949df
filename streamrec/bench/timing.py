"""Timing helpers: repeated runs, interleaved competitors, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

__all__ = ["alternate", "interleave", "summary"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def alternate(
    fns: dict[K, Callable[[], object]], seconds: float, min_runs: int = 5, warmup: int = 2
) -> dict[K, list[float]]:
    """Run every function in turn (after ``warmup`` untimed calls each) until ``seconds`` per
    function have passed and each has run ``min_runs`` times; alternating call by call, machine
    noise hits all of them alike. Returns each one's run times in seconds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[K, list[float]] = {name: [] for name in fns}
    deadline = time.perf_counter() + seconds * len(fns)
    while min(len(t) for t in times.values()) < min_runs or time.perf_counter() < deadline:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def interleave(
    fns: dict[str, Callable[[T], object]], inputs: Sequence[T], rounds: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Time every function once per round on the same input (round ``r`` uses
    ``inputs[r % len(inputs)]``), alternating, so that a noisy neighbour or a frequency change
    hits every competitor alike; returns the per-round times of each."""
    for fn in fns.values():
        for i in range(warmup):
            fn(inputs[i % len(inputs)])
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        item = inputs[r % len(inputs)]
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(item)
            times[name].append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Median, p10 and p90 in milliseconds, and the run count."""
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p10_ms": pick(0.1) * 1e3,
        "p90_ms": pick(0.9) * 1e3,
        "runs": float(len(ordered)),
    }
