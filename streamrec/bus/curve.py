"""CURVE on the links between stages: encryption, and only known clients let in.

A link beyond this machine carries the frames and the names of the people recognised, so it is
secured with ZeroMQ's CURVE (``[links] curve_*``): one server certificate for the binding side of
every link, and a certificate per client host, made by ``streamrec keys``. A binding stage
presents the server's secret key and lets in only the clients whose public keys are in the
``curve_clients`` folder (checked by zmq.auth's :class:`~zmq.auth.thread.ThreadAuthenticator`
for every connection); a connecting stage must know the server's public key and presents its
own. A connection that fails either check is dropped by ZeroMQ before any message is read.

The choice is made where a socket binds or connects (:class:`LinkContext`), so that every stage
gets it without knowing it, and only for the links' own addresses: the public outputs
(``[outputs]``) stay plain, for any subscriber. Key files are read only by the side that needs
them: a capture host never holds the server's secret key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

if TYPE_CHECKING:
    from streamrec.config.model import LinksConfig

__all__ = ["CurveError", "LinkContext", "LinkCurve"]


class CurveError(RuntimeError):
    """A key file that cannot be used; one line naming it."""


@dataclass(frozen=True)
class LinkCurve:
    """The addresses secured and the key files (see ``[links]``)."""

    links: frozenset[str]
    server_key: str  #: the server's public certificate (``NAME.key``)
    server_secret: str  #: the server's secret certificate (``NAME.key_secret``), for binding
    client_secret: str  #: this host's client secret certificate, for connecting
    clients: str  #: folder of the public certificates of the clients let in

    @classmethod
    def from_links(cls, links: LinksConfig) -> LinkCurve | None:
        """The CURVE settings of ``[links]``; None when it gives no keys."""
        if not links.curve_server_key:
            return None
        return cls(frozenset(address for _, address in links.set_links()), links.curve_server_key,
                   links.curve_server_secret, links.curve_client_secret, links.curve_clients)

    def check(self, binds: bool) -> None:
        """Read the key files a stage needs (the server's secret and the clients' folder only
        if it ``binds`` a link), so that a missing one is one line before anything starts."""
        _load(self.server_key)
        _pair(self.client_secret)
        if binds:
            _pair(self.server_secret)
            if not Path(self.clients).is_dir():
                raise CurveError(f"no folder {self.clients} of client certificates (links.curve_clients)")


def _load(path: str) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveError(f"cannot read the CURVE certificate {path}: {exc}") from None


def _pair(path: str) -> tuple[bytes, bytes]:
    """The public and secret keys of a secret certificate file."""
    public, secret = _load(path)
    if secret is None:
        raise CurveError(f"{path} holds no secret key: give the NAME.key_secret file `streamrec keys` wrote")
    return public, secret


class LinkSocket(zmq.Socket):
    """A socket that turns CURVE on before it binds or connects a secured link's address."""

    def bind(self, addr: str) -> Any:
        context = self.context
        if isinstance(context, LinkContext) and (curve := context.secured(addr)) is not None:
            context.authenticate(curve)
            public, secret = _pair(curve.server_secret)
            self.setsockopt(zmq.CURVE_SERVER, 1)
            self.setsockopt(zmq.CURVE_PUBLICKEY, public)
            self.setsockopt(zmq.CURVE_SECRETKEY, secret)
        return super().bind(addr)

    def connect(self, addr: str) -> Any:
        context = self.context
        if isinstance(context, LinkContext) and (curve := context.secured(addr)) is not None:
            server, _ = _load(curve.server_key)
            public, secret = _pair(curve.client_secret)
            self.setsockopt(zmq.CURVE_SERVERKEY, server)
            self.setsockopt(zmq.CURVE_PUBLICKEY, public)
            self.setsockopt(zmq.CURVE_SECRETKEY, secret)
        return super().connect(addr)


class LinkContext(zmq.Context):
    """A ZeroMQ context whose sockets secure the links of ``curve`` (plain ones when None), with
    the authenticator of the clients started at the first secured bind."""

    _socket_class = LinkSocket
    link_curve: LinkCurve | None = None
    _authenticator: ThreadAuthenticator | None = None

    def __init__(self, curve: LinkCurve | None = None) -> None:
        super().__init__()
        self.link_curve = curve

    def secured(self, address: str) -> LinkCurve | None:
        """The CURVE settings if ``address`` is a secured link's, else None."""
        curve = self.link_curve
        return curve if curve is not None and address in curve.links else None

    def authenticate(self, curve: LinkCurve) -> None:
        """Let in only the clients whose public keys are in ``curve.clients``."""
        if self._authenticator is not None:
            return
        curve.check(binds=True)
        self._authenticator = ThreadAuthenticator(self)
        self._authenticator.start()
        self._authenticator.configure_curve(domain="*", location=curve.clients)

    def destroy(self, linger: int | None = None) -> None:
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        super().destroy(linger)
