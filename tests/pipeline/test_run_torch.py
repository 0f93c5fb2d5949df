"""``streamrec run`` with ``backend = "torch"``: the whole detector and embedder in PyTorch on the
CPU, in the real pipeline on a real clip, names the people the default backend names and decides
the tracks it decides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamrec.events.journal import read_journal
from tests.conftest import run_cli
from tests.pipeline.conftest import IN_THE_CLIP, enroll_people, quiet_outputs


@pytest.fixture(scope="module")
def watchlist(faces_dir: Path, models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("watchlist")
    enroll_people(faces_dir, data, models)
    return data


def _decisions(clip: Path, watchlist: Path, folder: Path, backend: str) -> set[tuple[str, str | None]]:
    """The (type, name) of every decision a run of ``clip`` on ``backend`` journaled, from every
    frame (``--fast``: none skipped, so the runs see the same frames)."""
    data = folder / backend
    shutil.copytree(watchlist, data)
    config = folder / f"{backend}.toml"
    config.write_text(f'[pipeline]\nbackend = "{backend}"\n')
    result = run_cli("run", "--config", str(config), "--source", str(clip), "--fast", "--data-dir", str(data), *quiet_outputs(),
                     timeout=300)
    assert result.returncode == 0, result.stderr
    return {(e["type"], e["name"]) for e in read_journal(data / "events") if e["type"] in ("match", "unknown")}


def test_the_torch_backend_decides_as_onnxruntime_does(hamilton_clip: Path, watchlist: Path, tmp_path: Path):
    ours = _decisions(hamilton_clip, watchlist, tmp_path, "torch")
    assert ("match", "lin_manuel_miranda") in ours
    assert {name for kind, name in ours if kind == "match"} <= IN_THE_CLIP
    assert ours == _decisions(hamilton_clip, watchlist, tmp_path, "onnxruntime")
