"""Erasure: everything streamrec holds about one person, gone, except the fact that events happened.

A person's embeddings and negatives go from the watchlist (running matchers stop naming them at
once), their photos stored under the data directory (``<data_dir>/photos/``: those uploaded
through the face library, or unknown faces assigned to them) and the face crops kept of their
matches are deleted, with the crops of unknown faces that match one of their embeddings (closer
than the matcher's threshold: their face, seen before they were enrolled or in a view that was
not named), and the event
journal keeps its events but with the person's id in place of their name. Photos enrolled from
elsewhere with ``streamrec enroll`` are the user's own files and are left where they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamrec.config.model import MatcherConfig
from streamrec.events.journal import rename_person
from streamrec.match.kept import KeptFaces
from streamrec.match.store import Person, Watchlist

__all__ = ["Erased", "erase_person", "photos_dir", "stored_photo"]


def photos_dir(data_dir: Path) -> Path:
    """Where the photos uploaded through the face library are stored."""
    return Path(data_dir) / "photos"


def stored_photo(data_dir: Path, image: str) -> Path | None:
    """The file of an embedding's ``image`` when it is a photo stored in :func:`photos_dir`
    (and exists), else ``None``: photos enrolled from elsewhere are the user's own files."""
    resolved = Path(image).resolve()
    return resolved if resolved.parent == photos_dir(data_dir).resolve() and resolved.is_file() else None


@dataclass(frozen=True)
class Erased:
    """What :func:`erase_person` removed: the person (as they were, with their embeddings'
    count), their negatives, photo files, kept face crops, and the events renamed."""

    person: Person
    negatives: int
    photos: int
    kept_faces: int
    events_renamed: int


def erase_person(
    store: Watchlist, person_id: str, journal_dir: Path | None = None, threshold: float = MatcherConfig().threshold
) -> Erased:
    """Erase ``person_id`` (see the module docstring); ``journal_dir`` defaults to
    ``<data_dir>/events``; ``threshold``: how near their embeddings an unknown face's must be to
    be theirs. Raises :class:`~streamrec.match.store.WatchlistError` for an unknown
    id, before anything is removed."""
    data_dir = store.path.parent
    with store.read() as view:
        negatives = len(view.negatives(person_id))
        embeddings = view.embeddings(person_id)
        vectors = view.vectors_of(np.array([e.id for e in embeddings], np.int64)).vectors
    images = [e.image for e in embeddings]
    person = store.remove(person_id)
    store.checkpoint()
    photos = [path for path in (stored_photo(data_dir, image) for image in images) if path is not None]
    for path in photos:
        path.unlink(missing_ok=True)
    faces = KeptFaces(data_dir)
    kept = faces.remove_person(person_id) + faces.remove_near(vectors, threshold)
    renamed = rename_person(journal_dir if journal_dir is not None else data_dir / "events", person_id)
    return Erased(person, negatives, len(photos), kept, renamed)
