"""Kept faces on a real filesystem: records, bounds, retention, and a full disk."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from streamrec.match.kept import CROP_SIDE, KeptFaces, face_crop
from tests.support.disk import small_disk


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return v / np.linalg.norm(v)


def _crop(seed: int, side: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)


def test_a_kept_face_has_its_crop_camera_track_time_and_embedding(tmp_path: Path):
    kept = KeptFaces(tmp_path)
    now = time.time()
    face = kept.keep("unknown", "front door/1", 17, now, _crop(1), _unit(1), 0.8)
    assert face is not None and face.jpeg.parent == tmp_path / "unknown" and face.jpeg.read_bytes()[:2] == b"\xff\xd8"
    assert (face.source, face.track_id, face.kind, face.person_id) == ("front door/1", 17, "unknown", None)
    assert abs(face.ts - now) < 1e-3
    np.testing.assert_allclose(kept.get(face.id).vector, _unit(1), atol=1e-7)
    match = kept.keep("match", "cam", 18, now + 1, _crop(2), _unit(2), 0.9, "ada", "Ada")
    assert match is not None and match.jpeg.parent == tmp_path / "matched" and kept.get(match.id).name == "Ada"
    assert [f.id for f in kept.recent("unknown")] == [face.id]
    assert kept.get("../watchlist") is None and kept.get(face.id + "x") is None
    assert not list(tmp_path.rglob(".tmp-*"))
    assert kept.remove_person("ada") == 1 and kept.get(match.id) is None and kept.get(face.id) is not None


def test_kept_faces_are_bounded_in_count_and_size_oldest_first(tmp_path: Path):
    kept = KeptFaces(tmp_path, max_faces=3)
    ids = [kept.keep("unknown", "cam", i, 1000.0 + i + time.time(), _crop(i), _unit(i), 0.5).id for i in range(5)]
    assert [f.id for f in kept.recent("unknown")] == ids[:1:-1]
    one = sum(p.stat().st_size for p in (tmp_path / "unknown").iterdir()) // 3
    small = KeptFaces(tmp_path / "small", max_bytes=int(2.5 * one))
    ids = [small.keep("unknown", "cam", i, time.time() + i, _crop(i), _unit(i), 0.5).id for i in range(4)]
    assert [f.id for f in small.recent("unknown")] == ids[:1:-1]


def test_faces_past_their_days_and_orphan_crops_are_pruned(tmp_path: Path):
    kept = KeptFaces(tmp_path, days=2)
    now = time.time()
    old = kept.keep("unknown", "cam", 1, now - 3 * 86400, _crop(1), _unit(1), 0.5)
    new = kept.keep("match", "cam", 2, now - 86400, _crop(2), _unit(2), 0.5, "ada", "Ada")
    orphan = tmp_path / "unknown" / "0000000000001-cam-9.jpg"  # a crash between the crop and its record
    orphan.write_bytes(b"\xff\xd8")
    assert kept.prune(now + 120) == 1
    assert kept.get(old.id) is None and not old.jpeg.exists() and not orphan.exists()
    assert kept.get(new.id) is not None
    assert KeptFaces(tmp_path / "none", days=0).keep("unknown", "cam", 1, now, _crop(1), _unit(1), 0.5) is None


def test_a_crop_is_the_face_with_a_margin_clipped_and_scaled_down():
    frame = np.zeros((1000, 1000, 3), np.uint8)
    assert face_crop(frame, np.array([100, 100, 180, 240])).shape == (210, 120, 3)
    assert face_crop(frame, np.array([-50, 900, 50, 1100])).shape == (150, 75, 3)
    assert max(face_crop(frame, np.array([0, 0, 900, 900])).shape[:2]) == CROP_SIDE


def test_a_full_disk_costs_only_the_face_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    with small_disk(tmp_path, "1m") as disk:
        kept = KeptFaces(disk.path / "data")
        first = kept.keep("unknown", "cam", 1, time.time(), _crop(1), _unit(1), 0.5)
        assert first is not None
        disk.fill()
        with caplog.at_level(logging.INFO, logger="streamrec.match.kept"):
            for i in range(2, 6):
                assert kept.keep("unknown", "cam", i, time.time() + i, _crop(i, 128), _unit(i), 0.5) is None
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "cannot keep face crops" in warnings[0].getMessage()
            assert "\n" not in warnings[0].getMessage()
            assert [f.id for f in kept.recent("unknown")] == [first.id]  # nothing else lost
            assert not [p for p in (disk.path / "data" / "unknown").iterdir() if p.stem != first.id]
            disk.free()
            again = kept.keep("unknown", "cam", 9, time.time() + 9, _crop(9), _unit(9), 0.5)
            assert again is not None and "kept in" in caplog.records[-1].getMessage()
