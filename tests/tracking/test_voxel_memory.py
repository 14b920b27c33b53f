"""The geometric tracker's 3D voxel memory (tracklift/tracking/voxel_memory.py) and the keyframe pixel
helper of the granularity-consistent tracker (one back-projection per keyframe for every mask)."""

from __future__ import annotations

import numpy as np

from tracklift.datasets.scene import Frame, Intrinsics
from tracklift.geometry.camera import backproject_pixels, depth_pixels
from tracklift.geometry.voxels import voxel_keys
from tracklift.tracking.consistent import _KeyframePixels, _seen_on
from tracklift.tracking.voxel_memory import VoxelMemory


def _write(mem: VoxelMemory, keys: np.ndarray, slot: int, lab: float = 50.0) -> None:
    n = len(keys)
    normals = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (n, 1))
    mem.write(keys, np.full(n, slot, np.int32), np.full((n, 3), lab, np.float32), normals)


def _look(mem: VoxelMemory, keys: np.ndarray, lab: float = 50.0):
    n = len(keys)
    normals = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (n, 1))
    return mem.lookup(keys[None], np.full((n, 3), lab, np.float32), normals, 10.0, 0.5)


def test_memory_keeps_owners_and_appearance_through_growth():
    rng = np.random.default_rng(0)
    keys = rng.choice(1 << 40, size=60_000, replace=False).astype(np.int64)
    mem = VoxelMemory(capacity=16)  # grows index and rows many times
    for k, chunk in enumerate(np.array_split(keys, 30)):
        _write(mem, chunk, slot=1 + k % 3, lab=20.0 + k)
    seen_only = rng.choice(np.arange(1 << 41, (1 << 41) + 10**6), size=20_000, replace=False)
    mem.observe(seen_only)
    assert len(mem) == len(keys) and mem.seen_count() == len(keys) + len(seen_only)
    assert len(mem.keys) >= 2 * mem.seen_count()  # the index stays at most half full
    for k, chunk in enumerate(np.array_split(keys, 30)):
        owner, ok, seen, conf = _look(mem, chunk, lab=20.0 + k)
        assert (owner == 1 + k % 3).all() and ok.all() and seen.all() and conf.all()
        _, ok_far, _, _ = _look(mem, chunk, lab=20.0 + k + 30)  # ΔE 30 > 10: colour disagrees
        assert not ok_far.any()
    owner, ok, seen, _ = _look(mem, seen_only)
    assert (owner == 0).all() and seen.all() and not ok.any()
    owner, _, seen, _ = _look(mem, np.array([(1 << 42) + 5], np.int64))
    assert owner[0] == 0 and not seen[0]  # never observed
    assert sum(mem.count_of(s) for s in (1, 2, 3)) == len(keys)


def test_memory_release_and_only_free_writes():
    mem = VoxelMemory()
    a, b = np.arange(0, 100, dtype=np.int64), np.arange(100, 200, dtype=np.int64)
    _write(mem, a, 1)
    _write(mem, b, 2)
    held = np.array([False, True, False])  # release slot 1's voxels seen at pixels of slot 0
    mem.release(a[:40], held, np.zeros(40, np.int32))
    assert mem.count_of(1) == 60
    n = 80
    normals = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (n, 1))
    mem.write(  # learned writes take free voxels only
        np.concatenate([a[:40], b[:40]]), np.full(n, 3, np.int32), np.zeros((n, 3), np.float32), normals, True
    )
    assert mem.count_of(3) == 40 and mem.count_of(2) == 100
    owner, _, _, conf = _look(mem, a[:40])
    assert (owner == 3).all() and not conf.any()  # learned, not confirmed


def _frames():
    intr = Intrinsics(80.0, 80.0, 39.5, 29.5, 80, 60)
    rng = np.random.default_rng(3)
    depth = (2.0 + 0.3 * rng.random((60, 80))).astype(np.float32)
    depth[:, :7] = 0  # pixels without depth
    pose = np.eye(4)
    moved = pose.copy()
    moved[0, 3] = 0.15  # the previous keyframe sat 15 cm to the side
    color = np.zeros((60, 80, 3), np.uint8)
    return intr, Frame(1, color, depth, pose), Frame(0, color, depth, moved)


def test_keyframe_pixels_match_per_mask_backprojection():
    """The one-back-projection helper samples the same points per mask as depth_pixels and answers as the
    per-mask computation did."""
    intr, kf, prev = _frames()
    px = _KeyframePixels(kf, intr, voxel=0.05)
    mask = np.zeros(kf.depth.shape, bool)
    mask[5:50, 3:70] = True
    for max_points in (None, 1500, 200):
        vs, us = depth_pixels(kf.depth, mask, max_points=max_points)
        idx = px.index(mask, max_points)
        assert (px.rows[idx] == vs).all() and (px.cols[idx] == us).all()
    vs, us = depth_pixels(kf.depth, mask, max_points=1500)
    world = backproject_pixels(vs, us, kf.depth[vs, us].astype(np.float64), intr, kf.pose)
    assert px.voxel_keys(mask, max_points=1500) == set(np.unique(voxel_keys(world, 0.05)).tolist())
    vs, us = depth_pixels(kf.depth, mask, max_points=2000)
    world = backproject_pixels(vs, us, kf.depth[vs, us].astype(np.float64), intr, kf.pose)
    expected = _seen_on(world, prev, intr, 0.05, 0.02)[0].mean()
    assert 0.0 < expected < 1.0  # the side shift hides part of the mask from the previous keyframe
    assert px.visible_share(mask, prev) == expected
    assert px.visible_share(np.zeros_like(mask), prev) == 1.0  # nothing measurable
    prev_map = np.zeros(kf.depth.shape, np.int32)
    prev_map[:, 40:] = 7
    seen_as = px.seen_as(prev, prev_map)
    ok, u, v = _seen_on(px.world, prev, intr, 0.05, 0.02)
    assert (seen_as[~ok] == -1).all() and (seen_as[ok] == prev_map[v[ok], u[ok]]).all()
    assert {0, 7} <= set(np.unique(seen_as).tolist())
