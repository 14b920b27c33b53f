"""Superpoints on training samples: stage 3 takes the scene's, subsets follow, training fills in the rest."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.lifting.scenes import build_room
from tracklift.lifting import SampleConfig, lift_tracked, stage3_sample
from tracklift.lifting.samples import Sample
from tracklift.training.data import subsample, with_superpoints


@pytest.fixture(scope="module")
def room():
    return build_room(n_frames=8, width=80, height=60, res=0.1)


def test_stage3_sample_takes_the_scenes_superpoints_when_it_has_them(room):
    lab = lift_tracked(room.as_scene(), [f.instance for f in room.frames])
    n = len(room.mesh.vertices)
    sp = np.arange(n) // 10
    with_sp = stage3_sample(dataclasses.replace(room, superpoints=sp).as_scene(), lab, SampleConfig())
    np.testing.assert_array_equal(with_sp.superpoints, sp)
    # No segments file and nothing computed yet: the mesh segmentator is not run for the sample.
    assert stage3_sample(room.as_scene(), lab, SampleConfig()).superpoints is None


def test_subset_keeps_superpoints_in_step_and_validation():
    pts = np.random.default_rng(0).uniform(0, 1, (30, 3))
    s = Sample(pts, np.zeros((30, 3)), np.ones(30), "a", 1, (0,), superpoints=np.arange(30) % 4)
    part = s.subset(np.array([5, 2, 9]))
    assert part.superpoints.tolist() == [1, 2, 1] and part.points.shape == (3, 3)
    assert Sample(pts, np.zeros((30, 3)), np.ones(30), "a", 1).subset([0, 1]).superpoints is None
    with pytest.raises(ValueError, match="superpoint"):
        Sample(pts, np.zeros((30, 3)), np.ones(30), "a", 1, superpoints=np.arange(29))
    with pytest.raises(ValueError, match="negative superpoint"):
        Sample(pts, np.zeros((30, 3)), np.ones(30), "a", 1, superpoints=np.full(30, -1))


def test_training_computes_superpoints_once_and_subsets_carry_them():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 2, (3000, 3)) * np.array([1.0, 1.0, 0.0])  # a floor
    ids = np.concatenate([np.ones(1500), np.zeros(1500)]).astype(np.int64)
    ids[-10:] = -1  # outside the scan
    s = Sample(pts, np.zeros((3000, 3)), ids, "a", 1)
    first = subsample(s, 500, rng)
    assert s.superpoints is not None and s.superpoints.shape == (3000,)  # kept on the sample
    kept = s.superpoints
    assert len(first) == 500 and first.superpoints is not None
    # The subset's ids are the sample's at the chosen points.
    j = [int(np.flatnonzero((s.points == p).all(1))[0]) for p in first.points[:20]]
    np.testing.assert_array_equal(first.superpoints[:20], kept[j])
    subsample(s, 500, rng)
    assert s.superpoints is kept  # not recomputed
    given = Sample(pts, np.zeros((3000, 3)), ids, "a", 3, superpoints=np.zeros(3000, np.int64))
    assert with_superpoints(given).superpoints.max() == 0  # a sample's own superpoints are kept
