"""The stages of one pipeline run, as the supervisor starts them: shared by ``streamrec run``
and ``streamrec bench pipeline``, so the benchmark measures exactly what ``run`` runs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from streamrec.bus.sockets import Endpoints
from streamrec.config.model import RunConfig
from streamrec.pipeline.stage import Stage

__all__ = ["stage_factories"]


def stage_factories(
    config: RunConfig,
    data_dir: Path,
    engines: Path | None,
    endpoints: Endpoints,
    log_file: Path | None,
    journal_dir: Path | None = None,
) -> dict[str, Callable[[], Stage]]:
    """Stage name -> a function building the stage, in start order (consumers first): the
    events journal and publisher, the MQTT publisher of that journal (when ``config.mqtt.broker``
    is set; what it delivered is kept in ``data_dir/mqtt-delivered.json``), the renderer, the
    web server (when ``config.outputs.http`` is set), the inference stage matching against the
    watchlist in ``data_dir`` (or ``inference:1``... ``inference:N``, one per worker of
    ``endpoints.workers``), and one capture stage per source. ``journal_dir``: where events are journaled (default
    ``data_dir/events``)."""
    from streamrec.events.mqtt import MqttStage
    from streamrec.events.stage import EventsStage
    from streamrec.pipeline.capture import CaptureStage
    from streamrec.pipeline.inference import InferenceStage
    from streamrec.render.stage import RenderStage
    from streamrec.web.stage import WebStage

    journal = journal_dir if journal_dir is not None else data_dir / "events"
    sources = [s.label for s in config.sources]
    factories: dict[str, Callable[[], Stage]] = {
        "events": functools.partial(EventsStage, endpoints, journal, log_file, journal_days=config.privacy.journal_days),
    }
    if config.mqtt.broker:
        factories["mqtt"] = functools.partial(
            MqttStage, config.mqtt, journal, data_dir / "mqtt-delivered.json", sources, endpoints.stats, log_file,
            curve=endpoints.curve,
        )
    factories["render"] = functools.partial(RenderStage, config.outputs, endpoints, log_file, sources)
    if config.outputs.http:
        factories["web"] = functools.partial(
            WebStage, config.outputs, endpoints, log_file, sources, config.auth, data_dir,
            library=True, engines=engines, door=config.door,
        )
    if endpoints.workers:
        count = len(endpoints.workers)
        for worker in range(1, count + 1):
            factories[f"inference:{worker}"] = functools.partial(
                InferenceStage, config, endpoints.for_worker(worker), data_dir, engines, log_file, worker, count,
            )
    else:
        factories["inference"] = functools.partial(InferenceStage, config, endpoints, data_dir, engines, log_file)
    for source in config.sources:
        factories[f"capture:{source.label}"] = functools.partial(CaptureStage, source, endpoints, log_file, config.links)
    return factories
