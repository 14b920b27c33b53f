"""A small hand-built room rendered by ray casting, for lifting tests that need exact geometry.

The room is an open box (floor + four walls) with a few boxes on the floor, one stacked on another; every
object is a separate piece of mesh so per-vertex ground truth is exact. Frames are rendered with trimesh
(embree) from a camera turning at the room centre: depth is the hit's camera z, the instance map the hit
face's object id (ScanNet encoding ``label*1000+inst``).
"""

from __future__ import annotations

import numpy as np
import trimesh
import trimesh.ray.ray_pyembree

from tests.conftest import look_at
from tracklift.datasets.scene import Frame, Intrinsics, Mesh, SceneData


def _grid(origin, u, v, res):
    """A planar patch ``origin + a*u + b*v`` (a, b in [0, 1]) as a regular grid of spacing <= res."""
    origin, u, v = (np.asarray(x, dtype=np.float64) for x in (origin, u, v))
    nu = max(1, int(np.ceil(np.linalg.norm(u) / res)))
    nv = max(1, int(np.ceil(np.linalg.norm(v) / res)))
    a, b = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
    verts = origin + a.reshape(-1, 1) * u + b.reshape(-1, 1) * v
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    c = (i * (nv + 1) + j).reshape(-1)
    faces = np.concatenate([np.stack([c, c + nv + 1, c + nv + 2], 1), np.stack([c, c + nv + 2, c + 1], 1)])
    return verts, faces


def _quad(corners, res):
    c = np.asarray(corners, dtype=np.float64)
    return _grid(c[0], c[1] - c[0], c[3] - c[0], res)


def _box(extents, center, res):
    """Five faces of a box standing on its bottom (the bottom is never seen)."""
    ex, ey, ez = extents
    x0, y0, z0 = np.asarray(center, dtype=np.float64) - np.asarray(extents) / 2
    sides = [
        ((x0, y0, z0 + ez), (ex, 0, 0), (0, ey, 0)),  # top
        ((x0, y0, z0), (ex, 0, 0), (0, 0, ez)),
        ((x0, y0 + ey, z0), (ex, 0, 0), (0, 0, ez)),
        ((x0, y0, z0), (0, ey, 0), (0, 0, ez)),
        ((x0 + ex, y0, z0), (0, ey, 0), (0, 0, ez)),
    ]
    verts, faces, off = [], [], 0
    for o, u, v in sides:
        gv, gf = _grid(o, u, v, res)
        verts.append(gv)
        faces.append(gf + off)
        off += len(gv)
    return np.concatenate(verts), np.concatenate(faces)


def room_pieces(res: float, size=(4.0, 5.0), height=2.5):
    """[(vertices, faces, gt_id)] of the room; ``res`` is the largest edge length in metres."""
    sx, sy = size
    pieces = [
        (*_quad([(0, 0, 0), (sx, 0, 0), (sx, sy, 0), (0, sy, 0)], res), 2001),  # floor
        (*_quad([(0, 0, 0), (sx, 0, 0), (sx, 0, height), (0, 0, height)], res), 1001),
        (*_quad([(sx, 0, 0), (sx, sy, 0), (sx, sy, height), (sx, 0, height)], res), 1002),
        (*_quad([(sx, sy, 0), (0, sy, 0), (0, sy, height), (sx, sy, height)], res), 1003),
        (*_quad([(0, sy, 0), (0, 0, 0), (0, 0, height), (0, sy, height)], res), 1004),
        (*_box((1.2, 0.8, 0.75), (1.0, 1.0, 0.375), res), 7001),  # table-ish block
        (*_box((0.6, 0.5, 1.2), (3.4, 1.2, 0.6), res), 3001),  # cabinet
        (*_box((0.5, 0.5, 0.5), (3.2, 4.0, 0.25), res), 5001),  # box
        (*_box((0.35, 0.35, 0.35), (3.2, 4.0, 0.675), res), 5002),  # box stacked on the box
        (*_box((0.8, 0.6, 0.9), (0.8, 4.1, 0.45), res), 6001),  # armchair-ish block
    ]
    return pieces


def build_room(
    n_frames: int = 20, width: int = 160, height: int = 120, res: float = 0.1, seed: int = 0
) -> SceneData:
    """Render the room.

    Args:
        n_frames: frames on a full turn of the camera.
        width, height: image size in pixels (fx = fy = 0.9 * width).
        res: mesh edge length in metres (0.04 gives ~55k vertices, 0.1 ~9k).
        seed: colour and trajectory jitter.

    Returns:
        SceneData with per-pixel GT instance maps in ``Frame.instance`` and per-vertex ``gt_instance``.
    """
    rng = np.random.default_rng(seed)
    pieces = room_pieces(res)
    verts, faces, vgt, fgt, cols = [], [], [], [], []
    off = 0
    for v, f, gid in pieces:
        verts.append(v)
        faces.append(f + off)
        vgt.append(np.full(len(v), gid, np.int64))
        fgt.append(np.full(len(f), gid, np.int64))
        cols.append(np.tile(rng.integers(30, 230, size=3), (len(v), 1)))
        off += len(v)
    V, F = np.concatenate(verts), np.concatenate(faces)
    mesh = Mesh(V, np.concatenate(cols).astype(np.uint8), F)
    face_gt = np.concatenate(fgt)
    tm = trimesh.Trimesh(V, F, process=False)
    caster = trimesh.ray.ray_pyembree.RayMeshIntersector(tm)

    f = 0.9 * width
    intr = Intrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height)
    rr, cc = np.mgrid[0:height, 0:width]
    dirs_cam = np.stack([(cc - intr.cx) / f, (rr - intr.cy) / f, np.ones_like(cc, float)], -1).reshape(-1, 3)
    frames = []
    center = np.array([2.0, 2.5])
    for i in range(n_frames):
        a = 2 * np.pi * i / n_frames + rng.uniform(-0.05, 0.05)
        eye = (*(center + 0.4 * np.array([np.cos(a), np.sin(a)])), 1.5)
        target = (*(center + 2.0 * np.array([np.cos(a), np.sin(a)])), 0.5)
        pose = look_at(eye, target)
        R, t = pose[:3, :3], pose[:3, 3]
        d = dirs_cam @ R.T
        tri, ray, loc = caster.intersects_id(
            np.tile(t, (len(d), 1)), d, multiple_hits=False, return_locations=True
        )
        depth = np.zeros(len(d), np.float32)
        inst = np.zeros(len(d), np.int32)
        depth[ray] = (loc - t) @ R[:, 2]
        inst[ray] = face_gt[tri]
        color = np.zeros((len(d), 3), np.uint8)
        color[ray] = mesh.colors[F[tri, 0]]
        frames.append(
            Frame(
                index=i,
                color=color.reshape(height, width, 3),
                depth=depth.reshape(height, width),
                pose=pose,
                instance=inst.reshape(height, width),
            )
        )
    return SceneData("room0000_00", intr, frames, mesh, np.concatenate(vgt))
