"""Hungarian matching and the voxel-aggregated mask losses against naive per-point formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tracklift.models import HungarianMatcher
from tracklift.models.losses import (
    matched_mask_losses,
    objectness_loss,
    pairwise_mask_costs,
    per_unit,
    scene_targets,
)


def _scene(n_points=500, n_vox=80, n_inst=4, seed=0, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    p2v = torch.randint(0, n_vox, (n_points,), generator=g)
    # Instance = a function of the voxel (plus some unlabelled points and a few mixed voxels).
    inst = (p2v % (n_inst + 1)).clone()
    flip = torch.rand(n_points, generator=g) < noise
    inst[flip] = torch.randint(0, n_inst + 1, (int(flip.sum()),), generator=g)
    return p2v, inst


def test_pairwise_costs_equal_naive_per_point_losses():
    p2v, inst = _scene()
    t = scene_targets(p2v, inst, dtype=torch.float64)
    assert t.ids.tolist() == [1, 2, 3, 4]
    q = 6
    vox_logits = torch.randn(q, 80, dtype=torch.float64) * 3
    bce, dice = pairwise_mask_costs(vox_logits[:, t.voxels], t)
    lab = inst != 0
    pt_logits = vox_logits[:, p2v[lab]]  # (Q, P) per labelled point
    for j, tid in enumerate(t.ids.tolist()):
        target = (inst[lab] == tid).to(torch.float64)
        for i in range(q):
            ref_bce = F.binary_cross_entropy_with_logits(pt_logits[i], target)
            p = pt_logits[i].sigmoid()
            ref_dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
            torch.testing.assert_close(bce[i, j], ref_bce)
            torch.testing.assert_close(dice[i, j], ref_dice)
    # Matched losses are the same quantities pair by pair.
    mb, md = matched_mask_losses(vox_logits[:4][:, t.voxels], t.counts, t.totals)
    torch.testing.assert_close(mb, bce[:4].diagonal())
    torch.testing.assert_close(md, dice[:4].diagonal())


def test_equal_unit_weights_are_soft_share_losses_over_units():
    """``per_unit``: every unit weighs the same; its target is the share of its labelled points per instance."""
    p2v, inst = _scene()
    t = per_unit(scene_targets(p2v, inst, dtype=torch.float64))
    assert torch.all(t.totals == 1) and torch.allclose(
        t.counts.sum(0), torch.ones(t.voxels.numel(), dtype=t.counts.dtype)
    )
    logits = torch.randn(5, t.voxels.numel(), dtype=torch.float64) * 3
    bce, dice = pairwise_mask_costs(logits, t)
    for j in range(t.num_targets):
        share = t.counts[j]
        for i in range(5):
            ref_bce = F.binary_cross_entropy_with_logits(logits[i], share)  # mean over units
            p = logits[i].sigmoid()
            ref_dice = 1 - (2 * (p * share).sum() + 1) / (p.sum() + share.sum() + 1)
            torch.testing.assert_close(bce[i, j], ref_bce)
            torch.testing.assert_close(dice[i, j], ref_dice)
    # a unit of one point weighs as much as one of a hundred: a point-weighted loss would not
    units = torch.zeros(101, dtype=torch.int64)
    units[100] = 1  # unit 0: 100 points of instance 1; unit 1: 1 point of instance 2
    ids = torch.ones(101, dtype=torch.int64)
    ids[100] = 2
    by_points = scene_targets(units, ids, dtype=torch.float64)
    by_units = per_unit(by_points)
    small_wrong = torch.tensor([[5.0, 5.0]], dtype=torch.float64)  # instance 1's mask spills onto unit 1
    big_wrong = torch.tensor([[-5.0, -5.0]], dtype=torch.float64)  # instance 1's mask misses unit 0
    assert (
        pairwise_mask_costs(small_wrong, by_units)[0][0, 0]
        > 40 * pairwise_mask_costs(small_wrong, by_points)[0][0, 0]
    )
    assert (
        pairwise_mask_costs(big_wrong, by_units)[0][0, 0]
        < 0.6 * pairwise_mask_costs(big_wrong, by_points)[0][0, 0]
    )


def test_point_subset_and_unlabelled_scene():
    p2v, inst = _scene()
    sub = scene_targets(p2v, inst, num_points=50, generator=torch.Generator().manual_seed(0))
    assert sub.num_points == 50
    none = scene_targets(p2v, torch.zeros_like(inst))
    assert none.num_targets == 0 and none.counts.shape == (0, 0)
    qi, ti = HungarianMatcher().match(torch.zeros(3, 0), torch.zeros(3), none)
    assert qi.numel() == 0 and ti.numel() == 0


def test_matcher_finds_identity_on_perfect_predictions():
    p2v, inst = _scene(n_inst=5, seed=1, noise=0.0)
    t = scene_targets(p2v, inst)
    n_q = 9
    perm = torch.tensor([7, 2, 5, 0, 8])  # query perm[j] predicts target j exactly
    logits = torch.randn(n_q, t.voxels.numel()) * 0.5
    obj = torch.full((n_q,), -2.0)
    for j in range(t.num_targets):
        owner = t.counts[j] > 0
        logits[perm[j]] = torch.where(owner, 12.0, -12.0)
        obj[perm[j]] = 4.0
    qi, ti = HungarianMatcher(5.0, 2.0, 2.0).match(logits, obj, t)
    assert dict(zip(ti.tolist(), qi.tolist())) == {j: int(perm[j]) for j in range(5)}
    # Without the objectness term the masks alone decide the same way.
    qi2, ti2 = HungarianMatcher(5.0, 2.0, 0.0).match(logits, obj, t)
    assert dict(zip(ti2.tolist(), qi2.tolist())) == {j: int(perm[j]) for j in range(5)}


def test_matcher_with_fewer_queries_than_targets():
    p2v, inst = _scene(n_inst=4)
    t = scene_targets(p2v, inst)
    qi, ti = HungarianMatcher().match(torch.randn(2, t.voxels.numel()), torch.zeros(2), t)
    assert len(qi) == 2 and len(set(ti.tolist())) == 2


def test_objectness_loss_weights_unmatched_queries():
    logits = torch.tensor([[3.0, -1.0, 0.5]])
    matched = torch.tensor([[True, False, False]])
    got = objectness_loss(logits, matched, 0.1)
    terms = F.binary_cross_entropy_with_logits(logits, matched.float(), reduction="none")[0]
    want = (terms[0] + 0.1 * terms[1] + 0.1 * terms[2]) / 1.2
    torch.testing.assert_close(got, want)
