"""`streamrec config check` lists a file's broken rules between keys together with its bad keys:
pydantic alone runs a table's rules only once all its keys are valid, and the rules between
tables only once every table is."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

_SAME_NAME = ("sources[1].name: sources[0] has the same name (names derive from the URL where none is given): "
              'give each source its own name (got "cam")')
_RING = ('links.frame_pixels: a frames link beyond this machine needs the pixels in the message: set frame_pixels = '
         '"raw" or "jpeg" (got "ring")')


def _check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "run.toml"
    path.write_text(text)
    result = run_cli("config", "check", str(path), timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    prefix = f"streamrec: error: {path}: "
    lines = result.stderr.splitlines()
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def test_a_typo_does_not_hide_the_rules_between_keys(tmp_path: Path):
    lines = _check(tmp_path, '[matcher]\nthreshhold = 0.5\n\n[links]\nframes = "tcp://10.0.0.5:5555"\nframe_quality = 5\n'
                   '\n[[sources]]\nurl = "0"\nname = "cam"\n\n[[sources]]\nurl = "1"\nname = "cam"\n')
    assert lines == [
        ("matcher.threshhold: unknown key; did you mean threshold? (known: threshold, margin, votes, sure_distance, "
         "min_score, unknown_after)"),
        "links.frame_quality: must be a whole number between 10 and 100 (got 5)",
        ('links.frames: a link beyond this machine needs CURVE: set curve_server_key, curve_server_secret, '
         'curve_client_secret, curve_clients (`streamrec keys NAME --out DIR` makes the certificates) '
         '(got "tcp://10.0.0.5:5555")'),
        _RING,
        _SAME_NAME,
    ]


def test_every_broken_rule_is_listed_not_only_the_first(tmp_path: Path):
    lines = _check(tmp_path, '[tracker]\nmax_embeddings = 2\n\n[mqtt]\npassword_file = "/etc/hostname"\n\n'
                   '[[sources]]\nurl = "0"\nname = "cam"\n\n[[sources]]\nurl = "1"\nname = "cam"\n')
    assert lines == [
        'mqtt.password_file: a password needs a username: set username (got "/etc/hostname")',
        _SAME_NAME,
        "matcher.unknown_after: must be at most [tracker] max_embeddings (2): a track has no more embeddings (got 3)",
    ]


def test_a_rule_that_reads_a_bad_key_is_not_judged_against_its_default(tmp_path: Path):
    # door.threshold 0.9 is above the default matcher threshold, but the file's own threshold is
    # what is wrong: only that is reported
    lines = _check(tmp_path, "[matcher]\nthreshold = nan\n\n[door]\nthreshold = 1.5\n")
    assert lines == ["matcher.threshold: must be a finite number > 0 and <= 2 (got nan)"]


def test_a_misspelt_key_stands_for_its_table_and_no_rule_is_judged_against_a_default(tmp_path: Path):
    # the file may mean max_embeddings = 20, against which votes = 15 is fine
    lines = _check(tmp_path, "[tracker]\nmax_embedding = 20\n\n[matcher]\nvotes = 15\n")
    assert len(lines) == 1 and lines[0].startswith("tracker.max_embedding: unknown key; did you mean max_embeddings?")


def test_a_key_whose_default_breaks_the_rule_too_keeps_its_table_out_of_the_rules(tmp_path: Path):
    # left out, sure_distance would be 0.8, still above the file's threshold: the rules between
    # tables are then not judged on [matcher] at all, rather than on its defaults
    lines = _check(tmp_path, "[matcher]\nthreshold = 0.7\nsure_distance = 0.75\n\n[door]\nthreshold = 0.8\n")
    assert lines == ["matcher.sure_distance: must be at most threshold (0.7): a sure match is a match first (got 0.75)"]


def test_a_file_nested_as_deep_as_the_parser_takes_is_still_one_line_per_problem(tmp_path: Path):
    lines = _check(tmp_path, "x = " + "[" * 480 + "]" * 480 + "\n")
    assert len(lines) == 1 and lines[0].startswith("x: unknown section")
