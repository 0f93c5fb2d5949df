"""Reading the configuration's JSON schema: what each key allows, in words.

The schema pydantic derives from :mod:`streamrec.config.model` is the one description of every
key (default, bounds, choices, meaning); error messages, ``configs/default.toml`` and
``docs/configuration.md`` are all phrased from it here, so they cannot disagree with each other
or with what is checked. A key whose rule is not a plain range or choice says so itself with an
``allowed`` entry in its ``json_schema_extra``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "allowed", "key_path", "model_schema", "node_at", "number_text", "run_schema", "sections", "shown_loc", "toml_string",
]

Node = dict[str, Any]


@functools.cache
def model_schema(model: type[BaseModel]) -> Node:
    """The JSON schema of ``model`` (computed once per model)."""
    return model.model_json_schema()


def run_schema() -> Node:
    """The JSON schema of :class:`~streamrec.config.model.RunConfig`."""
    from streamrec.config.model import RunConfig

    return model_schema(RunConfig)


def _resolve(node: Node, root: Node | None = None) -> Node:
    """Follow a ``$ref`` (alone or as pydantic wraps it in ``allOf``) to the definition in
    ``root`` (the run schema unless given), keeping the referring node's own entries (its
    description, default)."""
    ref = node.get("$ref") or next((part["$ref"] for part in node.get("allOf", ()) if "$ref" in part), None)
    if ref is None:
        return node
    target = (root or run_schema())["$defs"][ref.rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in node.items() if k not in ("$ref", "allOf")}}


def _walk(loc: Sequence[str | int], root: Node | None) -> Iterator[tuple[str | int, Node | None, bool]]:
    """Each part of ``loc`` with the schema it leads to (``None`` past an unknown key) and
    whether it is the tag pydantic puts in the location of a value of a discriminated union
    (``("door", "actions", 0, "webhook", "url")``: the action's ``type``, not a key)."""
    node: Node | None = root or run_schema()
    for part in loc:
        if node is None:
            yield part, None, False
            continue
        node = _resolve(node, root)
        mapping = node.get("discriminator", {}).get("mapping", {})
        if isinstance(part, str) and part in mapping:
            node = {"$ref": mapping[part]}
            yield part, node, True
            continue
        node = node.get("items") if isinstance(part, int) else node.get("properties", {}).get(part)
        yield part, node, False


def node_at(loc: Sequence[str | int], root: Node | None = None) -> Node | None:
    """The schema of the value at ``loc`` (``("sources", 0, "url")``) in ``root`` (the run
    schema unless given), or ``None`` where the schema has no such key."""
    node: Node | None = root or run_schema()
    for _, node, _ in _walk(loc, root):
        pass
    return None if node is None else _resolve(node, root)


def shown_loc(loc: Sequence[str | int], root: Node | None = None) -> tuple[str | int, ...]:
    """``loc`` as the file writes it: without the tags of discriminated unions (an action's
    ``url`` is ``door.actions[0].url``, whichever its ``type``)."""
    return tuple(part for part, _, tag in _walk(loc, root) if not tag)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string in printable ASCII: quotes, backslashes, control
    characters and everything beyond ASCII escaped (``"caf\\u00e9"``), so it prints as one
    unambiguous line on any terminal."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def key_path(loc: Sequence[str | int]) -> str:
    """``sources[0].url`` for ``("sources", 0, "url")``; a key TOML would have to quote (spaces,
    dots, anything beyond letters, digits, ``_`` and ``-``) is quoted as TOML writes it."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            bare = part and all(c.isascii() and (c.isalnum() or c in "_-") for c in part)
            text += ("." if text else "") + (part if bare else toml_string(part))
    return text


def _num(value: float) -> str:
    """``1000000`` rather than ``1e+06``; ``0.1`` as it is."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def number_text(kind: str, *, ge: float | None = None, gt: float | None = None,
                le: float | None = None, lt: float | None = None) -> str:
    """``a finite number > 0 and <= 2``, ``a whole number between 1 and 100``: what a number
    must be, in words (``kind``: ``"integer"`` or ``"number"``, as in JSON schema)."""
    noun = "a whole number" if kind == "integer" else "a finite number"
    low = f">= {_num(ge)}" if ge is not None else f"> {_num(gt)}" if gt is not None else ""
    high = f"<= {_num(le)}" if le is not None else f"< {_num(lt)}" if lt is not None else ""
    if ge is not None and le is not None:
        return f"{noun} between {_num(ge)} and {_num(le)}"
    return " ".join(filter(None, (noun, low, "and" if low and high else "", high)))


def allowed(node: Node, root: Node | None = None) -> str:
    """What the value at ``node`` (of ``root``, the run schema unless given) may be, as the end
    of "must be ...".

    >>> allowed({"type": "number", "exclusiveMinimum": 0, "maximum": 2})
    'a finite number > 0 and <= 2'
    """
    node = _resolve(node, root)
    if "allowed" in node:
        return str(node["allowed"])
    if "discriminator" in node:
        key, mapping = node["discriminator"]["propertyName"], node["discriminator"].get("mapping", {})
        order = [part.get("$ref") for part in node.get("oneOf", ())]  # as the union is declared
        tags = sorted(mapping, key=lambda tag: order.index(mapping[tag]) if mapping[tag] in order else len(order))
        return f"a table with {key} = " + " or ".join(toml_string(tag) for tag in tags)
    if "enum" in node or "const" in node:
        return "one of " + ", ".join(toml_string(str(value)) for value in node.get("enum", [node.get("const")]))
    kind = node.get("type")
    if kind in ("integer", "number"):
        return number_text(kind, ge=node.get("minimum"), gt=node.get("exclusiveMinimum"),
                           le=node.get("maximum"), lt=node.get("exclusiveMaximum"))
    if kind == "array":
        size = node.get("minItems")
        count = f"{size} " if size is not None and size == node.get("maxItems") else ""
        return f"a list of {count}values, each {allowed(node['items'], root)}"
    limit = f" of at most {node['maxLength']} characters" if "maxLength" in node else ""
    return {"boolean": "true or false", "string": f"a string{limit}", "object": "a table of settings"}.get(kind or "", "a value")


def sections() -> Iterator[tuple[str, Node]]:
    """Each section's name and schema, in file order (``sources``: the ``[[sources]]`` table)."""
    for name, node in run_schema()["properties"].items():
        yield name, _resolve(node["items"] if node.get("type") == "array" else node)
