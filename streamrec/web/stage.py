"""The web stage: the door-display page, the MJPEG streams and ``/metrics`` over HTTP.

It subscribes to three feeds and keeps what the pages need: overlaid JPEG frames from the
render stage (the newest per source), published events from the events stage (the recent
ones, and the last decision per source), and every ``StageStats`` the supervisor forwards on
the monitor socket (for ``/metrics``). The first two are the outputs' feeds in the run
directory, not their public addresses, so that no stranger subscribed there can disturb the
door page. HTTP runs in a threaded server beside the ZeroMQ loop.

A port already in use, a server bound beyond loopback with no user to log in, a broken user
file or TLS certificate: each is reported in one log line and the stage exits with
``EXIT_HTTP_FAILED``, rather than with a traceback.

Counters: ``http_requests``, ``logins``, ``logins_failed`` (a wrong user name or password),
``logins_refused`` (over ``[auth] login_failures``), ``frames_received``, ``events_received``, ``stats_received``,
``malformed_<feed>`` for feeds ``jpeg``, ``events`` and ``monitor`` (all in
``malformed_messages``), ``refused_<what>`` (see :class:`~streamrec.web.state.WebState`).
Gauge: ``mjpeg_clients``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from streamrec.bus.messages import Event, JpegFrame, Message, StageStats
from streamrec.bus.sockets import Endpoints, receive_pending, sub_socket
from streamrec.config.model import AuthConfig, DoorConfig, OutputsConfig
from streamrec.match.store import WatchlistError
from streamrec.paths import data_dir as default_data_dir
from streamrec.pipeline.stage import Stage
from streamrec.web.library import Library
from streamrec.web.metrics import StageMetrics
from streamrec.web.server import WebError, WebServer, open_gate, serve_http
from streamrec.web.state import WebState

if TYPE_CHECKING:
    from streamrec.faces import FaceModels

__all__ = ["EXIT_HTTP_FAILED", "WebStage"]

EXIT_HTTP_FAILED = 2
POLL_MS = 200  #: how long a step waits for input; bounds how late a stop request is seen
JPEG_HWM = 4  #: JPEG frames queued before ZeroMQ drops older ones for us


class WebStage(Stage):
    """Serves ``outputs.http`` (``HOST:PORT``). ``sources``: the configured camera names, so
    the page and routes know them (and pick the first) before their first frame arrives.
    ``auth`` and ``data_dir``: who may log in (the user file defaults to ``data_dir``).
    ``library``: whether to serve the face library of ``data_dir`` (``/faces``), embedding
    uploaded photos with the engines of ``engines``. ``door``: the doors' settings (how long a
    challenge can last, at most)."""

    name = "web"

    def __init__(
        self, outputs: OutputsConfig, endpoints: Endpoints, log_file: Path | None = None, sources: Sequence[str] = (),
        auth: AuthConfig | None = None, data_dir: Path | None = None, library: bool = False, engines: Path | None = None,
        door: DoorConfig | None = None,
    ) -> None:
        super().__init__(endpoints.stats, log_file, endpoints.curve)
        self.outputs, self.endpoints, self.auth = outputs, endpoints, auth or AuthConfig()
        self.data_dir = data_dir if data_dir is not None else default_data_dir()
        self.door = door if door is not None else DoorConfig()
        self.sources = list(sources)
        self.serve_library, self.engines = library, engines
        self.library: Library | None = None
        self.server: WebServer | None = None
        self._serving: threading.Thread | None = None

    def setup(self) -> None:
        assert self.ctx is not None
        # a challenge is answered within challenge_s of capture time, or denied once frames stall
        longest = self.door.challenge_s + self.door.stall_s
        self.state = WebState(self.sources, hold_s=self.outputs.door_hold_s, challenge_s=longest)
        self.metrics = StageMetrics()
        if self.serve_library:
            try:
                self.library = Library(self.data_dir, self._face_models)
            except WatchlistError as exc:  # the door page and video still serve
                self.log.error("no face library (/faces): %s", exc)
        try:
            gate, tls = open_gate(self.auth, self.outputs.http, self.data_dir)
            self.server = serve_http(self.outputs.http, self.state, self.metrics, gate, tls, self.library)
        except WebError as exc:
            self.log.error("%s", exc)
            self.exit_code = EXIT_HTTP_FAILED
            return
        self._serving = threading.Thread(target=self.server.serve_forever, args=(0.2,), name="http", daemon=True)
        self._serving.start()
        self.poller = zmq.Poller()
        self.feeds: dict[zmq.Socket, tuple[str, type[Message]]] = {}
        for feed, address, kind, hwm in (
            ("jpeg", self.endpoints.jpeg_feed, JpegFrame, JPEG_HWM),
            ("events", self.endpoints.events_feed, Event, None),
            ("monitor", self.endpoints.monitor, StageStats, 100),
        ):
            sock = sub_socket(self.ctx, address, hwm=hwm, accepts=kind)
            self.feeds[sock] = (feed, kind)
            self.poller.register(sock, zmq.POLLIN)
        host, port = self.server.server_address[:2]
        login = "login required" if gate.required else "open to this machine, no login"
        self.log.info("serving %s://%s:%s/ (door page), /stream.mjpg, /metrics; %s",
                      "https" if tls else "http", host, port, login)

    def _face_models(self) -> FaceModels:
        """The engines that embed uploaded photos, with the face choice of ``streamrec enroll``."""
        from streamrec.faces import FaceModels, ModelsConfig

        return FaceModels(ModelsConfig(selection="largest_clipped"), self.engines, report=self.log.info)

    def step(self) -> bool:
        if self.server is None:
            return False
        for sock, _ in self.poller.poll(POLL_MS):
            feed, kind = self.feeds[sock]
            messages, errors = receive_pending(sock, expect=kind)
            self.refuse(feed, errors)
            for _, message, payload in messages:
                self._take(message, payload)
        self.counters["http_requests"] = self.state.requests
        self.counters.update(self.server.gate.counts)
        self.counters.update(self.state.refused)
        self.gauges["mjpeg_clients"] = float(self.state.streams)
        return True

    def _take(self, message: Message, payload: object) -> None:
        if isinstance(message, JpegFrame) and isinstance(payload, bytes):
            self.state.add_picture(message, payload)
            self.count("frames_received")
        elif isinstance(message, Event):
            self.state.add_event(message)
            self.count("events_received")
        elif isinstance(message, StageStats):
            self.metrics.update(message)
            self.count("stats_received")

    def teardown(self) -> None:
        if self.library is not None:
            self.library.close()
        if self.server is None:
            return
        self.state.close()
        self.server.shutdown()
        self.server.server_close()
        if self._serving is not None:
            self._serving.join(timeout=2.0)
