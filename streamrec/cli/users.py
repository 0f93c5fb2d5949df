"""``streamrec users add|remove|list|token``: who may log in to the web server (:mod:`streamrec.web.auth`)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from streamrec.cli.common import UserError, print_json, stderr, write_atomic
from streamrec.config import ConfigError, RunConfig, load_config
from streamrec.paths import data_dir
from streamrec.web.auth import MIN_PASSWORD, AuthError, UserBook, check_name, read_users, users_path

__all__ = ["register"]

T = TypeVar("T")


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``users`` and its sub-verbs to the ``streamrec`` parser."""
    users = verbs.add_parser(
        "users", help="who may log in to the web server: add, remove, list users; API tokens",
        description="Manage the user file of the web server ([auth] users_file, default users.json in the "
        "data directory; mode 0600). A server bound beyond this machine needs at least one user and asks "
        "everyone for a login or a token; a running server sees changes at its next request.",
    )
    actions = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="add a user, or set an existing user's password",
        description="Add NAME with a password (asked twice without echo on a terminal), or replace an "
        f"existing user's password (its tokens stay valid). Passwords have at least {MIN_PASSWORD} characters; "
        "only their salted Argon2id hash is stored.",
    )
    add.add_argument("name", metavar="NAME", help="letters, digits, '.', '_', '@' or '-' (at most 64)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input (for scripts)")
    add.set_defaults(handler=_add)
    remove = actions.add_parser(
        "remove", help="remove a user and the user's tokens",
        description="Remove NAME: the user's sessions and API tokens stop working at their next request.",
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=_remove)
    listing = actions.add_parser("list", help="list the users and how many API tokens each has",
                                 description="List the users, when each was added, and their API tokens' count.")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")
    listing.set_defaults(handler=_list)
    token = actions.add_parser(
        "token", help="print a new API token for a user, or revoke the user's tokens",
        description="Create a new API token for NAME and print it (once: only its SHA-256 digest is stored). "
        "API clients send it as the header 'Authorization: Bearer TOKEN' and need no login nor CSRF header. "
        "It lasts until --revoke or until the user is removed.",
    )
    token.add_argument("name", metavar="NAME")
    token.add_argument("--revoke", action="store_true",
                       help="revoke every API token of NAME instead (they stop working at their next request)")
    token.set_defaults(handler=_token)
    for parser in (add, remove, listing, token):
        parser.add_argument("--config", type=Path, metavar="FILE.toml",
                            help="the pipeline configuration whose [auth] users_file and [pipeline] data_dir to use")
        parser.add_argument("--data-dir", type=Path, metavar="DIR",
                            help="data directory holding users.json (default: $STREAMREC_DATA, else ~/.local/share/streamrec)")


def _path(args: argparse.Namespace) -> Path:
    try:
        config = load_config(args.config) if args.config else RunConfig()
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    return users_path(config.auth, data_dir(args.data_dir or config.pipeline.data_dir or None))


def _book(path: Path) -> UserBook:
    try:
        return read_users(path)
    except AuthError as exc:
        raise UserError(str(exc)) from None


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask the password on: give --password-stdin and the password on standard input")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ; nothing changed")
    return first


def _change(args: argparse.Namespace, edit: Callable[[UserBook], tuple[UserBook, T]]) -> tuple[Path, T]:
    """Read the user file, ``edit`` it and write it back (atomically; mode 0600, as the temporary
    file it is renamed from is created); the path and what ``edit`` said besides the new book. An
    error of the edit is one line and changes nothing."""
    path = _path(args)
    try:
        book, said = edit(_book(path))
    except AuthError as exc:
        raise UserError(str(exc)) from None
    write_atomic(path, book.dump())
    return path, said


def _add(args: argparse.Namespace) -> int:
    path, known = _change(args, lambda book: (book.with_password(check_name(args.name), _password(args)),
                                              args.name in book.users))
    print(f"{'password changed for' if known else 'added'} {args.name} in {path}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    path, _ = _change(args, lambda book: (book.without(args.name), None))
    print(f"removed {args.name} from {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    path = _path(args)
    book = _book(path)
    rows = [{"name": name, "added": time.strftime("%Y-%m-%d %H:%M", time.localtime(user.created)),
             "tokens": len(user.tokens)} for name, user in sorted(book.users.items())]
    if args.json:
        print_json({"file": str(path), "users": rows})
        return 0
    if not rows:
        stderr(f"streamrec: no users in {path} (streamrec users add NAME)")
    for row in rows:
        print(f"{row['name']}\tadded {row['added']}\t{row['tokens']} token(s)")
    return 0


def _token(args: argparse.Namespace) -> int:
    if args.revoke:
        path, count = _change(args, lambda book: book.without_tokens(args.name))
        print(f"revoked {count} token(s) of {args.name} in {path}")
        return 0
    path, token = _change(args, lambda book: book.with_new_token(args.name))
    stderr(f"streamrec: a new token for {args.name}, shown only now (its digest is kept in {path}):")
    print(token)
    return 0
