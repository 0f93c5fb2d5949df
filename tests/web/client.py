"""An HTTP client for the gate's tests: from this machine or another host (a network
namespace), over HTTP or HTTPS, with its own cookies, as a browser keeps them."""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from dataclasses import dataclass, field

from tests.support.netns import RemoteHost

__all__ = ["Client"]


@dataclass
class Client:
    """An HTTP client on ``host`` (None: this machine) with its own cookie jar."""

    address: tuple[str, int]
    host: RemoteHost | None = None
    tls: ssl.SSLContext | None = None  #: HTTPS, trusting what this context trusts
    cookies: dict[str, str] = field(default_factory=dict)
    set_cookies: list[str] = field(default_factory=list)

    def connection(self) -> http.client.HTTPConnection:
        conn = (http.client.HTTPSConnection(*self.address, timeout=10, context=self.tls) if self.tls
                else http.client.HTTPConnection(*self.address, timeout=10))
        if self.host is not None:
            host = self.host
            conn._create_connection = lambda address, timeout, source=None: host.connect(address[1], timeout)  # type: ignore[attr-defined]
        return conn

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                cookies: bool = True) -> tuple[int, http.client.HTTPMessage, bytes]:
        """``(status, headers, body)``; cookies the server sets are kept (and sent with ``cookies``)."""
        sent = dict(headers or {})
        if cookies and self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read() if not path.startswith("/stream.mjpg") or response.status != 200 else response.read(4096)
        finally:
            conn.close()
        self.set_cookies = response.headers.get_all("Set-Cookie") or []
        for line in self.set_cookies:
            name, _, value = line.split(";")[0].partition("=")
            self.cookies[name] = value
        return response.status, response.headers, data

    def login(self, user: str, password: str, next_path: str = "/") -> tuple[int, http.client.HTTPMessage, bytes]:
        form = urllib.parse.urlencode({"user": user, "password": password, "next": next_path}).encode()
        return self.request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"}, form, cookies=False)
