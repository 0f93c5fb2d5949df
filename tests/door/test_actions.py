"""Door actions with real parts: an HTTP server on loopback receives the webhooks, real programs
(small scripts written here) are the commands, and a real TOML file holds the configuration."""

from __future__ import annotations

import json
import queue
import re
import socket
import stat
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from streamrec.config import ConfigError, RunConfig, parse_config
from streamrec.config.load import read_toml
from streamrec.config.model import Section
from streamrec.door.actions import (
    Action,
    ActionResult,
    ActionRunner,
    CommandAction,
    WebhookAction,
    perform,
)
from tests.support.wait import wait_until

OUTCOME = {"outcome": "granted", "name": "Ann", "reason": "challenge passed", "source": "front", "score": 0.93}
#: Generous bounds for a shared, slow machine: what matters is that a timeout ends the action.
SLACK_S = 3.0


class Receiver(ThreadingHTTPServer):
    """A webhook's server on loopback: records each request and answers with ``status``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: queue.Queue[tuple[str, str, dict[str, str], bytes]] = queue.Queue()
        self.status, self.location = 200, ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.put((self.command, self.path, dict(self.headers), body))
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        reply = b"relay busy\nsecond line\n" if self.server.status >= 400 else b"opened\n"
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _webhook(url: str, **settings: Any) -> WebhookAction:
    return WebhookAction.model_validate({"type": "webhook", "url": url, **settings})


def _command(*argv: str | Path, **settings: Any) -> CommandAction:
    return CommandAction.model_validate({"type": "command", "argv": [str(a) for a in argv], **settings})


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _failed_in_one_line(result: ActionResult, *phrases: str) -> None:
    assert not result.ok
    assert "\n" not in result.detail and result.detail.isprintable(), result.detail
    for phrase in phrases:
        assert phrase in result.detail, result.detail


# Webhooks


def test_webhook_posts_the_outcome_as_json(receiver: Receiver):
    action = _webhook(receiver.url + "/door?token=s3cret", headers={"Authorization": "Bearer abc"})
    result = perform(action, OUTCOME)
    method, path, headers, body = receiver.requests.get(timeout=1)
    assert (method, path) == ("POST", "/door?token=s3cret")
    assert json.loads(body) == OUTCOME
    assert headers["Content-Type"] == "application/json" and headers["Authorization"] == "Bearer abc"
    assert result.ok and result.code == 200 and result.detail == "HTTP 200 OK: opened"
    assert result.action == f"webhook {receiver.url}/door" and "s3cret" not in result.action
    assert 0 < result.elapsed_s < SLACK_S and not result.timed_out


def test_webhook_put(receiver: Receiver):
    assert perform(_webhook(receiver.url, method="PUT"), OUTCOME).ok
    assert receiver.requests.get(timeout=1)[0] == "PUT"


@pytest.mark.parametrize("status, says", [(500, "HTTP 500 Internal Server Error: relay busy"),
                                          (404, "HTTP 404 Not Found: relay busy")])
def test_webhook_error_status_fails(receiver: Receiver, status: int, says: str):
    receiver.status = status
    result = perform(_webhook(receiver.url), OUTCOME)
    _failed_in_one_line(result, says)
    assert result.code == status and "second line" not in result.detail


def test_webhook_redirect_is_not_followed(receiver: Receiver):
    receiver.status, receiver.location = 302, receiver.url + "/elsewhere"
    result = perform(_webhook(receiver.url), OUTCOME)
    _failed_in_one_line(result, "HTTP 302")
    assert receiver.requests.qsize() == 1  # the first request only, never the redirected one


def test_webhook_refused_connection_fails():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = perform(_webhook(f"http://127.0.0.1:{port}/door"), OUTCOME)
    _failed_in_one_line(result, f"cannot reach 127.0.0.1:{port}: connection refused")
    assert result.code is None and not result.timed_out


def test_webhook_to_a_server_that_never_answers_times_out():
    with socket.socket() as dead:  # accepts connections (the backlog) and never answers
        dead.bind(("127.0.0.1", 0))
        dead.listen(1)
        result = perform(_webhook(f"http://127.0.0.1:{dead.getsockname()[1]}/", timeout_s=0.5), OUTCOME)
    _failed_in_one_line(result)
    assert result.timed_out and result.code is None
    assert 0.4 <= result.elapsed_s < 0.5 + SLACK_S


def test_webhook_to_a_server_that_does_not_speak_http_fails():
    with socket.socket() as odd:
        odd.bind(("127.0.0.1", 0))
        odd.listen(1)

        def answer() -> None:
            peer, _ = odd.accept()
            with peer:
                peer.recv(65536)
                peer.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        server = threading.Thread(target=answer)
        server.start()
        result = perform(_webhook(f"http://127.0.0.1:{odd.getsockname()[1]}/"), OUTCOME)
        server.join()
    _failed_in_one_line(result, "did not answer in HTTP: BadStatusLine")
    assert not result.timed_out


def test_outcome_that_is_not_json_fails(receiver: Receiver):
    result = perform(_webhook(receiver.url), {**OUTCOME, "score": float("nan")})
    _failed_in_one_line(result, "the outcome is not JSON")
    assert receiver.requests.empty()


# Commands


def test_command_gets_the_outcome_on_stdin_and_in_its_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # a variable of the pipeline's own, as `run` may have: never passed on as if the outcome said it
    monkeypatch.setenv("STREAMREC_DATA", str(tmp_path / "data"))
    got = tmp_path / "got"
    relay = _script(tmp_path / "relay", f'cat > {got}.json\nenv | grep ^STREAMREC_ | sort > {got}.env\n'
                                        'echo "relay on"\necho "$1" >&2\n')
    result = perform(_command(relay, "open"), OUTCOME)
    assert json.loads(Path(f"{got}.json").read_text()) == OUTCOME
    env = dict(line.split("=", 1) for line in Path(f"{got}.env").read_text().splitlines())
    assert env == {"STREAMREC_OUTCOME": "granted", "STREAMREC_NAME": "Ann", "STREAMREC_REASON": "challenge passed",
                   "STREAMREC_SOURCE": "front", "STREAMREC_SCORE": "0.93"}
    assert result.ok and result.code == 0 and result.detail == "exit status 0: open"
    assert result.action == f"command {relay}"


def test_command_failure_reports_status_and_last_line(tmp_path: Path):
    relay = _script(tmp_path / "relay", 'echo "trying"\necho "relay busy" >&2\nexit 3\n')
    result = perform(_command(relay), {**OUTCOME, "name": None})
    _failed_in_one_line(result, "exit status 3: relay busy")
    assert result.code == 3


def test_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path):
    pids = tmp_path / "pids"
    slow = _script(tmp_path / "slow", f"sleep 60 &\necho $! > {pids}.part\necho $$ >> {pids}.part\n"
                                      f"mv {pids}.part {pids}\nwait\n")
    result = perform(_command(slow, timeout_s=2), OUTCOME)
    _failed_in_one_line(result, "still running after 2 s: killed")
    assert result.timed_out and result.code is None
    assert 2 <= result.elapsed_s < 2 + SLACK_S
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_until(lambda: all(gone(pid) for pid in started), 10, "the command and its child killed", every=0.01)


def test_missing_program_fails(tmp_path: Path):
    result = perform(_command(tmp_path / "no-relay"), OUTCOME)
    _failed_in_one_line(result, f"no such program: {tmp_path / 'no-relay'}")
    assert result.code is None


def test_program_that_cannot_run_fails(tmp_path: Path):
    plain = tmp_path / "relay.txt"
    plain.write_text("not a program\n")
    _failed_in_one_line(perform(_command(plain), OUTCOME), f"cannot run {plain}: permission denied")


@pytest.mark.parametrize("number, name", [(11, "SIGSEGV"), (40, "signal 40")])
def test_command_killed_by_a_signal(tmp_path: Path, number: int, name: str):
    result = perform(_command(_script(tmp_path / "crash", f"kill -{number} $$\n")), OUTCOME)
    _failed_in_one_line(result, f"killed by {name}")
    assert result.code == -number


# The runner


class _Results:
    def __init__(self) -> None:
        self.got: list[tuple[Mapping[str, Any], ActionResult, str]] = []
        self.lock = threading.Lock()

    def __call__(self, outcome: Mapping[str, Any], result: ActionResult) -> None:
        with self.lock:
            self.got.append((outcome, result, threading.current_thread().name))


def _gated(tmp_path: Path) -> CommandAction:
    """A relay that says it started, then waits until the test lets it finish."""
    return _command(_script(tmp_path / "gated", f"touch {tmp_path}/started-$STREAMREC_NAME\n"
                                                f"while [ ! -e {tmp_path}/go ]; do sleep 0.01; done\n"),
                    timeout_s=30, outcomes=["granted"])


def test_runner_performs_off_the_callers_thread(tmp_path: Path):
    results = _Results()
    with ActionRunner([_gated(tmp_path)], results) as runner:
        outcome = dict(OUTCOME)
        assert runner.submit(outcome) == 1
        assert results.got == []  # submit returned while the relay still waits
        outcome["outcome"] = "denied"  # the caller's mapping is its own again
        wait_until(lambda: (tmp_path / "started-Ann").exists(), 10, "the relay starts", every=0.01)
        (tmp_path / "go").touch()
        wait_until(lambda: len(results.got) == 1, 10, "the result arrives", every=0.01)
    outcome, result, thread = results.got[0]
    assert outcome == OUTCOME and result.ok and thread != threading.current_thread().name


def test_runner_refuses_beyond_its_queue_and_runs_only_triggered_actions(tmp_path: Path, receiver: Receiver):
    results = _Results()
    actions = [_gated(tmp_path), _webhook(receiver.url, outcomes=["denied"])]
    with ActionRunner(actions, results, max_pending=1) as runner:
        assert runner.submit(OUTCOME) == 1  # granted: only the relay
        wait_until(lambda: (tmp_path / "started-Ann").exists(), 10, "the first relay starts", every=0.01)
        assert runner.submit({**OUTCOME, "name": "Bob"}) == 1  # waits in the queue
        assert runner.submit({**OUTCOME, "name": "Cy"}) == 0  # no room: refused at once
        assert [(o["name"], r.detail) for o, r, _ in results.got] == [("Cy", "not run: 1 action already waiting")]
        (tmp_path / "go").touch()
        wait_until(lambda: len(results.got) == 3, 10, "both relays finish", every=0.01)
        assert runner.submit({**OUTCOME, "outcome": "denied"}) == 1  # the webhook only
        wait_until(lambda: len(results.got) == 4, 10, "the webhook is called", every=0.01)
    assert [(o["name"], r.ok) for o, r, _ in results.got[1:]] == [("Ann", True), ("Bob", True), ("Ann", True)]
    assert results.got[3][1].action.startswith("webhook") and receiver.requests.qsize() == 1
    assert runner.submit(OUTCOME) == 0 and results.got[4][1].detail == "not run: the door is closing"


def test_runner_survives_a_failing_callback(receiver: Receiver):
    calls: list[ActionResult] = []

    def record_then_fail(outcome: Mapping[str, Any], result: ActionResult) -> None:
        calls.append(result)
        raise RuntimeError("journal full")

    with ActionRunner([_webhook(receiver.url)], record_then_fail) as runner:
        runner.submit(OUTCOME)
        runner.submit(OUTCOME)
        wait_until(lambda: len(calls) == 2, 10, "both results are handed over", every=0.01)
    assert all(result.ok for result in calls)


# Configuration


class _Entrance(Section):
    actions: list[Action] = Field(default=[])


class _WithEntrance(RunConfig):
    """A configuration with a section that holds actions, as ``[door]`` does (a name of its own,
    so that this stays apart from the real section's other keys and rules)."""

    entrance: _Entrance = _Entrance()


def test_actions_from_a_toml_file(tmp_path: Path):
    path = tmp_path / "door.toml"
    path.write_text('[[entrance.actions]]\ntype = "command"\nargv = ["/usr/local/bin/relay", "open"]\n'
                    'timeout_s = 3\noutcomes = ["granted"]\n\n'
                    '[[entrance.actions]]\ntype = "webhook"\nurl = "https://hooks.example.org/door"\n'
                    'headers = { Authorization = "Bearer abc" }\n')
    config = parse_config(read_toml(path), origin=str(path), model=_WithEntrance)
    assert isinstance(config, _WithEntrance)
    relay, hook = config.entrance.actions
    assert isinstance(relay, CommandAction) and relay.argv == ["/usr/local/bin/relay", "open"]
    assert relay.timeout_s == 3 and relay.outcomes == ["granted"]
    assert isinstance(hook, WebhookAction) and hook.method == "POST" and hook.outcomes == ["granted", "denied"]


HOOK = {"type": "webhook", "url": "http://127.0.0.1:9/door"}
RELAY = {"type": "command", "argv": ["relay"]}


@pytest.mark.parametrize(
    "action, message",
    [
        ({**HOOK, "timeout_s": float("nan")}, "entrance.actions[0].timeout_s: must be a finite number > 0 and <= 60 (got nan)"),
        ({**RELAY, "timeout_s": 0}, "entrance.actions[0].timeout_s: must be a finite number > 0 and <= 60 (got 0)"),
        ({**RELAY, "argv": "relay.sh --open now"}, "entrance.actions[0].argv: must be a list, the program and each argument "),
        ({**RELAY, "argv": "relay.sh  --open"}, '(it is not run by a shell): ["relay.sh", "--open"], say (got "relay.sh  --open")'),
        ({**RELAY, "argv": []}, "entrance.actions[0].argv: must be a list of values, each a string"),
        ({**RELAY, "argv": ["", "x"]}, "entrance.actions[0].argv: must begin with the program to run"),
        ({**RELAY, "outcomes": ["opened"]}, 'entrance.actions[0].outcomes[0]: must be one of "granted", "denied" (got "opened")'),
        ({**RELAY, "outcomes": ["granted", "granted"]}, "entrance.actions[0].outcomes: must name each outcome at most once"),
        ({**RELAY, "outcomes": []}, "entrance.actions[0].outcomes: must be a list of values"),
        ({"type": "relay"}, 'entrance.actions[0]: must be a table with type = "webhook" or "command" (got { type = "relay" })'),
        ({"argv": ["x"]}, 'entrance.actions[0]: must be a table with type = "webhook" or "command"'),
        ({**RELAY, "shell": True}, "entrance.actions[0].shell: unknown key (known: type, timeout_s, outcomes, argv)"),
        ({**HOOK, "url": "ftp://host/door"}, "entrance.actions[0].url: must be an http:// or https:// URL with a host"),
        ({**HOOK, "url": "http://host/do\nor"}, "entrance.actions[0].url: must be an http:// or https:// URL with a host, "),
        ({**HOOK, "url": "http://ann:pw@host/door"}, "entrance.actions[0].url: must not hold a user name or password"),
        ({**HOOK, "url": "http://host:99999/"}, "entrance.actions[0].url: must be an http:// or https:// URL (Port out of range"),
        ({**HOOK, "method": "GET"}, 'entrance.actions[0].method: must be one of "POST", "PUT" (got "GET")'),
        ({**HOOK, "headers": {"X-Token": "a\r\nX-Evil: 1"}}, "entrance.actions[0].headers: the value of X-Token must not "),
        ({**HOOK, "headers": {"Bad Name": "1"}}, 'entrance.actions[0].headers: "Bad Name" is not a header name'),
        ({**HOOK, "headers": {"Content-Length": "1"}}, "entrance.actions[0].headers: Content-Length is set from the request"),
    ],
)
def test_bad_actions_are_one_line_naming_the_key(action: dict[str, Any], message: str):
    with pytest.raises(ConfigError) as caught:  # the valid action before it is not reported
        parse_config({"entrance": {"actions": [HOOK, action]}}, origin="door.toml", model=_WithEntrance)
    assert caught.value.problems == [str(caught.value)] and "\n" not in str(caught.value)
    assert str(caught.value).startswith("door.toml: entrance.actions[1]")
    assert message.replace("actions[0]", "actions[1]") in str(caught.value)


@pytest.mark.parametrize("actions, message", [
    ("relay on", 'entrance.actions: must be a list of values, each a table with type = "webhook" or "command" (got "relay on")'),
    (["relay"], 'entrance.actions[0]: must be a table with type = "webhook" or "command" (got "relay")'),
])
def test_actions_that_are_not_tables(actions: object, message: str):
    with pytest.raises(ConfigError, match=re.escape(f"door.toml: {message}")):
        parse_config({"entrance": {"actions": actions}}, origin="door.toml", model=_WithEntrance)


@pytest.mark.parametrize("model", [WebhookAction, CommandAction])
def test_actions_follow_the_rules_of_every_section(model: type[BaseModel]):
    assert model.model_config == Section.model_config
