"""The HTTP side of the web stage: a threaded stdlib server and its routes.

One thread per connection, so an endless MJPEG stream or a client that stops reading never
holds up anyone else; a socket timeout ends the thread of a client that stalls for good.

Routes (``source``: a camera name; without it, the first camera):

* ``/``: the door-display page (:mod:`streamrec.web.page`).
* ``/stream.mjpg?source=NAME``: ``multipart/x-mixed-replace`` MJPEG of the overlaid frames;
  each part is the newest frame, never a backlog.
* ``/frame.jpg?source=NAME``: the newest overlaid frame.
* ``/api/state``: JSON: sources with their rate and newest frame, the last decision of each
  source and overall, the recent events.
* ``/metrics``: Prometheus text format (:mod:`streamrec.web.metrics`).
* ``/faces``, ``/api/faces/...``, ``/api/unknown/...``, ``/api/feedback`` (GET, POST, DELETE): the
  face library (:mod:`streamrec.web.library`), when the stage has one.

Errors are short text bodies: 404 for an unknown path or camera, 503 while no frame has
arrived yet.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from streamrec.web.library import MAX_UPLOAD, Library
from streamrec.web.metrics import CONTENT_TYPE, StageMetrics
from streamrec.web.page import PAGE
from streamrec.web.state import Picture, WebState

__all__ = ["BOUNDARY", "WebError", "WebServer", "parse_address", "serve_http"]

BOUNDARY = "streamrec-frame"
CLIENT_TIMEOUT_S = 30  #: a client that neither reads nor writes for this long is dropped
STREAM_WAKE_S = 1.0  #: how often an idle stream checks whether the server is closing

log = logging.getLogger("web")


class WebError(Exception):
    """The server cannot start; the message is one line saying why."""


def parse_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` (``[::1]:8080`` for IPv6); an empty host means
    loopback, so nothing is exposed unless asked for."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise WebError(f"http: expected HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class WebServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the state and metrics its handlers serve."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: WebState, metrics: StageMetrics, library: Library | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state, self.metrics, self.library = state, metrics, library
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up in DNS (getfqdn); a door display
        # must not wait on a resolver to start
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away is routine (debug); anything else is a bug worth a trace."""
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("connection from %s ended: %s", client_address, sys.exc_info()[1])
        else:
            log.exception("error serving %s", client_address)


def serve_http(address: str, state: WebState, metrics: StageMetrics, library: Library | None = None) -> WebServer:
    """A server bound to ``address`` (not yet serving: call ``serve_forever`` in a thread).
    Raises :class:`WebError` when the address is malformed or the port is taken."""
    host, port = parse_address(address)
    try:
        return WebServer((host, port), state, metrics, library)
    except OSError as exc:
        raise WebError(f"http: cannot listen on {address} ({exc.strerror or exc})") from None


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    timeout = CLIENT_TIMEOUT_S
    server_version = "streamrec"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.server.state.count_request()
        if self._library("GET", url.path, query):
            return
        routes: dict[str, Callable[[dict[str, str]], None]] = {
            "/": self._page, "/stream.mjpg": self._stream, "/frame.jpg": self._frame,
            "/api/state": self._api_state, "/metrics": self._metrics,
        }
        route = routes.get(url.path)
        if route is None:
            self._reply(404, f"not found: {url.path} (try /, /stream.mjpg, /frame.jpg, /api/state, /metrics)")
            return
        route(query)

    def do_POST(self) -> None:
        self._changing("POST")

    def do_DELETE(self) -> None:
        self._changing("DELETE")

    def _changing(self, method: str) -> None:
        url = urlsplit(self.path)
        self.server.state.count_request()
        if not self._library(method, url.path, {key: values[-1] for key, values in parse_qs(url.query).items()}):
            self.close_connection = True  # its body, if any, is not read
            self._reply(405, json.dumps({"error": f"{method} is not allowed on {url.path}"}), "application/json")

    def _library(self, method: str, path: str, query: dict[str, str]) -> bool:
        """Answer a request for the face library; ``False`` if it is not one."""
        library = self.server.library
        if library is None or not library.handles(path):
            return False
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_UPLOAD:
            self.close_connection = True
            error = f"the request body must be at most {MAX_UPLOAD // 2**20} MiB (Content-Length {length})"
            self._reply(413, json.dumps({"error": error}), "application/json")
            return True
        response = library.respond(method, path, query, self.rfile.read(int(length)) if method != "GET" else b"")
        self._reply(response.status, response.body, response.content_type)
        return True

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- responses --------------------------------------------------------------------------
    def _reply(self, status: int, body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _source(self, query: dict[str, str]) -> str | None:
        """The camera asked for, or the first; replies 404/503 itself and returns None when
        there is no such camera, or no camera yet."""
        state = self.server.state
        sources = state.sources()
        name = query.get("source") or (sources[0] if sources else "")
        if not name:
            self._reply(503, "no frame yet: no camera has delivered a frame")
        elif name not in sources:
            self._reply(404, f"no camera named {name!r} (cameras: {', '.join(sources) or 'none yet'})")
        return name if name in sources else None

    # -- routes -------------------------------------------------------------------------------
    def _page(self, query: dict[str, str]) -> None:
        self._reply(200, PAGE, "text/html; charset=utf-8")

    def _api_state(self, query: dict[str, str]) -> None:
        self._reply(200, json.dumps(self.server.state.snapshot()), "application/json")

    def _metrics(self, query: dict[str, str]) -> None:
        self._reply(200, self.server.metrics.exposition(), CONTENT_TYPE)

    def _frame(self, query: dict[str, str]) -> None:
        source = self._source(query)
        if source is None:
            return
        picture = self.server.state.picture(source)
        if picture is None:
            self._reply(503, f"no frame yet from {source}")
        else:
            self._reply(200, picture.jpeg, "image/jpeg")

    def _stream(self, query: dict[str, str]) -> None:
        source = self._source(query)
        if source is None:
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        state = self.server.state
        with state.streaming():
            sent = 0
            while not state.closed:
                picture = state.next_picture(source, sent, STREAM_WAKE_S)
                if picture is None:
                    continue
                if not self._send_part(picture):
                    return
                sent = picture.seq

    def _send_part(self, picture: Picture) -> bool:
        """Write one part; False when the client has gone (or stalled past the timeout)."""
        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(picture.jpeg)}\r\n\r\n"
        try:
            self.wfile.write(head.encode() + picture.jpeg + b"\r\n")
            self.wfile.flush()
        except OSError:
            return False
        return True
