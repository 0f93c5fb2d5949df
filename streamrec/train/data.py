"""The training folder: one sub-folder of photos per person, turned into face crops.

Faces are found and cut by :meth:`streamrec.faces.FaceModels.analyse`, the code inference and
enrollment use (detector, main-face rule, alignment, margin), so the network learns from the
crops it will later be shown. With ``aligned`` the photos are taken as face crops already and
only resized to the network's 160 x 160, by the same resampling the crops use.

What cannot be used is skipped and counted, never fatal by itself: unreadable files, photos
without a face, and people left with a single usable photo (no positive for them). Too little
left to train on (fewer than 2 people for training and 2 for the held-out split, each with 2
photos) is a :class:`TrainDataError` with a one-line reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from streamrec.embed.align import box_crops
from streamrec.engines.sources import sha256_file
from streamrec.faces import FaceModels
from streamrec.images import ImageError, load_image
from streamrec.verify.pairs import FOLDS, Pair, PairList

__all__ = [
    "FaceSet", "Skipped", "TrainDataError", "folder_digest", "folder_people", "heldout_pairs", "load_faces",
    "split_people",
]

Progress = Callable[[int, int], None]


class TrainDataError(ValueError):
    """The folder cannot give a training run; the message says why, in one line."""


@dataclass(frozen=True)
class FaceSet:
    """Usable photos: ``crops`` ``(n, 160, 160, 3)`` uint8, ``labels`` ``(n,)`` indexes into
    ``names``, ``paths`` the files they came from."""

    paths: list[Path]
    labels: np.ndarray
    names: list[str]
    crops: np.ndarray

    def subset(self, people: list[str]) -> FaceSet:
        """The photos of ``people`` only, labelled by their position in ``people``."""
        index = {name: i for i, name in enumerate(people)}
        keep = [i for i, label in enumerate(self.labels) if self.names[label] in index]
        labels = np.array([index[self.names[self.labels[i]]] for i in keep], np.int64)
        return FaceSet([self.paths[i] for i in keep], labels, list(people), self.crops[keep])


@dataclass
class Skipped:
    """What was left out, and why: file -> reason, and people with one usable photo."""

    unreadable: dict[str, str] = field(default_factory=dict)
    no_face: list[str] = field(default_factory=list)
    single_photo: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``skipped: 2 unreadable files, 1 photo without a face, 1 person with one photo``."""
        parts = [
            (len(self.unreadable), "unreadable file", "unreadable files"),
            (len(self.no_face), "photo without a face", "photos without a face"),
            (len(self.single_photo), "person with one photo", "people with one photo"),
        ]
        said = [f"{n} {one if n == 1 else many}" for n, one, many in parts if n]
        return "skipped: " + (", ".join(said) if said else "nothing")


def folder_people(folder: Path) -> dict[str, list[Path]]:
    """Person (sub-folder name) -> their files, both sorted; hidden entries are ignored."""
    if not folder.is_dir():
        raise TrainDataError(f"{folder}: not a directory (expected one sub-folder of photos per person)")
    people = {
        sub.name: sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith("."))
        for sub in sorted(folder.iterdir())
        if sub.is_dir() and not sub.name.startswith(".")
    }
    people = {name: files for name, files in people.items() if files}
    if len(people) < 2:
        raise TrainDataError(
            f"{folder}: {len(people)} person sub-folder(s) with files; training needs at least 2 people "
            "(4 with the held-out split), one sub-folder of photos each"
        )
    return people


def folder_digest(folder: Path) -> str:
    """SHA-256 over every person's files (relative path and content digest, in order): which
    data a model was trained on, recorded with it, so a changed folder is told apart."""
    digest = hashlib.sha256()
    for files in folder_people(folder).values():
        for path in files:
            digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _aligned_crop(path: Path) -> np.ndarray:
    rgb = load_image(path).rgb
    whole = np.array([[0.0, 0.0, rgb.shape[1], rgb.shape[0]]], np.float32)
    return box_crops(rgb, whole, 0.0)[0]


def _crops(
    files: list[Path], models: FaceModels | None, skipped: Skipped, progress: Progress | None
) -> dict[Path, np.ndarray]:
    found: dict[Path, np.ndarray] = {}
    if models is None:
        for done, path in enumerate(files, start=1):
            try:
                found[path] = _aligned_crop(path)
            except ImageError as exc:
                skipped.unreadable[str(path)] = str(exc)
            if progress:
                progress(done, len(files))
        return found
    for done, result in enumerate(models.analyse(files, embed="none", crop=True), start=1):
        if result.error:
            skipped.unreadable[str(result.path)] = result.error
        elif result.crop is None:
            skipped.no_face.append(str(result.path))
        else:
            found[result.path] = result.crop
        if progress:
            progress(done, len(files))
    return found


def load_faces(
    folder: Path, models: FaceModels | None, progress: Progress | None = None
) -> tuple[FaceSet, Skipped]:
    """Every usable face of ``folder``, and what was skipped. ``models``: the detector that cuts
    the faces, as inference does; ``None`` takes the photos as crops already (``--aligned``)."""
    people = folder_people(folder)
    skipped = Skipped()
    found = _crops([p for files in people.values() for p in files], models, skipped, progress)
    names: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    for name, files in people.items():
        usable = [p for p in files if p in found]
        if len(usable) == 1:
            skipped.single_photo.append(name)
        if len(usable) < 2:
            continue
        paths += usable
        labels += [len(names)] * len(usable)
        names.append(name)
    if len(names) < 4:
        raise TrainDataError(
            f"{folder}: {len(names)} people with 2 or more usable photos; training needs 4 "
            f"(2 to train on, 2 held out to measure) ({skipped.summary()})"
        )
    crops = np.stack([found[p] for p in paths])
    return FaceSet(paths, np.array(labels, np.int64), names, crops), skipped


def split_people(names: list[str], heldout: float, seed: int) -> tuple[list[str], list[str]]:
    """(training people, held-out people): whole identities, never photos of one person on both
    sides, so the held-out figure measures faces the network has never seen. At least 2 people
    on each side; ``heldout`` is the fraction held out."""
    order = list(np.random.default_rng(seed).permutation(len(names)))
    count = min(max(2, round(heldout * len(names))), len(names) - 2)
    held = sorted(names[i] for i in order[:count])
    return [n for n in names if n not in held], held


def heldout_pairs(faces: FaceSet, seed: int) -> PairList:
    """Every same-person pair of ``faces`` and as many different-person pairs (drawn by
    ``seed``; all of them when there are fewer), in folds balanced as ``read_pairs`` balances
    an LFW View 1 list, so ``eval-pairs``' scoring applies unchanged."""
    by_label = [np.flatnonzero(faces.labels == label) for label in range(len(faces.names))]
    same = [(a, b) for members in by_label for a, b in combinations(members, 2)]
    different = [(a, b) for a, b in combinations(range(len(faces.labels)), 2) if faces.labels[a] != faces.labels[b]]
    rng = np.random.default_rng(seed)
    n = min(len(same), len(different))
    chosen_same = [same[i] for i in sorted(rng.choice(len(same), n, replace=False))]
    chosen_diff = [different[i] for i in sorted(rng.choice(len(different), n, replace=False))]
    pairs = [
        Pair(faces.paths[a], faces.paths[b], kind is chosen_same, offset * FOLDS // n)
        for kind in (chosen_same, chosen_diff)
        for offset, (a, b) in enumerate(kind)
    ]
    return PairList(pairs, min(FOLDS, n))
