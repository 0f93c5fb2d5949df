"""``streamrec stage NAME``: one stage of the pipeline in the foreground, for an orchestrator
(systemd, compose, Kubernetes) to place stages on several hosts.

The stage is the same :class:`~streamrec.pipeline.stage.Stage` that ``streamrec run`` starts,
linked to the others by the addresses of ``[links]`` instead of the ipc sockets of a run's
private folder: each link the stage uses must be given one, and the frames must carry their
pixels (``frame_pixels`` raw or jpeg), as no frame ring is shared between two commands. No
supervisor is needed: the stage makes a private folder of its own (its unset links' sockets) and
removes it when it stops; what a restarted stage continues from (track ids, event numbers, open
tracks, door challenges) is kept in ``DATA_DIR/state/NAME`` by the stages that have a data
directory, so that no track id or event number is given twice however often it is restarted; its statistics go to
``[links] stats`` when that is set (and are dropped, never waited for, while nothing receives
them); it stops cleanly on SIGTERM or Ctrl-C. A stage that dies is not restarted here: that is
the orchestrator's job. With ``[[links.workers]]``, ``streamrec stage inference --worker K`` runs
the K-th inference worker, and every capture links to them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamrec.bus.curve import LinkCurve
from streamrec.bus.sockets import Endpoints, new_run_dir
from streamrec.cli.common import UserError, check_link_keys, resolve_pipeline, stderr
from streamrec.config import ConfigError, RunConfig, load_config
from streamrec.paths import data_dir

if TYPE_CHECKING:
    from streamrec.pipeline.stage import Stage

__all__ = ["STAGE_LINKS", "register"]

#: the links each stage uses, which ``streamrec stage`` needs set (monitor: optional, for /metrics)
STAGE_LINKS = {
    "capture": ("frames", "status"),
    "inference": ("frames", "status", "events_in", "overlays"),
    "events": ("events_in",),
    "mqtt": (),
    "render": ("overlays",),
    "web": ("events_feed", "jpeg_feed"),
}
#: the stages that read or write the data directory: the watchlist and kept faces (inference),
#: the event journal (events; mqtt reads it, so it runs beside events), the watchlist, users and
#: face library (web)
NEEDS_DATA = ("inference", "events", "mqtt", "web")


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``stage`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "stage", help="run one stage of the pipeline in the foreground, linked to the others by [links]",
        description="Run one stage of the pipeline, as `streamrec run` does, but alone and in the foreground, "
        "for an orchestrator (systemd, compose, Kubernetes) to place the stages on several hosts. The stages "
        "find each other at the addresses of the [links] section, the same file for all of them: each link "
        "the stage uses must be set, and for capture and inference [links] frame_pixels must be raw or jpeg. Statistics go to [links] "
        "stats when it is set. The data directory is used by inference (watchlist, kept faces), events "
        "(journal), mqtt (the journal it publishes, on the events host) and web (users, watchlist, face library); "
        "capture and render need none. Stops cleanly on "
        "SIGTERM or Ctrl-C; a stage that dies is not restarted (README.md, \"Several hosts\").",
    )
    parser.add_argument("name", metavar="NAME", help="capture:LABEL (one source of the file), capture (every "
                        "source of the file, one process each), inference, events, mqtt (beside events: it reads the journal), "
                        "render or web")
    parser.add_argument("--config", type=Path, required=True, metavar="FILE.toml",
                        help="the pipeline configuration, with its [links] (the same file for every stage)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="for inference, events and web: watchlist, "
                        "journal and logs (default: [pipeline] data_dir, else $STREAMREC_DATA, else "
                        "~/.local/share/streamrec)")
    parser.add_argument("--engines", type=Path, metavar="DIR", help="for inference and web: engine folder "
                        "(built on first use)")
    parser.add_argument("--worker", type=int, metavar="K", help="for inference with [[links.workers]]: run the K-th "
                        "worker (from 1), binding its frames and status links")
    parser.set_defaults(handler=run_stage_command)


def _load(path: Path) -> RunConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def _kind(name: str, config: RunConfig) -> str:
    """The stage kind ``name`` asks for, refusing a name no stage of ``config`` has."""
    kind, _, label = name.partition(":")
    labels = [source.label for source in config.sources]
    if kind not in STAGE_LINKS or label and kind != "capture":
        raise UserError(f"no stage {name!r}: give capture, capture:LABEL, inference, events, mqtt, render or web")
    if kind == "capture" and not labels:
        raise UserError(f"{name}: the configuration has no [[sources]]")
    if label and label not in labels:
        raise UserError(f"{name}: no source {label!r} in the configuration (its sources: {', '.join(labels)})")
    if kind == "web" and not config.outputs.http:
        raise UserError('web: [outputs] http is "": the configuration has no web server')
    if kind == "mqtt" and not config.mqtt.broker:
        raise UserError('mqtt: [mqtt] broker is "": the configuration publishes to no MQTT broker')
    return kind


def _check_worker(kind: str, worker: int | None, config: RunConfig, origin: str) -> None:
    """``--worker K`` names one of the workers of ``[[links.workers]]``, and an inference stage
    needs it when there are any."""
    count = len(config.links.workers)
    if worker is not None and kind != "inference":
        raise UserError(f"--worker: only the inference stage is a worker (not {kind})")
    if kind == "inference" and count and worker is None:
        raise UserError(f"{origin}: [[links.workers]] gives {count} worker(s): say which this is with --worker K (1 to {count})")
    if worker is not None and not 1 <= worker <= count:
        has = f"1 to {count}" if count else "none: the configuration has no [[links.workers]]"
        raise UserError(f"--worker: no worker {worker} (the configuration's workers: {has})")


def _check_links(kind: str, config: RunConfig, origin: str) -> None:
    """Every link the stage uses must have an address another command can reach (a worker's
    frames and status are its own, in ``[[links.workers]]``)."""
    for link in STAGE_LINKS[kind]:
        if config.links.workers and link in ("frames", "status"):
            continue
        if not getattr(config.links, link):
            raise UserError(f"{origin}: links.{link} must be set for the {kind} stage to reach the others "
                            "(tcp://HOST:PORT or ipc://PATH)")
    check_link_keys(config, kind not in ("capture", "web", "mqtt"), origin)
    if kind in ("capture", "inference") and config.links.frame_pixels == "ring":
        raise UserError(f'{origin}: links.frame_pixels: "ring" needs capture and inference in one `streamrec run`; '
                        'set "raw" or "jpeg"')


def _factories(kind: str, args: argparse.Namespace, config: RunConfig, run_dir: Path) -> dict[str, Callable[[], Stage]]:
    """The factories of the stages to run, built as ``streamrec run`` builds them."""
    from streamrec.engines import ensure_engines
    from streamrec.engines.build import BuildError
    from streamrec.engines.sources import SourceError
    from streamrec.pipeline.assemble import stage_factories

    folder = data_dir(args.data_dir or config.pipeline.data_dir or None) if kind in NEEDS_DATA else run_dir
    engines: Path | None = None
    if kind in ("inference", "web"):
        try:
            engines = ensure_engines(args.engines, stderr)
        except (BuildError, SourceError) as exc:
            raise UserError(str(exc)) from None
    if kind == "inference" and engines is not None:
        from streamrec.cli.run import check_model, check_triton

        config, choice = resolve_pipeline(config, f"{args.config}: pipeline", {}, str(args.config))
        check_model(config, folder, engines, f"{args.config}: pipeline.model")
        if choice.backend == "triton":
            check_triton(config, engines, f"{args.config}: triton.url")
        stderr(f"streamrec: inference on {choice.describe()}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the data directory {folder} ({exc.strerror or exc})") from None
    endpoints = Endpoints.for_run(run_dir, config.outputs.events, config.outputs.frames, dict(config.links.set_links()),
                                   LinkCurve.from_links(config.links), config.worker_links())
    if not config.links.stats:
        endpoints = dataclasses.replace(endpoints, stats="")  # no receiver to wait for
    log_file = folder / "logs" / "streamrec.log" if kind in NEEDS_DATA else None
    every = stage_factories(config, folder, engines, endpoints, log_file)
    stage = f"inference:{args.worker}" if args.worker is not None else args.name
    wanted = (lambda name: name.startswith("capture:")) if args.name == "capture" else (lambda name: name == stage)
    state = folder / "state" if kind in NEEDS_DATA else None
    return {name: _keeping_state(factory, state / name if state else None) for name, factory in every.items() if wanted(name)}


def _keeping_state(factory: Callable[[], Stage], folder: Path | None) -> Callable[[], Stage]:
    """``factory``, whose stage keeps what a restart continues from in ``folder`` (made now)."""
    def make() -> Stage:
        stage = factory()
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create {folder} ({exc.strerror or exc})") from None
            stage.state_dir = folder
        return stage

    return make


def _run_each(factories: dict[str, Callable[[], Stage]], run_dir: Path) -> int:
    """Run one stage here, or several (every capture of the file) in processes of their own,
    passing SIGTERM on to them. Returns the worst exit status."""
    from streamrec.pipeline.stage import run_stage

    if len(factories) == 1:
        stage = next(iter(factories.values()))()
        stage.run_dir = run_dir
        return stage.run()
    spawn = multiprocessing.get_context("spawn")
    children = []
    for name, factory in factories.items():
        stage = factory()
        stage.run_dir = run_dir
        children.append(spawn.Process(target=run_stage, args=(stage,), name=f"streamrec.{name}"))

    def forward(*_: Any) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.start()
    for child in children:
        child.join()
    return max(child.exitcode or 0 for child in children)


def _stop_before_start(*_: Any) -> None:
    """SIGTERM before the stage runs (while the engines load): stop here, removing the private
    folder on the way out; once it runs, the stage stops itself cleanly."""
    raise SystemExit(0)


def run_stage_command(args: argparse.Namespace) -> int:
    from streamrec.pipeline.rundir import own

    signal.signal(signal.SIGTERM, _stop_before_start)
    config = _load(args.config)
    kind = _kind(args.name, config)
    _check_worker(kind, args.worker, config, str(args.config))
    _check_links(kind, config, str(args.config))
    run_dir = new_run_dir()
    claim = own(run_dir)  # a `streamrec run` on this host must not take it for a killed run's leftovers
    try:
        return _run_each(_factories(kind, args, config, run_dir), run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.close(claim)
