import numpy as np
import pytest
import torch
import trimesh
import trimesh.ray.ray_pyembree

from tests.lifting.scenes import build_room
from tracklift.datasets.scene import Frame, Intrinsics, Mesh, SceneData
from tracklift.errors import DataError
from tracklift.lifting.project import VisibilityConfig, iter_visible, normalise_id_maps, visible_ids

INTR = Intrinsics(fx=100.0, fy=100.0, cx=31.5, cy=23.5, width=64, height=48)


def _single(points, depth, ids, pose=None, cfg=None):
    pose = np.eye(4) if pose is None else pose
    out = visible_ids(
        torch.tensor(points, dtype=torch.float32),
        torch.tensor(pose[None], dtype=torch.float32),
        torch.tensor(depth[None], dtype=torch.float32),
        torch.tensor(ids[None], dtype=torch.int64),
        INTR,
        cfg or VisibilityConfig(),
    )
    return out[0]


def test_visibility_rejects_occluded_invalid_and_outside():
    depth = np.full((48, 64), 2.0, np.float32)  # a wall 2 m in front of the camera
    depth[:, :8] = 0.0  # invalid depth on the left border
    ids = np.full((48, 64), 7, np.int64)
    ids[24, 32] = 9
    pts = np.array(
        [
            [0.0, 0.0, 2.0],  # on the wall, centre pixel -> id 9
            [0.0, 0.0, 3.0],  # behind the wall: occluded
            [0.0, 0.0, 1.0],  # in front of the measured surface: inconsistent
            [0.2, 0.1, 2.08],  # within 5 cm + 2 % of 2 m (9 cm)
            [0.2, 0.1, 2.12],  # beyond the tolerance
            [-0.5, 0.0, 2.0],  # lands on invalid depth (column 7)
            [5.0, 0.0, 2.0],  # outside the image
            [0.0, 0.0, -2.0],  # behind the camera
        ]
    )
    idx, got = _single(pts, depth, ids)
    assert idx.tolist() == [0, 3]
    assert got.tolist() == [9, 7]


def test_tolerance_is_configurable():
    depth = np.full((48, 64), 2.0, np.float32)
    ids = np.ones((48, 64), np.int64)
    pts = np.array([[0.0, 0.0, 2.03]])
    assert len(_single(pts, depth, ids)[0]) == 1
    tight = VisibilityConfig(depth_abs_tol=0.01, depth_rel_tol=0.0)
    assert len(_single(pts, depth, ids, cfg=tight)[0]) == 0


@pytest.fixture(scope="module")
def room():
    return build_room(n_frames=12, width=120, height=90, res=0.1)


def test_occluded_vertices_get_no_vote(room):
    """Vertices whose line of sight to the camera is blocked by other geometry are never visible."""
    scene = room.as_scene()
    mesh = trimesh.Trimesh(room.mesh.vertices, room.mesh.faces, process=False)
    caster = trimesh.ray.ray_pyembree.RayMeshIntersector(mesh)
    V = room.mesh.vertices.astype(np.float64)
    n_occluded = 0
    for k, idx, _ in iter_visible(scene, [f.instance for f in room.frames]):
        eye = room.frames[k].pose[:3, 3]
        d = V - eye
        dist = np.linalg.norm(d, axis=1)
        tri, ray, loc = caster.intersects_id(
            np.tile(eye, (len(V), 1)), d / dist[:, None], multiple_hits=False, return_locations=True
        )
        first = np.full(len(V), np.inf)
        first[ray] = np.linalg.norm(loc - eye, axis=1)
        occluded = first < dist - 0.25  # something at least 25 cm in front of the vertex
        n_occluded += int(occluded.sum())
        assert not occluded[idx].any(), f"frame {k}: occluded vertices voted"
        assert len(idx) > 100
    assert n_occluded > 1000  # the test saw real occlusions


def test_ids_read_at_the_right_pixels(room):
    """GT maps rendered from the mesh: a visible vertex reads its own object's id almost always."""
    scene = room.as_scene()
    agree = total = 0
    for _, idx, ids in iter_visible(scene, [f.instance for f in room.frames]):
        agree += int((room.gt_instance[idx] == ids).sum())
        total += len(idx)
    # the rest sit on seams where two objects' vertices coincide (floor/wall, box bottoms)
    assert total > 1000 and agree / total > 0.93


def test_iter_visible_batches_agree_with_single_frames(room):
    scene = room.as_scene()
    maps = {k: room.frames[k].instance for k in (0, 3, 7)}
    small = VisibilityConfig(batch_bytes=1)  # one frame per batch
    a = list(iter_visible(scene, maps))
    b = list(iter_visible(scene, maps, small))
    assert [x[0] for x in a] == [0, 3, 7]
    for (ka, ia, va), (kb, ib, vb) in zip(a, b):
        assert ka == kb
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(va, vb)


def _tiny_scene():
    intr = Intrinsics(10.0, 10.0, 3.5, 2.5, 8, 6)
    frames = [
        Frame(i, np.zeros((6, 8, 3), np.uint8), np.ones((6, 8), np.float32), np.eye(4)) for i in range(3)
    ]
    return SceneData("s", intr, frames, Mesh(np.zeros((4, 3)), None)).as_scene()


def test_id_map_validation():
    scene = _tiny_scene()
    good = np.zeros((6, 8), np.int32)
    assert list(normalise_id_maps(scene, [good, None, good])) == [0, 2]
    with pytest.raises(DataError, match="3 frames"):
        normalise_id_maps(scene, [good])
    with pytest.raises(DataError, match="frame1.*shape"):
        normalise_id_maps(scene, {1: np.zeros((5, 8), np.int32)})
    with pytest.raises(DataError, match="integers"):
        normalise_id_maps(scene, {0: good.astype(np.float32)})
    with pytest.raises(DataError, match="negative"):
        normalise_id_maps(scene, {0: good - 1})
    with pytest.raises(DataError, match="outside"):
        normalise_id_maps(scene, {5: good})
