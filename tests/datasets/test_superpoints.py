"""The superpoint segmentator (mesh and kNN variants), Scene.superpoints, and the segments files."""

import json

import numpy as np
import pytest

from tests.conftest import make_scene_data
from tracklift.datasets import annotations
from tracklift.datasets import superpoints as S
from tracklift.datasets.formats import open_scene, write_scene
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError


def grid(n: int, m: int, h: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v) coordinates (n*m,) times ``h`` and the (2(n-1)(m-1), 3) triangles of an n×m vertex grid."""
    u, v = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    idx = u * m + v
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return u.reshape(-1) * h, v.reshape(-1) * h, faces


def flat_plane(n: int = 30, h: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    u, v, faces = grid(n, n, h)
    return np.stack([u, v, np.zeros_like(u)], 1), faces


def two_planes(n: int = 15, h: float = 0.02, fold: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A floor (z = 0) and a wall (x = 0) of n×n vertices sharing their n-vertex seam (the y axis).

    ``fold`` = 1 folds the wall up (concave, like a room's corner); -1 folds it down (convex, like a step).
    """
    u, v, f = grid(n, n, h)
    floor = np.stack([u, v, np.zeros_like(u)], 1)
    wall = np.stack([np.zeros_like(u), v, fold * u], 1)[n:]  # its u = 0 row is the floor's seam
    f_wall = f.copy()
    f_wall = np.where(f_wall < n, f_wall, f_wall - n + len(floor))  # seam ids shared with the floor
    if fold < 0:
        f_wall = f_wall[:, ::-1]  # keep the wall's normal on the same side as the floor's
    return np.concatenate([floor, wall]), np.concatenate([f, f_wall])


def sizes(sp: np.ndarray) -> list[int]:
    return sorted(np.bincount(sp).tolist())


# ------------------------------------------------------------------------------------------ the mesh


def test_flat_plane_is_one_segment():
    v, f = flat_plane()
    sp = S.segment_mesh(v, f)
    assert sp.dtype == np.int64 and sp.shape == (len(v),)
    assert sizes(sp) == [len(v)]


@pytest.mark.parametrize("fold", [1.0, -1.0], ids=["concave", "convex"])
def test_two_planes_at_right_angle_are_two_segments(fold):
    v, f = two_planes(fold=fold)
    sp = S.segment_mesh(v, f)
    assert sp.max() == 1
    # the seam's vertices (normals at 45°) form their own segment of 15 < 20 and join one plane
    floor = np.abs(v[:, 2]) < 1e-9
    wall = np.abs(v[:, 0]) < 1e-9
    assert len(np.unique(sp[floor & ~wall])) == 1 and len(np.unique(sp[wall & ~floor])) == 1
    assert sp[floor & ~wall][0] != sp[wall & ~floor][0]


def test_small_segments_merge_into_a_neighbour():
    v, f = two_planes(n=15)
    unmerged = S.segment_mesh(v, f, S.SegmentatorConfig(seg_min_verts=0))
    assert sizes(unmerged) == [15, 210, 210]  # the seam alone
    assert sizes(S.segment_mesh(v, f, S.SegmentatorConfig(seg_min_verts=15))) == [15, 210, 210]
    assert sizes(S.segment_mesh(v, f, S.SegmentatorConfig(seg_min_verts=16))) == [210, 225]
    # a segMinVerts above a plane's size leaves one segment
    assert sizes(S.segment_mesh(v, f, S.SegmentatorConfig(seg_min_verts=300))) == [435]


def test_larger_k_thresh_joins_more():
    v, f = two_planes(n=15)
    # a plane of 210 vertices accepts an edge up to k / 210; the 45° seam edges weigh 1 - cos 45° = 0.29
    assert S.segment_mesh(v, f, S.SegmentatorConfig(k_thresh=10.0, seg_min_verts=0)).max() == 2
    assert S.segment_mesh(v, f, S.SegmentatorConfig(k_thresh=100.0, seg_min_verts=0)).max() == 0


def test_convex_crease_separates_less_than_concave():
    """ScanNet squares the weight of convex edges: with kThresh between the two, only concave splits."""
    seam_w = {}
    for fold in (1.0, -1.0):
        v, f = two_planes(fold=fold)
        normals = S._vertex_normals(v, f)
        edges = S.mesh_edges(f)
        w = S.normal_edge_weights(v, normals, edges)
        seam_w[fold] = w.max()
    assert seam_w[-1.0] == pytest.approx(seam_w[1.0] ** 2)
    # a plane's 210 off-seam vertices accept a seam edge while it weighs at most k / 210
    k = 210 * (seam_w[1.0] + seam_w[-1.0]) / 2
    cfg = S.SegmentatorConfig(k_thresh=k, seg_min_verts=0)
    # concave: the 90° folds (weight 1 - cos 45°) stay cut; convex: the squared weight passes
    assert S.segment_mesh(*two_planes(fold=1.0), cfg).max() >= 1
    assert S.segment_mesh(*two_planes(fold=-1.0), cfg).max() == 0


def test_mesh_edges_are_unique_and_ordered():
    edges = S.mesh_edges(np.array([[0, 1, 2], [2, 1, 3], [3, 3, 1]]))
    assert edges.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]


def test_deterministic_and_contiguous():
    rng = np.random.default_rng(0)
    v, f = flat_plane(60)
    v = v + rng.normal(0, 0.004, v.shape)  # noisy: many segments
    a, b = S.segment_mesh(v, f), S.segment_mesh(v.copy(), f.copy())
    np.testing.assert_array_equal(a, b)
    assert a.max() >= 2
    assert np.array_equal(np.unique(a), np.arange(a.max() + 1))
    assert np.bincount(a).min() >= 20


def test_zero_faces_is_a_data_error_naming_the_mesh():
    v, _ = flat_plane(5)
    with pytest.raises(DataError, match=r"room\.ply: the mesh has no faces"):
        S.segment_mesh(v, np.zeros((0, 3), np.int64), source="room.ply")
    with pytest.raises(DataError, match="no faces"):
        S.segment_mesh(v, None, source="room.ply")


def test_compute_superpoints_uses_knn_without_faces():
    v, f = two_planes()
    mesh = Mesh(v, None, None)
    np.testing.assert_array_equal(S.compute_superpoints(mesh), S.segment_points(v))
    np.testing.assert_array_equal(S.compute_superpoints(Mesh(v, None, f)), S.segment_mesh(v, f))


def test_empty_mesh():
    assert S.segment_points(np.zeros((0, 3))).shape == (0,)
    assert S.felzenszwalb(0, np.zeros((0, 2)), np.zeros(0)).shape == (0,)


# ------------------------------------------------------------------------------------ point clouds


def test_knn_flat_plane_is_one_segment():
    v, _ = flat_plane()
    assert sizes(S.segment_points(v)) == [len(v)]


@pytest.mark.parametrize("fold", [1.0, -1.0])
def test_knn_two_planes_are_two_segments(fold):
    v, _ = two_planes(fold=fold)
    sp = S.segment_points(v)
    floor_only = (np.abs(v[:, 2]) < 1e-9) & (np.abs(v[:, 0]) > 0.05)
    wall_only = (np.abs(v[:, 0]) < 1e-9) & (np.abs(v[:, 2]) > 0.05)
    assert sp.max() == 1
    assert len(np.unique(sp[floor_only])) == 1 and len(np.unique(sp[wall_only])) == 1
    assert sp[floor_only][0] != sp[wall_only][0]


def test_knn_oriented_normals_and_determinism():
    v, f = two_planes()
    normals = S._vertex_normals(v, f)
    a = S.segment_points(v, normals=normals)
    assert a.max() == 1
    np.testing.assert_array_equal(a, S.segment_points(v, normals=normals))


def test_estimated_normals_of_a_plane():
    v, _ = flat_plane(10)
    n = S.estimate_normals(v, k=8)
    np.testing.assert_allclose(np.abs(n[:, 2]), 1.0, atol=1e-9)


def test_estimated_normals_match_the_eigendecomposition():
    """The compiled closed-form normals are the least-variance eigenvectors (up to sign) of each point's
    neighbourhood covariance, on noisy curved surfaces, a line and coincident points."""
    rng = np.random.default_rng(3)
    xy = rng.random((3000, 2))
    curved = np.column_stack([xy, 0.3 * np.sin(4 * xy[:, 0]) + 0.002 * rng.standard_normal(3000)])
    line = np.column_stack([np.linspace(0, 1, 50), np.zeros(50), np.zeros(50)])
    same = np.zeros((20, 3))
    for pts in (curved, line, same):
        nb = S._knn(pts, 8)
        hood = np.concatenate([pts[:, None], pts[nb]], axis=1)
        centred = hood - hood.mean(axis=1, keepdims=True)
        vals, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", centred, centred))
        got = S.estimate_normals(pts, k=8, neighbours=nb)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-9)
        # where the smallest eigenvalue is distinct the normal is determined: compare it
        distinct = vals[:, 1] - vals[:, 0] > 1e-6 * np.maximum(vals[:, 2], 1e-300)
        cos = np.abs((got * vecs[:, :, 0]).sum(axis=1))
        assert (cos[distinct] > 1 - 1e-6).all()
    assert distinct.sum() == 0  # coincident points: nothing to compare, but unit normals all the same


def test_knn_with_fewer_points_than_k():
    sp = S.segment_points(np.array([[0.0, 0, 0], [0.01, 0, 0], [0, 0.01, 0]]))
    assert sp.tolist() == [0, 0, 0]


# ------------------------------------------------------------------------------------------- refine


def test_refine_splits_only_where_gt_crosses():
    sp = np.array([0, 0, 1, 1, 2])
    np.testing.assert_array_equal(S.refine(sp, np.array([5, 5, 7, 7, 0])), sp)
    np.testing.assert_array_equal(S.refine(sp, np.array([5, 6, 7, 7, 0])), [0, 1, 2, 2, 3])


# ---------------------------------------------------------------------------------- files and Scene


FORMATS = ["tracklift", "scannet", "scannet-sens", "scannetpp"]


def planar_scene(with_gt: bool = True):
    """A scene whose mesh is the two-planes corner, GT the two planes (so that superpoints are GT-pure)."""
    data = make_scene_data(n_frames=1)
    v, f = two_planes()
    data.mesh = Mesh(v.astype(np.float32), None, f)
    data.parts = None
    sp = S.segment_mesh(v, f)
    data.superpoints = sp
    data.gt_instance = np.where(sp == sp[0], 3001, 4002).astype(np.int64) if with_gt else None
    return data


@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip_without_gt(tmp_path, fmt):
    data = planar_scene(with_gt=False)
    data.superpoints = (np.arange(len(data.mesh.vertices)) // 7) % 5  # any partition, not the segmentator's
    url = str(tmp_path / "scene0000_00")
    write_scene(data, url, fmt)
    scene = open_scene(url)
    assert scene.load_superpoints is not None  # read from the file, not computed
    np.testing.assert_array_equal(scene.superpoints, data.superpoints)


@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip_with_gt(tmp_path, fmt):
    data = planar_scene()
    url = str(tmp_path / "scene0000_00")
    write_scene(data, url, fmt)
    scene = open_scene(url)
    np.testing.assert_array_equal(scene.superpoints, data.superpoints)  # GT-pure: stored as they are
    np.testing.assert_array_equal(scene.gt_instance, data.gt_instance)


@pytest.mark.parametrize("fmt", ["scannet", "scannetpp"])
def test_gt_crossing_superpoints_splits_them_on_write(tmp_path, fmt):
    data = planar_scene()
    data.gt_instance[:5] = 5003  # five floor vertices belong to another object
    url = str(tmp_path / "scene0000_00")
    write_scene(data, url, fmt)
    scene = open_scene(url)
    np.testing.assert_array_equal(scene.gt_instance, data.gt_instance)
    np.testing.assert_array_equal(scene.superpoints, S.refine(data.superpoints, data.gt_instance))
    assert scene.superpoints.max() == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_superpoints_computed_when_no_file(tmp_path, fmt):
    data = planar_scene(with_gt=False)
    data.superpoints = None
    url = str(tmp_path / "scene0000_00")
    write_scene(data, url, fmt)
    scene = open_scene(url)
    assert scene.load_superpoints is None
    np.testing.assert_array_equal(scene.superpoints, S.segment_mesh(data.mesh.vertices, data.mesh.faces))


def test_scannet_writer_computes_superpoints_for_gt(tmp_path):
    """A GT scene needs a segments file: the writer stores real superpoints (split by GT), not a grid."""
    data = planar_scene()
    data.superpoints = None
    url = tmp_path / "scene0000_00"
    write_scene(data, str(url), "scannet")
    scene = open_scene(str(url))
    np.testing.assert_array_equal(scene.superpoints, S.segment_mesh(data.mesh.vertices, data.mesh.faces))
    saved = json.loads((url / "scene0000_00_vh_clean_2.0.010000.segs.json").read_text())
    assert saved["params"]["kThresh"] == 0.01 and saved["params"]["segMinVerts"] == 20


def test_scannet_style_root_vertex_ids_become_contiguous(tmp_path):
    url = tmp_path / "segs.json"
    url.write_text(json.dumps({"params": {}, "sceneId": "x", "segIndices": [17, 17, 3, 90, 3]}))
    assert annotations.read_superpoints(str(url), 5).tolist() == [1, 1, 0, 2, 0]


def test_memory_scene_superpoints():
    data = planar_scene()
    assert data.as_scene().superpoints is not None
    np.testing.assert_array_equal(data.as_scene().superpoints, data.superpoints)


# -------------------------------------------------------------------------------------- bad input


def _segs_file(tmp_path, fmt) -> tuple[str, str]:
    data = planar_scene()
    url = tmp_path / "scene0000_00"
    write_scene(data, str(url), fmt)
    name = {
        "tracklift": "superpoints.json",
        "scannet": "scene0000_00_vh_clean_2.0.010000.segs.json",
        "scannetpp": "scans/segments.json",
    }[fmt]
    return str(url), str(url / name)


BAD = [
    ([0] * 10, r"has 10 segment indices, the mesh has 435 vertices"),
    ([0] * 434 + [-1], r"segIndices\[434\] = -1 is negative"),
    ([0] * 434 + [1.5], r"segIndices\[434\] = 1\.5 is not an integer"),
    ([0] * 434 + ["a"], r"must be a flat list of integers"),
    ([[0]] * 435, r"must be a flat list of integers"),
    ("0 1 2", r"must be a list of integers"),
]


@pytest.mark.parametrize("fmt", ["tracklift", "scannet", "scannetpp"])
@pytest.mark.parametrize("seg, message", BAD)
def test_bad_segments_file_names_file_and_problem(tmp_path, fmt, seg, message):
    url, segs = _segs_file(tmp_path, fmt)
    with open(segs, "w") as fh:
        json.dump({"params": {}, "sceneId": "x", "segIndices": seg}, fh)
    scene = open_scene(url)
    with pytest.raises(DataError, match=message) as e:
        _ = scene.superpoints
    assert e.value.url == segs


def test_integral_floats_are_accepted(tmp_path):
    url = tmp_path / "segs.json"
    url.write_text('{"segIndices": [0.0, 2.0, 2]}')
    assert annotations.read_superpoints(str(url), 3).tolist() == [0, 1, 1]


def test_malformed_json_names_file(tmp_path):
    url, segs = _segs_file(tmp_path, "tracklift")
    with open(segs, "w") as fh:
        fh.write('{"segIndices": [0, 1')
    with pytest.raises(DataError, match="invalid JSON") as e:
        _ = open_scene(url).superpoints
    assert e.value.url == segs


def test_contiguous_ids_match_numpy_unique():
    ids = np.random.default_rng(1).integers(-5, 10**9, 5000)
    ids[::3] = 42
    np.testing.assert_array_equal(S.contiguous_ids(ids), np.unique(ids, return_inverse=True)[1])
    assert S.contiguous_ids([]).shape == (0,)


@pytest.mark.parametrize("fmt", ["tracklift"])
def test_synth_corpus_writes_superpoints(fmt):
    from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus
    from tracklift.datasets.synthetic import SynthConfig

    cfg = SynthCommandConfig(out=f"memory://sp-synth-{fmt}", scenes=1, seed=3, format=fmt, frames=2)
    small = SynthConfig(width=32, height=24, n_frames=2, n_groups=1)
    lines = []
    (url,) = synthesize_corpus(cfg, log=lines.append, synth=small)
    scene = open_scene(url)
    assert scene.load_superpoints is not None
    expected = S.segment_mesh(scene.vertices, scene.mesh.faces)
    if fmt == "scannet":
        expected = S.refine(expected, scene.gt_instance)
    np.testing.assert_array_equal(scene.superpoints, expected)
    assert f"{expected.max() + 1} superpoints" in lines[-1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_scene_with_superpoints_file_is_picklable(tmp_path, fmt):
    """Ray ships scenes to workers: the superpoint loader must survive pickling."""
    import pickle

    data = planar_scene()
    url = str(tmp_path / "scene0000_00")
    write_scene(data, url, fmt)
    scene = pickle.loads(pickle.dumps(open_scene(url)))
    np.testing.assert_array_equal(scene.superpoints, data.superpoints)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("with_gt", [True, False])
def test_writers_refuse_superpoints_of_the_wrong_length(tmp_path, fmt, with_gt):
    data = planar_scene(with_gt=with_gt)
    data.superpoints = data.superpoints[:-1]
    with pytest.raises(ValueError, match="superpoints have 434 values for 435 vertices"):
        write_scene(data, str(tmp_path / "s"), fmt)
