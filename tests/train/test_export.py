"""Names of trained models: malformed or taken ones are refused before any training time is spent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamrec.train.export import ExportError, check_name


@pytest.fixture
def engines(tmp_path: Path) -> Path:
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {}, "models": {"door": {"file": "facenet-door.onnx"}}}))
    return tmp_path


@pytest.mark.parametrize("name", ["", "Door", "-door", "door cam", "../door", "facenet", "x" * 41])
def test_malformed_names_are_refused(engines: Path, name: str) -> None:
    with pytest.raises(ExportError, match=f"^bad model name {name!r}: use 1-40 of a-z"):
        check_name(engines, name)


@pytest.mark.parametrize("leftover", [None, "facenet-gate.onnx", "facenet-gate.pt"])
def test_a_listed_model_or_a_file_of_that_name_is_never_overwritten(engines: Path, leftover: str | None) -> None:
    name = "door" if leftover is None else "gate"
    if leftover:
        (engines / leftover).write_bytes(b"someone's weights")
    with pytest.raises(ExportError, match=f"^a model named '{name}' is already in .*: choose another name$"):
        check_name(engines, name)
    check_name(engines, "gate-2")  # a free name passes
