import numpy as np
import pytest
from scipy.spatial import cKDTree

from tests.lifting.scenes import build_room
from tests.lifting.test_lift import permute_per_frame
from tracklift.errors import DataError
from tracklift.lifting import (
    PseudoLabels,
    SampleConfig,
    lift_tracked,
    scanned_part,
    stage1_samples,
    stage2_samples,
    stage3_sample,
)
from tracklift.lifting.samples import Sample, backproject, drop_small, voxel_downsample, windows
from tracklift.lifting.vote import group_winners


@pytest.fixture(scope="module")
def room():
    return build_room(n_frames=12, width=120, height=90, res=0.08)


def nearest_gt(data, points):
    _, j = cKDTree(data.mesh.vertices).query(points)
    return data.gt_instance[j]


def test_backproject_inverts_projection(room):
    f = room.frames[2]
    pts, col, ids = backproject(f, room.intrinsics, f.instance)
    assert pts.shape == (int((f.depth > 0).sum()), 3) and pts.dtype == np.float32
    assert col.dtype == np.uint8 and ids.dtype == np.int64
    # the back-projected pixels lie on the mesh, on the object their pixel shows
    d, _ = cKDTree(room.mesh.vertices).query(pts)
    assert np.percentile(d, 95) < 0.08
    assert (nearest_gt(room, pts) == ids).mean() > 0.9


def test_voxel_downsample_majority_and_means():
    pts = np.array([[0.001, 0.001, 0.001], [0.009, 0.009, 0.009], [0.005, 0.0, 0.0], [0.5, 0.5, 0.5]])
    col = np.array([[0, 0, 0], [100, 100, 100], [200, 200, 200], [7, 8, 9]], np.uint8)
    ids = np.array([4, 0, 4, 0])
    p, c, i = voxel_downsample(pts, col, ids, 0.01)
    assert len(p) == 2
    np.testing.assert_allclose(p[0], pts[:3].mean(0), atol=1e-6)
    assert c[0].tolist() == [100, 100, 100] and c[1].tolist() == [7, 8, 9]
    assert i.tolist() == [4, 0]
    # voxel_size 0 keeps everything
    assert len(voxel_downsample(pts, col, ids, 0.0)[0]) == 4


def test_drop_small_and_windows():
    assert drop_small(np.array([1, 1, 1, 2, 0, 3, 3]), 2).tolist() == [1, 1, 1, 0, 0, 3, 3]
    assert windows(10, 4, 3) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert windows(11, 4, 3)[-1] == [7, 8, 9, 10]  # tail window aligned to the end
    assert windows(3, 5, 2) == [[0, 1, 2]]
    assert windows(0, 5, 2) == []


def test_stage1_samples(room):
    maps = permute_per_frame([f.instance for f in room.frames], seed=3)
    cfg = SampleConfig(voxel_size=0.03, min_points=30, frame_step=4)
    samples = list(stage1_samples(room.as_scene(), maps, cfg))
    assert [s.frames for s in samples] == [(0,), (4,), (8,)]
    for s in samples:
        k = s.frames[0]
        assert s.stage == 1 and s.scene_id == room.scene_id
        assert s.points.dtype == np.float32 and s.colors.dtype == np.uint8 and s.instance.dtype == np.int64
        assert s.points.shape == (len(s), 3) and s.colors.shape == (len(s), 3)
        assert 100 < len(s) < int((room.frames[k].depth > 0).sum())  # downsampled
        # labels are this frame's own ids, and none is smaller than min_points
        assert set(np.unique(s.instance)) - {0} <= set(np.unique(maps[k]))
        _, n = np.unique(s.instance[s.instance != 0], return_counts=True)
        assert s.num_instances >= 2 and (n >= cfg.min_points).all()
        # each frame-local id covers one GT object (checked through the nearest mesh vertex)
        lab = s.instance != 0
        _, _, top = group_winners(s.instance[lab], nearest_gt(room, s.points[lab]))
        purity = top.sum() / lab.sum()
        assert purity > 0.9


def test_stage2_samples_fuse_windows_with_tracked_ids(room):
    maps = [f.instance for f in room.frames]
    cfg = SampleConfig(voxel_size=0.04, min_points=20, window=5, stride=4)
    samples = list(stage2_samples(room.as_scene(), maps, cfg))
    assert [s.frames for s in samples] == [(0, 1, 2, 3, 4), (4, 5, 6, 7, 8), (7, 8, 9, 10, 11)]
    single = list(stage1_samples(room.as_scene(), {0: maps[0]}, cfg))[0]
    for s in samples:
        assert s.stage == 2
        lab = s.instance != 0
        assert lab.mean() > 0.8
        # tracked GT ids: each point's id is its nearest vertex's GT
        assert (s.instance[lab] == nearest_gt(room, s.points[lab])).mean() > 0.9
        # voxel-downsampled: no two points in one voxel
        cells = np.floor(s.points / cfg.voxel_size).astype(np.int64)
        assert len(np.unique(cells, axis=0)) >= 0.9 * len(s)
    assert len(samples[0]) > len(single)  # a window covers more than one frame


def test_stage3_sample(room):
    scene = room.as_scene()
    lab = lift_tracked(scene, [f.instance for f in room.frames])
    s = stage3_sample(scene, lab, SampleConfig(min_points=100))
    assert s.stage == 3 and s.frames == ()
    np.testing.assert_array_equal(s.points, room.mesh.vertices)
    np.testing.assert_array_equal(s.colors, room.mesh.colors)
    unseen = lab.seen < 1
    assert unseen.any() and not unseen.all()  # the room's scan misses some of its surfaces
    np.testing.assert_array_equal(s.instance, np.where(unseen, -1, lab.filtered_ids(100)))
    assert s.num_instances == len(np.unique(s.instance[s.instance > 0]))
    # stage3_min_seen=0 keeps every vertex in the scan
    whole = stage3_sample(scene, lab, SampleConfig(min_points=100, stage3_min_seen=0))
    np.testing.assert_array_equal(whole.instance, lab.filtered_ids(100))
    # the scanned part: the seen vertices, in order, with their positions
    part, index = scanned_part(s)
    np.testing.assert_array_equal(index, np.flatnonzero(~unseen))
    np.testing.assert_array_equal(part.points, s.points[~unseen])
    np.testing.assert_array_equal(part.instance, s.instance[~unseen])
    assert (part.instance >= 0).all() and part.scene_id == s.scene_id and part.stage == 3
    same, none = scanned_part(whole)
    assert same is whole and none is None
    with pytest.raises(DataError, match="pseudo-labels"):
        n = len(room.mesh.vertices) - 1
        stage3_sample(scene, PseudoLabels(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)))


def test_sample_validation():
    with pytest.raises(ValueError, match="disagree"):
        Sample(np.zeros((3, 3)), np.zeros((2, 3)), np.zeros(3), "s", 1)
    with pytest.raises(ValueError, match="stage"):
        Sample(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(3), "s", 4)
