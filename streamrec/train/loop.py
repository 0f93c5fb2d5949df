"""The training loop: triplet loss on P x K batches, held-out accuracy after every epoch, the best
epoch kept.

Only the last ``train_blocks`` blocks of the network and the embedding head (the 1792 -> 512
bottleneck and its batch norm) learn; the rest keeps the published weights. That is what a few
hundred photos can move without forgetting what millions taught, and it runs on a CPU in
minutes: no gradient is computed below the first trained block. The network stays in eval
mode throughout: its one batch norm keeps the statistics it was published with rather than
re-estimating them from batches of a dozen faces.

Held-out accuracy is measured on people the network never trains on, before the first epoch
and after each, with ``eval-pairs``' scoring (:func:`streamrec.verify.evaluate.score_pairs`).
The weights of the best measurement (accuracy, then AUC, then the held-out triplet loss) are the
result; when no epoch beats the published model, the result is the published model, and the
record says so (``best_epoch`` 0).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from streamrec.embed.nets import InceptionResnetV1
from streamrec.train.augment import Augment
from streamrec.train.data import FaceSet, heldout_pairs
from streamrec.train.mining import PKSampler, Strategy, mine_triplets, squared_distances, triplet_loss
from streamrec.verify.evaluate import PairsReport, score_pairs
from streamrec.verify.pairs import PairList

__all__ = ["EpochRecord", "TrainResult", "TrainSettings", "set_trainable", "train"]

#: blocks of :attr:`InceptionResnetV1.body`; ``train_blocks`` may name all of them
BODY_BLOCKS = 23


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a training run (recorded with the engine it writes)."""

    epochs: int = 5
    people: int = 8
    photos: int = 4
    margin: float = 0.2
    strategy: Strategy = "semi-hard"
    train_blocks: int = 1
    learning_rate: float = 1e-4
    heldout: float = 0.3
    seed: int = 0
    augment: Augment = field(default_factory=Augment)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's figures: ``epoch`` 0 is the published model, before any step. ``loss`` and
    ``active``: the mean over the epoch's batches, as mined (``None`` for epoch 0). ``training_loss``: the triplet
    loss over every valid triplet of the whole training set, unaugmented, after the epoch: the
    same sum each time, so epochs compare (the mined loss does not: mining adapts)."""

    epoch: int
    loss: float | None
    active: float | None
    training_loss: float
    heldout_loss: float
    heldout_accuracy: float
    heldout_auc: float

    def line(self) -> str:
        mined = "before training: " if self.loss is None else f"loss {self.loss:.4f}, active triplets {self.active:.0%}, "
        return (
            f"{mined}training-set loss {self.training_loss:.4f}, held-out loss {self.heldout_loss:.4f}, "
            f"accuracy {self.heldout_accuracy:.4f}, AUC {self.heldout_auc:.4f}"
        )


@dataclass
class TrainResult:
    """The kept network (in eval mode), every epoch's record, the epoch kept, and the held-out
    reports of the published model and of the kept one."""

    model: InceptionResnetV1
    history: list[EpochRecord]
    best_epoch: int
    before: PairsReport
    after: PairsReport

    def figures(self) -> dict[str, Any]:
        """The held-out figures as the manifest records them."""
        keys = ("accuracy", "accuracy_std", "auc", "eer", "val_at_far_1e_3", "threshold", "pairs")
        return {
            "best_epoch": self.best_epoch,
            "before": {k: getattr(self.before, k) for k in keys},
            "after": {k: getattr(self.after, k) for k in keys},
            "epochs": [vars(record) for record in self.history],
        }


def set_trainable(model: InceptionResnetV1, blocks: int) -> list[torch.nn.Parameter]:
    """Freeze everything but the last ``blocks`` body blocks and the head; the parameters that
    learn. ``blocks`` = :data:`BODY_BLOCKS` trains the body whole (the stem stays frozen)."""
    if not 0 <= blocks <= BODY_BLOCKS:
        raise ValueError(f"train_blocks must be 0 to {BODY_BLOCKS} (got {blocks})")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    modules = [model.bottleneck, model.bottleneck_bn, *(list(model.body)[BODY_BLOCKS - blocks :] if blocks else [])]
    learning = [p for module in modules for p in module.parameters()]
    for parameter in learning:
        parameter.requires_grad_(True)
    return learning


def _embed(model: InceptionResnetV1, crops: np.ndarray, chunk: int = 32) -> np.ndarray:
    with torch.inference_mode():
        parts = [model(torch.from_numpy(crops[i : i + chunk])).numpy() for i in range(0, len(crops), chunk)]
    return np.concatenate(parts)


def _set_loss(vectors: np.ndarray, labels: np.ndarray, margin: float) -> float:
    """The triplet loss over every valid triplet of a whole set."""
    distances = squared_distances(torch.from_numpy(vectors))
    return float(triplet_loss(distances, mine_triplets(distances, torch.from_numpy(labels), margin, "batch-all"), margin))


@dataclass(frozen=True)
class _Measure:
    """The held-out report, and its triplet loss: accuracy and AUC reach 1 on a small easy set
    and stop telling epochs apart, the loss does not."""

    report: PairsReport
    loss: float

    def key(self) -> tuple[float, float, float]:
        return (self.report.accuracy, self.report.auc, -self.loss)


def _heldout(model: InceptionResnetV1, faces: FaceSet, pairs: PairList, margin: float) -> _Measure:
    vectors = _embed(model, faces.crops)
    return _Measure(score_pairs(dict(zip(faces.paths, vectors)), pairs), _set_loss(vectors, faces.labels, margin))


def _training_loss(model: InceptionResnetV1, faces: FaceSet, margin: float) -> float:
    return _set_loss(_embed(model, faces.crops), faces.labels, margin)


def _epoch(
    model: InceptionResnetV1,
    faces: FaceSet,
    settings: TrainSettings,
    optimiser: torch.optim.Optimizer,
    rng: np.random.Generator,
    progress: Callable[[str], None],
) -> tuple[float, float]:
    """One pass over the training people; (mean batch loss, fraction of active triplets)."""
    sampler = PKSampler(faces.labels, settings.people, settings.photos, rng)
    losses, active, candidates = [], 0, 0
    for step, batch in enumerate(sampler, start=1):
        crops = settings.augment(faces.crops[batch], rng)
        labels = torch.from_numpy(faces.labels[batch])
        distances = squared_distances(model(torch.from_numpy(crops)))
        mined = mine_triplets(distances, labels, settings.margin, settings.strategy)
        loss = triplet_loss(distances, mined, settings.margin)
        if mined.active:  # with nothing to learn, Adam would still move the weights on its momentum
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        losses.append(float(loss.detach()))
        active, candidates = active + mined.active, candidates + mined.candidates
        progress(f"batch {step}/{len(sampler)}: loss {np.mean(losses):.4f}, active triplets {active / candidates:.0%}")
    return float(np.mean(losses)), active / candidates if candidates else 0.0


def _prefixed(progress: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: progress(f"{prefix} {line}")


def train(
    model: InceptionResnetV1,
    training: FaceSet,
    heldout: FaceSet,
    settings: TrainSettings,
    progress: Callable[[str], None] = lambda _: None,
) -> TrainResult:
    """Train ``model`` (changed in place) on ``training``, measuring on ``heldout`` (other people);
    returns the best epoch's network. ``progress`` gets a line per batch and per measurement."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    learning = set_trainable(model, settings.train_blocks)
    model.eval()
    optimiser = torch.optim.Adam(learning, lr=settings.learning_rate)
    pairs = heldout_pairs(heldout, settings.seed)
    before = best = _heldout(model, heldout, pairs, settings.margin)
    start = _training_loss(model, training, settings.margin)
    history = [EpochRecord(0, None, None, start, before.loss, before.report.accuracy, before.report.auc)]
    progress(f"epoch 0/{settings.epochs}: {history[0].line()}")
    kept, best_epoch = copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, settings.epochs + 1):
        batches = _prefixed(progress, f"epoch {epoch}/{settings.epochs}")
        loss, active = _epoch(model, training, settings, optimiser, rng, batches)
        measure = _heldout(model, heldout, pairs, settings.margin)
        objective = _training_loss(model, training, settings.margin)
        history.append(
            EpochRecord(epoch, loss, active, objective, measure.loss, measure.report.accuracy, measure.report.auc)
        )
        if measure.key() > best.key():
            best, best_epoch, kept = measure, epoch, copy.deepcopy(model.state_dict())
        progress(f"epoch {epoch}/{settings.epochs}: {history[-1].line()}" + (" (best so far)" if best_epoch == epoch else ""))
    model.load_state_dict(kept)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return TrainResult(model.eval(), history, best_epoch, before.report, best.report)
