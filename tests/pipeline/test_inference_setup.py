"""An inference stage whose set-up fails tears down without hiding why it failed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import zmq

from streamrec.bus import sockets
from streamrec.config.model import RunConfig, SourceConfig
from streamrec.match.store import WatchlistError
from streamrec.pipeline.inference import InferenceStage


def test_a_watchlist_that_cannot_open_is_the_error_the_stage_ends_with(engine_dir: Path, tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.write_text("a file where the data folder should be")
    run_dir = sockets.new_run_dir()  # a real run directory (in /dev/shm where there is one), removed below
    endpoints = sockets.Endpoints.for_run(run_dir, "ipc://unused-events", "ipc://unused-jpeg")
    stage = InferenceStage(RunConfig(sources=[SourceConfig(url="0", name="cam")]), endpoints, data_dir, engine_dir)
    stage.ctx = zmq.Context()
    try:
        with pytest.raises(WatchlistError, match="cannot open the watchlist"):
            try:  # what Stage.run does
                stage.setup()
            finally:
                stage.teardown()
    finally:
        stage.ctx.destroy()
        shutil.rmtree(run_dir)
