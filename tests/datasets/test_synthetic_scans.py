"""Synthetic scans like real ones: whole-room captures, TSDF-fused meshes with voted GT, styles, shapes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from tracklift.datasets.synthetic import SynthConfig, build_scene_mesh, generate_scene
from tracklift.datasets.synthetic.fusion import face_components, reconstruct
from tracklift.datasets.synthetic.generator import camera_poses
from tracklift.datasets.synthetic.labels import LABEL_IDS
from tracklift.datasets.synthetic.layout import generate_layout
from tracklift.errors import ConfigError, DataError

# cheap: small images, coarse voxels, the default whole-room walk (100+ kept frames)
FAST = SynthConfig(width=64, height=48, n_groups=3, voxel_size=0.04, room_shapes=("rect",))


@pytest.fixture(scope="module")
def fused():
    return generate_scene(2, FAST)


def _backproject(frame, intr):
    v, u = np.nonzero(frame.depth > 0)
    d = frame.depth[v, u].astype(np.float64)
    cam = np.stack([(u - intr.cx) / intr.fx * d, (v - intr.cy) / intr.fy * d, d], -1)
    return cam @ frame.pose[:3, :3].T + frame.pose[:3, 3]


def test_whole_room_capture_keeps_every_kth_frame_of_a_video(fused):
    meta = fused.meta
    assert meta["capture"] == "room" and meta["mesh"] == "fused"
    assert 100 <= meta["frames"] <= 300 and meta["frames"] == len(fused.frames)
    assert meta["video_frames"] == (meta["frames"] - 1) * meta["frame_skip"] + 1
    eye = np.stack([f.pose[:3, 3] for f in fused.frames])
    step = np.linalg.norm(np.diff(eye, axis=0), axis=1)
    assert step.max() < 0.2  # a walk, not jumps
    R = np.stack([f.pose[:3, :3] for f in fused.frames])
    rel = np.einsum("kji,kjl->kil", R[:-1], R[1:])
    turn = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert turn.max() < 8.0  # max_turn (5°) per kept frame plus hand shake
    # the camera turns all the way round while walking the room
    fwd = np.stack([f.pose[:3, 2] for f in fused.frames])
    yaw = np.degrees(np.unwrap(np.arctan2(fwd[:, 1], fwd[:, 0])))
    assert yaw.max() - yaw.min() > 300


def test_coverage_is_reported_and_high_for_the_default_walk(fused):
    assert 0.0 < fused.meta["coverage"] <= 1.0
    # coverage counts the GT triangles hit by a pixel in >= 2 frames, so tiny images under-count it:
    # measure at 96x72 (the default 320x240 reads higher), without fusion (coverage does not need it)
    cfg = dataclasses.replace(FAST, width=96, height=72, mesh="parts")
    whole = generate_scene(4, cfg).meta["coverage"]
    corner = generate_scene(4, dataclasses.replace(cfg, n_frames=10, frames_span="start")).meta["coverage"]
    assert whole >= 0.6, whole
    assert corner < whole - 0.2, (corner, whole)
    # 40 frames spread over the whole walk see far more of the room twice than the first 40
    first = generate_scene(4, dataclasses.replace(cfg, n_frames=40, frames_span="start")).meta["coverage"]
    spread = generate_scene(4, dataclasses.replace(cfg, n_frames=40)).meta["coverage"]
    assert spread > first + 0.15, (spread, first)


def test_a_short_scan_is_a_subsample_of_the_whole_room_video():
    layout = generate_layout(3, FAST)
    full, _ = camera_poses(layout, FAST, 3)
    short, info = camera_poses(layout, dataclasses.replace(FAST, n_frames=12), 3)
    assert len(short) == 12 and info["video_frames"] == (len(full) - 1) * FAST.frame_skip + 1
    # the same video, every (len(full) - 1) / 11-th kept frame: first and last frames included
    idx = np.round(np.linspace(0, len(full) - 1, 12)).astype(int)
    np.testing.assert_array_equal(short, full[idx])
    # "start" keeps the pace and films the beginning of the route only
    start, _ = camera_poses(layout, dataclasses.replace(FAST, n_frames=12, frames_span="start"), 3)
    walked = lambda p: np.linalg.norm(np.diff(p[:, :3, 3], axis=0), axis=1).sum()  # noqa: E731
    assert walked(start) < walked(short) / 3
    # asking for more frames than the route needs walks it slower: still the whole route
    dense, _ = camera_poses(layout, dataclasses.replace(FAST, n_frames=len(full) + 40), 3)
    assert len(dense) == len(full) + 40
    assert np.linalg.norm(dense[-1, :3, 3] - full[-1, :3, 3]) < 0.3


def test_fused_mesh_is_one_connected_surface(fused):
    comp = face_components(fused.mesh.faces.astype(np.int64), len(fused.mesh.vertices))
    share = np.bincount(comp).max() / len(comp)
    assert share > 0.9 and fused.meta["largest_component_share"] == pytest.approx(share, abs=1e-4)
    # the piecewise mesh of the same room falls apart into its parts
    parts = generate_scene(2, dataclasses.replace(FAST, mesh="parts", n_frames=2))
    comp = face_components(parts.mesh.faces.astype(np.int64), len(parts.mesh.vertices))
    assert np.bincount(comp).max() / len(comp) < 0.5 and comp.max() > 30


def test_fused_gt_agrees_with_the_rendered_2d_gt(fused):
    v = fused.mesh.vertices.astype(np.float64)
    intr = fused.intrinsics
    agree = total = 0
    for frame in fused.frames[::7]:
        cam = (v - frame.pose[:3, 3]) @ frame.pose[:3, :3]
        z = cam[:, 2]
        ok = z > 0.1
        u = np.rint(cam[ok, 0] / z[ok] * intr.fx + intr.cx).astype(int)
        r = np.rint(cam[ok, 1] / z[ok] * intr.fy + intr.cy).astype(int)
        idx = np.flatnonzero(ok)
        inside = (u >= 0) & (r >= 0) & (u < intr.width) & (r < intr.height)
        idx, u, r = idx[inside], u[inside], r[inside]
        # visible in this frame: the sensor's own (noisy) depth agrees with the vertex
        d = frame.depth[r, u]
        vis = (d > 0) & (np.abs(d - z[idx]) < 0.03)
        gt = fused.gt_instance[idx[vis]]
        pix = frame.instance[r[vis], u[vis]]
        agree += int(np.sum((gt == pix) & (gt > 0)))
        total += int(np.sum(gt > 0))
    assert total > 5000 and agree / total > 0.85, agree / total
    assert np.mean(fused.gt_instance == 0) < 0.05
    # parts agree with instances
    part_inst = {int(p): int(i) for p, i in zip(fused.parts, fused.gt_instance)}
    assert all(i == 0 or p > 0 for p, i in part_inst.items())
    assert len(set(part_inst.values())) <= len(part_inst)


def test_no_surface_the_camera_did_not_see():
    cfg = dataclasses.replace(FAST, n_frames=6)
    data = generate_scene(5, cfg)
    seen = np.concatenate([_backproject(f, data.intrinsics) for f in data.frames])
    dist, _ = cKDTree(seen).query(data.mesh.vertices.astype(np.float64))
    assert np.quantile(dist, 0.99) < 2.5 * cfg.voxel_size and dist.max() < 0.25
    # and the GT mesh has far more surface than these few frames saw
    assert data.meta["coverage"] < 0.5


def test_fused_mesh_has_the_target_density_and_colours_from_the_frames(fused):
    assert 450 < fused.meta["vertices_per_m2"] < 800
    assert fused.mesh.colors.dtype == np.uint8 and fused.mesh.colors.shape == fused.mesh.vertices.shape
    assert fused.mesh.colors.std() > 5
    assert set(np.unique(fused.gt_instance[fused.gt_instance > 0]) // 1000) <= set(fused.labels)


def test_a_frame_with_all_invalid_depth_is_skipped_and_counted(fused):
    parts = build_scene_mesh(2, FAST)[1].parts.instance
    frames = [dataclasses.replace(f) for f in fused.frames[:30]]
    frames[3] = dataclasses.replace(frames[3], depth=np.zeros_like(frames[3].depth))
    exact = [np.where(f.depth > 0, f.depth, 0).astype(np.float32) for f in fused.frames[:30]]
    rec = reconstruct(frames, exact, fused.intrinsics, parts, "synth0002_00", voxel_size=0.04)
    assert rec.skipped_frames == 1 and len(rec.mesh.faces) > 0
    assert fused.meta["skipped_frames"] == 0  # reported in every fused scene's metadata


def test_zero_faces_is_a_data_error_naming_the_scene(fused):
    frames = [dataclasses.replace(f, depth=np.zeros_like(f.depth)) for f in fused.frames[:4]]
    exact = [np.zeros_like(f.depth) for f in frames]
    with pytest.raises(DataError, match=r"synth0002_00.*zero faces.*4 depth frames are invalid"):
        reconstruct(frames, exact, fused.intrinsics, np.zeros(1, np.int64), "synth0002_00")
    # a whole scan whose sensor sees nothing (every surface nearer than the minimum depth)
    cfg = dataclasses.replace(FAST, n_frames=2, min_depth=6.0, max_depth=7.0)
    with pytest.raises(DataError, match="synth0009_00.*zero faces"):
        generate_scene(9, cfg)


def test_style_seed_changes_appearance_but_not_layout_and_vice_versa():
    base = SynthConfig(n_groups=3)
    a = build_scene_mesh(3, dataclasses.replace(base, style_seed=10))
    b = build_scene_mesh(3, dataclasses.replace(base, style_seed=11))
    (la, ma), (lb, mb) = a, b
    np.testing.assert_array_equal(ma.vertices, mb.vertices)
    np.testing.assert_array_equal(ma.faces, mb.faces)
    np.testing.assert_array_equal(ma.vertex_instance, mb.vertex_instance)
    assert np.abs(ma.colors.astype(int) - mb.colors.astype(int)).mean() > 10
    assert la.style != lb.style
    # another layout seed, same style seed: another room in the same style
    c = generate_layout(4, dataclasses.replace(base, style_seed=10))
    assert c.style == la.style and c.size != la.size
    # the style seed defaults to the scene seed
    assert generate_layout(3, base).style == generate_layout(5, dataclasses.replace(base, style_seed=3)).style


def test_styles_vary_materials_and_lighting():
    styles = [generate_layout(0, SynthConfig(n_groups=1, style_seed=s)).style for s in range(40)]
    assert {s.floor for s in styles} == {"wood", "tiles", "carpet", "concrete"}
    assert {s.wall for s in styles} == {"paint", "wallpaper"}
    assert {s.fabric for s in styles} == {"plain", "stripes", "checks"}
    assert {len(s.lights) for s in styles} >= {1, 2, 3}
    assert np.ptp([s.ambient for s in styles]) > 0.15


@pytest.mark.parametrize(("shape", "walls"), [("L", 6), ("two", 8)])
def test_room_shapes(shape, walls):
    cfg = SynthConfig(room_shapes=(shape,))
    for seed in (0, 1):
        layout, m = build_scene_mesh(seed, cfg)
        assert layout.shape == shape
        ids = np.unique(m.vertex_instance)
        assert sum(i // 1000 == LABEL_IDS["wall"] for i in ids) == walls
        assert sum(i // 1000 == LABEL_IDS["floor"] for i in ids) == 1
        # nothing stands outside the room, and the camera can walk everywhere inside
        for t in layout.things:
            lo, hi = t.world_bounds()
            if t.on_floor:
                assert layout.inside_at(np.array([(lo[:2] + hi[:2]) / 2]))[0], t.label
        cells = (np.argwhere(layout.free) + 0.5) * 0.05
        assert layout.inside_at(cells).all()
        if shape == "two":  # the camera reaches both rooms through the opening
            a = layout.walls[4].a[0]
            assert (cells[:, 0] < a - 0.5).any() and (cells[:, 0] > a + 0.5).any()
        else:  # the walk reaches past the inner corner into an arm of the L
            corner = np.array(layout.walls[3].a)  # the L's inner corner
            assert ((cells[:, 0] > corner[0]) | (cells[:, 1] > corner[1])).any()
        assert layout.free.sum() > 0.2 * layout.inside.sum()


def test_walk_covers_two_connected_rooms():
    cfg = SynthConfig(width=32, height=24, room_shapes=("two",), n_groups=2)
    layout = generate_layout(1, cfg)
    poses, info = camera_poses(layout, cfg, 1)
    a = layout.walls[4].a[0]
    x = poses[:, 0, 3]
    assert (x < a - 0.3).mean() > 0.2 and (x > a + 0.3).mean() > 0.2
    assert 100 <= len(poses) <= 300


def test_furniture_size_and_clutter_vary_per_room():
    def footprint(layout):
        return sum(
            np.prod((t.world_bounds()[1] - t.world_bounds()[0])[:2]) for t in layout.things if t.on_floor
        )

    # one group: the same furniture, drawn at two sizes
    big = generate_layout(0, SynthConfig(n_groups=1, furniture_scale=(1.3, 1.3)))
    small = generate_layout(0, SynthConfig(n_groups=1, furniture_scale=(0.8, 0.8)))
    assert footprint(big) / footprint(small) == pytest.approx((1.3 / 0.8) ** 2, rel=0.05)
    # the same placements, with or without the small things on tables and shelves
    full = generate_layout(1, SynthConfig(clutter=(1.0, 1.0)))
    bare = generate_layout(1, SynthConfig(clutter=(0.0, 0.0)))
    assert footprint(full) == pytest.approx(footprint(bare))
    assert len(bare.things) < len(full.things) - 5


def test_new_config_fields_are_validated():
    for bad in (
        {"capture": "drone"},
        {"mesh": "voxels"},
        {"frame_skip": 0},
        {"voxel_size": 0.0},
        {"room_shapes": ("round",)},
        {"clutter": (0.8, 0.2)},
        {"n_frames": 0},
    ):
        with pytest.raises(ConfigError):
            SynthConfig(**bad)


def test_synth_cli_takes_a_style_seed_and_writes_coverage(tmp_path):
    import json

    from tracklift.cli import main
    from tracklift.datasets.formats import open_scene

    root = str(tmp_path / "corpus")
    args = ["synth", "--out", root, "--scenes", "2", "--seed", "3", "--width", "32", "--height", "24"]
    assert main([*args, "--frames", "4", "--style-seed", "100"]) == 0
    meta = [json.loads((tmp_path / "corpus" / f"synth000{s}_00" / "synth.json").read_text()) for s in (3, 4)]
    assert [m["style"]["style_seed"] for m in meta] == [100, 101]
    assert all(0 <= m["coverage"] <= 1 and m["mesh"] == "fused" and m["frames"] == 4 for m in meta)
    scene = open_scene(str(tmp_path / "corpus" / "synth0003_00"))
    assert len(scene.gt_instance) == meta[0]["vertices"]


def test_a_failing_scene_is_logged_and_the_corpus_goes_on():
    from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus

    lines = []
    cfg = SynthCommandConfig(out="memory://failing_corpus", scenes=2, seed=9, width=32, height=24)
    blind = dataclasses.replace(FAST, width=32, height=24, n_frames=2, min_depth=6.0, max_depth=7.0)
    assert synthesize_corpus(cfg, log=lines.append, synth=blind) == []
    assert len(lines) == 2 and all("FAILED" in ln and "zero faces" in ln for ln in lines)
    assert "synth0009_00" in lines[0] and "synth0010_00" in lines[1]
