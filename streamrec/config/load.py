"""Read a TOML file into :class:`RunConfig`, and say what is wrong in one line per problem:
``configs/door.toml: matcher.threshold: must be a finite number > 0 and <= 2 (got nan)``.

Every way a file can be unusable ends here as a :class:`ConfigError`: unreadable, not UTF-8, not
TOML, nested too deeply for the parser, or a key, type, range or rule the schema refuses. Values
given on the command line go through the same schema (:func:`override`), reported under the
option's name (``--threads: ...``).

pydantic runs a table's rules between keys only once each of its keys is valid, and the rules
between tables only once every table is; so that one typo does not hide them, the check goes on
without what was wrong (a bad key is taken at its default, a bad list item left out) and reports
the rules then broken, except those that read a key that was wrong: every problem is listed at once.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from streamrec.config.model import BrokenRules, Loc, RuleError, RunConfig
from streamrec.config.schema import Node, allowed, key_path, model_schema, node_at, shown_loc, toml_string

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "load_config", "override", "parse_config", "read_toml", "render_value"]

#: Configuration files are a few kilobytes; a bigger one is some other file given by mistake.
MAX_BYTES = 1 << 20
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")


class ConfigError(ValueError):
    """Problems with a configuration. ``problems`` holds one line for each, naming the file (or
    the option) and the key; ``str()`` is the first, with how many more there are."""

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        more = len(self.problems) - 1
        super().__init__(self.problems[0] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML document at ``path``; :class:`ConfigError` if it cannot be read or parsed."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB, not a configuration file")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # the byte order mark some editors write
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
    except RecursionError:
        reason = "arrays or tables nested too deeply"
    except ValueError:  # an integer of thousands of digits (Python's int() limit)
        reason = "a number too long to read"
    raise ConfigError(f"{path}: not valid TOML: {' '.join(reason.split())}")


def load_config(path: Path) -> RunConfig:
    """Read and check the TOML file at ``path``."""
    return parse_config(read_toml(path), origin=str(path))


def parse_config(data: Mapping[str, Any], origin: str = "", names: Mapping[str, str] | None = None,
                 model: type[RunConfig] = RunConfig) -> RunConfig:
    """Build a :class:`RunConfig` (or a ``model`` that extends it) from parsed TOML. Problems
    are prefixed with ``origin`` (the file); a key listed in ``names`` (``{"pipeline.threads":
    "--threads"}``, or ``sources[2]`` for all of one source) is reported under that name instead."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
    root = model_schema(model)
    problems = [line for error in errors for line in _problems(error, origin, names or {}, root)]
    problems += (_problem(rule, origin, names or {}, root) for rule in _rules_beyond(model, data, errors))
    raise ConfigError(*dict.fromkeys(problems)) from None


#: a file is checked again at most this often: once without its bad keys (to reach the rules of
#: the tables they were in), once more without the tables whose rules broke (to reach the rules
#: between tables), and once more where a key left out still breaks a rule at its default
_PASSES = 3


def _rules_beyond(model: type[RunConfig], data: Mapping[str, Any], errors: list[ErrorDetails]) -> Iterator[RuleError]:
    """The broken rules ``errors`` hid: found by checking ``data`` again without what each error
    was about, and reported only where the rule reads nothing that was wrong (else it would be
    judged against a default the file does not say). What counts as wrong is the key, or its
    whole table where the file's own key is not known (a misspelt key stands for one of the
    table's) or where the key's default breaks a rule too (then the table is left out). Keys
    found wrong on a later pass are there only because of what was taken away, and are not
    reported."""
    wrong: list[Loc] = []
    left_out: set[Loc] = set()
    for _ in range(_PASSES):
        now = []
        for error in errors:
            given = tuple(error["loc"])
            misspelt = error["type"] == "extra_forbidden"
            loc = given[:-1] if misspelt or given in left_out else given
            if loc:
                wrong.append(loc)
                now.append(given if misspelt else loc)
        left_out.update(now)
        try:
            pruned = _without(data, now)
        except RecursionError:  # nested as deep as the parser allows: the copy goes no deeper
            return
        if pruned == data:
            return
        try:
            model.model_validate(pruned)
            return
        except ValidationError as exc:
            data, errors = pruned, exc.errors()
        for error in errors:
            cause = (error.get("ctx") or {}).get("error")
            for rule in cause.rules if isinstance(cause, BrokenRules) else ():
                if not any(_overlap(read, bad) for read in (rule.loc, *rule.reads) for bad in wrong):
                    yield rule


def _overlap(first: Loc, second: Loc) -> bool:
    """Whether one location lies within the other (a table holds its keys)."""
    size = min(len(first), len(second))
    return first[:size] == second[:size]


def _without(data: Mapping[str, Any], locs: Iterable[Loc]) -> dict[str, Any]:
    """A copy of ``data`` without what is at each of ``locs``: the key (so its default applies),
    or the whole item of a list the location is in (an item has required keys, and a rule over
    the list reads them all)."""
    keys: set[Loc] = set()
    items: set[Loc] = set()
    for loc in locs:
        index = next((at for at, part in enumerate(loc) if isinstance(part, int)), None)
        (keys if index is None else items).add(loc if index is None else loc[: index + 1])
    pruned = copy.deepcopy(dict(data))
    # items first, the last of each list first, so that the indices of the others still hold
    for loc in [*sorted(items, key=lambda loc: loc[-1], reverse=True), *keys]:
        parent: Any = pruned
        for part in loc[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) and isinstance(part, str) else None
        last = loc[-1]
        if (last in parent) if isinstance(parent, dict) else isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            del parent[last]
    return pruned


def override(config: RunConfig, changes: Mapping[str, Any], names: Mapping[str, str] | None = None,
             origin: str = "") -> RunConfig:
    """A new :class:`RunConfig`: ``config`` with ``changes`` (``{"pipeline": {"threads": 4}}``;
    a list replaces ``sources``), every value checked again as if it had been in the file."""
    data = config.model_dump()
    for section, values in changes.items():
        data[section] = {**data[section], **values} if isinstance(values, Mapping) else values
    return parse_config(data, origin, names)


def _problems(error: ErrorDetails, origin: str, names: Mapping[str, str], root: Node) -> list[str]:
    """One line for each problem of a pydantic error: one for a key, one per rule for a validator's
    broken rules."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, BrokenRules):
        return [_problem(rule, origin, names, root) for rule in cause.rules]
    return [_problem(error, origin, names, root)]


def _problem(error: ErrorDetails | RuleError, origin: str, names: Mapping[str, str], root: Node) -> str:
    cause: object
    if isinstance(error, RuleError):
        kind, loc, value, cause = "rule", error.loc, error.value, str(error)
    else:
        kind, loc, value, cause = error["type"], tuple(error["loc"]), error["input"], (error.get("ctx") or {}).get("error")
    got = "" if kind in ("missing", "extra_forbidden") else f" (got {render_value(value)})"
    text = f"{_reason(kind, loc, cause, root)}{got}"
    loc = shown_loc(loc, root)
    for size in range(len(loc), 0, -1):
        name = names.get(key_path(loc[:size]))
        if name:
            return f"{name}: {text}" if size == len(loc) else f"{name}: {key_path(loc)}: {text}"
    return ": ".join(filter(None, (origin, key_path(loc), text)))


def _reason(kind: str, loc: tuple[str | int, ...], cause: object, root: Node) -> str:
    if cause is not None:
        return str(cause)
    if kind == "extra_forbidden":
        parent = node_at(loc[:-1], root) or {}
        known = list(parent.get("properties", {}))
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown {'section' if len(loc) == 1 else 'key'}{hint} (known: {', '.join(known)})"
    node = node_at(loc, root)
    if node is None:
        return "not a setting"
    return f"is required: {allowed(node, root)}" if kind == "missing" else f"must be {allowed(node, root)}"


def render_value(value: Any, limit: int = 60) -> str:
    """``value`` as TOML would write it, in ASCII (control characters and other scripts escaped,
    so the message stays one printable line), cut to about ``limit`` characters, and with any
    ``user:password@`` of a URL hidden."""
    text = _toml(value, depth=0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _toml(value: Any, depth: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() < 200 else f"a number of about {round(value.bit_length() * 0.30103)} digits"
    if isinstance(value, str):
        return toml_string(_CREDENTIALS.sub("***@", value[:200]))
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if depth > 2 and isinstance(value, (list, tuple, dict)):
        return "[...]" if isinstance(value, (list, tuple)) else "{...}"
    if isinstance(value, (list, tuple)):
        items = [_toml(item, depth + 1) for item in value[:8]]
        return "[" + ", ".join(items + (["..."] if len(value) > 8 else [])) + "]"
    if isinstance(value, dict):
        pairs = [f"{key_path([str(k)])} = {_toml(v, depth + 1)}" for k, v in list(value.items())[:8]]
        return "{ " + ", ".join(pairs + (["..."] if len(value) > 8 else [])) + " }"
    return toml_string(str(value)[:200])
