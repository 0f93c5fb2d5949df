"""``streamrec config check|defaults|reference``: check configuration files without running
anything; print the defaults and the reference, both generated from the schema."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamrec.cli.common import print_json, say_error, stderr
from streamrec.config import ConfigError, load_config
from streamrec.config.addresses import exposure_warning
from streamrec.config.generate import default_toml, reference_markdown

__all__ = ["register"]


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``config`` and its sub-verbs to the ``streamrec`` parser."""
    config = verbs.add_parser(
        "config", help="check configuration files; print the defaults or the reference of every key",
        description="The TOML configuration of `streamrec run --config`: check files, or print what the "
        "schema says about every key (docs/configuration.md).",
    )
    actions = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="check configuration files without running anything",
        description="Read each file as `streamrec run --config` does and print 'FILE: ok', or one line per "
        "problem on stderr naming the file, the key and the value (exit status 1 if any file has one). "
        "Only what is written is checked: the sources are not opened and the addresses not bound "
        "(`streamrec run` tries both before it starts anything). An output bound beyond this machine "
        "gets a warning, as `streamrec run` gives it.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE.toml")
    check.add_argument("--json", action="store_true", help="print one JSON object per file: file, ok, problems, warnings")
    check.set_defaults(handler=run_check)
    actions.add_parser(
        "defaults", help="print a configuration with every key at its default (configs/default.toml)",
        description="Print the TOML configuration with every section and key at its default, each key "
        "described in a comment, as configs/default.toml holds it.",
    ).set_defaults(handler=lambda args: print(default_toml(), end=""))
    actions.add_parser(
        "reference", help="print the reference of every key as Markdown (docs/configuration.md)",
        description="Print the configuration reference (every section and key: default, allowed values, "
        "meaning) as Markdown, as docs/configuration.md holds it.",
    ).set_defaults(handler=lambda args: print(reference_markdown(), end=""))


def _check(path: Path) -> dict[str, Any]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return {"file": str(path), "ok": False, "problems": exc.problems, "warnings": []}
    warning = exposure_warning(list(config.outputs.beyond_loopback()), tls=bool(config.auth.tls_cert))
    return {"file": str(path), "ok": True, "problems": [], "warnings": [f"{path}: {warning}"] if warning else []}


def run_check(args: argparse.Namespace) -> int:
    results = [_check(path) for path in args.files]
    if args.json:
        print_json(results)
    else:
        for result in results:
            for line in result["warnings"]:
                stderr(f"streamrec: warning: {line}")
            for line in result["problems"]:
                say_error(line)
            if result["ok"]:
                print(f"{result['file']}: ok", flush=True)
    return 0 if all(result["ok"] for result in results) else 1
