"""``streamrec users``: the user file it writes (mode 0600, Argon2id hashes, token digests only),
as real processes, and the one-line errors of every bad input."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from streamrec.web.auth import AuthError, UserBook, UserDirectory, read_users, token_digest
from tests.cli.test_bad_input import _no_traceback
from tests.conftest import run_cli

PASSWORD = "correct horse battery"


def users(data: Path, *args: str, password: str | None = None):
    """``streamrec users ARGS --data-dir DATA``, the password (if any) on standard input."""
    extra = ("--password-stdin",) if password is not None else ()
    result = run_cli("users", *args, "--data-dir", str(data), *extra, input=f"{password}\n" if password else "", timeout=60)
    _no_traceback(result)
    return result


def test_add_token_list_remove(tmp_path: Path):
    added = users(tmp_path, "add", "ann", password=PASSWORD)
    assert added.returncode == 0 and added.stdout == f"added ann in {tmp_path / 'users.json'}\n"
    path = tmp_path / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text and json.loads(text)["users"]["ann"]["password"].startswith("$argon2id$")
    directory = UserDirectory(path)
    assert directory.check_password("ann", PASSWORD) and not directory.check_password("ann", PASSWORD + "!")

    token = users(tmp_path, "token", "ann")
    assert token.returncode == 0 and "shown only now" in token.stderr
    secret = token.stdout.strip()
    assert len(secret) >= 43 and secret not in path.read_text() and token_digest(secret) in path.read_text()
    assert directory.token_user(secret) == "ann"  # the directory reads the changed file again

    users(tmp_path, "add", "bob", password="another password")
    listing = json.loads(users(tmp_path, "list", "--json").stdout)
    assert [(row["name"], row["tokens"]) for row in listing["users"]] == [("ann", 1), ("bob", 0)]
    changed = users(tmp_path, "add", "ann", password="a new password")
    assert changed.stdout.startswith("password changed for ann")
    assert directory.check_password("ann", "a new password") and directory.token_user(secret) == "ann"
    other = users(tmp_path, "token", "bob").stdout.strip()

    revoked = users(tmp_path, "token", "ann", "--revoke")
    assert revoked.stdout.startswith("revoked 1 token(s) of ann") and directory.token_user(secret) is None
    assert directory.token_user(other) == "bob"  # only ann's
    assert users(tmp_path, "remove", "ann").returncode == 0
    assert not directory.exists("ann")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert users(tmp_path, "list").stdout.startswith("bob\t")


@pytest.mark.parametrize(
    "args, password, line",
    [
        (("add", "bad name"), PASSWORD, "user name 'bad name': use 1 to 64 letters, digits"),
        (("add", "ann"), "short", "the password must have 8 to 1024 characters (got 5)"),
        (("add", "ann"), None, "no terminal to ask the password on: give --password-stdin"),
        (("remove", "zed"), None, "no user named 'zed' (users: none)"),
        (("token", "zed"), None, "no user named 'zed' (users: none)"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(tmp_path: Path, args: tuple[str, ...], password: str | None,
                                                  line: str):
    result = users(tmp_path, *args, password=password)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"streamrec: error: {line}")
    assert not (tmp_path / "users.json").exists()


@pytest.mark.parametrize(
    "content, says",
    [
        (b"{not json", "is not a streamrec user file (Expecting property name"),
        (b'{"users": {"ann": {"password": "plain", "created": 0}}}', "users.ann.password: String should match"),
        (b'{"version": 2}', "version: Input should be less than or equal to 1"),
    ],
)
def test_a_broken_user_file_is_one_line(tmp_path: Path, content: bytes, says: str):
    (tmp_path / "users.json").write_bytes(content)
    result = users(tmp_path, "list")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1 and says in result.stderr
    with pytest.raises(AuthError, match="not a streamrec user file"):
        read_users(tmp_path / "users.json")
    assert (tmp_path / "users.json").read_bytes() == content  # nothing lost


def test_the_server_side_fails_closed_on_a_file_broken_while_serving(tmp_path: Path):
    path = tmp_path / "users.json"
    path.write_bytes(UserBook().with_password("ann", PASSWORD).dump())
    directory = UserDirectory(path)
    assert directory.check_password("ann", PASSWORD)
    path.write_text("{broken")
    assert not directory.check_password("ann", PASSWORD) and not directory.exists("ann")
