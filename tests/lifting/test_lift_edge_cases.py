"""Lifting scenes that read fine but whose frames contribute nothing (issue 10, defect 20): a frame whose masks
keep no visible vertex, a frame with no masks, a frame that sees no vertex at all, a scene where no frame
votes. Both lifting paths must label such scenes (the empty frames simply add no votes); only inputs that
cannot be lifted at all are errors, and those name the scene and frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.lifting.scenes import build_room
from tracklift.datasets.scene import Mesh, SceneData
from tracklift.errors import DataError
from tracklift.lifting import LiftConfig, lift_independent, lift_tracked
from tracklift.lifting.merge import SegmentMerger
from tracklift.lifting.vote import VoteAccumulator

LIFTS = {"independent": lift_independent, "tracked": lift_tracked}


@pytest.fixture(scope="module")
def room():
    return build_room(n_frames=8, width=80, height=60, res=0.15)


def _with_frames(data: SceneData, frames) -> SceneData:
    return dataclasses.replace(data, frames=list(frames))


def _blind(frame):
    """The frame with no valid depth anywhere: it sees no vertex."""
    return dataclasses.replace(frame, depth=np.zeros_like(frame.depth))


def _masks_off_surface(frame):
    """Masks kept only where the depth is invalid: they project onto no visible vertex."""
    depth = frame.depth.copy()
    depth[:, : depth.shape[1] // 2] = 0.0
    inst = frame.instance.copy()
    inst[:, depth.shape[1] // 2 :] = 0
    return dataclasses.replace(frame, depth=depth, instance=inst)


def _maps(frames):
    return [f.instance for f in frames]


@pytest.mark.parametrize("method", LIFTS)
@pytest.mark.parametrize("first", ["no masks", "masks off the surface", "sees nothing"])
def test_a_first_frame_that_votes_for_nothing_does_not_stop_the_scene(room, method, first):
    """The failing ScanNet scene: the first frame keeps no visible vertex under any mask. It adds no vote;
    tracked lifting gets the same votes as without it. (Independent merging also reads which vertices
    earlier frames saw, so a frame that sees vertices without masks may shift a few merges there.)"""
    f0 = room.frames[0]
    odd = {
        "no masks": dataclasses.replace(f0, instance=np.zeros_like(f0.instance)),
        "masks off the surface": _masks_off_surface(f0),
        "sees nothing": _blind(f0),
    }[first]
    data = _with_frames(room, [odd, *room.frames[1:]])
    lift = LIFTS[method]
    labels = lift(data.as_scene(), _maps(data.frames), LiftConfig(min_votes=1))
    reference = lift(room.as_scene(), [None, *_maps(room.frames[1:])], LiftConfig(min_votes=1))
    assert len(labels.instance_ids(20)) >= 5
    assert abs(len(labels.instance_ids(20)) - len(reference.instance_ids(20))) <= 1
    if method == "tracked" or first == "sees nothing":
        np.testing.assert_array_equal(labels.votes, reference.votes)
    # the odd frame's vertices count as seen (without a vote) exactly when it sees them
    assert (labels.seen >= reference.seen).all()
    if first == "sees nothing":
        np.testing.assert_array_equal(labels.seen, reference.seen)


@pytest.mark.parametrize("method", LIFTS)
def test_empty_frames_in_the_middle_and_at_the_end(room, method):
    frames = list(room.frames)
    frames[3] = _blind(frames[3])
    frames[-1] = dataclasses.replace(frames[-1], instance=np.zeros_like(frames[-1].instance))
    labels = LIFTS[method](_with_frames(room, frames).as_scene(), _maps(frames), LiftConfig(min_votes=1))
    assert len(labels.instance_ids(20)) >= 5


@pytest.mark.parametrize("method", LIFTS)
@pytest.mark.parametrize("kind", ["no masks", "sees nothing"])
def test_a_scene_where_no_frame_votes_labels_nothing(room, method, kind):
    if kind == "no masks":
        frames = [dataclasses.replace(f, instance=np.zeros_like(f.instance)) for f in room.frames]
    else:
        frames = [_blind(f) for f in room.frames]
    labels = LIFTS[method](_with_frames(room, frames).as_scene(), _maps(frames))
    assert len(labels) == len(room.mesh.vertices)
    assert not labels.ids.any() and not labels.votes.any()
    assert labels.seen.any() == (kind == "no masks")


@pytest.mark.parametrize("method", LIFTS)
def test_a_mesh_without_vertices_labels_nothing(room, method):
    data = dataclasses.replace(room, mesh=Mesh(np.zeros((0, 3), np.float32), None), gt_instance=None)
    labels = LIFTS[method](data.as_scene(), _maps(data.frames))
    assert len(labels) == 0


def test_ids_beyond_32_bits(room):
    """Tracked ids must fit the 32-bit vote keys: a DataError naming scene and frame, not a bare ValueError.
    Independent ids are only local labels (renumbered by the merger), so any integer is fine there."""
    maps = [m.astype(np.int64) for m in _maps(room.frames)]
    maps[2] = maps[2].copy()
    maps[2][maps[2] > 0] += 1 << 32
    with pytest.raises(DataError, match=r"room0000_00#frame2.*2\*\*32"):
        lift_tracked(room.as_scene(), maps)
    labels = lift_independent(room.as_scene(), maps, LiftConfig(min_votes=1))
    assert len(labels.instance_ids(20)) >= 5


def test_merger_and_accumulator_take_frames_without_votes():
    """The unit behind the scene tests: empty and all-zero frames before, between and after real ones."""
    m = SegmentMerger(100, min_segment_vertices=5, min_overlap_vertices=5)
    assert m.add_frame(np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []
    assert m.add_frame(np.arange(10), np.zeros(10)).tolist() == [0] * 10
    assert m.add_frame(np.arange(4), np.full(4, 3)).tolist() == [0] * 4  # too small to be a segment
    a = m.add_frame(np.arange(50), np.full(50, 7))
    assert set(a.tolist()) == {1} and m.num_instances == 1
    assert m.add_frame(np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []
    acc = VoteAccumulator(10)
    acc.add(np.arange(5), np.zeros(5))
    labels = acc.resolve(min_votes=1)
    assert labels.seen.tolist() == [1] * 5 + [0] * 5 and not labels.ids.any() and acc.num_pairs == 0
