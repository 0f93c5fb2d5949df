"""``tools/system-deps``, which ``make test`` runs before the tests: it finds what is missing by
running each check for real, and installs nothing here: the missing tools are made missing by
a ``PATH`` without them, and the install itself is left to a user who may not install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.needs import SYSTEM_DEPS, require


def _run(*args: str, path: Path | str, as_nobody: Path | None = None) -> subprocess.CompletedProcess:
    """The script with ``PATH=path`` (no other command is found); as ``nobody`` if given a folder
    anyone may read, from a copy there (the checkout itself may sit in a folder only its owner
    can enter)."""
    script = SYSTEM_DEPS
    prefix: list[str] = []
    if as_nobody is not None:
        script = Path(shutil.copy2(SYSTEM_DEPS, as_nobody / SYSTEM_DEPS.name))
        prefix = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    env = {"PATH": str(path), "LANG": "C.UTF-8"}
    return subprocess.run([*prefix, str(script), *args], check=False, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def bare_path() -> Iterator[Path]:
    """A folder for ``PATH`` that anyone may read (pytest's own tmp_path is root's alone),
    holding only the commands a test links into it."""
    folder = Path(tempfile.mkdtemp(prefix="system-deps-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_check_names_each_missing_need_and_the_one_install_command(bare_path: Path):
    require("rtsp")  # found through /usr/bin/python3 whatever PATH says
    result = _run("--check", path=bare_path)
    assert result.returncode == 1 and result.stderr == ""
    assert result.stdout.splitlines() == [
        "system-deps: missing venv (no python3 here); Debian packages: python3-venv",
        "system-deps: missing ffmpeg (no ffmpeg here); Debian packages: ffmpeg",
        "system-deps: missing chromium (no chromium here); Debian packages: chromium",
        "system-deps: missing mqtt (no /usr/sbin/mosquitto or no mosquitto_passwd here); Debian packages: mosquitto",
        "system-deps: missing netns (no ip here); Debian packages: iproute2",
        "system-deps: missing openssl (no openssl here); Debian packages: openssl",
        ("system-deps: to install them: apt-get install -y --no-install-recommends python3-venv ffmpeg chromium mosquitto "
         "iproute2 openssl"),
    ]


def test_check_runs_each_tool_for_real(bare_path: Path):
    """A command that is there but does not work counts as missing, with its own last words."""
    broken = bare_path / "ffmpeg"
    broken.write_text("#!/bin/sh\necho 'ffmpeg: error while loading shared libraries: libavdevice.so.60' >&2\nexit 127\n")
    broken.chmod(0o755)
    result = _run("--check", "ffmpeg", path=bare_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "system-deps: missing ffmpeg (ffmpeg: error while loading shared libraries: libavdevice.so.60); Debian packages: ffmpeg"
    )


def test_check_passes_where_everything_is_installed():
    for need in ("rtsp", "ffmpeg", "chromium", "mqtt", "netns", "openssl"):
        require(need)
    result = _run("--check", path=os.environ["PATH"])
    assert result.returncode == 0, result.stdout
    assert result.stdout == "system-deps: present: venv rtsp ffmpeg chromium mqtt netns openssl\n"


def test_a_user_who_cannot_install_gets_the_one_command_and_nothing_is_run(bare_path: Path):
    (bare_path / "apt-get").symlink_to("/usr/bin/apt-get")  # a Debian system, but not ours to change
    (bare_path / "id").symlink_to("/usr/bin/id")
    readable = Path(tempfile.mkdtemp(prefix="system-deps-script-"))
    readable.chmod(0o755)
    try:
        result = _run("ffmpeg", "chromium", path=bare_path, as_nobody=readable if os.geteuid() == 0 else None)
    finally:
        shutil.rmtree(readable)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"system-deps: cannot install as \S+ without a password; run this, then make again:", lines[-2])
    assert lines[-1] == "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ffmpeg chromium"
    assert not [line for line in lines if line.startswith("+ ")], "it must not try to install"


def test_an_unknown_need_is_refused():
    result = _run("--check", "gpu", path="/usr/bin:/bin")
    assert result.returncode == 2
    assert result.stderr == "system-deps: unknown need 'gpu' (expected --check, venv rtsp ffmpeg chromium mqtt netns openssl)\n"


ROOT = SYSTEM_DEPS.parents[1]


def test_the_readme_test_command_installs_the_system_packages_before_the_tests(tmp_path: Path):
    """``make test`` (README's test command, which CI runs as it is) runs the script for every
    need before pytest, and the set-up runs it for the venv before creating one."""
    assert "\nmake test\n" in (ROOT / "README.md").read_text()
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("\nmake test")
    planned = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "test", f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    steps = [line.split()[-1] if "system-deps" in line else line for line in planned]
    assert steps.index("venv") < steps.index(f"python3 -m venv {tmp_path / 'venv'}")
    assert steps.index("tools/system-deps") < steps.index(f"{tmp_path / 'venv'}/bin/python -m pytest")


@pytest.mark.parametrize("ci, outcome", [("", "skipped"), ("true", "failed")])
def test_a_missing_need_skips_but_fails_under_ci(tmp_path: Path, ci: str, outcome: str):
    (tmp_path / "test_needs.py").write_text(
        "from tests.support.needs import missing\n\n\ndef test_it():\n    missing('no frobnicator here')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": ci}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", str(tmp_path / "test_needs.py")],
        check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert f"1 {outcome}" in result.stdout, result.stdout
    assert "no frobnicator here; tools/system-deps installs what is missing (make test runs it)" in result.stdout
