"""``configs/default.toml`` and ``docs/configuration.md`` are what the schema generates, so they
never drift from the code; a change to the schema fails here until both are regenerated:

    streamrec config defaults > configs/default.toml
    streamrec config reference > docs/configuration.md
"""

from __future__ import annotations

import re
from pathlib import Path

from streamrec.config import RunConfig, load_config
from streamrec.config.generate import default_toml, keys, reference_markdown
from streamrec.config.schema import sections

ROOT = Path(__file__).resolve().parents[2]


def test_default_toml_is_generated_from_the_schema():
    assert (ROOT / "configs" / "default.toml").read_text() == default_toml()


def test_the_reference_is_generated_from_the_schema():
    assert (ROOT / "docs" / "configuration.md").read_text() == reference_markdown()


def test_default_toml_holds_every_default():
    assert load_config(ROOT / "configs" / "default.toml") == RunConfig()
    text = default_toml()
    for name, section in sections():
        for key in keys(section, name):
            assert re.search(rf"^(# )?{key.name} = ", text, re.MULTILINE), key
            assert key.meaning and key.allowed, key  # every key is described


def test_the_commented_source_is_a_valid_source(tmp_path: Path):
    commented = default_toml().split("# [[sources]]\n", 1)[1]
    table = "\n".join(line.removeprefix("# ") for line in commented.splitlines() if not line.startswith("# #"))
    (tmp_path / "source.toml").write_text("[[sources]]\n" + table)
    assert load_config(tmp_path / "source.toml").sources[0].url == "rtsp://camera.local/stream"


def test_the_readme_links_the_reference():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/configuration.md)" in readme and "streamrec config check" in readme
