"""Real FaceNet embeddings of the shared face photos, computed once for the match tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.match.store import NewEmbedding, Watchlist


@pytest.fixture(scope="session")
def face_photos(faces_dir: Path, models) -> dict[str, list[tuple[Path, np.ndarray]]]:
    """Person folder name -> ``(photo, embedding of its main face)`` for every photo in
    ../shared/data/faces, by the real engines with the default options."""
    paths = sorted(faces_dir.glob("*/*"))
    found: dict[str, list[tuple[Path, np.ndarray]]] = {}
    for result in models.analyse(paths, embed="main"):
        assert len(result.embeddings) == 1, f"{result.path}: {result.error or 'no face'}"
        found.setdefault(result.path.parent.name, []).append((result.path, result.embeddings[0]))
    return found


def enroll_real(store: Watchlist, photos: dict[str, list[tuple[Path, np.ndarray]]], people: list[str], held_out: int = 1) -> None:
    """Enroll each of ``people`` from all but their last ``held_out`` photos (name = folder)."""
    for person in people:
        enrolled = photos[person][: len(photos[person]) - held_out]
        store.enroll(person.replace("_", " ").title(), [NewEmbedding(v, str(p), (0, 0, 1, 1)) for p, v in enrolled])
