"""A short training run on real faces: the training loss falls, held-out accuracy does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamrec.train.augment import Augment
from streamrec.train.data import heldout_pairs, load_faces, split_people
from streamrec.train.loop import BODY_BLOCKS, TrainSettings, set_trainable, train


@pytest.fixture(scope="module")
def base_model():
    from streamrec.engines.sources import locate_sources
    from streamrec.engines.weights import load_facenet

    torch.set_num_threads(1)
    return load_facenet(locate_sources())


def test_short_run_lowers_training_loss_and_keeps_heldout_accuracy(faces_cropped: Path, base_model) -> None:
    faces, skipped = load_faces(faces_cropped, None)
    assert skipped.summary() == "skipped: nothing" and len(faces.paths) == 40
    training, held = split_people(faces.names, 0.5, seed=0)
    original = {k: v.clone() for k, v in base_model.state_dict().items()}
    lines: list[str] = []
    settings = TrainSettings(epochs=2, people=4, photos=4, learning_rate=1e-3)
    result = train(base_model, faces.subset(training), faces.subset(held), settings, lines.append)
    first, last = result.history[0], result.history[-1]
    assert last.training_loss < first.training_loss
    assert result.after.accuracy >= result.before.accuracy
    assert result.history[result.best_epoch].heldout_accuracy == result.after.accuracy
    assert any(line.startswith("epoch 2/2 batch 1/1: loss ") and "active triplets" in line for line in lines)
    changed = {k for k, v in result.model.state_dict().items() if not torch.equal(v, original[k])}
    if result.best_epoch:  # only the last block and the head learn by default
        assert changed and all(k.startswith(("body.22.", "bottleneck")) for k in changed)
    else:
        assert not changed


def test_split_keeps_identities_apart_and_pairs_are_balanced(faces_cropped: Path) -> None:
    faces, _ = load_faces(faces_cropped, None)
    training, held = split_people(faces.names, 0.3, seed=3)
    assert len(held) == 2 and not set(training) & set(held) and sorted(training + held) == sorted(faces.names)
    pairs = heldout_pairs(faces.subset(held), seed=3)
    same = [p for p in pairs.pairs if p.same]
    assert len(same) == 20 == len(pairs.pairs) - len(same)  # 2 people x C(5, 2) same-person pairs
    assert all((p.a.parent == p.b.parent) == p.same for p in pairs.pairs)


def test_trainable_layers_are_the_last_blocks_and_the_head(base_model) -> None:
    from streamrec.cli.train import _BLOCKS

    assert len(base_model.body) == BODY_BLOCKS == _BLOCKS  # the option's bound is the network's
    learning = set_trainable(base_model, 2)
    names = {n for n, p in base_model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("body.21.", "body.22.", "bottleneck")) for n in names)
    assert len(learning) == len(names)
    assert sum(p.requires_grad for p in base_model.stem.parameters()) == 0
    with pytest.raises(ValueError, match=f"train_blocks must be 0 to {BODY_BLOCKS}"):
        set_trainable(base_model, BODY_BLOCKS + 1)


def test_augment_changes_crops_and_none_leaves_them() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (3, 160, 160, 3), dtype=np.uint8)
    changed = Augment()(crops, np.random.default_rng(1))
    assert changed.shape == crops.shape and changed.dtype == np.uint8 and not np.array_equal(changed, crops)
    assert np.array_equal(Augment(flip=False, crop=0, brightness=0)(crops, np.random.default_rng(1)), crops)
    with pytest.raises(ValueError, match="crop must be >= 0 and < 1"):
        Augment(crop=1.0)


def test_a_batch_without_an_active_triplet_leaves_the_weights_alone(faces_cropped: Path, base_model) -> None:
    """Adam keeps stepping on its momentum when the gradient is zero; such a step is skipped."""
    from streamrec.train.loop import _epoch

    faces, _ = load_faces(faces_cropped, None)
    training = faces.subset(faces.names[:4])
    learning = set_trainable(base_model, 1)
    optimiser = torch.optim.Adam(learning, lr=1e-3)
    wide = TrainSettings(people=4, photos=4, margin=2.0, strategy="batch-all", augment=Augment(False, 0, 0))
    _, active = _epoch(base_model, training, wide, optimiser, np.random.default_rng(0), lambda _: None)
    assert active > 0  # a real step: Adam now has momentum
    before = {k: v.clone() for k, v in base_model.state_dict().items()}
    none = TrainSettings(people=4, photos=4, margin=1e-9, strategy="semi-hard", augment=Augment(False, 0, 0))
    loss, active = _epoch(base_model, training, none, optimiser, np.random.default_rng(0), lambda _: None)
    assert loss == 0.0 and active == 0.0
    assert all(torch.equal(v, before[k]) for k, v in base_model.state_dict().items())
