"""The web server's gate over real HTTP: a real web stage (with a real render stage and feeds)
bound to an address of this machine that another host reaches, a network namespace made by
the test. From there, nothing that shows a face or changes anything answers without a login or
a token; logging in opens it; failed logins are limited; changes need the CSRF token. Also:
binding beyond loopback with nobody to log in is refused at start-up, in one line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamrec.config.model import AuthConfig, OutputsConfig
from streamrec.web.server import PUBLIC, ROUTES
from tests.cli.test_bad_input import _no_traceback
from tests.conftest import run_cli
from tests.support.browser import video_changes
from tests.support.clips import tiny_clip
from tests.support.netns import RemoteHost, remote_host
from tests.support.ports import free_port
from tests.web.client import Client
from tests.web.conftest import HOLD_S, Web, outputs_running, refused_start
from tests.web.test_users import users

PASSWORD = "door-keeper-2026"
#: the face library's paths, which the gate must cover before they exist
LIBRARY_PATHS = ["/faces", "/api/faces", "/api/faces/p1/photos", "/api/unknown/u1", "/api/feedback"]
FAILURES = 3  #: failed logins allowed per address and per name, kept small to keep the test short


@dataclass
class Door:
    """The running outputs on the address other hosts reach, their user file, and that host."""

    web: Web
    data: Path
    host: RemoteHost
    port: int

    def remote(self) -> Client:
        return Client((self.host.server_ip, self.port), self.host)

    def local(self) -> Client:
        return Client((self.host.server_ip, self.port))


def _user_file(data: Path) -> None:
    for name in ("ann", "bob"):
        assert users(data, "add", name, password=PASSWORD).returncode == 0


@pytest.fixture(scope="module")
def other_host() -> Iterator[RemoteHost]:
    with remote_host() as host:
        yield host


@pytest.fixture(scope="module")
def door(other_host: RemoteHost, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    data = tmp_path_factory.mktemp("door-data")
    _user_file(data)
    port = free_port()
    outputs = OutputsConfig(http=f"{other_host.server_ip}:{port}", door_hold_s=HOLD_S)
    auth = AuthConfig(login_failures=FAILURES)
    with outputs_running(outputs, faces_dir, data, auth=auth, data_dir=data) as web:
        yield Door(web, data, other_host, port)


def test_nothing_answers_another_host_without_a_login(door: Door):
    client = door.remote()
    assert PUBLIC == ("/login", "/logout")  # the documented public paths, and no other
    for path in [*ROUTES, *LIBRARY_PATHS, "/no/such/path"]:
        status, headers, body = client.request("GET", path)
        assert status == 401, (path, status, body[:200])
        assert b"Barack Obama" not in body and not body.startswith(b"\xff\xd8")  # no name, no JPEG
        if path.startswith("/api/"):
            assert json.loads(body) == {"error": "login required: log in at /login, or send Authorization: Bearer TOKEN"}
        assert headers["WWW-Authenticate"] == 'Bearer realm="streamrec"'
    for method in ("POST", "PUT", "DELETE"):
        for path in ["/api/state", *LIBRARY_PATHS]:
            assert client.request(method, path, body=b"x")[0] == 401, (method, path)
    # a browser asking for a page gets the login form (status 401), which leads back to the page
    status, headers, body = client.request("GET", "/?source=front", {"Accept": "text/html"})
    assert status == 401 and b'action="/login"' in body and b'value="/?source=front"' in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    # forged credentials are no login
    assert client.request("GET", "/api/state", {"Authorization": "Bearer not-a-token"})[0] == 401
    assert client.request("GET", "/api/state", {"Cookie": "streamrec_session=forged"}, cookies=False)[0] == 401


def test_a_login_from_another_host_opens_the_routes(door: Door):
    client = door.remote()
    status, headers, _ = client.login("ann", PASSWORD, "/api/state")
    assert status == 303 and headers["Location"] == "/api/state"
    csrf, session = sorted(client.set_cookies)  # streamrec_csrf=... sorts first
    assert csrf.startswith("streamrec_csrf=") and "SameSite=Strict" in csrf and "HttpOnly" not in csrf
    assert session.startswith("streamrec_session=") and "HttpOnly" in session and "SameSite=Strict" in session
    assert "Secure" not in session  # plain HTTP here; see the TLS test
    status, _, body = client.request("GET", "/api/state")
    assert status == 200 and json.loads(body)["default_source"] == "front"
    deadline = time.monotonic() + 20
    while (status := client.request("GET", "/frame.jpg")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    status, headers, body = client.request("GET", "/frame.jpg")
    assert status == 200 and body.startswith(b"\xff\xd8")
    status, headers, body = client.request("GET", "/stream.mjpg")
    assert status == 200 and b"Content-Type: image/jpeg" in body
    assert client.request("GET", "/metrics")[0] == 200
    assert client.request("GET", "/")[0] == 200
    # logging out ends the session on the server: the old cookie opens nothing
    old = dict(client.cookies)
    status, headers, _ = client.request("GET", "/logout")
    assert status == 303 and headers["Location"] == "/login"
    client.cookies = old
    assert client.request("GET", "/api/state")[0] == 401


def test_logging_out_ends_an_open_stream(door: Door):
    client = door.remote()
    assert client.login("bob", PASSWORD)[0] == 303
    conn = client.connection()
    conn.request("GET", "/stream.mjpg", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())})
    response = conn.getresponse()
    try:
        assert response.status == 200 and b"image/jpeg" in response.read1(65536)
        assert client.request("GET", "/logout")[0] == 303
        deadline = time.monotonic() + 10
        while response.read1(65536):  # the stream goes on until the server sees the session has ended
            assert time.monotonic() < deadline, "the video still streams 10 s after the logout"
    finally:
        conn.close()


def test_a_login_never_leads_to_another_site(door: Door):
    client = door.remote()
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\r\nSet-Cookie: planted=1"):
        status, headers, _ = client.login("bob", PASSWORD, target)
        assert status == 303 and headers["Location"] == "/" and "planted" not in str(headers)
    form = "&".join(f"f{index}=x" for index in range(20)).encode()
    status, _, body = client.request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"}, form)
    assert status == 400 and body == b"a login form has at most 10 fields"
    status, _, body = client.request("POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                                     b"x" * 9000)
    assert status == 413 and body == b"a login form has at most 8192 bytes (got 9000)"


def test_changes_need_the_csrf_token(door: Door):
    client = door.remote()
    assert client.login("bob", PASSWORD)[0] == 303
    token = client.cookies["streamrec_csrf"]
    for method, path in (("POST", "/api/state"), ("DELETE", "/api/faces/p1"), ("POST", "/api/feedback")):
        status, _, body = client.request(method, path, body=b"{}")
        assert status == 403 and json.loads(body) == {
            "error": "a change needs the header X-CSRF-Token with the value of the cookie streamrec_csrf"}
        assert client.request(method, path, {"X-CSRF-Token": "wrong"}, b"{}")[0] == 403
    # with the token, a change passes the gate and reaches the route (which takes no POST)
    status, _, body = client.request("POST", "/api/state", {"X-CSRF-Token": token}, b"{}")
    assert status == 405 and json.loads(body) == {"error": "/api/state takes GET, not POST"}
    # a page of another site can make the browser send the cookies, never read the token; and
    # whatever it sends, a change it asks for is refused
    status, _, body = client.request("POST", "/api/state", {"X-CSRF-Token": token, "Origin": "https://evil.example"})
    assert status == 403 and b"another site" in body


def test_a_bearer_token_works_without_a_cookie(door: Door):
    assert users(door.data, "add", "robot", password=PASSWORD).returncode == 0
    token = users(door.data, "token", "robot").stdout.strip()
    client = door.remote()
    bearer = {"Authorization": f"Bearer {token}"}
    status, _, body = client.request("GET", "/api/state", bearer)
    assert status == 200 and "sources" in json.loads(body) and not client.cookies
    assert client.request("POST", "/api/state", bearer, b"{}")[0] == 405  # no CSRF header needed
    browser = door.remote()
    assert browser.login("robot", PASSWORD)[0] == 303
    # a user removed while logged in: the token and the session stop working at once
    assert users(door.data, "remove", "robot").returncode == 0
    assert client.request("GET", "/api/state", bearer)[0] == 401
    assert browser.request("GET", "/api/state")[0] == 401


@pytest.fixture
def fresh_door(other_host: RemoteHost, faces_dir: Path, tmp_path: Path) -> Iterator[Door]:
    """A door of its own, for a test that locks an address out."""
    _user_file(tmp_path)
    port = free_port()
    outputs = OutputsConfig(http=f"{other_host.server_ip}:{port}", door_hold_s=HOLD_S)
    with outputs_running(outputs, faces_dir, tmp_path, auth=AuthConfig(login_failures=FAILURES), data_dir=tmp_path) as web:
        yield Door(web, tmp_path, other_host, port)


def test_wrong_passwords_are_rate_limited(fresh_door: Door):
    remote, local = fresh_door.remote(), fresh_door.local()
    for _ in range(FAILURES):
        status, _, body = remote.login("ann", "guess-" + PASSWORD)
        assert status == 401 and b"wrong user name or password" in body
    # the address is locked out, the right password included
    status, headers, body = remote.login("bob", PASSWORD)
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert body.startswith(f"too many failed logins for address {fresh_door.host.client_ip}: try again in ".encode())
    assert b"\n" not in body
    # and so is the name, from any address; other names still log in from there
    status, _, body = local.login("ann", PASSWORD)
    assert status == 429 and body.startswith(b"too many failed logins for user 'ann'")
    assert local.login("bob", PASSWORD)[0] == 303
    errors = [line for line in (fresh_door.data / "web.log").read_text().splitlines() if "failed login as 'ann'" in line]
    assert len(errors) == FAILURES
    # and /metrics counts them, for an alert
    wanted = [f'streamrec_logins_failed_total{{source="",stage="web"}} {FAILURES}.0',
              'streamrec_logins_refused_total{source="",stage="web"} 2.0', 'streamrec_logins_total{source="",stage="web"} 1.0']
    deadline = time.monotonic() + 20
    while not all(line in (text := local.request("GET", "/metrics")[2].decode()) for line in wanted):
        assert time.monotonic() < deadline, f"{wanted} not all in {text[:2000]}"
        time.sleep(0.2)


def test_beyond_loopback_without_users_run_refuses_in_one_line(tmp_path: Path):
    clip = tiny_clip(tmp_path / "clip.mp4")
    port = free_port()
    result = run_cli("run", "--source", str(clip), "--data-dir", str(tmp_path / "data"), "--http", f"0.0.0.0:{port}",
                     timeout=60)
    _no_traceback(result)
    assert result.returncode == 1
    *_, error = result.stderr.splitlines()
    assert error == (f"streamrec: error: outputs.http binds 0.0.0.0:{port}, beyond this machine, and nobody can log "
                     f"in: the user file {tmp_path / 'data' / 'users.json'} has no user; add one with `streamrec "
                     "users add NAME`, or bind 127.0.0.1")
    assert not (tmp_path / "data" / "run.json").exists()


def test_beyond_loopback_without_users_the_stage_refuses_in_one_line(other_host: RemoteHost, tmp_path: Path):
    errors = refused_start(OutputsConfig(http=f"{other_host.server_ip}:{free_port()}"), tmp_path)
    assert len(errors) == 1 and errors[0].endswith("has no user; add one with `streamrec users add NAME`, or bind 127.0.0.1")


_CHANGE = """async () => {
  const csrf = document.cookie.match(/(?:^|; )streamrec_csrf=([^;]+)/)[1];
  const without = await fetch("/api/state", {method: "POST"});
  const withToken = await fetch("/api/state", {method: "POST", headers: {"X-CSRF-Token": csrf}});
  return [without.status, withToken.status];
}"""


def test_a_browser_logs_in_to_the_door_page(browser, door: Door):
    context = browser.new_context(viewport={"width": 1024, "height": 600})
    page = context.new_page()
    try:
        assert page.goto(door.web.url + "/?source=front").status == 401  # the login form
        page.fill("#user", "ann")
        page.fill("#password", "not the password")
        page.click("button[type=submit]")
        assert page.locator("#error").text_content(timeout=20_000) == "wrong user name or password"
        page.fill("#user", "ann")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(door.web.url + "/?source=front", timeout=20_000)
        first, second = video_changes(page.locator("#video"))  # the door page runs, its video moves
        assert first.shape == second.shape and abs(second - first).mean() > 5
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert cookies["streamrec_session"]["httpOnly"] and cookies["streamrec_session"]["sameSite"] == "Strict"
        assert not cookies["streamrec_csrf"]["httpOnly"] and cookies["streamrec_csrf"]["sameSite"] == "Strict"
        assert "streamrec_session" not in page.evaluate("document.cookie")  # scripts never see the session
        assert page.evaluate(_CHANGE) == [403, 405]  # a change needs the token; with it, it passes the gate
        page.goto(door.web.url + "/logout")
        assert page.url == door.web.url + "/login" and page.locator("#user").is_visible()
        assert page.goto(door.web.url + "/").status == 401
    finally:
        context.close()
