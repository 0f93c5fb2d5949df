"""The web output: the door-display page, MJPEG streams, JSON state and Prometheus metrics."""

from streamrec.web.server import WebError, serve_http
from streamrec.web.stage import EXIT_HTTP_FAILED, WebStage

__all__ = ["EXIT_HTTP_FAILED", "WebError", "WebStage", "serve_http"]
