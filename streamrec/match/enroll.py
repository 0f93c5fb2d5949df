"""Enrollment from photos: which face goes into the watchlist, and which photos are refused.

A watchlist entry is only as good as its photo: a wrong face or a false detection would name
strangers for as long as it stays enrolled. So a photo is enrolled only when its main face (the
largest, clipped to the image, by default) is

* a confident detection: O-Net score >= 0.95 (portraits score 0.995-1.0 on the shared test
  photos; a false "face" in a landscape 0.70, half-hidden background faces 0.78-0.90);
* at least 40 px on its shorter side, in the photo's own pixels;
* unambiguous: no other face has 70% or more of its clipped area (``fr_two_people.jpg``: 0.96,
  ``fr_kit_with_rose.jpg``: 0.74; a background face beside a portrait: under 0.05).

Every photo is judged on its own; unreadable ones are refused with the loader's reason, and the
usable ones are enrolled together in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamrec.embed.select import selection_scores
from streamrec.faces import FaceModels, ImageFaces
from streamrec.match.store import Enrolled, NewEmbedding, Watchlist

__all__ = ["MIN_FACE_PX", "MIN_SCORE", "SIMILAR_AREA", "EnrollReport", "Photo", "choose_face", "enroll_photos"]

MIN_SCORE = 0.95
MIN_FACE_PX = 40.0
SIMILAR_AREA = 0.7


@dataclass(frozen=True)
class Photo:
    """One photo's outcome: the ``face`` to enroll (box in the photo's pixels), or the
    ``refused`` reason."""

    image: Path
    face: NewEmbedding | None = None
    refused: str | None = None


@dataclass(frozen=True)
class EnrollReport:
    """Every photo's outcome, and what was stored (``None`` when no photo was usable)."""

    photos: list[Photo]
    enrolled: Enrolled | None


def _size(box: np.ndarray) -> str:
    return f"{box[2] - box[0]:.0f}x{box[3] - box[1]:.0f} px"


def choose_face(result: ImageFaces) -> Photo:
    """The face of an analysed photo to enroll (its main face), or why the photo is refused."""
    if result.error:
        return Photo(result.path, refused=result.error.removeprefix(f"{result.path}: "))
    if result.main is None or not len(result.embeddings):
        return Photo(result.path, refused="no face found")
    faces, main = result.faces, result.main
    box = faces.boxes[main]
    if faces.scores[main] < MIN_SCORE:
        return Photo(result.path, refused=f"no clear face (best detection score {faces.scores[main]:.2f} < {MIN_SCORE})")
    if min(box[2] - box[0], box[3] - box[1]) < MIN_FACE_PX:
        return Photo(result.path, refused=f"face too small ({_size(box)}; at least {MIN_FACE_PX:.0f} px a side)")
    areas = selection_scores(faces, *result.size, "largest_clipped")
    rivals = [i for i in range(len(faces)) if i != main and areas[i] >= SIMILAR_AREA * areas[main]]
    if rivals:
        sizes = ", ".join(_size(faces.boxes[i]) for i in [main, *rivals])
        return Photo(
            result.path,
            refused=f"{len(rivals) + 1} faces of similar size ({sizes}): use a photo of the one person, or crop it",
        )
    x1, y1, x2, y2 = (float(v) for v in box)
    return Photo(result.path, NewEmbedding(result.embeddings[0], str(result.path.resolve()), (x1, y1, x2, y2)))


def enroll_photos(
    store: Watchlist,
    models: FaceModels,
    name: str,
    images: Iterable[Path],
    person_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> EnrollReport:
    """Judge each photo and enroll the usable ones as ``name`` (see :meth:`Watchlist.enroll`)."""
    photos = [choose_face(result) for result in models.analyse(images, embed="main")]
    usable = [p.face for p in photos if p.face is not None]
    if not usable:
        return EnrollReport(photos, None)
    return EnrollReport(photos, store.enroll(name, usable, person_id, metadata, models.config.model))
