"""The addresses the pipeline publishes on: ZeroMQ endpoints (``[outputs] events``/``frames``), the
web server's ``HOST:PORT`` (``[outputs] http``) and the MQTT broker's (``[mqtt] broker``).

Checked when the configuration is read, so a typo is one line naming the key rather than a stage
that fails to bind and is restarted in vain. A port outside 1-65535 is refused here because the
libraries do not refuse it: ZeroMQ binds ``tcp://127.0.0.1:99999`` to some other port, and Python's
``socket.bind`` raises ``OverflowError`` on it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

__all__ = [
    "BrokerAddress", "Endpoint", "HostPort", "HttpAddress", "LinkEndpoint", "ZmqEndpoint",
    "binds_beyond_loopback", "clashes", "exposure_warning", "parse_broker_address", "parse_http_address",
    "parse_zmq_endpoint",
]

#: A socket path is at most 108 bytes with its terminating NUL (``sun_path`` on Linux).
MAX_IPC_PATH = 107
_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_NUMERIC = re.compile(r"[0-9.]+")
#: Hosts that mean every interface: ZeroMQ's ``*`` and the IPv4 and IPv6 unspecified addresses.
_EVERYWHERE = {"*", "0.0.0.0", "::"}

ZMQ_FORM = "tcp://HOST:PORT (HOST an IPv4 address, * for every interface, or a host name) or ipc://PATH"
HTTP_FORM = "HOST:PORT (an IPv4 address, an IPv6 one in brackets, or a host name), or \"\" for no web server"
BROKER_FORM = "HOST:PORT (an IPv4 address, an IPv6 one in brackets, or a host name), or \"\" for no MQTT"


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint: ``tcp`` with ``host`` and ``port``, or ``ipc`` with ``path``."""

    transport: Literal["tcp", "ipc"]
    host: str = ""
    port: int = 0
    path: str = ""


@dataclass(frozen=True)
class HostPort:
    """A parsed ``HOST:PORT``; ``host`` without brackets, ``""`` for loopback as the web server reads it."""

    host: str
    port: int


def _port(text: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ValueError("the port must be a whole number from 1 to 65535")
    return int(text)


def _host(text: str) -> str:
    """An IPv4 address, a bracketed IPv6 address (returned without brackets) or a host name."""
    if text.startswith("[") and text.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(text[1:-1]))
        except ValueError:
            raise ValueError(f"{text} is not an IPv6 address") from None
    if ":" in text:
        raise ValueError("an IPv6 address goes in brackets: [::1]:PORT")
    if _NUMERIC.fullmatch(text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise ValueError(f"{text} is not an IPv4 address") from None
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in text.split(".")):
        raise ValueError("the host must be an IP address or a host name (letters, digits, '-' and '.')")
    return text


def parse_zmq_endpoint(text: str) -> Endpoint:
    """``tcp://HOST:PORT`` or ``ipc://PATH`` as the pipeline can bind them; raises ``ValueError``
    with the reason. IPv6 is refused: the pipeline's sockets do not enable it, so ZeroMQ would
    fail to bind."""
    transport, sep, rest = text.partition("://")
    if not sep or transport not in ("tcp", "ipc"):
        raise ValueError(f"must be {ZMQ_FORM}")
    if transport == "ipc":
        if not rest:
            raise ValueError("ipc:// needs a socket path")
        if len(rest.encode()) > MAX_IPC_PATH:
            raise ValueError(f"the ipc socket path is longer than {MAX_IPC_PATH} bytes")
        return Endpoint("ipc", path=rest)
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise ValueError(f"must be {ZMQ_FORM}")
    if host.startswith("["):
        raise ValueError("IPv6 is not supported for ZeroMQ outputs; give an IPv4 address, * or a host name")
    return Endpoint("tcp", host if host == "*" else _host(host), _port(port))


def parse_http_address(text: str) -> HostPort:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; an empty host is loopback); raises ``ValueError``."""
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"must be {HTTP_FORM}")
    if host == "*":
        raise ValueError("give 0.0.0.0 for every interface (there is no * here)")
    return HostPort(host and _host(host), _port(port))


def parse_broker_address(text: str) -> HostPort:
    """An MQTT broker's ``HOST:PORT`` (``[::1]:1883`` for IPv6); raises ``ValueError``."""
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"must be {BROKER_FORM}")
    return HostPort(_host(host), _port(port))


def _is_loopback(host: str) -> bool:
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def binds_beyond_loopback(address: Endpoint | HostPort) -> bool:
    """Whether machines other than this one may connect (an ipc socket is a local file)."""
    if isinstance(address, Endpoint) and address.transport == "ipc":
        return False
    return not _is_loopback(address.host)


def clashes(a: Endpoint | HostPort, b: Endpoint | HostPort) -> bool:
    """Whether binding both would fail: the same socket path, or the same TCP port on the same
    host or where one of them takes every interface."""
    if isinstance(a, Endpoint) and a.transport == "ipc" or isinstance(b, Endpoint) and b.transport == "ipc":
        return a == b
    hosts = {_canonical(a.host), _canonical(b.host)}
    return a.port == b.port and (len(hosts) == 1 or bool(hosts & _EVERYWHERE))


def _canonical(host: str) -> str:
    return "127.0.0.1" if host in ("", "localhost") else host


def _zmq_text(text: str) -> str:
    parse_zmq_endpoint(text)
    return text


def _link_text(text: str) -> str:
    """A link's address, or "" for its private ipc:// default. One side binds it and the other
    connects to it, so it must name one host: no ``*`` nor unspecified address."""
    if text:
        endpoint = parse_zmq_endpoint(text)
        if endpoint.transport == "tcp" and endpoint.host in _EVERYWHERE:
            raise ValueError("both ends of a link use this address, and no stage can connect to "
                             f"{endpoint.host}: give the binding host's address or name")
    return text


def _http_text(text: str) -> str:
    if text:
        parse_http_address(text)
    return text


def _broker_text(text: str) -> str:
    if text:
        parse_broker_address(text)
    return text


#: A configuration string holding a ZeroMQ endpoint the pipeline binds.
ZmqEndpoint = Annotated[str, AfterValidator(_zmq_text), Field(json_schema_extra={"allowed": ZMQ_FORM})]
#: A configuration string holding the address of a link between stages, or ``""`` for its own default.
LinkEndpoint = Annotated[str, AfterValidator(_link_text), Field(json_schema_extra={
    "allowed": f'"" (an ipc:// socket in the run\'s private folder), or {ZMQ_FORM} (not *)'})]
#: A configuration string holding the web server's address, or ``""`` for none.
HttpAddress = Annotated[str, AfterValidator(_http_text), Field(json_schema_extra={"allowed": HTTP_FORM})]
#: A configuration string holding the MQTT broker's address, or ``""`` for none.
BrokerAddress = Annotated[str, AfterValidator(_broker_text), Field(json_schema_extra={"allowed": BROKER_FORM})]


def exposure_warning(exposed: Sequence[tuple[str, str]], tls: bool = False) -> str | None:
    """One line telling what outputs other machines may reach, what they would see there and
    what to do; ``exposed`` holds ``(key, address)`` pairs (``OutputsConfig.beyond_loopback()``).
    The web server asks for a login there (``[auth]``), so it is mentioned only without ``tls``:
    the logins and the video would cross the network unencrypted."""
    parts = []
    feeds = [(key, address) for key, address in exposed if key != "http"]
    if feeds:
        keys = {key for key, _ in feeds}
        seen = "the video and the events" if keys == {"events", "frames"} else (
            "the events" if "events" in keys else "the video")
        them = "them" if len(feeds) > 1 else "it"
        binds = " and ".join(f"outputs.{key} binds {address}" for key, address in feeds)
        parts.append(f"{binds}, beyond this machine: anyone who can reach {them} sees {seen} (with the names of "
                     f"the people recognised); ZeroMQ outputs have no authentication: bind 127.0.0.1, or put "
                     f"{them} behind a firewall")
    for key, address in exposed:
        if key == "http" and not tls:
            parts.append(f"outputs.http binds {address}, beyond this machine, without TLS: passwords, session "
                         "cookies and video cross the network unencrypted; set [auth] tls_cert and tls_key")
    return "; ".join(parts) or None
