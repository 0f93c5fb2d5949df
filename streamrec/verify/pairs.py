"""Read pair lists in LFW's ``pairs.txt`` format.

The first line is either ``folds n`` (View 2: ``folds`` sets, each ``n`` same-person pairs then
``n`` different-person pairs) or ``n`` (View 1: ``n`` same then ``n`` different pairs). A
same-person line is ``name i j``; a different-person line ``name1 i name2 j``; image ``i`` of
``name`` is ``DIR/name/name_%04d.jpg``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pair", "PairList", "PairsFormatError", "read_pairs"]

FOLDS = 10


class PairsFormatError(ValueError):
    """The pair list is malformed; the message gives the line number."""


@dataclass(frozen=True)
class Pair:
    """Two image paths, whether they show the same person, and the fold the pair belongs to."""

    a: Path
    b: Path
    same: bool
    fold: int


@dataclass(frozen=True)
class PairList:
    pairs: list[Pair]
    folds: int

    @property
    def images(self) -> list[Path]:
        """Every image the pairs refer to, once each, in first-use order."""
        return list(dict.fromkeys(p for pair in self.pairs for p in (pair.a, pair.b)))


def _image(root: Path, name: str, index: str, where: str) -> Path:
    if not index.isdigit():
        raise PairsFormatError(f"{where}: image number {index!r} is not a number")
    return root / name / f"{name}_{int(index):04d}.jpg"


def _parse_line(fields: list[str], root: Path, where: str) -> tuple[Path, Path, bool]:
    if len(fields) == 3:
        name, i, j = fields
        return _image(root, name, i, where), _image(root, name, j, where), True
    if len(fields) == 4:
        name1, i, name2, j = fields
        return _image(root, name1, i, where), _image(root, name2, j, where), False
    raise PairsFormatError(f"{where}: expected 'name i j' or 'name1 i name2 j', got {' '.join(fields)!r}")


def read_pairs(path: Path, image_dir: Path) -> PairList:
    """Parse ``path``; image paths are resolved under ``image_dir``.

    Pairs are assigned to 10 folds: a ``folds n`` file keeps its own sets; an ``n`` file is split
    into 10 folds each holding a tenth of the same-person and a tenth of the different-person
    pairs, in file order, so every fold is balanced.
    """
    try:
        lines = [line.split() for line in Path(path).read_text().splitlines()]
    except OSError as exc:
        raise PairsFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    lines = [fields for fields in lines if fields]
    if not lines or not all(f.isdigit() for f in lines[0]) or len(lines[0]) not in (1, 2):
        raise PairsFormatError(f"{path}:1: header must be 'n' or 'folds n'")
    header = [int(f) for f in lines[0]]
    sets, n = (1, header[0]) if len(header) == 1 else (header[0], header[1])
    body = lines[1:]
    if len(body) != sets * 2 * n:
        raise PairsFormatError(f"{path}: header promises {sets * 2 * n} pairs, the file has {len(body)}")
    if n == 0:
        raise PairsFormatError(f"{path}: no pairs")
    pairs = []
    for k, fields in enumerate(body):
        where = f"{path}:{k + 2}"
        a, b, same = _parse_line(fields, Path(image_dir), where)
        block, offset = divmod(k, 2 * n)
        expected_same = offset < n
        if same != expected_same:
            kind = "same-person" if expected_same else "different-person"
            raise PairsFormatError(f"{where}: expected a {kind} pair here")
        fold = block if sets > 1 else (offset % n) * FOLDS // n
        pairs.append(Pair(a, b, same, fold))
    folds = sets if sets > 1 else min(FOLDS, n)
    return PairList(pairs, folds)
