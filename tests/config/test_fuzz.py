"""Generated configuration files, given to ``load_config`` in-process (many) and to the real
``streamrec config check`` as a process (a sample): each either loads into a configuration whose
every value lies within the bounds its schema documents, or fails with lines that start with the
file's name and name a key or the file's problem. Never a traceback, never exit status 70.

The files mix the real sections and keys with unknown ones, and values of every TOML type that
break configurations: NaN, infinities, huge and tiny numbers, wrong types, strings in any script
with control characters, lists and tables where numbers belong; some get random bytes inserted
(invalid UTF-8, broken TOML).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.backends import default_threads
from streamrec.config import ConfigError, RunConfig, load_config
from streamrec.config.schema import node_at, run_schema, sections
from tests.conftest import cli_command

KNOWN = {name: list(node["properties"]) for name, node in sections()}
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)

INTERESTING = st.sampled_from([
    0, 1, -1, 3, 12, 40, 255, 65535, 65536, 2**63 - 1, -(2**63), 0.5, 1.12, 2.0, 1e308, -1e308, 5e-324,
    math.nan, math.inf, -math.inf, True, False, "", "0", "99", "fp32", "int8", "onnxruntime",
    "tcp://127.0.0.1:5571", "tcp://*:5571", "tcp://0.0.0.0:99999", "ipc:///tmp/x", "ipc://@x", "127.0.0.1:8080",
    "0.0.0.0:8080", "[::1]:8080", ":8080", "garbage", "rtsp://admin:secret@cam:554/s", "clip.mp4", "~/data",
])
SCALARS = st.one_of(
    INTERESTING,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
    st.datetimes(),
    st.dates(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(NAMES, SCALARS, max_size=2))


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _string(name)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (int, str)):
        return str(value) if isinstance(value, int) else _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    return value.isoformat()


@st.composite
def _table(draw: st.DrawFn, section: str) -> dict[str, Any]:
    keys = draw(st.lists(st.one_of(st.sampled_from(KNOWN[section]), NAMES), max_size=4, unique=True))
    return {key: draw(VALUES) for key in keys}


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A TOML file: some of the real sections (and maybe an unknown one), each with some of its
    keys (and maybe unknown ones), then [[sources]] tables; sometimes with bytes inserted."""
    names = draw(st.lists(st.sampled_from([n for n in KNOWN if n != "sources"]), max_size=4, unique=True))
    lines = []
    for name in names + draw(st.lists(NAMES.filter(lambda n: n not in KNOWN), max_size=1)):
        lines.append(f"[{_key(name)}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in draw(_table(name if name in KNOWN else "sources")).items()]
    for _ in range(draw(st.integers(0, 2))):
        lines.append("[[sources]]")
        table = draw(_table("sources"))
        if draw(st.booleans()):
            table.setdefault("url", draw(st.sampled_from(["0", "clip.mp4", "rtsp://cam/s", "http://cam/mjpg"])))
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    data = ("\n".join(lines) + "\n").encode()
    if draw(st.sampled_from([False] * 9 + [True])):  # one file in ten
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")'
PROBLEM = re.compile(rf"{KEY}(?:\.{KEY}|\[\d+\])*: \S.*")
FILE_PROBLEM = re.compile(r"not valid TOML: .+|not UTF-8 text \(byte 0x[0-9a-f]{2} on line \d+\); TOML files are UTF-8")


def _within(value: Any, node: dict[str, Any], where: str) -> None:
    """``value`` satisfies what the schema documents at ``node``."""
    if "items" in node:
        assert node.get("minItems", 0) <= len(value) <= node.get("maxItems", math.inf), where
        for index, item in enumerate(value):
            _within(item, item_node(node), f"{where}[{index}]")
        return
    kind = node.get("type")
    if kind in ("number", "integer"):
        assert type(value) is (int if kind == "integer" else float) and math.isfinite(value), where
        assert node.get("minimum", -math.inf) <= value <= node.get("maximum", math.inf), where
        assert node.get("exclusiveMinimum", -math.inf) < value < node.get("exclusiveMaximum", math.inf), where
    elif kind == "boolean":
        assert type(value) is bool, where
    else:
        assert type(value) is str and value.isprintable() and len(value) <= node.get("maxLength", math.inf), where
        assert value in node.get("enum", [value]) and value == node.get("const", value), where


def item_node(node: dict[str, Any]) -> dict[str, Any]:
    items = node["items"]
    return run_schema()["$defs"][items["$ref"].rsplit("/", 1)[-1]] if "$ref" in items else items


def assert_within_bounds(config: RunConfig) -> None:
    """Every value of ``config`` within its documented bounds, and the rules the schema states
    in words (the cores this process may use, 0 or a face size)."""
    for name, data in config.model_dump().items():
        for index, table in enumerate(data) if name == "sources" else [(None, data)]:
            for key, value in table.items():
                where = f"{name}[{index}].{key}" if index is not None else f"{name}.{key}"
                _within(value, node_at((name, 0, key) if index is not None else (name, key)) or {}, where)
    assert config.pipeline.threads <= default_threads()
    assert all(s.min_face_size == 0 or s.min_face_size >= 12 for s in config.sources)


def _verdict(path: Path) -> str | None:
    """``None`` if ``path`` loads within bounds, else its first problem, checked for form."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            assert "\n" not in line and line.startswith(f"{path}: "), line
            rest = line[len(f"{path}: "):]
            assert FILE_PROBLEM.fullmatch(rest) or PROBLEM.fullmatch(rest), line
        assert str(exc).splitlines() == [str(exc)]
        return exc.problems[0]
    assert_within_bounds(config)
    return None


_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(FUZZ, max_examples=200)
@given(data=documents())
def test_load_config_loads_within_bounds_or_says_where(folder: Path, data: bytes):
    path = folder / f"c{next(_counter)}.toml"
    path.write_bytes(data)
    _verdict(path)


@settings(FUZZ, max_examples=2)
@given(files=st.lists(documents(), min_size=12, max_size=12))
def test_config_check_verb_agrees(folder: Path, files: list[bytes]):
    paths = []
    for data in files:
        paths.append(folder / f"v{next(_counter)}.toml")
        paths[-1].write_bytes(data)
    expected = {str(path): _verdict(path) for path in paths}
    result = subprocess.run([*cli_command(), "config", "check", *map(str, paths)], capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in result.stderr and result.returncode == (1 if any(expected.values()) else 0), result.stderr
    oks = [line.removesuffix(": ok") for line in result.stdout.splitlines()]
    errors = [line.removeprefix("streamrec: error: ") for line in result.stderr.splitlines() if line.startswith("streamrec: error: ")]
    others = [line for line in result.stderr.splitlines() if not line.startswith(("streamrec: error: ", "streamrec: warning: "))]
    assert not others and all(line.endswith(": ok") for line in result.stdout.splitlines())
    assert oks == [path for path, problem in expected.items() if problem is None]
    for path, problem in expected.items():
        mine = [line for line in errors if line.startswith(f"{path}: ")]
        assert (mine[0] if mine else None) == problem
