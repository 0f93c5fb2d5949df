"""``streamrec run``: the real-time pipeline on cameras, streams and files."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from streamrec.bus.messages import MAX_NAME
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
from streamrec.pipeline.stage import configure_logging

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "run", help="recognise faces live on cameras, RTSP/HTTP streams or video files",
        description="Start the pipeline: one capture process per source, a central batcher that "
        "detects, tracks, embeds and matches faces against the watchlist, the event journal "
        "and publisher, and the overlaid video, door page and metrics. Stops cleanly on Ctrl-C "
        "or SIGTERM; ends by itself when every source has ended (exit 0, or 1 if one failed).",
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
    for label in labels:
        if len(label) > MAX_NAME:  # it names the source in every message about its frames
            raise UserError(f"source name {label[:40]!r}... is {len(label)} characters, at most {MAX_NAME}: give it a shorter name in the config")
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
    run_dir = new_run_dir()
    endpoints = Endpoints.for_run(run_dir, config.outputs.events, config.outputs.frames)
    log_file = folder / "logs" / "streamrec.log"
    configure_logging("supervisor", log_file)
    factories = stage_factories(config, folder, engines, endpoints, log_file)
    stderr(f"streamrec: {len(config.sources)} source(s); events on {config.outputs.events}; "
           f"{'web on http://' + config.outputs.http if config.outputs.http else 'no web server'}; data in {folder}")
    return Supervisor(config, folder, factories, endpoints, run_dir).run()
