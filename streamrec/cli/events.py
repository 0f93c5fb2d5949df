"""``streamrec events``: print match events, replaying the journal first if asked."""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from streamrec.bus.messages import EVENT_TYPES, Event, MessageError
from streamrec.bus.sockets import receive, sub_socket
from streamrec.cli.common import UserError, number, stderr
from streamrec.config import OutputsConfig
from streamrec.events.journal import read_journal
from streamrec.paths import data_dir

__all__ = ["format_event", "parse_since", "register"]

#: how long ``events`` waits for a publisher before saying that it has none
NO_PUBLISHER_S = 3.0

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The last second of the year 9999, the latest time an ISO 8601 date (and Python) can write.
_LATEST = 253402300799.0


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time from ``10m``/``2h``/``1d``/``30s`` ago, an ISO 8601 time (local time unless it
    has an offset), or Unix seconds; a time before 1970 or after the year 9999 (``nan``,
    ``1e400``, ``-5``) is refused, as nothing in the journal can be that old or that late."""
    now = time.time() if now is None else now
    match = _RELATIVE.match(text.strip())
    try:
        when = now - float(match.group(1)) * _UNITS[match.group(2)] if match else float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text).timestamp()
        except (ValueError, OverflowError, OSError):
            raise argparse.ArgumentTypeError(f"expected e.g. 10m, 2h, 1d, 2026-11-24T09:30 or Unix seconds, got {text!r}") from None
    if not (math.isfinite(when) and 0 <= when <= _LATEST):
        raise argparse.ArgumentTypeError(f"must be a time between 1970 and the year 9999 (got {text})")
    return when


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``events`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "events", help="print match events live (and past ones with --since)",
        description="Subscribe to a running pipeline's events and print them. With --since, "
        "events from the journal in the data directory are printed first, then live ones, "
        "without gaps or repeats, so a subscriber that was down loses nothing. While no pipeline "
        f"publishes on the address for {NO_PUBLISHER_S:g} s, it says so on stderr and keeps waiting.",
    )
    parser.add_argument("--since", type=parse_since, metavar="TIME", help="replay from this time: 10m, 2h, 1d, an ISO time or Unix seconds")
    parser.add_argument("--topic", action="append", choices=EVENT_TYPES, help="only these event types (repeatable; default: all)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where the journal and the running pipeline's address are")
    parser.add_argument("--address", metavar="ADDR", help="events PUB address (default: the running pipeline's, else tcp://127.0.0.1:5571)")
    parser.add_argument("--count", type=number(whole=True, ge=1), metavar="N", help="exit after printing N events (N >= 1)")
    parser.add_argument("--no-follow", action="store_true", help="print the replayed events and exit")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=run_events)


def _address(folder: Path, override: str | None) -> str:
    if override:
        return override
    try:
        return str(json.loads((folder / "run.json").read_text())["events"])
    except (OSError, ValueError, KeyError):
        return OutputsConfig().events


def format_event(event: dict[str, Any]) -> str:
    """One human-readable line for an event (its JSON form)."""
    when = datetime.fromtimestamp(event["ts"]).strftime("%Y-%m-%d %H:%M:%S")
    head = f"{when} {event['type']:<13} {event['source']}"
    if event["type"] in ("match", "unknown", "track_end"):
        who = event.get("name") or ("unknown" if event["type"] != "track_end" else "-")
        numbers = ", ".join(f"{k} {event[k]:.3f}" for k in ("distance", "score") if isinstance(event.get(k), (int, float)))
        return f"{head} track {event.get('track_id')}: {who}" + (f" ({numbers})" if numbers else "") + (f" {event['detail']}" if event.get("detail") else "")
    if event["type"] == "access":
        result = event.get("result")
        step = f"asked to turn {event.get('direction')}" if result == "challenge" else str(result)
        why = f" ({event['reason']})" if event.get("reason") else ""
        detail = f": {event['detail']}" if event.get("detail") else ""
        return f"{head} track {event.get('track_id')}: {event.get('name') or event.get('person_id')} {step}{why}{detail}"
    return f"{head} {event.get('detail', '')}"


class _Printer:
    def __init__(self, as_json: bool, topics: list[str] | None, limit: int | None) -> None:
        self.as_json, self.topics, self.limit = as_json, topics, limit
        self.printed = 0
        self.last_seq = 0

    def show(self, event: dict[str, Any]) -> bool:
        """Print ``event`` unless filtered or already shown; False once ``limit`` is reached."""
        if event.get("seq", 0) and event["seq"] <= self.last_seq:
            return True
        self.last_seq = max(self.last_seq, event.get("seq", 0))
        if self.topics and event["type"] not in self.topics:
            return True
        print(json.dumps(event) if self.as_json else format_event(event), flush=True)
        self.printed += 1
        return self.limit is None or self.printed < self.limit


def run_events(args: argparse.Namespace) -> int:
    folder = data_dir(args.data_dir)
    printer = _Printer(args.json, args.topic, args.count)
    if args.since is not None and not folder.is_dir():  # a mistyped --data-dir would replay nothing, silently
        raise UserError(f"no data directory {folder}: no journal to replay")
    address = _address(folder, args.address)
    ctx = zmq.Context()
    try:
        subscriber = None if args.no_follow else sub_socket(
            ctx, address, args.topic, monitor=zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        if args.since is not None:
            for event in read_journal(folder / "events", since_ts=args.since):
                if not printer.show(event):
                    return 0
        if subscriber is None:
            return 0
        _follow(subscriber, address, printer)
        return 0
    except zmq.ZMQError as exc:
        raise UserError(f"cannot subscribe: {exc}") from None
    finally:
        ctx.destroy(linger=0)


def _follow(subscriber: zmq.Socket, address: str, printer: _Printer) -> None:
    """Print live events until ``printer`` has had enough. While no publisher is connected for
    ``NO_PUBLISHER_S`` (none started yet, or the pipeline stopped), say so once on stderr and
    go on waiting: ZeroMQ itself reconnects in silence, forever."""
    monitor = subscriber.get_monitor_socket()  # attached before it connected
    poller = zmq.Poller()
    poller.register(subscriber, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    alone_since: float | None = time.monotonic()  #: since when no publisher is connected
    while True:
        wait_ms = None if alone_since is None else max(0, round((alone_since + NO_PUBLISHER_S - time.monotonic()) * 1000))
        ready = dict(poller.poll(wait_ms))
        if monitor in ready:
            change = recv_monitor_message(monitor)["event"]
            alone_since = None if change == zmq.EVENT_HANDSHAKE_SUCCEEDED else time.monotonic()
        if alone_since is not None and time.monotonic() - alone_since >= NO_PUBLISHER_S:
            stderr(f"streamrec: no pipeline is publishing on {address}; waiting")
            alone_since = None  # said; the next disconnection starts a new wait
        if subscriber in ready:
            try:
                _, message, _ = receive(subscriber)
            except MessageError as exc:
                stderr(f"streamrec: skipped a malformed event: {exc}")
                continue
            if isinstance(message, Event) and not printer.show(message.to_json()):
                return
