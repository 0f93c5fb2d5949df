"""The miners against a brute-force reference on random embeddings, the loss against a hand
computation, and the P x K sampler's batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.train.mining import STRATEGIES, PKSampler, mine_triplets, squared_distances, triplet_loss


def _batch(seed: int, people: int, photos: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(people * photos, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.repeat(rng.permutation(people * 3)[:people], photos)
    order = rng.permutation(len(labels))  # people need not sit in blocks
    return torch.from_numpy(vectors[order]), torch.from_numpy(labels[order])


def _reference(d: np.ndarray, labels: np.ndarray, margin: float, strategy: str) -> list[tuple[int, int, int]]:
    """Loops over every (anchor, positive, negative), straight from the definitions."""
    n = len(labels)
    chosen = []
    for a in range(n):
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            negatives = [x for x in range(n) if labels[x] != labels[a]]
            if strategy == "batch-all":
                chosen += [(a, p, x) for x in negatives]
                continue
            if strategy == "semi-hard":
                negatives = [x for x in negatives if d[a, p] < d[a, x] < d[a, p] + margin]
            if negatives:
                best = min(negatives, key=lambda x: (d[a, x], x))
                chosen.append((a, p, best))
    return chosen


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    people=st.integers(2, 5),
    photos=st.integers(2, 4),
    dim=st.integers(2, 8),
    margin=st.floats(0.01, 2.0),
    strategy=st.sampled_from(STRATEGIES),
)
def test_miner_chooses_what_brute_force_chooses(
    seed: int, people: int, photos: int, dim: int, margin: float, strategy: str
) -> None:
    vectors, labels = _batch(seed, people, photos, dim)
    d = squared_distances(vectors)
    mined = mine_triplets(d, labels, margin, strategy)  # type: ignore[arg-type]
    got = sorted(zip(mined.anchors.tolist(), mined.positives.tolist(), mined.negatives.tolist()))
    expected = _reference(d.numpy(), labels.numpy(), margin, strategy)
    assert got == sorted(expected)
    dn = d.numpy()
    active = sum(dn[a, p] - dn[a, x] + margin > 0 for a, p, x in expected)
    assert mined.active == active
    pairs = sum(int(labels[i] == labels[j]) for i in range(len(labels)) for j in range(len(labels)) if i != j)
    assert mined.candidates == (len(expected) if strategy == "batch-all" else pairs)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), dim=st.integers(2, 16))
def test_squared_distances_are_those_of_the_definition(seed: int, n: int, dim: int) -> None:
    vectors, _ = _batch(seed, n, 1, dim)
    brute = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    assert torch.allclose(squared_distances(vectors), brute, atol=1e-12)


def test_loss_matches_a_hand_computation() -> None:
    # Four unit vectors in the plane at 0, 30, 90 and 180 degrees; people 0, 0, 1, 1.
    angles = torch.tensor([0.0, 30.0, 90.0, 180.0], dtype=torch.float64).deg2rad()
    vectors = torch.stack([angles.cos(), angles.sin()], dim=1).requires_grad_()
    labels = torch.tensor([0, 0, 1, 1])
    d = squared_distances(vectors)
    # squared distances 2 - 2 cos: d01 = 2 - sqrt(3) = 0.26795, d02 = 2, d03 = 4, d12 = 1, d13 = 3.73205, d23 = 2
    mined = mine_triplets(d, labels, 0.2, "hardest")
    triplets = sorted(zip(mined.anchors.tolist(), mined.positives.tolist(), mined.negatives.tolist()))
    assert triplets == [(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)]
    loss = triplet_loss(d, mined, 0.2)
    # (0,1,2): 0.26795 - 2 + 0.2 < 0 -> 0; (1,0,2): 0.26795 - 1 + 0.2 < 0 -> 0;
    # (2,3,1): 2 - 1 + 0.2 = 1.2; (3,2,1): 2 - 3.73205 + 0.2 < 0 -> 0; mean = 1.2 / 4 = 0.3
    assert loss.item() == pytest.approx(0.3, abs=1e-12)
    assert mined.active == 1 and mined.active_fraction == pytest.approx(0.25)
    loss.backward()
    assert vectors.grad is not None and vectors.grad.abs().sum() > 0


def test_loss_without_triplets_is_zero_and_keeps_the_graph() -> None:
    vectors = torch.eye(4, dtype=torch.float64).requires_grad_()
    d = squared_distances(vectors)
    # orthogonal unit vectors: every distance is 2, so no negative is strictly farther than a positive
    mined = mine_triplets(d, torch.tensor([0, 0, 1, 1]), 0.2, "semi-hard")
    assert len(mined.anchors) == 0 and mined.candidates == 4
    loss = triplet_loss(d, mined, 0.2)
    loss.backward()
    assert loss.item() == 0.0


def test_sampler_batches_hold_p_people_with_k_photos() -> None:
    labels = [0] * 5 + [1] * 2 + [2] * 3 + [3] * 1 + [4] * 4
    sampler = PKSampler(labels, p=3, k=3, rng=np.random.default_rng(7))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2  # 4 people with 2+ photos, 3 per batch
    seen = set()
    for batch in batches:
        people = [labels[i] for i in batch]
        assert len(set(people)) == 3
        assert all(people.count(person) == 3 for person in set(people))
        assert 3 not in people  # one photo: no positive to give
        seen |= set(people)
    assert seen == {0, 1, 2, 4}


@pytest.mark.parametrize(("labels", "p", "k", "message"), [
    ([0, 0, 1], 2, 2, "at least 2 people with 2 or more photos (got 1)"),
    ([0, 0, 1, 1], 1, 2, "at least 2 people (got p=1)"),
    ([0, 0, 1, 1], 2, 1, "at least 2 photos per person (got k=1)"),
])
def test_sampler_refuses_what_cannot_make_a_triplet(labels: list[int], p: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PKSampler(labels, p, k, np.random.default_rng(0))
