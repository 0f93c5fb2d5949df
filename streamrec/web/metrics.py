"""Prometheus metrics built from the stages' ``StageStats`` reports (served at ``/metrics``).

Every stage reports its counters (running totals), gauges and latency samples about once a
second; the supervisor forwards each report to the web stage unchanged, with a report of its
own (stage ``supervisor``). Reports are validated on the way in (every value a finite number,
bounded names and lengths: :class:`~streamrec.bus.messages.StageStats`). Counters and gauges
are exposed as the latest values of each stage by a custom collector (a restarted stage starts
again from 0, which Prometheus reads as a counter reset); latency samples are fed into a real
histogram, since each sample is reported only once.

Stage figure names become metric and label names: ``name[arg]`` (per source, e.g.
``fps[front]``) gives metric ``name`` with ``source="arg"``; a ``capture:front`` stage gives
``source="front"`` to its figures; other characters not allowed in Prometheus names become
``_``. Every family has the labels ``stage`` (stage name) and ``source`` ("" when the figure
is not per source), so label sets never differ within a family.

Metrics:

* ``streamrec_source_fps{stage,source}`` (gauge): frames per second processed per source
  (the inference stage's ``fps[<source>]``).
* ``streamrec_source_dropped_frames{stage,source}`` (gauge): frames a source's capture has
  dropped so far, as last seen by the inference stage (``dropped[<source>]``).
* ``streamrec_<counter>_total{stage,source}`` (counter): every counter of every stage, e.g.
  ``faces``, ``embeddings``, ``decisions_match``, ``decisions_unknown``, ``batches``,
  ``frames{source}`` (inference); ``frames_dropped``, ``reconnects``, ``frames_sent``
  (``capture:<source>``); ``events_match``, ``events_unknown``, ``journaled`` (events);
  ``frames_rendered``, ``frames_dropped`` (render); ``http_requests``, ``logins``,
  ``logins_failed``, ``logins_refused`` (web);
  ``malformed_<socket>`` (messages refused on one input socket: ``frames`` and ``status``
  (inference), ``overlays`` (render), ``events`` (events), ``stats`` (supervisor), ``jpeg``,
  ``events`` and ``monitor`` (web)) and their sum per stage, ``malformed_messages``;
  ``frames_unknown_source`` (inference, render), ``statuses_unknown_source`` (inference),
  ``stats_unknown_stage`` (supervisor), ``pictures_unknown_source`` and
  ``decisions_unknown_source`` (web): well-formed messages about nothing configured;
  ``subscriptions_refused_<output>`` and ``publisher_resets_<output>`` (events: ``events``,
  ``events_feed``; render: ``frames``, ``frames_feed``; supervisor: ``monitor``): subscriptions
  that can match nothing the output publishes, and the times it dropped every subscriber to
  free them (see :mod:`streamrec.bus.sockets`).
* ``streamrec_<gauge>{stage,source}`` (gauge): every other gauge, e.g. ``capture_age_s``,
  ``journal_failing``, ``mjpeg_clients``, ``subscribers_<output>``.
* ``streamrec_stage_latency_seconds{stage,step,source}`` (histogram): every latency sample,
  e.g. steps ``detect``, ``embed``, ``batch``, ``capture_to_detect{source}`` (inference),
  ``capture_to_event`` (events), ``annotate``, ``encode`` (render).
* ``streamrec_stage_last_report_timestamp_seconds{stage}`` (gauge): when the stage last
  reported (Unix time); an old value means a stalled stage.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamrec.bus.messages import StageStats

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "StageMetrics", "metric_name", "split_figure"]

#: the classic text format (what generate_latest writes), which every Prometheus version reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "streamrec_"
#: seconds: a 1 ms JPEG encode up to a 10 s capture-to-event delay
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RENAMED_GAUGES = {"fps": "source_fps", "dropped": "source_dropped_frames"}
_LABELS = ["stage", "source"]
_FIGURE = re.compile(r"^(?P<name>[^\[]*)\[(?P<arg>.*)\]$")
_Family = CounterMetricFamily | GaugeMetricFamily


def split_figure(stage: str, figure: str) -> tuple[str, str]:
    """``(name, source)`` of a stage's figure: ``fps[front]`` -> ``("fps", "front")``; a
    figure of stage ``capture:front`` gets source ``front``; else the source is "" (an
    inference worker ``inference:2`` serves many)."""
    match = _FIGURE.match(figure)
    if match:
        return match["name"], match["arg"]
    kind, _, source = stage.partition(":")
    return figure, source if kind == "capture" else ""


def metric_name(name: str) -> str:
    """A valid Prometheus metric name for a figure name (prefixed, odd characters as ``_``)."""
    return PREFIX + (re.sub(r"[^a-zA-Z0-9_]+", "_", name).strip("_") or "unnamed")


class _LatestFigures(Collector):
    """Exposes the latest counters and gauges of each stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, StageStats] = {}

    def update(self, stats: StageStats) -> None:
        with self._lock:
            self._latest[stats.stage] = stats

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            reports = sorted(self._latest.items())
        families: dict[str, _Family] = {}
        reported = GaugeMetricFamily(
            PREFIX + "stage_last_report_timestamp_seconds", "When the stage last reported (Unix time)", labels=["stage"]
        )
        for stage, stats in reports:
            reported.add_metric([stage], stats.ts)
            for figure, count in stats.counters.items():
                self._add(families, CounterMetricFamily, stage, figure, count)
            for figure, value in stats.gauges.items():
                self._add(families, GaugeMetricFamily, stage, figure, value)
        yield reported
        yield from families.values()

    @staticmethod
    def _add(
        families: dict[str, _Family], kind: type[_Family], stage: str, figure: str,
        value: float,
    ) -> None:
        name, source = split_figure(stage, figure)
        if kind is GaugeMetricFamily:
            name = _RENAMED_GAUGES.get(name, name)
        family_name = metric_name(name)
        family = families.setdefault(family_name, kind(family_name, f"{name} reported by the stages", labels=_LABELS))
        if isinstance(family, kind):  # a counter and a gauge of one name: keep the first
            family.add_metric([stage, source], float(value))


class StageMetrics:
    """The ``/metrics`` registry: feed it every :class:`StageStats`, read :meth:`exposition`.
    Thread-safe: reports arrive on the stage's loop, scrapes on HTTP threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._figures = _LatestFigures()
        self.registry.register(self._figures)
        self.latency = Histogram(
            "stage_latency_seconds", "Latency of a stage's step, from the samples the stages report",
            ["stage", "step", "source"], namespace="streamrec", buckets=LATENCY_BUCKETS, registry=self.registry,
        )

    def update(self, stats: StageStats) -> None:
        """Take a stage's report: its latest totals, and its latency samples into the histogram."""
        self._figures.update(stats)
        for figure, samples in stats.latencies.items():
            step, source = split_figure(stats.stage, figure)
            child = self.latency.labels(stats.stage, step, source)
            for seconds in samples:
                child.observe(max(0.0, seconds))  # clocks of two processes may disagree slightly

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
