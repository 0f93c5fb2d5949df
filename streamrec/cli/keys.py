"""``streamrec keys NAME --out DIR``: a CURVE certificate for the links between stages."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from streamrec.cli.common import UserError

__all__ = ["register"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``keys`` to the ``streamrec`` parser."""
    parser = verbs.add_parser(
        "keys", help="make a CURVE certificate for the links between stages on several hosts",
        description="Write DIR/NAME.key (the public key, to hand out) and DIR/NAME.key_secret (the public and "
        "secret keys, mode 0600, to keep on its host) with ZeroMQ's zmq.auth. Make one for the server of the "
        "links ([links] curve_server_key and curve_server_secret) and one for each client host "
        "([links] curve_client_secret there); copy each client's NAME.key into the [links] curve_clients "
        "folder of the hosts that bind links. An existing certificate of that name is never overwritten.",
    )
    parser.add_argument("name", metavar="NAME", help="the certificate's name: letters, digits, '.', '_', '-'")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write into (made if absent)")
    parser.set_defaults(handler=make_keys)


def make_keys(args: argparse.Namespace) -> int:
    import zmq.auth

    if not _NAME.fullmatch(args.name):
        raise UserError(f"NAME: {args.name[:40]!r} is not a certificate name: 1 to 64 letters, digits, '.', '_', '-'")
    files = [args.out / f"{args.name}.key", args.out / f"{args.name}.key_secret"]
    taken = [str(path) for path in files if path.exists()]
    if taken:
        raise UserError(f"{taken[0]} exists: give another NAME or --out, or remove it first")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        public, secret = zmq.auth.create_certificates(args.out, args.name)
        Path(secret).chmod(0o600)
    except OSError as exc:
        raise UserError(f"cannot write the certificate into {args.out} ({exc.strerror or exc})") from None
    print(f"{public}\n{secret}")
    return 0
