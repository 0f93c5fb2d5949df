"""``streamrec run``: the real-time pipeline on cameras, streams and files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from streamrec.bus.sockets import Endpoints, new_run_dir
from streamrec.capture import SourceError as SourceSpecError
from streamrec.capture import parse_source
from streamrec.cli.common import UserError, stderr
from streamrec.config import ConfigError, RunConfig, SourceConfig, load_config
from streamrec.config.model import OutputsConfig
from streamrec.engines import ensure_engines
from streamrec.engines.build import BuildError
from streamrec.engines.sources import SourceError
from streamrec.paths import data_dir
from streamrec.pipeline.logs import configure_logging
from streamrec.pipeline.rundir import alive, lock_data_dir, remove_leftovers, wait_for_end

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "run", help="recognise faces live on cameras, RTSP/HTTP streams or video files",
        description="Start the pipeline: one capture process per source, a central batcher that "
        "detects, tracks, embeds and matches faces against the watchlist, the event journal "
        "and publisher, and the overlaid video, door page and metrics. Stops cleanly on Ctrl-C "
        "or SIGTERM; ends by itself when every source has ended (exit 0, or 1 if one failed). "
        "Removes what a run killed with SIGKILL left behind (and says so), and refuses a data "
        "directory that another pipeline uses.",
    )
    parser.add_argument("--source", action="append", default=[], metavar="SRC", help="camera index (0), video file, rtsp:// or http(s):// MJPEG URL; repeatable")
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="pipeline configuration (see configs/)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="watchlist, journal and logs (default: $STREAMREC_DATA, else ~/.local/share/streamrec)")
    parser.add_argument("--engines", type=Path, metavar="DIR", help="engine folder (built on first use)")
    parser.add_argument("--loop", action="store_true", help="replay video files given with --source forever")
    parser.add_argument("--fast", action="store_true", help="read video files given with --source as fast as the pipeline takes frames, not at their own frame rate")
    parser.add_argument("--fps", type=float, default=0.0, help="cap frames per second taken from each --source (default: no cap)")
    parser.add_argument("--min-face-size", type=float, help="override [detector] min_face_size")
    parser.add_argument("--http", metavar="HOST:PORT", help="web server address, '' for none (default from the config: 127.0.0.1:8080)")
    parser.add_argument("--events", metavar="ADDR", help="ZeroMQ address publishing events (default tcp://127.0.0.1:5571)")
    parser.add_argument("--frames", metavar="ADDR", help="ZeroMQ address publishing overlaid JPEG frames (default tcp://127.0.0.1:5572)")
    parser.add_argument("--threads", type=int, help="inference threads (default: every core)")
    parser.add_argument("--precision", choices=("fp32", "int8"), help="FaceNet engine (default from the config: fp32)")
    parser.set_defaults(handler=run_pipeline)


def _configure(args: argparse.Namespace) -> RunConfig:
    try:
        config = load_config(args.config) if args.config else RunConfig()
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    for url in args.source:
        config.sources.append(SourceConfig(url=url, loop=args.loop, fast=args.fast, fps=args.fps))
    if not config.sources:
        raise UserError("no sources: give --source (repeatable) or [[sources]] in --config")
    for source in config.sources:
        try:
            parse_source(source.url)
        except SourceSpecError as exc:
            raise UserError(str(exc)) from None
    labels = [s.label for s in config.sources]
    duplicates = {label for label in labels if labels.count(label) > 1}
    if duplicates:
        raise UserError(f"two sources are called {', '.join(sorted(duplicates))}: give them distinct names in the config")
    outputs: OutputsConfig = config.outputs
    for option, attribute in (("http", "http"), ("events", "events"), ("frames", "frames")):
        value = getattr(args, option)
        if value is not None:
            setattr(outputs, attribute, value)
    if args.min_face_size is not None:
        config.detector.min_face_size = args.min_face_size
    if args.threads is not None:
        config.pipeline.threads = args.threads
    if args.precision is not None:
        config.pipeline.precision = args.precision
    for section in (config.detector, config.outputs, config.pipeline, *config.sources):
        try:
            section.check()
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return config


def _tcp_port_free(address: str, what: str) -> None:
    """Fail with a clear message now, rather than in a stage that would be restarted in vain."""
    host, _, port = address.replace("tcp://", "").rpartition(":")
    if not port.isdigit():
        raise UserError(f"{what}: expected HOST:PORT, got {address!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host or "127.0.0.1", int(port)))
        except OSError as exc:
            raise UserError(f"{what}: cannot listen on {address} ({exc.strerror or exc})") from None


#: how long ``run`` waits for the stages of a killed supervisor to stop (they stop cleanly on
#: SIGTERM from the kernel: the inference stage ends its tracks, the events stage journals them)
PREVIOUS_RUN_TIMEOUT_S = 60.0


def _previous_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _claim_data_dir(folder: Path) -> int:
    """Lock the data directory for this run (returns the descriptor, to keep open), refusing it
    while another pipeline uses it, and clean up what runs that were killed left behind."""
    previous = _previous_state(folder)
    lock = lock_data_dir(folder)
    if lock is None:
        raise UserError(
            f"another pipeline (pid {previous.get('pid', '?')}) is running with the data directory {folder}: "
            "stop it first, or give another --data-dir"
        )
    run_dir = Path(str(previous.get("run_dir", ""))) if previous.get("run_dir") else None
    if run_dir is not None and alive(run_dir):  # its supervisor was killed; its stages are stopping
        stderr(f"streamrec: waiting for the stages of a previous run (pid {previous.get('pid', '?')}) to stop")
        if not wait_for_end(run_dir, PREVIOUS_RUN_TIMEOUT_S):
            os.close(lock)
            raise UserError(f"processes of a previous run (pid {previous.get('pid', '?')}) still use {run_dir}: stop them first")
    state_file = folder / "run.json"
    for leftover in remove_leftovers():
        mine = leftover.path == run_dir and state_file.exists()
        if mine:
            state_file.unlink()
        stderr(f"streamrec: removed what a previous run (pid {leftover.pid or '?'}) left behind: "
               f"{leftover.describe()}{f', {state_file}' if mine else ''}")
    if state_file.exists():  # no live supervisor holds this folder: the file is stale
        with contextlib.suppress(OSError):
            state_file.unlink()
            stderr(f"streamrec: removed what a previous run (pid {previous.get('pid', '?')}) left behind: {state_file}")
    return lock


def run_pipeline(args: argparse.Namespace) -> int:
    from streamrec.pipeline.assemble import stage_factories
    from streamrec.pipeline.supervisor import Supervisor

    config = _configure(args)
    folder = data_dir(args.data_dir or config.pipeline.data_dir or None)
    folder.mkdir(parents=True, exist_ok=True)
    for address, what in ((config.outputs.events, "events"), (config.outputs.frames, "frames"), (config.outputs.http, "http")):
        if address and (what == "http" or address.startswith("tcp://")):
            _tcp_port_free(address, what)
    try:
        engines = ensure_engines(args.engines, stderr)
    except (BuildError, SourceError) as exc:
        raise UserError(str(exc)) from None
    lock = _claim_data_dir(folder)
    try:
        run_dir = new_run_dir()
        endpoints = Endpoints.for_run(run_dir, config.outputs.events, config.outputs.frames)
        log_file = folder / "logs" / "streamrec.log"
        configure_logging("supervisor", log_file)
        factories = stage_factories(config, folder, engines, endpoints, log_file)
        stderr(f"streamrec: {len(config.sources)} source(s); events on {config.outputs.events}; "
               f"{'web on http://' + config.outputs.http if config.outputs.http else 'no web server'}; data in {folder}")
        return Supervisor(config, folder, factories, endpoints, run_dir).run()
    finally:
        os.close(lock)
