"""Self-signed certificates for the tests' TLS servers, made by openssl (a real one: the
servers and clients check it as they would any other)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.needs import require

__all__ = ["self_signed"]


def self_signed(folder: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """``(cert, key)`` in ``folder``: a certificate for the address ``ip``, valid for two days,
    that is its own authority (a client trusts it by naming it as its CA)."""
    require("openssl")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ip}",
                    "-addext", f"subjectAltName=IP:{ip}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
