"""``streamrec run``: the real-time pipeline on cameras, streams and files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from streamrec.backends.choose import BACKEND_CHOICES, PRECISION_CHOICES, Choice
from streamrec.bus.curve import LinkCurve
from streamrec.bus.messages import MAX_NAME
from streamrec.bus.sockets import Endpoints, new_run_dir
from streamrec.capture import CaptureError, SourceKind, check_file, parse_source
from streamrec.capture import SourceError as SourceSpecError
from streamrec.cli.common import UserError, check_link_keys, resolve_pipeline, stderr
from streamrec.config import ConfigError, RunConfig, load_config, override
from streamrec.config.addresses import exposure_warning, parse_http_address, parse_zmq_endpoint
from streamrec.engines import ENGINE_FILES, ensure_engines, model_file
from streamrec.engines.build import BuildError
from streamrec.engines.sources import SourceError
from streamrec.faces import DETECTION_PRECISIONS
from streamrec.match.store import Watchlist, WatchlistError
from streamrec.paths import data_dir
from streamrec.pipeline.logs import configure_logging
from streamrec.pipeline.rundir import alive, lock_data_dir, remove_leftovers, wait_for_end

__all__ = ["check_model", "check_triton", "register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "run", help="recognise faces live on cameras, RTSP/HTTP streams or video files",
        description="Start the pipeline: one capture process per source, a central batcher that "
        "detects, tracks, embeds and matches faces against the watchlist, the event journal "
        "and publisher, and the overlaid video, door page and metrics. Stops cleanly on Ctrl-C "
        "or SIGTERM; ends by itself when every source has ended (exit 0, or 1 if one failed). "
        "Removes what a run killed with SIGKILL left behind (and says so), and refuses a data "
        "directory that another pipeline uses. The configuration and the options are checked "
        "before anything starts (one line naming the key or option at the first problem); an "
        "output bound beyond this machine gets a warning, and a web server bound beyond it is refused while "
        "nobody can log in (`streamrec users add NAME`).",
    )
    parser.add_argument("--source", action="append", default=[], metavar="SRC", help="camera index (0), video file, rtsp:// or http(s):// MJPEG URL; repeatable")
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="pipeline configuration (see configs/ and docs/configuration.md; `streamrec config check` checks one)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="watchlist, journal and logs (default: $STREAMREC_DATA, else ~/.local/share/streamrec)")
    parser.add_argument("--engines", type=Path, metavar="DIR", help="engine folder (built on first use)")
    parser.add_argument("--loop", action="store_true", help="replay video files given with --source forever")
    parser.add_argument("--fast", action="store_true", help="read video files given with --source as fast as the pipeline takes frames, not at their own frame rate")
    parser.add_argument("--fps", type=float, default=0.0, help="cap frames per second taken from each --source, up to 1000 (default: no cap)")
    parser.add_argument("--min-face-size", type=float, metavar="PX", help="override [detector] min_face_size (12 to 8192)")
    parser.add_argument("--http", metavar="HOST:PORT", help="web server address, '' for none (default from the config: 127.0.0.1:8080)")
    parser.add_argument("--events", metavar="ADDR", help="ZeroMQ address publishing events, tcp://HOST:PORT or ipc://PATH (default tcp://127.0.0.1:5571)")
    parser.add_argument("--frames", metavar="ADDR", help="ZeroMQ address publishing overlaid JPEG frames, tcp://HOST:PORT or ipc://PATH (default tcp://127.0.0.1:5572)")
    parser.add_argument("--workers", type=int, metavar="N", help="inference workers sharing the cameras, each camera "
                        "served by one (default from the config: [pipeline] workers, 1)")
    parser.add_argument("--threads", type=int, metavar="N", help="inference threads, 0 (every core) up to the cores this process may use (default from the config: 0)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, help="inference backend; auto: the fastest this machine runs whose "
                        "accuracy holds, said when the run starts (default from the config: auto)")
    parser.add_argument("--device", metavar="DEVICE", help="where the backend runs: cpu, gpu (openvino), cuda or cuda:N "
                        "(tensorrt, torch) (default from the config: the backend's own)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, help="how FaceNet computes; auto: the fastest the backend "
                        "runs here whose accuracy holds, int8 on onnxruntime for the published model where no bf16 is faster "
                        "(default from the config: auto)")
    parser.add_argument("--detection-precision", choices=DETECTION_PRECISIONS, help="how MTCNN's R-Net and O-Net "
                        "compute: fp32, or bf16 (openvino on a CPU with AVX-512 BF16 or AMX: faster, outside the "
                        "accuracy bound; docs/accuracy.md) (default from the config: fp32)")
    parser.add_argument("--triton-url", metavar="HOST:PORT", help="the Triton Inference Server's gRPC address, for "
                        "--backend triton (default from the config: [triton] url, 127.0.0.1:8001)")
    parser.add_argument("--model", metavar="NAME", help="which FaceNet embeds: facenet (the published one) or a model "
                        "'streamrec train' wrote; the watchlist must hold its embeddings (default from the config: facenet)")
    parser.set_defaults(handler=run_pipeline)


#: The options that set a configuration key: option dest -> (section, key).
_OPTION_KEYS = {
    "backend": ("pipeline", "backend"),
    "device": ("pipeline", "device"),
    "threads": ("pipeline", "threads"),
    "workers": ("pipeline", "workers"),
    "precision": ("pipeline", "precision"),
    "model": ("pipeline", "model"),
    "triton_url": ("triton", "url"),
    "min_face_size": ("detector", "min_face_size"),
    "detection_precision": ("detector", "precision"),
    "http": ("outputs", "http"),
    "events": ("outputs", "events"),
    "frames": ("outputs", "frames"),
}


def _configure(args: argparse.Namespace) -> tuple[RunConfig, Choice]:
    """The configuration file with the options applied, checked as one (a bad option value is
    reported under the option's name exactly as a bad file value is under its key), and the
    inference it resolves to on this machine."""
    origin = str(args.config) if args.config else ""
    changes: dict[str, Any] = {}
    names: dict[str, str] = {}
    try:
        config = load_config(args.config) if args.config else RunConfig()
        for option, (section, key) in _OPTION_KEYS.items():
            if getattr(args, option) is not None:
                changes.setdefault(section, {})[key] = getattr(args, option)
                names[f"{section}.{key}"] = "--" + option.replace("_", "-")
        if args.source:
            added = [{"url": url, "loop": args.loop, "fast": args.fast, "fps": args.fps} for url in args.source]
            for index in range(len(config.sources), len(config.sources) + len(added)):
                names.update({f"sources[{index}]": "--source", f"sources[{index}].fps": "--fps"})
            changes["sources"] = [source.model_dump() for source in config.sources] + added
        config = override(config, changes, names, origin)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    if not config.sources:
        raise UserError("no sources: give --source (repeatable) or [[sources]] in --config")
    for index, source in enumerate(config.sources):
        try:
            spec = parse_source(source.url)
            if spec.kind is SourceKind.FILE:  # a photo or no video at all: one line now, not an empty run
                check_file(spec)
        except (SourceSpecError, CaptureError) as exc:
            where = names.get(f"sources[{index}]") or ": ".join(filter(None, (origin, f"sources[{index}].url")))
            raise UserError(f"{where}: {exc}") from None
    config, inference = _resolve_backend(config, names, origin)
    for source in config.sources:
        if len(source.label) > MAX_NAME:  # it names the source in every message about its frames
            raise UserError(f"{origin or '--source'}: the source name {source.label[:40]!r}... is {len(source.label)} "
                            f"characters, at most {MAX_NAME}: give it a shorter name")
    return config, inference


def _resolve_backend(config: RunConfig, names: dict[str, str], origin: str) -> tuple[RunConfig, Choice]:
    """The configuration with ``auto`` resolved for this machine, so that every stage (and a
    restarted one) runs what was said at the start. Fails with one line now, rather than in an
    inference stage restarted in vain: the backend must be installed here, and have the device
    and compute in the precision asked for."""
    given = [names.get(key, "") for key in ("pipeline.backend", "pipeline.device", "pipeline.precision",
                                            "detector.precision")]
    where = ", ".join(filter(None, given)) or ": ".join(filter(None, (origin, "pipeline")))
    return resolve_pipeline(config, where, names, origin)


#: the MTCNN engines, keys of :data:`ENGINE_FILES`
MTCNN_ENGINES = ("pnet", "rnet", "onet")


def check_triton(config: RunConfig, engines: Path, where: str) -> None:
    """Fail with one line now, rather than in an inference stage restarted in vain: the Triton
    server must answer, with the four engines the run uses ready."""
    from streamrec.backends.triton import check_server

    facenet = model_file(engines, config.pipeline.model, config.pipeline.precision, "triton")
    try:
        check_server(config.triton.options(), [*(Path(ENGINE_FILES[net]).stem for net in MTCNN_ENGINES), facenet.stem])
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def _can_listen(family: socket.AddressFamily, host: str, port: int, key: str, address: str) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"{key}: cannot listen on {address} ({exc.strerror or exc})") from None


def _check_outputs(config: RunConfig) -> None:
    """Fail with one line now, rather than in a stage that would be restarted in vain: every
    output, and every link given an address (all bound on this machine by `run`), must be
    bindable (a free TCP port on a host of this machine, an ipc socket in an existing folder)."""
    outputs = config.outputs
    zmq_addresses = [(f"outputs.{key}", getattr(outputs, key)) for key in ("events", "frames")]
    for key, address in [*zmq_addresses, *((f"links.{link}", value) for link, value in config.links.set_links())]:
        endpoint = parse_zmq_endpoint(address)
        folder = Path(endpoint.path).parent
        if endpoint.transport == "tcp":
            _can_listen(socket.AF_INET, "" if endpoint.host == "*" else endpoint.host, endpoint.port, key, address)
        elif not endpoint.path.startswith("@") and not folder.is_dir():  # "@": a Linux abstract socket
            raise UserError(f"{key}: cannot bind {address}: no folder {folder}")
    if outputs.http:
        web = parse_http_address(outputs.http)
        family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
        _can_listen(family, web.host or "127.0.0.1", web.port, "outputs.http", outputs.http)


def _check_web(config: RunConfig, folder: Path) -> None:
    """Fail with one line now, rather than in a web stage restarted in vain: beyond loopback
    someone must be able to log in; the user file and the TLS certificate must load."""
    from streamrec.web.server import WebError, open_gate

    if config.outputs.http:
        try:
            open_gate(config.auth, config.outputs.http, folder)
        except WebError as exc:
            raise UserError(str(exc)) from None


def check_model(config: RunConfig, folder: Path, engines: Path, where: str) -> None:
    """Fail with one line now, rather than in an inference stage restarted in vain: the model
    must be in the engine folder, and the watchlist must hold its embeddings (or none)."""
    try:
        model_file(engines, config.pipeline.model, config.pipeline.precision, config.pipeline.backend)
        with Watchlist(folder) as store, store.read() as view:
            view.check_model(config.pipeline.model)
    except (ValueError, WatchlistError) as exc:
        raise UserError(f"{where}: {exc}") from None


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

    config, inference = _configure(args)
    warning = exposure_warning(list(config.outputs.beyond_loopback()), tls=bool(config.auth.tls_cert))
    if warning:
        stderr(f"streamrec: warning: {warning}")
    folder = data_dir(args.data_dir or config.pipeline.data_dir or None)
    _check_web(config, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the data directory {folder} ({exc.strerror or exc})") from None
    _check_outputs(config)
    check_link_keys(config, True, str(args.config or "--config"))
    try:
        engines = ensure_engines(args.engines, stderr)
    except (BuildError, SourceError) as exc:
        raise UserError(str(exc)) from None
    check_model(config, folder, engines, "--model" if args.model else ": ".join(filter(None, (str(args.config or ""), "pipeline.model"))))
    if inference.backend == "triton":
        check_triton(config, engines, "--triton-url" if args.triton_url else ": ".join(filter(None, (str(args.config or ""), "triton.url"))))
    lock = _claim_data_dir(folder)
    try:
        run_dir = new_run_dir()
        endpoints = Endpoints.for_run(run_dir, config.outputs.events, config.outputs.frames, dict(config.links.set_links()),
                                   LinkCurve.from_links(config.links), config.worker_links())
        log_file = folder / "logs" / "streamrec.log"
        configure_logging("supervisor", log_file)
        factories = stage_factories(config, folder, engines, endpoints, log_file)
        stderr(f"streamrec: inference on {inference.describe()}")
        stderr(f"streamrec: {len(config.sources)} source(s); events on {config.outputs.events}; "
               f"{'web on http://' + config.outputs.http if config.outputs.http else 'no web server'}; data in {folder}")
        return Supervisor(config, folder, factories, endpoints, run_dir).run()
    finally:
        os.close(lock)
