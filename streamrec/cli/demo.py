"""``streamrec demo``: the whole pipeline on a clip made from photos that ship with installed
packages, with the door display and the live events (the embedded default run)."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from streamrec.bus.messages import Event, MessageError
from streamrec.bus.sockets import receive, sub_socket
from streamrec.cli.common import UserError, add_engine_options, number, open_models, print_json, stderr
from streamrec.cli.events import format_event
from streamrec.config.addresses import parse_http_address
from streamrec.demo.prepare import ENROLLED_NAME, NOT_ENROLLED, prepare_demo
from streamrec.engines import ensure_engines
from streamrec.paths import data_dir
from streamrec.pipeline.stage import end_with_parent
from streamrec.samples import MissingSampleError

__all__ = ["register"]

DEFAULT_HTTP = "127.0.0.1:8080"
STOP_TIMEOUT_S = 30.0


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "demo", help="the whole pipeline on a clip of public-domain portraits, with door display and events",
        description="Runs on a machine with no camera and no data of its own. Renders a clip "
        f"that pans over two public-domain portraits shipped with installed packages (NASA's "
        f"portrait of {ENROLLED_NAME} from scikit-image, then {NOT_ENROLLED} from matplotlib), "
        f"enrolls {ENROLLED_NAME} from a different crop of her photo into the demo's own "
        "watchlist (DATA_DIR/demo; yours is never touched), and runs `streamrec run` on the clip, "
        "looping, like a camera: the events are printed as they come and the door display is "
        "served on --http. Exit status 0 when she was recognised and no one was named wrongly.",
    )
    add_engine_options(parser, default=("auto", "auto"))
    parser.add_argument("--seconds", type=number(gt=0), default=20.0, metavar="S", help="how long to run (default: %(default)g)")
    parser.add_argument("--forever", action="store_true", help="run until Ctrl-C or SIGTERM (keep the door display up)")
    parser.add_argument("--http", type=_http_option, default=DEFAULT_HTTP, metavar="HOST:PORT",
                        help="door display address (default: %(default)s; a free port if it is taken)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="the demo lives in DIR/demo (default: $STREAMREC_DATA, else ~/.local/share/streamrec)")
    parser.set_defaults(handler=run_demo)


def _http_option(text: str) -> str:
    try:
        parse_http_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (got {text!r})") from None
    return text


def _free_port(host: str = "127.0.0.1", wanted: int = 0) -> int:
    """``wanted`` if it can be listened on, else a free port the kernel picks. The probe binds as
    the servers do (``SO_REUSEADDR``), so that connections of an earlier server still closing
    (``TIME_WAIT``) do not count as the port being taken."""
    for port in (wanted, 0) if wanted else (0,):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise UserError(f"no free TCP port on {host}")


def _http_address(wanted: str) -> str:
    """``wanted`` (``HOST:PORT``, checked by ``--http``), or its host with a free port."""
    address = parse_http_address(wanted)
    host = address.host or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    free = _free_port(host, address.port)
    if free != address.port:
        stderr(f"streamrec: {shown}:{address.port} is taken; the door display uses port {free} instead")
    return f"{shown}:{free}"


def _summary(events: list[dict[str, Any]], door: str) -> dict[str, Any]:
    named: dict[str, int] = {}
    for event in events:
        if event["type"] == "match":
            named[event["name"]] = named.get(event["name"], 0) + 1
    wrong = sorted(set(named) - {ENROLLED_NAME})
    return {
        "door": door,
        "enrolled": ENROLLED_NAME,
        "recognised": ENROLLED_NAME in named,
        "named": named,
        "wrongly_named": wrong,
        "unknown_decisions": sum(e["type"] == "unknown" for e in events),
        "ok": ENROLLED_NAME in named and not wrong,
        "events": events,
    }


def _follow(subscriber: zmq.Socket, child: subprocess.Popen, until: float, as_json: bool) -> list[dict[str, Any]]:
    """Collect (and, for people, print) events until ``until`` or until the run ends."""
    events: list[dict[str, Any]] = []
    try:
        while child.poll() is None and time.monotonic() < until:
            if not subscriber.poll(200):
                continue
            try:
                _, message, _ = receive(subscriber)
            except MessageError as exc:
                stderr(f"streamrec: skipped a malformed event: {exc}")
                continue
            if isinstance(message, Event):
                events.append(message.to_json())
                if not as_json:
                    print(format_event(events[-1]), flush=True)
    except KeyboardInterrupt:
        pass
    return events


def _stop(child: subprocess.Popen) -> int:
    """SIGTERM the run and wait for its clean shutdown (a second Ctrl-C or SIGTERM meanwhile
    does not cut it short: it would leave the run without its parent)."""
    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            return child.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)


def run_demo(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops the demo as Ctrl-C does
    folder = data_dir(args.data_dir) / "demo"
    args.engines = ensure_engines(args.engines, stderr)
    try:
        models = open_models(args)
        files = prepare_demo(folder, models)
    except (MissingSampleError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    door = _http_address(args.http)
    events_address = f"tcp://127.0.0.1:{_free_port()}"
    command = [
        sys.executable, "-m", "streamrec", "run", "--source", str(files.clip), "--loop",
        "--data-dir", str(files.data_dir), "--engines", str(args.engines), "--http", door,
        "--events", events_address, "--frames", f"tcp://127.0.0.1:{_free_port()}",
        "--backend", models.config.backend, "--precision", models.config.precision,
    ]
    if models.config.backend_options.device:
        command += ["--device", models.config.backend_options.device]
    if models.config.backend == "triton":
        command += ["--triton-url", models.config.backend_options.triton.url]
    if args.threads:
        command += ["--threads", str(args.threads)]
    log = files.data_dir / "logs" / "demo-run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ctx = zmq.Context()
    try:
        subscriber = sub_socket(ctx, events_address)
        # the run ends with the demo, even one killed with SIGKILL; end_with_parent is safe between
        # fork and exec in a process with threads: it calls only prctl, looked up at import
        ends_with_demo = functools.partial(end_with_parent, os.getpid())
        with open(log, "w") as out:
            child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=ends_with_demo)  # noqa: PLW1509
        stderr(f"streamrec: door display on http://{door}/ ; {'Ctrl-C to stop' if args.forever else f'running {args.seconds:g} s'} "
               f"(pipeline log: {log})")
        until = float("inf") if args.forever else time.monotonic() + args.seconds
        try:
            events = _follow(subscriber, child, until, args.json)
        finally:
            status = _stop(child)
    finally:
        ctx.destroy(linger=0)
    if status not in (0, -signal.SIGTERM):
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"the pipeline stopped with status {status}: {tail[0]}")
    summary = _summary(events, f"http://{door}/")
    if args.json:
        print_json(summary)
    else:
        wrong = f"; wrongly named: {', '.join(summary['wrongly_named'])}" if summary["wrongly_named"] else ""
        print(f"{ENROLLED_NAME}: {'recognised' if summary['recognised'] else 'NOT recognised'}; "
              f"{summary['unknown_decisions']} unknown-face decision(s){wrong}")
    return 0 if summary["ok"] else 1
