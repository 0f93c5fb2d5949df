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
  face library (:mod:`streamrec.web.library`), when the stage has one; behind the same gate.

* ``/login``: GET shows the login form, POST (``user``, ``password``, ``next``) logs in; and
  ``/logout``.

Who may call (:mod:`streamrec.web.auth`): when the server binds beyond loopback (or with
``[auth] require_on_loopback`` and a user), every route needs a session cookie (from ``/login``)
or ``Authorization: Bearer TOKEN``, whatever the path, known or not. Only two paths are public:
``/login``, since it must be reachable to log in at all, and ``/logout``, which only ends the
caller's own session. Without a login, a browser asking for a page gets the login form with
status 401 (so it comes back to the page it asked for); everything else gets a one-line 401.
Changes (POST, PUT, DELETE) made with a session cookie must carry the header ``X-CSRF-Token``
equal to the cookie ``streamrec_csrf``; a change whose ``Origin`` is another site is refused
whoever makes it, so that on an open loopback server no web page can make one either. And an
open server answers only requests addressed to a loopback name (``Host``: ``localhost``,
``127.x.x.x``, ``[::1]``; or none): a site whose name an attacker points at 127.0.0.1 (DNS
rebinding) is another origin to the browser, which then lets its page read the answers, so
its requests get a one-line 403 and nothing else.

Errors are one line: JSON ``{"error": ...}`` under ``/api/``, else short text: 404 for an
unknown path or camera, 503 while no frame has arrived yet.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import socketserver
import ssl
import sys
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from streamrec.config.addresses import binds_beyond_loopback, parse_http_address
from streamrec.config.model import AuthConfig
from streamrec.web.auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    AuthError,
    Caller,
    Gate,
    LoginRefused,
    users_path,
)
from streamrec.web.library import MAX_UPLOAD, Library
from streamrec.web.login import LOGIN_HEADERS, login_page
from streamrec.web.metrics import CONTENT_TYPE, StageMetrics
from streamrec.web.page import PAGE
from streamrec.web.state import Picture, WebState

__all__ = ["BOUNDARY", "PUBLIC", "ROUTES", "WebError", "WebServer", "open_gate", "parse_address", "serve_http"]

BOUNDARY = "streamrec-frame"
CLIENT_TIMEOUT_S = 30  #: a client that neither reads nor writes for this long is dropped
STREAM_WAKE_S = 1.0  #: how often an idle stream checks whether the server is closing
MAX_FORM = 8192  #: bytes of a login form, at most
MAX_FIELDS = 10  #: fields of a login form, at most (it has three)
PUBLIC = ("/login", "/logout")  #: the paths anyone may call (see the module's description)

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

    def __init__(self, address: tuple[str, int], state: WebState, metrics: StageMetrics, gate: Gate,
                 tls: ssl.SSLContext | None = None, library: Library | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state, self.metrics, self.gate, self.tls = state, metrics, gate, tls
        self.library = library
        super().__init__(address, _Handler)
        if tls is not None:
            # the handshake happens in the connection's own thread (finish_request), so a client
            # that stalls in it holds up nobody else
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(CLIENT_TIMEOUT_S)
            try:
                request.do_handshake()
            except OSError as exc:  # ssl.SSLError is one: plain HTTP on this port, a bad client
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
        super().finish_request(request, client_address)

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


def tls_context(config: AuthConfig) -> ssl.SSLContext:
    """The server's TLS set-up from ``[auth] tls_cert`` and ``tls_key``; :class:`WebError` (one
    line naming the key) when a file cannot be read or they are no PEM certificate and its key."""
    for key in ("tls_cert", "tls_key"):
        try:
            Path(getattr(config, key)).read_bytes()
        except OSError as exc:
            raise WebError(f"auth.{key}: cannot read {getattr(config, key)} ({exc.strerror or exc})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except ssl.SSLError as exc:
        raise WebError(f"auth.tls_cert, auth.tls_key: {config.tls_cert} and {config.tls_key} are not a PEM "
                       f"certificate and its unencrypted private key ({exc.reason or exc})") from None
    return context


def open_gate(config: AuthConfig, address: str, data_dir: Path) -> tuple[Gate, ssl.SSLContext | None]:
    """The gate and TLS set-up of a server on ``address``; :class:`WebError` (one line) when
    the user file is broken, when it has no user and the address is beyond loopback, or when
    the certificate cannot be loaded."""
    tls = tls_context(config) if config.tls_cert else None
    try:
        beyond = binds_beyond_loopback(parse_http_address(address))
    except ValueError as exc:
        raise WebError(f"http: {exc}") from None
    path = users_path(config, data_dir)
    try:
        gate = Gate.for_server(config, path, beyond, secure=tls is not None)
    except AuthError as exc:
        raise WebError(str(exc)) from None
    if beyond and not gate.users.book().users:
        raise WebError(f"outputs.http binds {address}, beyond this machine, and nobody can log in: the user file "
                       f"{path} has no user; add one with `streamrec users add NAME`, or bind 127.0.0.1")
    return gate, tls


def serve_http(address: str, state: WebState, metrics: StageMetrics, gate: Gate,
               tls: ssl.SSLContext | None = None, library: Library | None = None) -> WebServer:
    """A server bound to ``address`` (not yet serving: call ``serve_forever`` in a thread).
    Raises :class:`WebError` when the address is malformed or the port is taken."""
    host, port = parse_address(address)
    try:
        return WebServer((host, port), state, metrics, gate, tls, library)
    except OSError as exc:
        raise WebError(f"http: cannot listen on {address} ({exc.strerror or exc})") from None


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    timeout = CLIENT_TIMEOUT_S
    server_version = "streamrec"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        """Public routes; then the gate (who is calling, and for a change, the CSRF token and
        the origin); then the route, by path and method."""
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.server.state.count_request()
        if not self.server.gate.required and not _loopback_name(self.headers.get("Host")):
            self._error(403, "this server is open to this machine only: address it as localhost, 127.0.0.1 or [::1]")
            return
        if method != "GET" and not self._same_origin():
            return
        if url.path in PUBLIC:
            (self._login if url.path == "/login" else self._logout)(method, query)
            return
        caller = self._caller()
        if caller is None:
            self._unauthorised(url.path)
            return
        if method != "GET" and not Gate.csrf_ok(caller, self.headers.get(CSRF_HEADER), self._cookies()):
            self._error(403, f"a change needs the header {CSRF_HEADER} with the value of the cookie {CSRF_COOKIE}")
            return
        if self._library(method, url.path, query):
            return
        methods = ROUTES.get(url.path)
        if methods is None:
            self._reply(404, f"not found: {url.path} (try {', '.join(ROUTES)})")
        elif method not in methods:
            self._error(405, f"{url.path} takes {', '.join(methods)}, not {method}")
        else:
            methods[method](self, query)

    def _library(self, method: str, path: str, query: dict[str, str]) -> bool:
        """Answer a request for the face library; ``False`` if it is not one."""
        library = self.server.library
        if library is None or not library.handles(path):
            return False
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_UPLOAD:
            self.close_connection = True  # the body is not read
            self._error(413, f"the request body must be at most {MAX_UPLOAD // 2**20} MiB (Content-Length {length})")
            return True
        response = library.respond(method, path, query, self.rfile.read(int(length)) if method != "GET" else b"")
        self._reply(response.status, response.body, response.content_type)
        return True

    # -- the gate -----------------------------------------------------------------------------
    def _caller(self) -> Caller | None:
        """Who the request comes from, as of now: None once its login has ended."""
        return self.server.gate.caller(self.headers.get("Authorization"), self._cookies())

    def _cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except CookieError:
            return {}
        return {name: morsel.value for name, morsel in jar.items()}

    def _same_origin(self) -> bool:
        """False (and a 403 sent) when the request says it comes from a page of another site."""
        origin = self.headers.get("Origin")
        if origin is None or urlsplit(origin).netloc == self.headers.get("Host", ""):
            return True
        self._error(403, f"a change from another site ({origin[:100]}) is refused")
        return False

    def _unauthorised(self, path: str) -> None:
        """401: the login form for a browser asking for a page, one line for anything else."""
        if not path.startswith("/api/") and "text/html" in self.headers.get("Accept", ""):
            self._reply(401, login_page(self.path), "text/html; charset=utf-8", LOGIN_HEADERS)
        else:
            self._error(401, "login required: log in at /login, or send Authorization: Bearer TOKEN",
                        {"WWW-Authenticate": 'Bearer realm="streamrec"'})

    def _login(self, method: str, query: dict[str, str]) -> None:
        """GET: the form. POST: check the form's user and password; a session and its cookies
        and back to ``next`` when right, the form again (401) or one line (429) when not."""
        gate = self.server.gate
        if method == "GET":
            self._reply(200, login_page(query.get("next", "/")), "text/html; charset=utf-8", LOGIN_HEADERS)
            return
        if method != "POST":
            self._error(405, f"/login takes GET and POST, not {method}")
            return
        form = self._form()
        if form is None:
            return
        try:
            session = gate.login(form.get("user", ""), form.get("password", ""), self.client_address[0])
        except LoginRefused as exc:
            if exc.status == 429:
                self._reply(429, str(exc), headers={"Retry-After": str(int(exc.retry_after_s) + 1)})
            else:
                self._reply(401, login_page(form.get("next", "/"), str(exc)), "text/html; charset=utf-8", LOGIN_HEADERS)
            return
        lifetime = int(gate.sessions.lifetime_s)
        self._redirect(form.get("next", "/"), [
            self._cookie(SESSION_COOKIE, session.sid, lifetime, http_only=True),
            self._cookie(CSRF_COOKIE, session.csrf, lifetime, http_only=False),
        ])

    def _logout(self, method: str, query: dict[str, str]) -> None:
        sid = self._cookies().get(SESSION_COOKIE)
        if sid:
            self.server.gate.sessions.end(sid)
        self._redirect("/login", [self._cookie(name, "", 0, http_only=name == SESSION_COOKIE)
                                  for name in (SESSION_COOKIE, CSRF_COOKIE)])

    def _form(self) -> dict[str, str] | None:
        """The url-encoded form in the body; None (and 411/413 sent) when it has no length or
        is too long."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._reply(411, "a form needs a Content-Length")
            return None
        if int(length) > MAX_FORM:
            self._reply(413, f"a login form has at most {MAX_FORM} bytes (got {length})")
            return None
        body = self.rfile.read(int(length)).decode("utf-8", "replace")
        try:
            return {key: values[-1] for key, values in parse_qs(body, max_num_fields=MAX_FIELDS).items()}
        except ValueError:
            self._reply(400, f"a login form has at most {MAX_FIELDS} fields")
            return None

    def _cookie(self, name: str, value: str, max_age: int, http_only: bool) -> str:
        """A ``Set-Cookie`` value: for this whole site only, never sent along by another site."""
        flags = "; HttpOnly" * http_only + "; Secure" * self.server.gate.secure
        return f"{name}={value}; Path=/; Max-Age={max_age}; SameSite=Strict{flags}"

    def _redirect(self, target: str, cookies: list[str]) -> None:
        """303 to ``target`` when it is a path of this site (never elsewhere, and never with a
        line break that would end the header), else to ``/``."""
        local = target.startswith("/") and not target.startswith(("//", "/\\")) and target.isprintable()
        self.send_response(303)
        self.send_header("Location", target if local else "/")
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- responses --------------------------------------------------------------------------
    def _reply(self, status: int, body: str | bytes, content_type: str = "text/plain; charset=utf-8",
               headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """A one-line error: JSON ``{"error": ...}`` under ``/api/``, text elsewhere."""
        if self.path.startswith("/api/"):
            self._reply(status, json.dumps({"error": message}), "application/json", headers)
        else:
            self._reply(status, message, headers=headers)

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
            sent, checked = 0, time.monotonic()
            while not state.closed:
                picture = state.next_picture(source, sent, STREAM_WAKE_S)
                if time.monotonic() - checked >= STREAM_WAKE_S:  # a logout or a removed user ends the video too
                    if self._caller() is None:
                        return
                    checked = time.monotonic()
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


#: Every route behind the gate: path -> method -> the handler's function.
ROUTES: dict[str, dict[str, Callable[[_Handler, dict[str, str]], None]]] = {
    "/": {"GET": _Handler._page},
    "/stream.mjpg": {"GET": _Handler._stream},
    "/frame.jpg": {"GET": _Handler._frame},
    "/api/state": {"GET": _Handler._api_state},
    "/metrics": {"GET": _Handler._metrics},
}


def _loopback_name(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name or address (or is absent:
    browsers always send one, so its absence is no page's request)."""
    if host is None:
        return True
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
