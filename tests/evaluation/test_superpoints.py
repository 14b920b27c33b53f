"""superpoint_purity on hand-made cases."""

import math

import numpy as np
import pytest

from tracklift.evaluation import superpoint_purity


def test_pure_superpoints():
    assert superpoint_purity([0, 0, 1, 1, 2], [3001, 3001, 3002, 3002, 4001]) == 1.0


def test_one_vertex_in_the_wrong_superpoint():
    # superpoint 0 holds three of instance A and one of B: B's vertex is not in its majority
    assert superpoint_purity([0, 0, 0, 0, 1, 1], [1, 1, 1, 2, 2, 2]) == pytest.approx(5 / 6)


def test_one_superpoint_over_everything():
    assert superpoint_purity(np.zeros(10, int), [1] * 6 + [2] * 4) == pytest.approx(0.6)


def test_unannotated_vertices_neither_vote_nor_count():
    # superpoint 0: two unannotated, one A, one B -> majority count 1 of 2 annotated
    sp = [0, 0, 0, 0, 1, 1]
    gt = [0, 0, 1, 2, 2, 2]
    assert superpoint_purity(sp, gt) == pytest.approx(3 / 4)
    # a superpoint of unannotated vertices only plays no part
    assert superpoint_purity([0, 0, 1, 1], [0, 0, 5, 5]) == 1.0


def test_ties_and_arbitrary_ids():
    assert superpoint_purity([7, 7, 9000, 9000], [4, 5, 6, 6]) == pytest.approx(3 / 4)


def test_no_annotation_is_nan_and_lengths_must_match():
    assert math.isnan(superpoint_purity([0, 1], [0, 0]))
    with pytest.raises(ValueError, match="differ in length"):
        superpoint_purity([0, 1, 2], [1, 1])


def test_matches_a_direct_count():
    rng = np.random.default_rng(0)
    sp, gt = rng.integers(0, 40, 3000), rng.integers(0, 6, 3000)
    good = 0
    for s in np.unique(sp):
        g = gt[(sp == s) & (gt != 0)]
        good += np.bincount(g).max() if len(g) else 0
    assert superpoint_purity(sp, gt) == pytest.approx(good / (gt != 0).sum())
