"""Analytic shapes (box, cylinder/cone, ellipsoid) and their tessellation into regular triangle grids.

Furniture is described by shapes first and tessellated last, so the mesh density can be chosen per object
(small objects get a finer grid so that every instance has enough vertices). Every surface is a regular
parameter grid with spacing at most ``spacing`` metres along its axes, triangles wound so that their
normals point outwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOX_SIDES = ("-x", "+x", "-y", "+y", "-z", "+z")


@dataclass(frozen=True)
class Shape:
    """One closed (or partly open) analytic surface in its own frame.

    Args:
        kind: ``"box"`` (centred on the origin, ``size`` = full extents x, y, z), ``"cylinder"`` (axis z,
            base at z = 0, ``size`` = (bottom radius, top radius, height); unequal radii make a cone
            frustum) or ``"ellipsoid"`` (centred, ``size`` = radii).
        size: three lengths in metres, see ``kind``.
        transform: (4, 4) shape frame → part owner's (object) frame.
        open_sides: sides left out because nobody can see them: box sides from :data:`BOX_SIDES`,
            cylinder ``"bottom"`` / ``"top"``.
    """

    kind: str
    size: tuple[float, float, float]
    transform: np.ndarray
    open_sides: tuple[str, ...] = ()


def translation(x: float, y: float, z: float) -> np.ndarray:
    """(4, 4) translation."""
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def rotation_z(yaw: float) -> np.ndarray:
    """(4, 4) rotation by ``yaw`` radians about +z."""
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    return T


def rotation_x(angle: float) -> np.ndarray:
    """(4, 4) rotation by ``angle`` radians about +x."""
    c, s = math.cos(angle), math.sin(angle)
    T = np.eye(4)
    T[1:3, 1:3] = [[c, -s], [s, c]]
    return T


def box(sx: float, sy: float, sz: float, x: float, y: float, z0: float, open_sides=(), yaw: float = 0.0):
    """A box of extents (sx, sy, sz) whose bottom face is centred at (x, y, z0)."""
    T = translation(x, y, z0 + sz / 2) @ rotation_z(yaw)
    return Shape("box", (sx, sy, sz), T, tuple(open_sides))


def cylinder(r_bottom: float, r_top: float, h: float, x: float, y: float, z0: float, open_sides=()):
    """A vertical cylinder or cone frustum standing at (x, y, z0)."""
    return Shape("cylinder", (r_bottom, r_top, h), translation(x, y, z0), tuple(open_sides))


def ellipsoid(rx: float, ry: float, rz: float, x: float, y: float, z: float) -> Shape:
    """An axis-aligned ellipsoid centred at (x, y, z)."""
    return Shape("ellipsoid", (rx, ry, rz), translation(x, y, z))


def apply(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) points mapped by the (4, 4) transform ``T``."""
    return points @ T[:3, :3].T + T[:3, 3]


def _n(length: float, spacing: float) -> int:
    return max(1, math.ceil(length / spacing - 1e-9))


def _param_grid(fn, nu: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``fn(u, v)`` on a (nu+1)×(nv+1) grid over [0, 1]²; triangles wound along ∂u × ∂v."""
    u, v = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
    verts = fn(u.ravel(), v.ravel())
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return verts, faces


def _plane(origin, du, dv, spacing: float):
    origin, du, dv = (np.asarray(x, dtype=np.float64) for x in (origin, du, dv))
    nu, nv = _n(np.linalg.norm(du), spacing), _n(np.linalg.norm(dv), spacing)
    return _param_grid(lambda u, v: origin + u[:, None] * du + v[:, None] * dv, nu, nv)


def _box(size, spacing: float, open_sides) -> list:
    sx, sy, sz = size
    lo = np.array([-sx, -sy, -sz]) / 2
    X, Y, Z = np.array([sx, 0, 0]), np.array([0, sy, 0]), np.array([0, 0, sz])
    # (origin, du, dv) with du × dv pointing out of the box
    sides = {
        "-x": (lo, Z, Y),
        "+x": (lo + X, Y, Z),
        "-y": (lo, X, Z),
        "+y": (lo + Y, Z, X),
        "-z": (lo, Y, X),
        "+z": (lo + Z, X, Y),
    }
    return [_plane(*sides[s], spacing) for s in BOX_SIDES if s not in open_sides]


def _cylinder(size, spacing: float, open_sides) -> list:
    rb, rt, h = size
    n_t = max(10, _n(2 * math.pi * max(rb, rt), spacing))
    slant = math.hypot(h, rb - rt)

    def side(u, v):  # u: angle, v: height; ∂u × ∂v points outwards
        r = rb + (rt - rb) * v
        t = 2 * math.pi * u
        return np.stack([r * np.cos(t), r * np.sin(t), h * v], -1)

    pieces = [_param_grid(side, n_t, _n(slant, spacing))]
    for name, r, z in (("bottom", rb, 0.0), ("top", rt, h)):
        if name in open_sides or r <= 0:
            continue

        def cap(u, v, r=r, z=z, top=name == "top"):
            t, rho = (2 * math.pi * v, r * u) if top else (2 * math.pi * u, r * v)
            return np.stack([rho * np.cos(t), rho * np.sin(t), np.full_like(t, z)], -1)

        n_r = _n(r, spacing)
        pieces.append(_param_grid(cap, n_r, n_t) if name == "top" else _param_grid(cap, n_t, n_r))
    return pieces


def _ellipsoid(size, spacing: float) -> list:
    rx, ry, rz = size
    r = max(size)

    def fn(u, v):  # u: polar angle from +z, v: azimuth; ∂u × ∂v points outwards
        p, t = math.pi * u, 2 * math.pi * v
        return np.stack([rx * np.sin(p) * np.cos(t), ry * np.sin(p) * np.sin(t), rz * np.cos(p)], -1)

    return [_param_grid(fn, max(4, _n(math.pi * r, spacing)), max(8, _n(2 * math.pi * r, spacing)))]


def merge_duplicates(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weld vertices closer than 1e-7 m (grid seams, poles, box edges) and drop collapsed triangles."""
    key = np.round(verts / 1e-7).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep the first-seen order so the result is independent of hashing
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    new_verts = verts[first[order]]
    faces = rank[inverse.reshape(-1)][faces]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return new_verts, faces[ok]


def tessellate(shape: Shape, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate a shape in its owner's frame.

    Args:
        shape: the analytic shape.
        spacing: largest grid step along the surface's parameter axes, metres.

    Returns:
        vertices (N, 3) float64 metres and faces (F, 3) int64 (outward winding, welded).
    """
    if shape.kind == "box":
        pieces = _box(shape.size, spacing, shape.open_sides)
    elif shape.kind == "cylinder":
        pieces = _cylinder(shape.size, spacing, shape.open_sides)
    elif shape.kind == "ellipsoid":
        pieces = _ellipsoid(shape.size, spacing)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")
    verts, faces, off = [], [], 0
    for v, f in pieces:
        verts.append(v)
        faces.append(f + off)
        off += len(v)
    v, f = merge_duplicates(np.concatenate(verts), np.concatenate(faces))
    return apply(shape.transform, v), f


def surface_area(shape: Shape) -> float:
    """Approximate visible surface area of a shape in m² (chooses tessellation density)."""
    a, b, c = shape.size
    if shape.kind == "box":
        areas = {"-x": b * c, "+x": b * c, "-y": a * c, "+y": a * c, "-z": a * b, "+z": a * b}
        return sum(v for k, v in areas.items() if k not in shape.open_sides)
    if shape.kind == "cylinder":
        area = math.pi * (a + b) * math.hypot(c, a - b)
        area += 0.0 if "bottom" in shape.open_sides else math.pi * a * a
        return area + (0.0 if "top" in shape.open_sides else math.pi * b * b)
    p = 1.6075  # Knud Thomsen's approximation of the ellipsoid's surface
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
