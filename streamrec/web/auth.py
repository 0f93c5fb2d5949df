"""Who may use the web server: the user file, login sessions, bearer tokens, and the limit on
failed logins.

The user file (``[auth] users_file``, default ``DATA_DIR/users.json``) holds, per user name, a
salted Argon2id hash of the password and the SHA-256 digests of the user's API tokens; never a
password or a token. ``streamrec users`` writes it (atomically, mode 0600); the web server only
reads it, again whenever it changes on disk, so a user added, removed or given a token counts at
once, without a restart, and a removed user's sessions and tokens stop working with the next
request.

Passwords get a slow hash because people choose guessable ones; tokens are 256 random bits, so
a fast digest suffices for them and lets a request's token be looked up directly. Every
secret a client sends is compared in constant time (``hmac.compare_digest``), or looked up by
its digest, so response times do not tell how much of a guess was right; a login for an
unknown name still runs one Argon2 verification, so timing does not tell which names exist.

Sessions live in the server's memory (a restart logs everyone out): the cookie holds a random
session id, the server its user, its CSRF token and its expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import argon2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamrec.config.model import AuthConfig

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "MIN_PASSWORD",
    "SESSION_COOKIE",
    "USERS_FILE",
    "AuthError",
    "Caller",
    "Gate",
    "LoginLimiter",
    "LoginRefused",
    "Session",
    "Sessions",
    "UserBook",
    "UserDirectory",
    "check_name",
    "read_users",
    "users_path",
]

USERS_FILE = "users.json"
SESSION_COOKIE = "streamrec_session"
CSRF_COOKIE = "streamrec_csrf"
CSRF_HEADER = "X-CSRF-Token"
MIN_PASSWORD = 8  #: characters; shorter ones fall to a guessing attack even against Argon2
MAX_PASSWORD = 1024  #: characters; longer ones only make each verification slower
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HASHER = argon2.PasswordHasher()  #: the library's defaults: Argon2id, RFC 9106's low-memory profile
#: verified against when a login names no user, so that it takes as long as one that does
_NOBODY = _HASHER.hash(secrets.token_urlsafe(16))
_MAX_LIMITED = 10_000  #: addresses and names whose failures are remembered at once, at most
#: Argon2 verifications at once, at most: each takes 64 MiB, and a burst of logins from many
#: addresses (each under its limit) must not take the memory the pipeline needs
_VERIFYING = threading.BoundedSemaphore(4)

log = logging.getLogger("web")


class AuthError(Exception):
    """A problem with the user file or the login set-up; the message is one line."""


class LoginRefused(Exception):
    """A login that did not succeed: ``status`` 401 (wrong name or password) or 429 (too many
    failures; ``retry_after_s`` says when to try again); the message is one line."""

    def __init__(self, status: int, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.status, self.retry_after_s = status, retry_after_s


def check_name(name: str) -> str:
    """``name`` if it can be a user name (it appears in logs and cookies' sessions), else
    :class:`AuthError` saying what is allowed."""
    if not _NAME.fullmatch(name):
        raise AuthError(f"user name {name[:80]!r}: use 1 to 64 letters, digits, '.', '_', '@' or '-', "
                        "starting with a letter or digit")
    return name


def token_digest(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRecord(BaseModel):
    """One API token of a user: only its digest is kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: float


class UserRecord(BaseModel):
    """One user: the Argon2 hash of the password and the user's API tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    password: str = Field(pattern=r"^\$argon2id?\$")
    created: float
    tokens: tuple[TokenRecord, ...] = ()


class UserBook(BaseModel):
    """The whole user file. Edits return a new book, for the caller to write."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=1, ge=1, le=1)
    users: dict[str, UserRecord] = {}

    def with_password(self, name: str, password: str) -> UserBook:
        """The book with ``name`` added, or its password replaced (its tokens kept)."""
        check_name(name)
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AuthError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters (got {len(password)})")
        old = self.users.get(name)
        record = UserRecord(password=_HASHER.hash(password), created=old.created if old else time.time(),
                            tokens=old.tokens if old else ())
        return self.model_copy(update={"users": {**self.users, name: record}})

    def without(self, name: str) -> UserBook:
        """The book without ``name`` (its tokens go with it)."""
        self._user(name)
        return self.model_copy(update={"users": {key: value for key, value in self.users.items() if key != name}})

    def with_new_token(self, name: str) -> tuple[UserBook, str]:
        """The book with a new API token for ``name``, and the token (shown once, never stored)."""
        record = self._user(name)
        token = secrets.token_urlsafe(32)
        tokens = (*record.tokens, TokenRecord(digest=token_digest(token), created=time.time()))
        book = self.model_copy(update={"users": {**self.users, name: record.model_copy(update={"tokens": tokens})}})
        return book, token

    def without_tokens(self, name: str) -> tuple[UserBook, int]:
        """The book with none of ``name``'s API tokens, and how many there were."""
        record = self._user(name)
        book = self.model_copy(update={"users": {**self.users, name: record.model_copy(update={"tokens": ()})}})
        return book, len(record.tokens)

    def _user(self, name: str) -> UserRecord:
        record = self.users.get(name)
        if record is None:
            raise AuthError(f"no user named {name!r} (users: {', '.join(sorted(self.users)) or 'none'})")
        return record

    def dump(self) -> bytes:
        """The file's bytes."""
        return (self.model_dump_json(indent=2) + "\n").encode()


def users_path(config: AuthConfig, data_dir: Path) -> Path:
    """Where the user file is: ``[auth] users_file``, else ``users.json`` in the data directory."""
    return Path(config.users_file) if config.users_file else data_dir / USERS_FILE


def read_users(path: Path) -> UserBook:
    """The user file at ``path``; an empty book when there is none. :class:`AuthError` (one line)
    when it cannot be read or is not a user file, rather than a server that lets nobody in, or
    everybody, without saying why."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return UserBook()
    except OSError as exc:
        raise AuthError(f"cannot read the user file {path} ({exc.strerror or exc})") from None
    try:
        return UserBook.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(exc).splitlines()[0]
        raise AuthError(f"{path} is not a streamrec user file ({where}); `streamrec users` writes it") from None


class UserDirectory:
    """The user file as the server sees it: read again whenever it changed on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._book = UserBook()
        self._tokens: dict[str, str] | None = None
        self.book()  # a broken file is reported at start-up

    def book(self) -> UserBook:
        """The current users. A file that turns unreadable or invalid while serving lets nobody
        in until it is fixed (said once in the log): failing closed."""
        try:
            info = self.path.stat()
            stamp: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._stamp = stamp
                try:
                    self._book = read_users(self.path) if stamp is not None else UserBook()
                except AuthError as exc:
                    if self._tokens is None:  # at start-up: the caller says it
                        raise
                    log.error("%s: nobody can log in until it is fixed", exc)
                    self._book = UserBook()
                self._tokens = {token.digest: name for name, user in self._book.users.items() for token in user.tokens}
            return self._book

    def check_password(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s; as slow for a name that does not exist."""
        record = self.book().users.get(name)
        try:
            with _VERIFYING:
                return _HASHER.verify(record.password if record else _NOBODY, password) and record is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def token_user(self, token: str) -> str | None:
        """The user an API token belongs to, or None."""
        self.book()
        with self._lock:
            return (self._tokens or {}).get(token_digest(token))

    def exists(self, name: str) -> bool:
        return name in self.book().users


@dataclass(frozen=True)
class Session:
    """A login: the session id is the cookie's value; ``csrf`` must come back in
    ``X-CSRF-Token`` on every change the session makes."""

    sid: str
    user: str
    csrf: str
    expires: float  #: time.monotonic() after which the session is over


class Sessions:
    """The live sessions, keyed by the digest of their id (so that finding one compares
    digests, not the secret itself)."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._live: dict[str, Session] = {}

    def create(self, user: str) -> Session:
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), time.monotonic() + self.lifetime_s)
        with self._lock:
            now = time.monotonic()
            self._live = {key: old for key, old in self._live.items() if old.expires > now}
            self._live[token_digest(session.sid)] = session
        return session

    def find(self, sid: str) -> Session | None:
        """The live session of ``sid``, or None (unknown, or expired: then it is forgotten)."""
        key = token_digest(sid)
        with self._lock:
            session = self._live.get(key)
            if session is not None and session.expires <= time.monotonic():
                del self._live[key]
                return None
            return session

    def end(self, sid: str) -> None:
        with self._lock:
            self._live.pop(token_digest(sid), None)


class LoginLimiter:
    """Counts failed logins per key (a client address, a user name) over a sliding window;
    a key with ``limit`` failures in the window is refused until the oldest one leaves it. The
    check comes before the password's slow hash, so a guessing client costs little."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def wait_s(self, keys: Iterable[str]) -> tuple[str, float] | None:
        """``(key, seconds to wait)`` for the first key over its limit, or None."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    return key, times[0] + self.window_s - now
        return None

    def failed(self, keys: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) >= _MAX_LIMITED:  # forget the keys whose failures have all aged out
                self._failures = {key: times for key, times in self._failures.items() if times[-1] > now - self.window_s}
            for key in keys:
                self._recent(key, now).append(now)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times


@dataclass(frozen=True)
class Caller:
    """Who makes a request: ``via`` is ``session`` (cookie: changes need the CSRF header),
    ``token`` (bearer token) or ``open`` (no login asked for on this server)."""

    user: str
    via: str
    session: Session | None = None


class Gate:
    """Decides who a request comes from. ``required``: whether a login is needed at all (the
    server binds beyond loopback, or ``require_on_loopback`` with users configured); ``secure``:
    served over TLS, so cookies are marked Secure."""

    def __init__(self, config: AuthConfig, users: UserDirectory, required: bool, secure: bool) -> None:
        self.users, self.required, self.secure = users, required, secure
        self.sessions = Sessions(config.session_hours * 3600)
        self.limiter = LoginLimiter(config.login_failures, config.login_window_s)
        self._counting = threading.Lock()
        #: for /metrics: logins, logins_failed (wrong password), logins_refused (over the limit)
        self.counts = {"logins": 0, "logins_failed": 0, "logins_refused": 0}

    @classmethod
    def for_server(cls, config: AuthConfig, users_file: Path, beyond_loopback: bool, secure: bool) -> Gate:
        """The gate of a server; :class:`AuthError` when the user file is broken."""
        users = UserDirectory(users_file)
        count = len(users.book().users)
        return cls(config, users, beyond_loopback or (config.require_on_loopback and count > 0), secure)

    def caller(self, authorization: str | None, cookies: dict[str, str]) -> Caller | None:
        """The caller of a request with these headers, or None when a login is needed and the
        request carries no valid one (a bearer token is tried first: API clients send one)."""
        if not self.required:
            return Caller("", "open")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            user = self.users.token_user(token.strip())
            return Caller(user, "token") if user is not None else None
        session = self.sessions.find(cookies.get(SESSION_COOKIE, ""))
        if session is None or not self.users.exists(session.user):
            return None
        return Caller(session.user, "session", session)

    @staticmethod
    def csrf_ok(caller: Caller, header: str | None, cookies: dict[str, str]) -> bool:
        """Whether a change may go ahead: sessions must echo their CSRF token in the header and
        in the cookie (a page of another site can send the cookie, never read it)."""
        if caller.session is None:
            return True
        expected = caller.session.csrf.encode()
        return hmac.compare_digest((header or "").encode(), expected) and hmac.compare_digest(
            cookies.get(CSRF_COOKIE, "").encode(), expected)

    def login(self, name: str, password: str, client: str) -> Session:
        """A new session for ``name`` when ``password`` is right and neither ``client`` (its
        address) nor ``name`` has failed too often lately; else :class:`LoginRefused`."""
        keys = (f"address {client}", f"user {name[:64]!r}")
        waiting = self.limiter.wait_s(keys)
        if waiting is not None:
            key, seconds = waiting
            self._count("logins_refused")
            raise LoginRefused(429, f"too many failed logins for {key}: try again in {seconds:.0f} s", seconds)
        if not self.users.check_password(name, password[:MAX_PASSWORD]):
            self.limiter.failed(keys)
            self._count("logins_failed")
            log.warning("failed login as %r from %s", name[:64], client)
            raise LoginRefused(401, "wrong user name or password")
        self._count("logins")
        log.info("%s logged in from %s", name, client)
        return self.sessions.create(name)

    def _count(self, what: str) -> None:
        with self._counting:
            self.counts[what] += 1
