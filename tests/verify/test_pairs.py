"""Pair lists in LFW's format, and the metrics of the protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.verify.metrics import best_threshold, kfold_accuracy, roc_summary, val_at_far
from streamrec.verify.pairs import PairsFormatError, read_pairs


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    return path


def test_view1_format_splits_into_balanced_folds(lfw_view1: Path):
    pairs = read_pairs(lfw_view1 / "pairsDevTest.txt", lfw_view1 / "deepfunneled")
    assert len(pairs.pairs) == 1000 and pairs.folds == 10
    assert sum(p.same for p in pairs.pairs) == 500
    for fold in range(10):
        members = [p for p in pairs.pairs if p.fold == fold]
        assert len(members) == 100 and sum(p.same for p in members) == 50
    first = pairs.pairs[0]
    assert first.a.name == "Abdullah_Gul_0013.jpg" and first.b.name == "Abdullah_Gul_0014.jpg"
    assert all(p.a.is_file() and p.b.is_file() for p in pairs.pairs)
    assert len(pairs.images) == 1549


def test_view2_format_keeps_its_sets(tmp_path: Path):
    lines = ["2\t1"]
    for k in range(2):
        lines += [f"A_{k}\t1\t2", f"B_{k}\t1\tC_{k}\t3"]
    pairs = read_pairs(_write(tmp_path, "\n".join(lines) + "\n"), tmp_path)
    assert [p.fold for p in pairs.pairs] == [0, 0, 1, 1] and pairs.folds == 2
    assert pairs.pairs[1].b == tmp_path / "C_0" / "C_0_0003.jpg"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "header"),
        ("x\n", "header"),
        ("1\nA 1 2\n", "promises 2 pairs"),
        ("1\nA 1 B 2\nA 1 2\n", ":2: expected a same-person pair"),
        ("1\nA 1 2\nA one B 2\n", ":3: image number 'one'"),
        ("1\nA 1 2\nA 1 B 2 3\n", ":3: expected 'name i j'"),
        ("1\nA 1 2\nA 1 B\n", ":3: image number 'B'"),
    ],
)
def test_malformed_lists_name_the_line(tmp_path: Path, text: str, message: str):
    with pytest.raises(PairsFormatError, match=message):
        read_pairs(_write(tmp_path, text), tmp_path)


def test_missing_pair_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(PairsFormatError, match="cannot read"):
        read_pairs(tmp_path / "absent.txt", tmp_path)


def test_metrics_on_separable_and_overlapping_distances():
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 500)
    folds = np.tile(np.arange(10), 100)
    separable = np.where(same, rng.uniform(0.2, 0.9, 1000), rng.uniform(1.2, 1.8, 1000))
    result = kfold_accuracy(separable, same, folds)
    assert result.accuracy == 1.0 and result.accuracy_std == 0.0
    assert 1.0 <= best_threshold(separable, same) <= 1.1  # the middle of the perfect plateau
    assert roc_summary(separable, same) == (1.0, 0.0)
    val, _, far = val_at_far(separable, same, folds)
    assert val == 1.0 and far == 0.0

    overlapping = np.where(same, rng.normal(0.9, 0.2, 1000), rng.normal(1.3, 0.2, 1000))
    result = kfold_accuracy(overlapping, same, folds)
    assert 0.75 < result.accuracy < 0.9  # two unit-variance classes 2 sigma apart: ~0.84
    auc, eer = roc_summary(overlapping, same)
    assert 0.85 < auc < 0.97 and 0.1 < eer < 0.25
    assert val_at_far(overlapping, same, folds)[0] < 0.5
