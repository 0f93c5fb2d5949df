"""Timing helpers: repeated runs, interleaved competitors, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["repeat", "interleave", "summary"]

T = TypeVar("T")


def repeat(fn: Callable[[], object], seconds: float, min_runs: int = 5, warmup: int = 2) -> list[float]:
    """Run ``fn`` (after ``warmup`` untimed calls) until ``seconds`` have passed and at least
    ``min_runs`` runs are done; returns each run's wall time in seconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
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
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p10_ms": pick(0.1) * 1e3,
        "p90_ms": pick(0.9) * 1e3,
        "runs": float(len(ordered)),
    }
