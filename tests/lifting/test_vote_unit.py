"""Pseudo-labels voted per superpoint (``LiftConfig.vote_unit="superpoint"``) against per-vertex voting."""

import dataclasses

import numpy as np
import pytest

from tests.lifting.scenes import build_room
from tracklift.lifting import LiftConfig, lift_tracked
from tracklift.lifting.vote import VoteAccumulator


@pytest.fixture(scope="module")
def room():
    return build_room(n_frames=30, width=160, height=120, res=0.08)


def test_resolve_groups_pools_votes_per_group():
    acc = VoteAccumulator(6)
    # group 0 = vertices 0, 1, 2; group 1 = vertices 3, 4; group 2 = vertex 5 (never voted for)
    acc.add(np.array([0, 1, 2, 3, 4, 5]), np.array([7, 7, 9, 4, 0, 0]))
    acc.add(np.array([0, 1, 2, 3]), np.array([7, 9, 9, 4]))
    acc.add(np.array([2]), np.array([7]))
    groups = np.array([0, 0, 0, 1, 1, 2])
    lab = acc.resolve_groups(groups, min_votes=2, min_ratio=0.5)
    # group 0: 7 x4, 9 x3 over 7 sightings; group 1: 4 x2 over 3 sightings; group 2: nothing
    assert lab.ids.tolist() == [7, 7, 7, 4, 4, 0]
    assert lab.votes.tolist() == [4, 4, 4, 2, 2, 0]
    np.testing.assert_allclose(lab.confidence, [4 / 7] * 3 + [2 / 3] * 2 + [0.0])
    assert lab.seen.tolist() == [2, 2, 3, 2, 1, 1]  # per vertex, as for vertex voting
    # the per-vertex rule splits group 0 (vertex 2 prefers 9) and drops vertex 4 (no vote)
    assert acc.resolve(2, 0.5).ids.tolist() == [7, 0, 9, 4, 0, 0]
    strict = acc.resolve_groups(groups, min_votes=2, min_ratio=0.6)
    assert strict.ids.tolist() == [0, 0, 0, 4, 4, 0]
    with pytest.raises(ValueError, match="entries"):
        acc.resolve_groups(groups[:5])


def _corrupted_maps(room, seed=0):
    """Every other frame reads the box 3001 as box 4001 on the left half of the image (a systematic
    part-level error that outvotes the right id on the vertices that frame sees)."""
    maps = [f.instance.copy() for f in room.frames]
    rng = np.random.default_rng(seed)
    for m in maps[::2]:
        w = m.shape[1]
        left = np.zeros_like(m, dtype=bool)
        left[:, : w // 2 + int(rng.integers(0, w // 4))] = True
        m[(m == 3001) & left] = 4001
    return maps


def test_superpoint_votes_undo_part_level_errors(room):
    gt = room.gt_instance
    # superpoints that respect objects: each object piece is split in two by x (like mesh segments)
    half = (room.mesh.vertices[:, 0] > np.median(room.mesh.vertices[:, 0])).astype(np.int64)
    _, sp = np.unique(gt * 2 + half, return_inverse=True)
    scene = dataclasses.replace(room, superpoints=sp.astype(np.int64)).as_scene()
    maps = _corrupted_maps(room)
    # the vote units alone (the fragment merge would also undo this error: 4001 lies inside 3001's surface)
    vertex = lift_tracked(scene, maps, LiftConfig(vote_unit="vertex", fragment_share=2.0))
    superpoint = lift_tracked(scene, maps, LiftConfig(vote_unit="superpoint", fragment_share=2.0))
    box = (gt == 3001) & (vertex.seen >= 2)
    assert box.sum() > 50
    acc_v = (vertex.ids[box] == 3001).mean()
    acc_s = (superpoint.ids[box] == 3001).mean()
    assert acc_v < 0.95 and acc_s == 1.0
    # every superpoint carries one id, and its vertices' seen counts are their own
    for s in np.unique(sp):
        assert len(np.unique(superpoint.ids[sp == s])) == 1
    assert np.array_equal(superpoint.seen, vertex.seen)


def test_superpoints_are_computed_when_the_scan_has_none(room):
    assert room.superpoints is None
    scene = room.as_scene()
    lab = lift_tracked(scene, [f.instance for f in room.frames], LiftConfig(vote_unit="superpoint"))
    sp = scene.superpoints  # the segmentator's, computed on first use
    assert len(sp) == len(room.mesh.vertices)
    for s in np.unique(sp)[:50]:
        assert len(np.unique(lab.ids[sp == s])) == 1
    seen = lab.seen >= 2
    assert (lab.ids[seen] == room.gt_instance[seen]).mean() > 0.9


def test_unknown_vote_unit_is_refused():
    with pytest.raises(ValueError, match="vote_unit"):
        LiftConfig(vote_unit="voxel")


def _textured_wall_maps(room, wall: int = 1001, band: float = 1.0):
    """GT id maps in which the wall is read as vertical stripes ``band`` metres wide, each with its own
    id (900 + stripe), the same stripe the same id in every frame: what a tracker keeps when the 2D masks
    follow a wall's texture instead of its geometry."""
    from tracklift.geometry.camera import backproject_depth

    maps = []
    for f in room.frames:
        m = f.instance.astype(np.int64).copy()
        pts = backproject_depth(f.depth, room.intrinsics) @ f.pose[:3, :3].T + f.pose[:3, 3]
        on_wall = m == wall
        m[on_wall] = 900 + np.floor(pts[..., 0][on_wall] / band).astype(np.int64)
        maps.append(m)
    return maps


def test_fragments_of_one_superpoint_merge_into_one_instance(room):
    gt = room.gt_instance
    _, sp = np.unique(gt, return_inverse=True)  # one superpoint per object: the wall is one surface
    scene = dataclasses.replace(room, superpoints=sp.astype(np.int64)).as_scene()
    maps = _textured_wall_maps(room)
    seen = lift_tracked(scene, [f.instance for f in room.frames]).seen >= 2
    wall = (gt == 1001) & seen
    assert wall.sum() > 50
    for unit in ("superpoint", "vertex"):
        lab = lift_tracked(scene, maps, LiftConfig(vote_unit=unit))
        # the stripes lie inside the wall's superpoint without owning it: one instance
        ids, n = np.unique(lab.ids[wall], return_counts=True)
        assert ids[np.argmax(n)] >= 900 and n.max() >= 0.95 * wall.sum(), unit
        # objects that own their superpoints keep their ids
        for g in (3001, 1002, 2001):
            assert (lab.ids[(gt == g) & seen] == g).mean() > 0.9, (unit, g)
    # without the merge, the stripes split the wall (vertex votes) or leave it unlabelled (superpoint votes)
    off = lift_tracked(scene, maps, LiftConfig(vote_unit="vertex", fragment_share=2.0))
    assert np.unique(off.ids[wall], return_counts=True)[1].max() < 0.5 * wall.sum()


def test_merge_fragments_links_only_ids_inside_one_group():
    acc = VoteAccumulator(8)
    # group 0 = vertices 0-3 (a surface read as ids 5 and 6), group 1 = vertices 4-5 (id 7 owns it, and
    # id 7 also reaches into group 2 = vertices 6-7, which id 8 owns: spread over two groups, so neither
    # 7 nor the owner 8 is a fragment)
    for _ in range(2):
        acc.add(np.arange(8), np.array([5, 5, 6, 6, 7, 7, 7, 8]))
    acc.add(np.array([0, 1, 2, 7]), np.array([5, 5, 5, 8]))
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    assert acc.merge_fragments(groups, 0.8) == 1
    lab = acc.resolve(1, 0.5)
    assert lab.ids.tolist() == [5, 5, 5, 5, 7, 7, 7, 8]
    assert lab.votes.tolist() == [3, 3, 3, 2, 2, 2, 2, 3]
    with pytest.raises(ValueError, match="entries"):
        acc.merge_fragments(groups[:5], 0.8)
