"""Pair mining and pair loss on hand-made label/count maps (``transferlimits.models.pair_mining``)."""

from __future__ import annotations

import math

import pytest
import torch

from transferlimits.models.pair_mining import cancer_cell_counts, candidate_pairs, mine_pairs, patch_pair_loss

torch.set_num_threads(1)


def _pairs(t: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(r) for r in t.tolist()}


def _flat2(r: int, c: int, w: int = 5) -> int:
    return r * w + c


# ---------------------------------------------------------------- cancer_cell_counts
def test_cell_counts_2d_by_hand():
    labels = torch.tensor(
        [
            [0, 1, 2, 2],
            [1, 3, 2, 3],
            [0, 0, 1, 1],
            [0, 2, 1, 0],
        ]
    )
    # classes 2 and 3 count; classes 0 and 1 do not
    expected = torch.tensor([[1, 4], [1, 0]])
    assert torch.equal(cancer_cell_counts(labels, 2), expected)
    assert torch.equal(cancer_cell_counts(labels, (1, 4)), torch.tensor([[2], [3], [0], [1]]))


def test_cell_counts_3d_and_batched():
    labels = torch.zeros(4, 4, 6, dtype=torch.long)
    labels[0:2, 0:2, 0:3] = 3  # fills cell (0, 0, 0) of size 2x2x3 -> 12
    labels[3, 3, 5] = 2  # one voxel in cell (1, 1, 1)
    counts = cancer_cell_counts(labels, (2, 2, 3))
    expected = torch.zeros(2, 2, 2, dtype=torch.long)
    expected[0, 0, 0], expected[1, 1, 1] = 12, 1
    assert torch.equal(counts, expected)
    batched = cancer_cell_counts(torch.stack([labels, labels]), (2, 2, 3))
    assert batched.shape == (2, 2, 2, 2) and torch.equal(batched[1], expected)


def test_cell_counts_bad_arguments():
    with pytest.raises(ValueError, match="multiple"):
        cancer_cell_counts(torch.zeros(5, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError):
        cancer_cell_counts(torch.zeros(4, 4, dtype=torch.long), (2,))
    with pytest.raises(ValueError):
        cancer_cell_counts(torch.zeros(4, 4, dtype=torch.long), 0)


# ---------------------------------------------------------------- candidate pairs (2D)
def _map_a() -> torch.Tensor:
    """5x5 counts (cells of 64 px): anchors (2,2)=64 and (2,3)=62; (1,2)=3 is not clean;
    (0,0)=3 not clean; (4,4)=2 is clean (boundary); (3,2)=61 neither anchor nor clean."""
    c = torch.zeros(5, 5, dtype=torch.long)
    c[2, 2], c[2, 3] = 64, 62
    c[1, 2] = 3
    c[0, 0] = 3
    c[4, 4] = 2
    c[3, 2] = 61
    return c


def test_candidate_pairs_hand_made_2d():
    pos, neg = candidate_pairs(_map_a(), 64)
    f = _flat2
    assert _pairs(pos) == {(f(2, 2), f(2, 3)), (f(2, 3), f(2, 2))}
    # anchor (2,2): offsets {-2,0,2}^2; (0,0) dirty; (0,2) via dirty (1,2); (2,4) via anchor (2,3);
    # (4,2) via (3,2)=61; kept: (0,4), (2,0), (4,0), (4,4) (count 2 is clean)
    expected_22 = {(f(2, 2), f(r, c)) for r, c in [(0, 4), (2, 0), (4, 0), (4, 4)]}
    # anchor (2,3): in-bounds targets (0,1) via dirty (1,2); (0,3); (2,1) via anchor (2,2);
    # (4,1) via dirty (3,2); (4,3) via (3,3) clean -> kept: (0,3), (4,3)
    expected_23 = {(f(2, 3), f(r, c)) for r, c in [(0, 3), (4, 3)]}
    assert _pairs(neg) == expected_22 | expected_23


def test_candidate_pairs_near_negatives_when_not_distant():
    pos, neg = candidate_pairs(_map_a(), 64, distant_negative=False)
    f = _flat2
    assert len(pos) == 2
    # 3x3 window of (2,2): clean cells (1,1), (1,3), (2,1), (3,1), (3,3); of (2,3): (1,3), (1,4), (2,4),
    # (3,3), (3,4)
    exp = {(f(2, 2), f(r, c)) for r, c in [(1, 1), (1, 3), (2, 1), (3, 1), (3, 3)]}
    exp |= {(f(2, 3), f(r, c)) for r, c in [(1, 3), (1, 4), (2, 4), (3, 3), (3, 4)]}
    assert _pairs(neg) == exp


def test_thresholds_scale_with_cell_size():
    c = torch.tensor([[16, 16, 0, 0, 0], [15, 0, 0, 0, 1]])
    # cell of 16 voxels: anchor needs >= 15.5 -> 16; clean needs <= 0.5 -> 0
    pos, neg = candidate_pairs(c, 16)
    assert _pairs(pos) == {(0, 1), (1, 0)}
    # anchor (0,0): (0,2) via (0,1) anchor -> dropped; anchor (0,1): (0,3) via (0,2) clean -> kept
    assert _pairs(neg) == {(1, 3)}
    # the same map with cells of 64 voxels has no anchors at all
    assert len(candidate_pairs(c, 64)[0]) == 0


def test_candidate_pairs_3d_window():
    c = torch.zeros(5, 5, 5, dtype=torch.long)
    c[2, 2, 2], c[2, 2, 3] = 64, 64
    pos, neg = candidate_pairs(c, 64)
    a, b = 2 * 25 + 2 * 5 + 2, 2 * 25 + 2 * 5 + 3
    assert _pairs(pos) == {(a, b), (b, a)}
    # (2,2,2): 26 far offsets, all inside, minus (0,0,+2) whose middle is the anchor (2,2,3) -> 25
    # (2,2,3): w+2 leaves the grid -> 17 offsets inside, minus (0,0,-2) via (2,2,2) -> 16
    assert len(neg) == 25 + 16
    assert (a, a + 2) not in _pairs(neg) and (b, b - 2) not in _pairs(neg)
    assert (a, a + 2 * 25) in _pairs(neg)  # two slices further: a 3D neighbour


# ---------------------------------------------------------------- balancing, cap, determinism
def test_mine_pairs_balances_and_shuffles_deterministically():
    pairs, is_pos = mine_pairs(_map_a(), 64, rng=torch.Generator().manual_seed(3))
    assert is_pos.tolist() == [True, True, False, False]  # min(2 pos, 6 neg) = 2 of each
    all_pos, all_neg = candidate_pairs(_map_a(), 64)
    assert _pairs(pairs[:2]) == _pairs(all_pos)
    assert _pairs(pairs[2:]) <= _pairs(all_neg)
    again, _ = mine_pairs(_map_a(), 64, rng=torch.Generator().manual_seed(3))
    assert torch.equal(pairs, again)


def test_mine_pairs_max_pairs_cap():
    c = torch.zeros(12, 12, dtype=torch.long)
    c[3:9, 3:9] = 64
    all_pos, all_neg = candidate_pairs(c, 64)
    assert len(all_pos) > 30 and len(all_neg) > 30
    pairs, is_pos = mine_pairs(c, 64)
    assert int(is_pos.sum()) == 30 and int((~is_pos).sum()) == 30
    pairs5, is_pos5 = mine_pairs(c, 64, max_pairs=5)
    assert pairs5.shape == (10, 2) and int(is_pos5.sum()) == 5
    assert _pairs(pairs5[is_pos5]) <= _pairs(all_pos) and _pairs(pairs5[~is_pos5]) <= _pairs(all_neg)


def test_mine_pairs_no_anchor_or_no_negative_gives_empty():
    pairs, is_pos = mine_pairs(torch.zeros(6, 6, dtype=torch.long), 64)
    assert pairs.shape == (0, 2) and is_pos.shape == (0,)
    full = torch.full((4, 4), 64)  # anchors and positives everywhere, no clean cell
    assert mine_pairs(full, 64)[0].shape == (0, 2)


def test_mine_pairs_bad_arguments():
    with pytest.raises(ValueError):
        mine_pairs(torch.zeros(4, dtype=torch.long), 64)
    with pytest.raises(ValueError):
        mine_pairs(torch.zeros(4, 4, dtype=torch.long), 0)
    with pytest.raises(ValueError):
        mine_pairs(torch.zeros(4, 4, dtype=torch.long), 64, anchor_frac=0.1, neg_frac=0.5)
    with pytest.raises(ValueError):
        mine_pairs(torch.zeros(4, 4, dtype=torch.long), 64, max_pairs=-1)


# ---------------------------------------------------------------- pair loss
def test_pair_loss_values_by_hand():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    v09 = torch.tensor([0.9, math.sqrt(1 - 0.81)])  # cos(e0, v09) = 0.9
    one = torch.ones(1, dtype=torch.bool)
    zero = torch.zeros(1, dtype=torch.bool)
    assert patch_pair_loss(e0[None], (3 * e0)[None], one).item() == pytest.approx(0.0, abs=1e-7)
    assert patch_pair_loss(e0[None], e1[None], zero).item() == pytest.approx(0.0, abs=1e-7)
    assert patch_pair_loss(e0[None], v09[None], zero).item() == pytest.approx(0.4, abs=1e-6)
    assert patch_pair_loss(e0[None], v09[None], one).item() == pytest.approx(0.1, abs=1e-6)
    assert patch_pair_loss(e0[None], v09[None], zero, margin=0.8).item() == pytest.approx(0.1, abs=1e-6)
    # mean over pairs: positive orthogonal (1.0) + negative cos 0.9 (0.4) -> 0.7
    a = torch.stack([e0, e0])
    b = torch.stack([e1, v09])
    assert patch_pair_loss(a, b, torch.tensor([True, False])).item() == pytest.approx(0.7, abs=1e-6)


def test_pair_loss_empty_is_differentiable_zero():
    feats = torch.randn(0, 8, requires_grad=True)
    loss = patch_pair_loss(feats, feats, torch.zeros(0, dtype=torch.bool))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert feats.grad is not None


def test_pair_loss_bad_shapes():
    with pytest.raises(ValueError):
        patch_pair_loss(torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError):
        patch_pair_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, dtype=torch.bool))
