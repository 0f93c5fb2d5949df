"""``configs/default.toml`` and ``docs/configuration.md``, written from the schema.

Both list every section and key with its default, what it allows and what it means, from the
same :func:`keys`, so neither can drift from the code (``tests/config/test_generate.py`` compares
the committed files with what is generated here).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streamrec.config.load import render_value
from streamrec.config.schema import Node, allowed, sections

__all__ = ["Key", "default_toml", "keys", "reference_markdown"]

WIDTH = 100


@dataclass(frozen=True)
class Key:
    """One documented key: its section, name, default as TOML writes it (``None``: required),
    what it allows and what it means."""

    section: str
    name: str
    default: str | None
    allowed: str
    meaning: str


def _toml(value: Any) -> str:
    return render_value(value, limit=1000)


def _summary(node: Node) -> str:
    """A section's docstring without its ``[name]:`` lead."""
    text = " ".join(str(node.get("description", "")).split())
    text = re.sub(r"^\[+\w+\]+:\s*", "", text)
    return text[:1].upper() + text[1:]


def keys(section: Node, name: str) -> Iterator[Key]:
    """The keys of one section's schema, in file order."""
    for key, node in section["properties"].items():
        default = _toml(node["default"]) if "default" in node else None
        yield Key(name, key, default, allowed(node), " ".join(str(node.get("description", "")).split()))


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ")


def default_toml() -> str:
    """The configuration file with every key at its default, each described in a comment."""
    lines = [
        "# streamrec configuration: every section and key at its default. A key left out of a file keeps",
        "# its default, so copy only what you change into your own (see configs/door.toml).",
        "#   streamrec run --config FILE.toml [--source URL]     streamrec config check FILE.toml",
        "# Written by `streamrec config defaults` from streamrec/config/model.py; each key's reference is",
        "# in docs/configuration.md.",
    ]
    for name, section in sections():
        lines += ["", *_comment(_summary(section))]
        if name == "sources":
            lines += _sources_example(section)
            continue
        lines.append(f"[{name}]")
        for key in keys(section, name):
            lines += [*_comment(f"{key.meaning} Allowed: {key.allowed}."), f"{key.name} = {key.default}"]
    return "\n".join(lines) + "\n"


def _sources_example(section: Node) -> list[str]:
    """``[[sources]]`` has no default (no source unless one is given): its keys, commented out."""
    lines = ["# [[sources]]"]
    for key in keys(section, "sources"):
        required = " Required." if key.default is None else ""
        lines += [*_comment(f"{key.meaning}{required} Allowed: {key.allowed}.", "# ")]
        example = key.default if key.default is not None else _toml(section["properties"][key.name]["examples"][0])
        lines.append(f"# {key.name} = {example}")
    return lines


_INTRO = """\
# Configuration reference

<!-- Written by `streamrec config reference > docs/configuration.md` from the schema in
streamrec/config/model.py: change the schema, then regenerate this file (and configs/default.toml
with `streamrec config defaults`); a test fails while they differ. -->

`streamrec run --config FILE.toml` reads a [TOML](https://toml.io) file of the sections below. A
key left out keeps its default; [configs/default.toml](../configs/default.toml) lists every key at
its default. Command-line options override the file: `--backend`, `--device`, `--threads`,
`--precision`, `--model` (`pipeline.*`), `--min-face-size`, `--detection-precision`
(`detector.min_face_size`, `detector.precision`), `--http`, `--events`, `--frames`
(`outputs.*`), and each `--source` adds a `[[sources]]` table with `--fps`, `--loop` and
`--fast`. They are checked exactly like values from the file.

An unknown section or key, a value of the wrong type (TOML's types are taken as written: `1` is
not `true`, `"40"` is not a number), a number that is not finite or out of its range, an address
that cannot be bound, two sources with the same name, a rule between keys that does not hold, or
a backend, device or precision this machine cannot run stops `streamrec run` before anything starts, with one line naming the file (or the option), the
key and the value:

```
streamrec: error: configs/door.toml: matcher.threshold: must be a finite number > 0 and <= 2 (got nan)
```

`streamrec config check FILE.toml ...` checks files without running anything and lists every
problem, one line each (exit status 1), or prints `FILE: ok`. A wrong key does not hide the rules
between keys: they are checked with the wrong key left out, and only a rule that reads the wrong
key itself (or its table, where the key is misspelt or its default breaks a rule too) waits until
it is right. It does not open the sources or
bind the addresses; `streamrec run` checks those too before it starts a process.

Every output binds to this machine only (127.0.0.1) by default. A ZeroMQ output bound beyond it
(an address such as 0.0.0.0, `*` or a LAN address) is served without authentication, so `streamrec
run` and `streamrec config check` print a warning naming it. The web server bound beyond it asks
for a login or an API token (`[auth]`, `streamrec users`; `run` refuses to start it while there is
no user), and gets the same warning while it has no TLS certificate.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def reference_markdown() -> str:
    """The reference of every section and key, as Markdown (``docs/configuration.md``)."""
    parts = [_INTRO]
    for name, section in sections():
        title = "[[sources]]" if name == "sources" else f"[{name}]"
        parts.append(f"\n## `{title}`\n\n{_summary(section)}\n\n| key | default | allowed | meaning |\n|---|---|---|---|")
        for key in keys(section, name):
            default = f"`{key.default}`" if key.default is not None else "required"
            parts.append(f"| `{key.name}` | {_cell(default)} | {_cell(key.allowed)} | {_cell(key.meaning)} |")
    return "\n".join(parts) + "\n"
