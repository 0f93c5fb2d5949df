"""What a door does with an access outcome besides recording it: call a webhook or run a command
(a relay script), each with a timeout, and report how that went.

An action is configured as a table of ``[door] actions`` (the models below, one per ``type``)
and performed by :func:`perform`, which never raises and never outlasts the action's
``timeout_s`` by more than a moment: a door must not stall, and must not open, because a relay
script hung or a webhook's server went away. :class:`ActionRunner` performs actions on a worker
thread of its own, so the thread that decides who may enter never waits for one.

The outcome travels as one JSON object: the body of a webhook's request, and the standard input
of a command, which also finds each of its top-level scalar values in its environment as
``STREAMREC_<KEY>`` (``STREAMREC_OUTCOME=granted``, ``STREAMREC_NAME=Ann``) so that a
three-line shell script need not parse JSON.

Only the standard library is used: ``urllib.request`` makes one POST with a JSON body and
reports the status as well as any client library would, and ``subprocess`` is what starts a
program in its own process group with a deadline. What neither gives is a bound on the whole
exchange (urllib's timeout applies to each socket operation, and a name lookup has none), so a
webhook is made on a short-lived helper thread that :func:`perform` stops waiting for at the
deadline; the helper's own socket timeout ends it soon after.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from typing_extensions import Self

__all__ = [
    "MAX_TIMEOUT_S",
    "Action",
    "ActionResult",
    "ActionRunner",
    "CommandAction",
    "Outcome",
    "WebhookAction",
    "perform",
]

log = logging.getLogger(__name__)

Outcome = Literal["granted", "denied"]
#: A relay switches in milliseconds and a webhook on the local network answers in well under a
#: second; a minute is far beyond either, and a door action that takes longer is broken.
MAX_TIMEOUT_S = 60.0
#: How much of a webhook's reply, or of a command's output, is kept to describe the result.
_REPLY_BYTES = 4096
_DETAIL_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: RFC 9110 "token": the characters an HTTP header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers the request itself determines; setting them by hand breaks the request.
_FIXED_HEADERS = {"content-length", "host", "transfer-encoding", "connection"}
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Action(BaseModel):
    """What every action has: its kind (first, as tables are written), a deadline and the
    outcomes that trigger it.

    The rules are those of a configuration section (``streamrec.config.model.Section``: no
    unknown key, TOML's types as written, finite numbers, frozen), restated here rather than
    inherited because that module imports this one for ``[door] actions``; each text field
    refuses control characters in its own validator."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False, validate_default=True)

    type: str
    timeout_s: float = Field(
        default=5.0, gt=0, le=MAX_TIMEOUT_S,
        description="Seconds the action may take; a command still running then is killed with its children.",
    )
    outcomes: list[Outcome] = Field(
        default=["granted", "denied"], min_length=1,
        description='The outcomes that run this action: "granted", "denied" or both.',
    )

    @field_validator("outcomes")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must name each outcome at most once")
        return value

    def triggered_by(self, outcome: Mapping[str, Any]) -> bool:
        """Whether ``outcome`` (an access outcome, its ``"outcome"`` key ``granted``/``denied``)
        runs this action."""
        return outcome.get("outcome") in self.outcomes


def _http_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"must be an http:// or https:// URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in url or _CONTROL.search(url):
        raise ValueError("must be an http:// or https:// URL with a host, without spaces or control characters")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user name or password: send credentials in headers (Authorization)")
    return url


class WebhookAction(_Action):
    """``type = "webhook"``: an HTTP request with the outcome as its JSON body; a status below 300
    is success (redirects are not followed: a door's webhook that moved is a configuration to fix,
    and following one would turn the POST into a GET without the outcome)."""

    type: Literal["webhook"]
    url: Annotated[str, AfterValidator(_http_url)] = Field(
        description="Where the request goes: an http:// or https:// URL.",
        json_schema_extra={"allowed": "an http:// or https:// URL with a host"},
    )
    method: Literal["POST", "PUT"] = Field(default="POST", description="The request's method.")
    headers: dict[str, str] = Field(
        default={}, description='Extra request headers, e.g. { Authorization = "Bearer TOKEN" }.',
    )

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{json.dumps(name)} is not a header name (letters, digits and !#$%&'*+.^_`|~-)")
            if name.lower() in _FIXED_HEADERS:
                raise ValueError(f"{name} is set from the request itself and cannot be configured")
            if _CONTROL.search(text):
                raise ValueError(f"the value of {name} must not contain control characters (line breaks, tabs)")
        return value

    @property
    def label(self) -> str:
        """How results and logs name this webhook: without its query string (it may hold a token)."""
        parts = urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.netloc}{parts.path}"


class CommandAction(_Action):
    """``type = "command"``: a program started with the given arguments, never through a shell
    (an outcome's text cannot become shell syntax); exit status 0 is success."""

    type: Literal["command"]
    argv: list[str] = Field(
        min_length=1,
        description='The program and its arguments, each its own string: ["/usr/local/bin/relay", "open"].',
    )

    @field_validator("argv", mode="before")
    @classmethod
    def _not_a_shell_line(cls, value: Any) -> Any:
        if isinstance(value, str):
            words = json.dumps(value.split())
            raise ValueError(  # noqa: TRY004 - pydantic reports a ValueError as this key's error
                f"must be a list, the program and each argument its own string (it is not run by a shell): "
                f"{words}, say")
        return value

    @field_validator("argv")
    @classmethod
    def _printable_words(cls, value: list[str]) -> list[str]:
        if not value[0]:
            raise ValueError("must begin with the program to run, not an empty string")
        if any(_CONTROL.search(word) for word in value):
            raise ValueError("must not contain control characters (line breaks, tabs, escapes)")
        return value

    @property
    def label(self) -> str:
        """How results and logs name this command."""
        return f"command {self.argv[0]}"


#: One ``[door] actions`` entry; ``type`` says which.
Action = Annotated[WebhookAction | CommandAction, Field(discriminator="type")]


@dataclass(frozen=True)
class ActionResult:
    """How one action went, to record beside the outcome: ``action`` its label, ``code`` the HTTP
    status or the exit status (minus the signal's number for a command a signal ended; ``None``
    when there was none: not reached, not started, timed out), ``detail`` one printable line
    saying what happened, ``elapsed_s`` the wall time it took, ``timed_out`` whether its
    deadline ended it."""

    action: str
    ok: bool
    code: int | None
    detail: str
    elapsed_s: float
    timed_out: bool = False


def perform(action: WebhookAction | CommandAction, outcome: Mapping[str, Any]) -> ActionResult:
    """Perform ``action`` for ``outcome`` now, on this thread, and say how it went.

    Never raises: anything that goes wrong (an outcome that is not JSON, a refused connection, a
    missing program, a bug) is a failed result, because the caller is deciding who may enter and
    must carry on. Returns within about ``action.timeout_s``."""
    start = time.monotonic()
    try:
        body = json.dumps(dict(outcome), allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        return ActionResult(action.label, False, None, _one_line(f"the outcome is not JSON: {exc}"), 0.0)
    try:
        if isinstance(action, WebhookAction):
            ok, code, detail, timed_out = _call_webhook(action, body)
        else:
            ok, code, detail, timed_out = _run_command(action, body, _environment(outcome))
    except Exception as exc:  # the contract above: a door action must never take its caller down
        log.exception("%s failed unexpectedly", action.label)
        ok, code, detail, timed_out = False, None, f"failed: {type(exc).__name__}: {exc}", False
    return ActionResult(action.label, ok, code, _one_line(detail), time.monotonic() - start, timed_out)


#: ok, code, detail, timed out: what perform makes an ActionResult of.
_Report = tuple[bool, int | None, str, bool]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as the failure it is for a webhook (see :class:`WebhookAction`)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _call_webhook(action: WebhookAction, body: bytes) -> _Report:
    done: list[_Report] = []

    def exchange() -> None:
        try:
            done.append(_exchange(action, body))
        except Exception as exc:  # noqa: BLE001 - perform's contract; the result says what it was
            done.append((False, None, f"failed: {type(exc).__name__}: {exc}", False))

    helper = threading.Thread(target=exchange, name=f"streamrec.door:{action.label}", daemon=True)
    helper.start()
    helper.join(action.timeout_s)
    if done:
        return done[0]
    return False, None, f"no answer within {action.timeout_s:g} s", True


def _exchange(action: WebhookAction, body: bytes) -> _Report:
    headers = {"Content-Type": "application/json", "User-Agent": "streamrec", **action.headers}
    request = urllib.request.Request(action.url, data=body, method=action.method, headers=headers)
    where = urlsplit(action.url).netloc
    try:
        with _OPENER.open(request, timeout=action.timeout_s) as response:
            reply = response.read(_REPLY_BYTES)
            return True, response.status, f"HTTP {response.status} {response.reason}{_first_line(reply)}", False
    except urllib.error.HTTPError as exc:  # a status of 300 or more
        with exc:
            reply = exc.read(_REPLY_BYTES)
        return False, exc.code, f"HTTP {exc.code} {exc.reason}{_first_line(reply)}", False
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, TimeoutError)
        return False, None, f"cannot reach {where}: {_reason(exc.reason)}", timed_out
    except TimeoutError:
        return False, None, f"{where} stopped answering within {action.timeout_s:g} s", True
    except http.client.HTTPException as exc:
        return False, None, f"{where} did not answer in HTTP: {type(exc).__name__} {exc}", False
    except OSError as exc:  # the connection broke after it was made
        return False, None, f"{where}: {_reason(exc)}", False


def _environment(outcome: Mapping[str, Any]) -> dict[str, str]:
    """This process's environment with ``STREAMREC_<KEY>`` for each scalar value of ``outcome``
    (strings as they are, numbers and booleans as JSON writes them, ``None`` as empty) in place
    of its own ``STREAMREC_`` variables, so that a key the outcome lacks is unset in the command,
    never a value inherited from the pipeline."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("STREAMREC_")}
    for key, value in outcome.items():
        if not (isinstance(key, str) and _ENV_KEY.fullmatch(key)):
            continue
        if value is None or isinstance(value, (str, int, float, bool)):
            text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
            if "\0" not in text:  # cannot be in an environment; the JSON on stdin still has it
                env[f"STREAMREC_{key.upper()}"] = text
    return env


def _run_command(action: CommandAction, body: bytes, env: dict[str, str]) -> _Report:
    program = action.argv[0]
    with tempfile.TemporaryFile() as output:  # a file, not a pipe: a child left running cannot hold us
        try:
            process = subprocess.Popen(action.argv, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        except FileNotFoundError:
            return False, None, f"no such program: {program}", False
        except OSError as exc:
            return False, None, f"cannot run {program}: {_reason(exc)}", False
        try:
            process.communicate(body, timeout=action.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return False, None, f"still running after {action.timeout_s:g} s: killed", True
        status = process.returncode
        said = _first_line(_tail(output), last=True)
    if status < 0:
        return False, status, f"killed by {_signal_name(-status)}{said}", False
    return status == 0, status, f"exit status {status}{said}", False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (its session's process group, numbered by its
    PID), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group ended meanwhile
        pass
    process.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal, which has no name of its own
        return f"signal {number}"


def _tail(file: Any) -> bytes:
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - _REPLY_BYTES))
    return bytes(file.read())


def _first_line(data: bytes, last: bool = False) -> str:
    """``": <line>"``: the first (or last) non-blank line of a reply or an output, or ``""``."""
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    return f": {lines[-1 if last else 0].strip()}" if lines else ""


def _reason(error: object) -> str:
    """An OS error as its message alone (``connection refused``), anything else as its text."""
    text = getattr(error, "strerror", None) or str(error)
    return text[:1].lower() + text[1:]


def _one_line(text: str) -> str:
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


class ActionRunner:
    """Performs the configured actions of each outcome on one worker thread, in the order they
    are configured, and hands every :class:`ActionResult` to ``on_result(outcome, result)``.

    :meth:`submit` never blocks: at most ``max_pending`` actions wait (each bounded by its
    timeout); beyond that an action is not run and ``on_result`` gets a failed result at once,
    on the submitting thread, so a relay that hangs on every call costs recorded failures, never
    a stalled door. ``on_result`` is therefore called from two threads and must be thread-safe;
    an exception it raises is logged and does not stop the worker."""

    def __init__(self, actions: Sequence[WebhookAction | CommandAction],
                 on_result: Callable[[Mapping[str, Any], ActionResult], None], max_pending: int = 32) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1 (got {max_pending})")
        self.actions = tuple(actions)
        self._on_result = on_result
        self._max_pending = max_pending
        self._jobs: queue.Queue[tuple[WebhookAction | CommandAction, Mapping[str, Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="streamrec.door:actions", daemon=True)
        self._worker.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, outcome: Mapping[str, Any]) -> int:
        """Queue the actions ``outcome`` triggers; returns how many were queued. The actions
        and ``on_result`` get a copy taken now: the caller may reuse its mapping."""
        outcome, queued = dict(outcome), 0
        for action in self.actions:
            if not action.triggered_by(outcome):
                continue
            with self._lock:
                room = not self._closed and self._jobs.qsize() < self._max_pending
                if room:
                    self._jobs.put((action, outcome))
                    queued += 1
            if not room:
                waiting = f"{self._max_pending} action{'s' if self._max_pending > 1 else ''} already waiting"
                why = "the door is closing" if self._closed else waiting
                self._report(outcome, ActionResult(action.label, False, None, f"not run: {why}", 0.0))
        return queued

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking outcomes, let the worker finish what is queued, and wait for it at most
        ``timeout`` seconds; returns whether it finished."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        self._worker.join(timeout)
        return not self._worker.is_alive()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            action, outcome = job
            self._report(outcome, perform(action, outcome))

    def _report(self, outcome: Mapping[str, Any], result: ActionResult) -> None:
        try:
            self._on_result(outcome, result)
        except Exception:  # the callback's fault must not end the actions of later outcomes
            log.exception("recording the result of %s failed", result.action)

