"""HTTPS from ``[auth] tls_cert`` and ``tls_key``, with a certificate made by the test (openssl),
on a real web stage; a login asked for on loopback too (``require_on_loopback``); a bad or
missing certificate file is one line."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamrec.config.model import AuthConfig, OutputsConfig
from tests.cli.test_bad_input import _no_traceback
from tests.conftest import run_cli
from tests.support.clips import tiny_clip
from tests.support.ports import free_port
from tests.support.tls import self_signed
from tests.web.client import Client
from tests.web.conftest import HOLD_S, outputs_running, refused_start
from tests.web.test_auth import PASSWORD
from tests.web.test_users import users


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(cert, key)``: a self-signed certificate for 127.0.0.1, valid for two days."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https(certificate: tuple[Path, Path], faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client of a web stage serving HTTPS on loopback, asking for a login there too."""
    data = tmp_path_factory.mktemp("tls-data")
    assert users(data, "add", "ann", password=PASSWORD).returncode == 0
    port = free_port()
    auth = AuthConfig(require_on_loopback=True, tls_cert=str(certificate[0]), tls_key=str(certificate[1]))
    outputs = OutputsConfig(http=f"127.0.0.1:{port}", door_hold_s=HOLD_S)
    with outputs_running(outputs, faces_dir, data, auth=auth, data_dir=data, scheme="https"):
        yield Client(("127.0.0.1", port), tls=ssl.create_default_context(cafile=str(certificate[0])))


def test_https_with_a_login_on_loopback(https: Client):
    assert https.request("GET", "/api/state")[0] == 401  # require_on_loopback, with a user
    status, _, _ = https.login("ann", PASSWORD)
    assert status == 303
    assert len(https.set_cookies) == 2 and all(cookie.endswith("; Secure") for cookie in https.set_cookies)
    status, _, body = https.request("GET", "/api/state")
    assert status == 200 and json.loads(body)["default_source"] == "front"


def test_plain_http_or_a_stalled_handshake_blocks_nobody(https: Client):
    plain = Client(https.address)
    with pytest.raises((http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError)):
        plain.request("GET", "/api/state")
    with socket.create_connection(https.address) as stalled:  # connects, never says hello
        stalled.settimeout(10)
        assert https.request("GET", "/login")[0] == 200


@pytest.mark.parametrize("broken, says", [
    ("missing key", "auth.tls_key: cannot read {key} (No such file or directory)"),
    ("not a certificate", ("auth.tls_cert, auth.tls_key: {cert} and {key} are not a PEM certificate and its "
                          "unencrypted private key (")),
])
def test_a_bad_certificate_file_is_one_line(certificate: tuple[Path, Path], tmp_path: Path, broken: str, says: str):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(certificate[0].read_bytes() if broken == "missing key" else b"not a certificate\n")
    if broken != "missing key":
        key.write_bytes(certificate[1].read_bytes())
    line = says.format(cert=cert, key=key)
    auth = AuthConfig(tls_cert=str(cert), tls_key=str(key))
    errors = refused_start(OutputsConfig(http=f"127.0.0.1:{free_port()}"), tmp_path, auth=auth)
    assert len(errors) == 1 and line in errors[0]
    config = tmp_path / "tls.toml"
    config.write_text(f'[auth]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    clip = tiny_clip(tmp_path / "clip.mp4")
    result = run_cli("run", "--config", str(config), "--source", str(clip), "--data-dir", str(tmp_path / "data"),
                     "--http", f"127.0.0.1:{free_port()}", timeout=60)
    _no_traceback(result)
    assert result.returncode == 1 and result.stderr.splitlines()[-1].startswith(f"streamrec: error: {line}")


def test_a_certificate_needs_its_key(tmp_path: Path):
    config = tmp_path / "half.toml"
    config.write_text('[auth]\ntls_cert = "/etc/cert.pem"\n')
    result = run_cli("config", "check", str(config), timeout=60)
    assert result.returncode == 1
    assert result.stderr == (f"streamrec: error: {config}: auth.tls_key: tls_cert and tls_key go together: give both, "
                             'or neither (got "")\n')
