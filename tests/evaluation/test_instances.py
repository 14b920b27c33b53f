"""Instances: construction checks, indexing, id-map conversion."""

from __future__ import annotations

import numpy as np
import pytest

from tracklift.structures import Instances


def _three() -> Instances:
    masks = np.zeros((3, 6), dtype=bool)
    masks[0, :3] = True
    masks[1, 2:5] = True
    masks[2, 4:] = True
    return Instances(masks, np.array([0.2, 0.9, 0.5]), np.array([7, 8, 9]))


def test_len_num_points_sizes():
    inst = _three()
    assert len(inst) == 3
    assert inst.num_points == 6
    assert inst.sizes.tolist() == [3, 3, 2]
    assert len(Instances.empty(10)) == 0 and Instances.empty(10).num_points == 10


def test_boolean_and_integer_indexing():
    inst = _three()
    high = inst[inst.scores > 0.3]
    assert len(high) == 2
    assert high.scores.tolist() == [0.9, 0.5]
    assert high.labels.tolist() == [8, 9]
    assert np.array_equal(high.masks, inst.masks[1:])
    one = inst[0]
    assert len(one) == 1 and one.labels.tolist() == [7]
    assert inst[-1].scores.tolist() == [0.5]
    picked = inst[np.array([2, 0])]
    assert picked.scores.tolist() == [0.5, 0.2]
    assert len(inst[1:]) == 2
    with pytest.raises(IndexError):
        inst[3]
    with pytest.raises(IndexError):
        inst[np.array([True, False])]


def test_from_ids_and_back():
    ids = np.array([0, 5, 5, 2, 0, 9, 2])
    inst = Instances.from_ids(ids, scores=np.array([0.1, 0.2, 0.3]))
    assert len(inst) == 3  # ids 2, 5, 9 in ascending order
    assert inst.masks[0].tolist() == (ids == 2).tolist()
    assert inst.masks[1].tolist() == (ids == 5).tolist()
    assert inst.masks[2].tolist() == (ids == 9).tolist()
    assert inst.scores.tolist() == [0.1, 0.2, 0.3]
    back = inst.to_ids()
    assert back.tolist() == [0, 2, 2, 1, 0, 3, 1]
    assert np.all(Instances.from_ids(ids).scores == 1.0)
    assert len(Instances.from_ids(np.zeros(4, dtype=np.int64))) == 0


def test_to_ids_highest_score_wins_ties_to_earlier():
    inst = _three()
    # point 2 is in instances 0 (0.2) and 1 (0.9); point 4 in 1 (0.9) and 2 (0.5)
    assert inst.to_ids().tolist() == [1, 1, 2, 2, 2, 3]
    tied = Instances(np.ones((2, 3), dtype=bool), np.array([0.5, 0.5]))
    assert tied.to_ids().tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    "masks, scores, labels, err",
    [
        (np.zeros(5, dtype=bool), None, None, ValueError),
        (np.zeros((2, 5), dtype=np.int64), None, None, TypeError),
        (np.zeros((2, 5), dtype=bool), np.ones(3), None, ValueError),
        (np.zeros((2, 5), dtype=bool), np.array([1.0, np.nan]), None, ValueError),
        (np.zeros((2, 5), dtype=bool), np.ones(2), np.ones(3, dtype=np.int64), ValueError),
        (np.zeros((2, 5), dtype=bool), np.ones(2), np.ones(2), TypeError),
    ],
)
def test_validation(masks, scores, labels, err):
    with pytest.raises(err):
        Instances(masks, scores, labels)


def test_from_ids_validation():
    with pytest.raises(ValueError):
        Instances.from_ids(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError):
        Instances.from_ids(np.zeros(3))
    with pytest.raises(ValueError):
        Instances.from_ids(np.array([1, 2, 2]), scores=np.ones(3))
