"""``streamrec config check|defaults|reference`` as real processes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_configs_check_ok():
    configs = sorted(str(p) for p in (ROOT / "configs").glob("*.toml"))
    result = run_cli("config", "check", *configs, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{path}: ok" for path in configs] and result.stderr == ""


def test_every_problem_is_one_line_naming_file_key_and_value(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[matcher]\nthreshold = nan\n\n[outputs]\nevents = "garbage"\n\n[[sources]]\nurl = "0"\nfps = -1\n')
    good = tmp_path / "good.toml"
    good.write_text("[matcher]\nvotes = 3\n")
    result = run_cli("config", "check", str(bad), str(good), timeout=60)
    assert result.returncode == 1
    assert result.stdout == f"{good}: ok\n"
    assert result.stderr.splitlines() == [
        f"streamrec: error: {bad}: matcher.threshold: must be a finite number > 0 and <= 2 (got nan)",
        (f'streamrec: error: {bad}: outputs.events: must be tcp://HOST:PORT (HOST an IPv4 address, * for every interface, '
        'or a host name) or ipc://PATH (got "garbage")'),
        f"streamrec: error: {bad}: sources[0].fps: must be a finite number between 0 and 1000 (got -1)",
    ]


def test_unreadable_files_are_one_line_each(tmp_path: Path):
    latin = tmp_path / "latin1.toml"
    latin.write_bytes(b'[[sources]]\nurl = "caf\xe9.mp4"\n')
    result = run_cli("config", "check", str(latin), str(tmp_path / "none.toml"), str(tmp_path), timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"streamrec: error: {latin}: not UTF-8 text (byte 0xe9 on line 2); TOML files are UTF-8",
        f"streamrec: error: {tmp_path / 'none.toml'}: no such file",
        f"streamrec: error: {tmp_path}: cannot read (Is a directory)",
    ]


def test_outputs_beyond_this_machine_get_one_warning(tmp_path: Path):
    path = tmp_path / "open.toml"
    path.write_text('[outputs]\nhttp = "0.0.0.0:8080"\nevents = "tcp://*:5571"\n')
    result = run_cli("config", "check", str(path), timeout=60)
    assert result.returncode == 0 and result.stdout == f"{path}: ok\n"
    (warning,) = result.stderr.splitlines()
    assert warning == (
        f"streamrec: warning: {path}: outputs.events binds tcp://*:5571, beyond this machine: anyone who can reach it "
        "sees the events (with the names of the people recognised); ZeroMQ outputs have no authentication: bind "
        "127.0.0.1, or put it behind a firewall; outputs.http binds 0.0.0.0:8080, beyond this machine, without TLS: "
        "passwords, session cookies and video cross the network unencrypted; set [auth] tls_cert and tls_key")


def test_json(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[batch]\nmax_frames = 0\n")
    result = run_cli("config", "check", str(path), "--json", timeout=60)
    assert result.returncode == 1
    assert json.loads(result.stdout) == [{
        "file": str(path), "ok": False, "warnings": [],
        "problems": [f"{path}: batch.max_frames: must be a whole number between 1 and 256 (got 0)"],
    }]


def test_defaults_and_reference_are_the_committed_files():
    assert run_cli("config", "defaults", timeout=60).stdout == (ROOT / "configs" / "default.toml").read_text()
    assert run_cli("config", "reference", timeout=60).stdout == (ROOT / "docs" / "configuration.md").read_text()
