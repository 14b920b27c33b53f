"""The synthetic RGB-D scan generator: determinism, GT consistency, geometry, trajectory, round trip."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from tracklift import storage
from tracklift.datasets.formats import open_scene, write_scene
from tracklift.datasets.scene import Intrinsics, check_frame, pose_is_valid
from tracklift.datasets.synthetic import (
    LABEL_IDS,
    SynthConfig,
    build_scene_mesh,
    generate_layout,
    generate_scene,
    make_trajectory,
    raycast,
    render_view,
)
from tracklift.datasets.synthetic.layout import Floorplan
from tracklift.datasets.synthetic.sensor import depth_sigma, simulate_depth
from tracklift.datasets.tracklift_format import read_int_lines, read_labels
from tracklift.errors import ConfigError
from tracklift.geometry.camera import (
    backproject_pixels,
    centred_intrinsics,
    depth_pixels,
    look_at,
    overview_pose,
)

# These tests check the procedural room, the piecewise mesh and the wandering walk, which stay available
# as options; the fused whole-room default is tested in test_synthetic_scans.py.
PIECEWISE = {"mesh": "parts", "capture": "walk"}
SMALL = SynthConfig(width=96, height=72, n_frames=8, **PIECEWISE)
SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def scene():
    return generate_scene(3, SMALL)


@pytest.fixture(scope="module")
def meshes():
    # rectangular rooms (four walls); L-shaped and two-room layouts are tested in test_synthetic_scans.py
    return {seed: build_scene_mesh(seed, SynthConfig(room_shapes=("rect",))) for seed in SEEDS}


def _backproject(frame, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """World points (M, 3) of the valid depth pixels and their flat pixel indices."""
    v, u = depth_pixels(frame.depth)
    pts = backproject_pixels(v, u, frame.depth[v, u].astype(np.float64), intr, frame.pose)
    return pts, v * intr.width + u


def test_deterministic_and_seed_dependent():
    cfg = SynthConfig(width=48, height=36, n_frames=4, n_groups=2, **PIECEWISE)
    a, b = generate_scene(7, cfg), generate_scene(7, cfg)
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.mesh.colors, b.mesh.colors)
    np.testing.assert_array_equal(a.mesh.faces, b.mesh.faces)
    np.testing.assert_array_equal(a.gt_instance, b.gt_instance)
    np.testing.assert_array_equal(a.parts, b.parts)
    for fa, fb in zip(a.frames, b.frames):
        for name in ("color", "depth", "pose", "instance", "part"):
            np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
    c = generate_scene(8, SMALL)
    assert len(c.mesh.vertices) != len(a.mesh.vertices) or not np.array_equal(
        c.mesh.vertices, a.mesh.vertices
    )
    assert a.scene_id == "synth0007_00" and generate_scene(7, SMALL, scene_id="x").scene_id == "x"


def test_room_does_not_depend_on_video_settings():
    a = generate_scene(5, SynthConfig(width=64, height=48, n_frames=3, n_groups=2, **PIECEWISE))
    b = generate_scene(
        5, SynthConfig(width=80, height=60, n_frames=5, n_groups=2, depth_noise=0.0, **PIECEWISE)
    )
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.gt_instance, b.gt_instance)


def test_shapes_and_dtypes(scene):
    intr = scene.intrinsics
    assert (intr.width, intr.height) == (96, 72)
    assert intr.fx == pytest.approx(0.9 * 96) and intr.fy == intr.fx
    assert len(scene.frames) == 8 and [f.index for f in scene.frames] == list(range(8))
    for f in scene.frames:
        check_frame(f, intr, "synthetic")
        assert f.color.dtype == np.uint8 and f.depth.dtype == np.float32
        assert f.instance.dtype == np.int32 and f.part.dtype == np.int32
        assert f.instance.shape == f.part.shape == (72, 96)
        assert 0.5 < (f.depth > 0).mean() < 1.0  # mostly valid, but with holes
    n = len(scene.mesh.vertices)
    assert scene.mesh.vertices.dtype == np.float32 and scene.mesh.colors.dtype == np.uint8
    assert scene.mesh.faces.dtype == np.int32 and scene.mesh.faces.max() < n
    assert scene.gt_instance.dtype == np.int64 and scene.gt_instance.shape == (n,)
    assert scene.parts.dtype == np.int32 and scene.parts.shape == (n,)
    assert (scene.gt_instance > 1000).all() and (scene.parts > 0).all()  # every vertex is labelled
    assert set(np.unique(scene.gt_instance // 1000)) == set(scene.labels)
    assert scene.labels[1] == "wall" and scene.labels[3] == "floor"


def test_label_ids_are_scannet200():
    s200 = pytest.importorskip("tracklift.evaluation.scannet200")
    table = dict(zip(s200.CLASS_LABELS_200, s200.VALID_CLASS_IDS_200))
    for name, label in LABEL_IDS.items():
        assert table[name] == label, name


def test_mesh_density_and_instance_sizes(meshes):
    for seed, (_, m) in meshes.items():
        assert 20_000 <= len(m.vertices) <= 100_000, seed
        ids, counts = np.unique(m.vertex_instance, return_counts=True)
        assert counts.min() >= 200, (seed, ids[counts.argmin()])  # the evaluator drops < 100
        assert len(ids) >= 15
        walls = [i for i in ids if i // 1000 == LABEL_IDS["wall"]]
        assert len(walls) == 4 and sum(i // 1000 == LABEL_IDS["floor"] for i in ids) == 1
        edges = np.linalg.norm(m.vertices[m.faces[:, [1, 2, 0]]] - m.vertices[m.faces], axis=-1)
        assert np.percentile(edges, 99) <= 0.04 * math.sqrt(2) + 1e-6  # grid step 4 cm, diagonals √2


def test_parts_and_instances_are_separate_pieces(meshes):
    for _, m in meshes.values():
        # a triangle never joins two parts, so no vertex is shared between parts or instances
        part_of_face = m.vertex_part[m.faces]
        assert (part_of_face == part_of_face[:, :1]).all()
        inst_of_part = defaultdict(set)
        for p, i in zip(m.vertex_part, m.vertex_instance):
            inst_of_part[p].add(i)
        assert all(len(s) == 1 for s in inst_of_part.values())


def test_furniture_is_made_of_parts(meshes):
    minimum = {"table": 5, "coffee table": 5, "chair": 6, "bookshelf": 7, "couch": 6, "cabinet": 5, "desk": 4}
    seen = defaultdict(int)
    for _, m in meshes.values():
        parts = defaultdict(set)
        for p, i in zip(m.vertex_part, m.vertex_instance):
            parts[i].add(p)
        for inst, ps in parts.items():
            name = m.labels[int(inst) // 1000]
            if name in minimum:
                seen[name] += 1
                assert len(ps) >= minimum[name], (name, len(ps))
    assert seen["table"] + seen["desk"] >= 3 and seen["chair"] >= 3 and seen["bookshelf"] >= 1


def test_part_colours_are_close_within_an_object(meshes):
    """Parts with the same role (table legs) share a colour up to a small jitter: not identical."""
    _, m = meshes[0]
    table = m.parts
    legs = defaultdict(list)
    for pid in range(1, len(table.name)):
        if table.name[pid].startswith("leg"):
            legs[table.instance[pid]].append(table.color[pid])
    assert legs
    for colours in legs.values():
        c = np.array(colours)
        spread = np.abs(c - c.mean(0)).max()
        assert 0 < spread < 0.1


def test_floor_things_do_not_overlap(meshes):
    for layout, _ in meshes.values():
        plan = Floorplan(layout.size[0], layout.size[1])
        total = np.zeros_like(plan.occ, dtype=np.int32)
        for t in layout.things:
            if t.on_floor:
                cells = plan.footprint(t)
                assert cells is not None, t.label  # inside the room
                total += cells
        assert total.max() <= 1


def test_pixel_ids_come_from_the_mesh(scene):
    vertex_ids, vertex_parts = set(np.unique(scene.gt_instance)), set(np.unique(scene.parts))
    part_to_inst = dict(zip(scene.parts.tolist(), scene.gt_instance.tolist()))
    seen = set()
    for f in scene.frames:
        assert set(np.unique(f.instance)) <= vertex_ids | {0}
        assert set(np.unique(f.part)) <= vertex_parts | {0}
        hit = f.part > 0
        mapped = np.vectorize(part_to_inst.get)(f.part[hit])
        np.testing.assert_array_equal(mapped, f.instance[hit])
        seen |= set(np.unique(f.instance)) - {0}
    assert len(seen) >= 4


def test_backprojected_depth_lies_on_the_mesh_with_its_instance(scene):
    tree = cKDTree(scene.mesh.vertices)
    for f in scene.frames[::3]:
        pts, flat = _backproject(f, scene.intrinsics)
        dist, nearest = tree.query(pts)
        # noise-free points are within half a grid diagonal of a vertex; noise is about 2 mm at 1 m
        assert np.median(dist) < 0.02 and np.percentile(dist, 95) < 0.04
        agree = scene.gt_instance[nearest] == f.instance.ravel()[flat]
        assert agree.mean() > 0.9


def test_depth_is_the_raycast_z_depth_plus_small_noise(scene):
    tm = trimesh.Trimesh(scene.mesh.vertices, scene.mesh.faces, process=False)
    for f in scene.frames[:2]:
        exact, face = raycast(tm, scene.intrinsics, f.pose)
        assert exact.shape == face.shape == f.depth.shape
        valid = f.depth > 0
        assert (face[valid] >= 0).all()
        err = f.depth[valid] - exact[valid]
        sigma = depth_sigma(exact[valid])
        assert np.abs(err).max() < 6 * sigma.max() + 0.001
        assert np.abs(np.median(err)) < 0.002


def test_consecutive_frames_overlap_strongly(scene):
    intr = scene.intrinsics
    for a, b in zip(scene.frames[:-1], scene.frames[1:]):
        pts, _ = _backproject(a, intr)
        w2c = np.linalg.inv(b.pose)
        cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
        u = cam[:, 0] / cam[:, 2] * intr.fx + intr.cx
        v = cam[:, 1] / cam[:, 2] * intr.fy + intr.cy
        inside = (
            (cam[:, 2] > 0) & (u >= -0.5) & (u < intr.width - 0.5) & (v >= -0.5) & (v < intr.height - 0.5)
        )
        assert inside.mean() > 0.8


@pytest.mark.parametrize("n_frames", [1, 2, 60, 300])
def test_trajectory_is_valid_smooth_and_inside_the_room(meshes, n_frames):
    cfg = SynthConfig(n_frames=n_frames)
    for seed in SEEDS[:3]:
        layout, m = meshes[seed]
        poses = make_trajectory(layout, cfg, np.random.default_rng(seed))
        assert poses.shape == (n_frames, 4, 4) and all(pose_is_valid(p) for p in poses)
        eye = poses[:, :3, 3]
        W, D, H = layout.size
        assert (eye[:, 0] > 0.3).all() and (eye[:, 0] < W - 0.3).all()
        assert (eye[:, 1] > 0.3).all() and (eye[:, 1] < D - 0.3).all()
        assert (eye[:, 2] >= 1.2 - 1e-9).all() and (eye[:, 2] <= 1.8 + 1e-9).all()
        for inst in np.unique(m.vertex_instance):
            if m.labels[int(inst) // 1000] in ("wall", "floor"):
                continue
            v = m.vertices[m.vertex_instance == inst]
            lo, hi = v.min(0) - 0.1, v.max(0) + 0.1
            assert not np.any(np.all((eye > lo) & (eye < hi), axis=1)), m.labels[int(inst) // 1000]
        if n_frames > 1:
            step = np.linalg.norm(np.diff(eye, axis=0), axis=1)
            assert step.max() < 0.13 and step.mean() > 0.03
            rel = np.einsum("kji,kjl->kil", poses[:-1, :3, :3], poses[1:, :3, :3])
            angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
            assert angle.max() < 8.0
            # the camera looks forward-and-down, never at the sky
            assert (poses[:, 2, 2] < 0.05).all()


def test_round_trip_through_tracklift_format(tmp_path, scene):
    url = storage.join(str(tmp_path), scene.scene_id)
    write_scene(scene, url, "tracklift")
    back = open_scene(url)
    assert back.scene_id == scene.scene_id and back.intrinsics == scene.intrinsics
    assert back.frame_ids == [f.index for f in scene.frames]
    np.testing.assert_allclose(back.vertices, scene.mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.colors, scene.mesh.colors)
    np.testing.assert_array_equal(back.gt_instance, scene.gt_instance)
    np.testing.assert_array_equal(read_int_lines(storage.join(url, "gt_part.txt")), scene.parts)
    assert read_labels(url) == scene.labels
    for k in (0, len(scene.frames) - 1):
        g, f = back.frame(k), scene.frames[k]
        np.testing.assert_allclose(g.pose, f.pose, atol=1e-9)
        np.testing.assert_allclose(g.depth, f.depth, atol=1e-6)  # already millimetre-quantised
        np.testing.assert_array_equal(g.instance, f.instance)
        np.testing.assert_array_equal(g.part, f.part)
        assert np.abs(g.color.astype(float) - f.color).mean() < 6


def test_corpus_writer_is_resumable_and_writes_gt(monkeypatch):
    from tracklift.datasets.corpus import SynthCommandConfig, gt_url, synthesize_corpus
    from tracklift.evaluation import read_gt

    root = "memory://synthcorpus"
    cfg = SynthCommandConfig(out=root, scenes=1, seed=11, width=32, height=24, frames=2)
    small = SynthConfig(width=32, height=24, n_frames=2, n_groups=1, **PIECEWISE)
    urls = synthesize_corpus(cfg, log=lambda s: None, synth=small)
    assert urls == [storage.join(root, "synth0011_00")]
    scene = open_scene(urls[0])
    assert scene.scene_id == "synth0011_00"
    np.testing.assert_array_equal(read_gt(gt_url(root, "synth0011_00")), scene.gt_instance)

    def boom(*a, **k):
        raise AssertionError("a complete scene was generated again")

    monkeypatch.setattr("tracklift.datasets.synthetic.generate_scene", boom)
    assert synthesize_corpus(cfg, log=lambda s: None, synth=small) == urls


def _square(z: float, size: float = 1.0, facing_camera: bool = True):
    v = np.array([[-size, -size, z], [size, -size, z], [size, size, z], [-size, size, z]], dtype=np.float64)
    f = np.array([[0, 2, 1], [0, 3, 2]]) if facing_camera else np.array([[0, 1, 2], [0, 2, 3]])
    return v, f


def test_raycast_returns_z_depth_and_faces():
    intr = Intrinsics(20.0, 20.0, 15.5, 11.5, 32, 24)
    v, f = _square(2.0, size=10.0)
    depth, face = raycast(trimesh.Trimesh(v, f, process=False), intr, np.eye(4))
    np.testing.assert_allclose(depth, 2.0, atol=1e-6)  # corners too: z-depth, not ray length
    assert set(np.unique(face)) <= {0, 1}
    depth, face = raycast(
        trimesh.Trimesh(v, f, process=False), intr, look_at([0, 0, 0], [0, 0, -1], up=[0, 1, 0])
    )
    assert (depth == 0).all() and (face == -1).all()


def test_render_view_colours_background_and_culling():
    intr = Intrinsics(20.0, 20.0, 15.5, 11.5, 32, 24)
    v, f = _square(2.0, size=0.5)
    red = np.tile([255, 0, 0], (4, 1)).astype(np.uint8)
    img = render_view(v, f, red, intr, np.eye(4), light=False, background=(0, 0, 255))
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[12, 16], [255, 0, 0])
    np.testing.assert_array_equal(img[0, 0], [0, 0, 255])
    lit = render_view(v, f, red, intr, np.eye(4), light=True)
    assert 0 < lit[12, 16, 0] <= 255 and lit[0, 0].tolist() == [255, 255, 255]
    # the square's normal points at the camera: culling keeps it; flipped, it disappears
    assert render_view(v, f, red, intr, np.eye(4), light=False, cull_backfaces=True)[12, 16, 0] == 255
    v2, f2 = _square(2.0, size=0.5, facing_camera=False)
    culled = render_view(v2, f2, red, intr, np.eye(4), light=False, cull_backfaces=True, background=(0, 0, 0))
    assert culled[12, 16].tolist() == [0, 0, 0]


def test_overview_pose_frames_the_whole_room(meshes):
    _, m = meshes[0]
    intr = centred_intrinsics(160, 120)
    pose = overview_pose(m.vertices, intr)
    assert pose_is_valid(pose)
    w2c = np.linalg.inv(pose)
    cam = m.vertices @ w2c[:3, :3].T + w2c[:3, 3]
    assert (cam[:, 2] > 0).all()
    u = cam[:, 0] / cam[:, 2] * intr.fx + intr.cx
    v = cam[:, 1] / cam[:, 2] * intr.fy + intr.cy
    assert u.min() >= -0.5 and u.max() <= 159.5 and v.min() >= -0.5 and v.max() <= 119.5
    img = render_view(m.vertices, m.faces, m.colors, intr, pose, cull_backfaces=True)
    assert (img != 255).any(axis=-1).mean() > 0.3


def test_depth_noise_grows_with_depth_squared_and_holes():
    rng = np.random.default_rng(0)
    cfg = SynthConfig(hole_prob=0.0, edge_dropout=0.0)
    for z, expected in ((1.0, 0.0019), (3.0, 0.0140)):
        exact = np.full((200, 200), z)
        noisy = simulate_depth(exact, np.ones_like(exact), cfg, rng)
        assert (noisy > 0).all()
        assert np.std(noisy - z) == pytest.approx(math.hypot(expected, 0.001 / math.sqrt(12)), rel=0.1)
    assert depth_sigma(np.array([1.0]))[0] == pytest.approx(0.0019, abs=2e-4)
    exact = np.full((120, 160), 2.0)
    exact[:, :10] = 9.0  # beyond max range
    holes = simulate_depth(exact, np.ones_like(exact), SynthConfig(hole_prob=0.05, edge_dropout=0.0), rng)
    assert (holes[:, :10] == 0).all()
    assert 0.04 < (holes[:, 20:] == 0).mean() < 0.09
    grazing = simulate_depth(np.full((50, 50), 2.0), np.full((50, 50), 0.05), cfg, rng)  # 87 degrees
    assert (grazing == 0).all()


def test_config_is_validated():
    with pytest.raises(ConfigError):
        SynthConfig(width=0)
    with pytest.raises(ConfigError):
        SynthConfig(camera_height=(1.5, 1.2))
    with pytest.raises(ConfigError):
        SynthConfig(hole_prob=0.9)


def test_layout_is_deterministic():
    a, b = generate_layout(4), generate_layout(4)
    assert [t.label for t in a.things] == [t.label for t in b.things]
    np.testing.assert_array_equal(a.free, b.free)


def test_optional_ceiling_is_labelled():
    cfg = SynthConfig(ceiling=True, n_groups=1)
    layout, m = build_scene_mesh(2, cfg)
    ceiling = m.vertex_instance // 1000 == LABEL_IDS["ceiling"]
    assert m.labels[LABEL_IDS["ceiling"]] == "ceiling" and ceiling.sum() > 1000
    np.testing.assert_allclose(m.vertices[ceiling, 2], layout.size[2], atol=1e-6)


def test_no_structure_hidden_behind_doors_pictures_or_under_cabinets(meshes):
    """A scan never sees the wall behind a picture or the floor under a cabinet: the mesh has none."""
    checked = 0
    for layout, m in meshes.values():
        structure = np.isin(m.vertex_instance // 1000, [LABEL_IDS["wall"], LABEL_IDS["floor"]])
        pts = m.vertices[structure]
        for t in layout.things:
            if not t.hides:
                continue
            lo, hi = t.cover_box()
            grow = np.array([0.05, 0.05, 0.05])
            flat = 1 if t.hides == "wall" else 2  # keep the thin axis, shrink the other two by a cell
            grow[flat] = -0.0
            # (furniture transforms may scale: rooms draw a furniture size factor)
            local = (pts - t.transform[:3, 3]) @ np.linalg.inv(t.transform[:3, :3]).T
            inside = np.all((local > lo + grow) & (local < hi - grow), axis=1)
            assert not inside.any(), t.label
            checked += 1
    assert checked >= 4
