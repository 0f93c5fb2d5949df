"""Values that used to pass the configuration check and then broke the run, and a file that is
not UTF-8 (an internal error): each is now one line naming the file, the key and the value (their
classes: test_fault_classes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.backends import default_threads
from streamrec.backends.choose import BACKEND_CHOICES
from streamrec.config import ConfigError, load_config

_BACKENDS = ", ".join(f'"{name}"' for name in BACKEND_CHOICES)
# The faults found in use: (the file, the whole line load_config must raise).
FOUND = [
    (b"[matcher]\nthreshold = nan\n", "matcher.threshold: must be a finite number > 0 and <= 2 (got nan)"),
    (b"[batch]\nmax_wait_ms = inf\n", "batch.max_wait_ms: must be a finite number > 0 and <= 1000 (got inf)"),
    (b"[detector]\nmin_face_size = nan\n", "detector.min_face_size: must be a finite number between 12 and 8192 (got nan)"),
    (b'[outputs]\nevents = "garbage"\n', ("outputs.events: must be tcp://HOST:PORT (HOST an IPv4 address, * for every "
     'interface, or a host name) or ipc://PATH (got "garbage")')),
    (b'[outputs]\nhttp = "127.0.0.1:99999"\n', 'outputs.http: the port must be a whole number from 1 to 65535 (got "127.0.0.1:99999")'),
    (b"[pipeline]\nthreads = 100000\n", (f"pipeline.threads: must be a whole number between 0 and {default_threads()}, "
     "the cores this process may use (got 100000)")),
    (b"[matcher]\nthreshold = 1e308\n", "matcher.threshold: must be a finite number > 0 and <= 2 (got 1e+308)"),
    (b'[pipeline]\nbackend = "onnxruntim"\n', f'pipeline.backend: must be one of {_BACKENDS} (got "onnxruntim")'),
    (b'[[sources]]\nname = "caf\xe9"\nurl = "0"\n', "not UTF-8 text (byte 0xe9 on line 2); TOML files are UTF-8"),
]
NAMES = [line.split(":")[0] for _, line in FOUND]
# More files the TOML parser itself fails on in ways it does not report as TOML errors.
UNPARSED = [
    (b"a = " + b"[" * 100_000, "not valid TOML: arrays or tables nested too deeply"),  # RecursionError
    (b"a = " + b"1" * 5000, "not valid TOML: a number too long to read"),  # int()'s digit limit
    (b"# " + b"x" * (2 << 20), "larger than 1 MiB, not a configuration file"),
]


@pytest.mark.parametrize("content, line", FOUND + UNPARSED, ids=NAMES + ["deep", "long-number", "huge"])
def test_found_faults_are_one_line_naming_file_key_and_value(tmp_path: Path, content: bytes, line: str):
    path = tmp_path / "door.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {line}"

