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
