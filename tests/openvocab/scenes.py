"""A hand-made scene with known geometry: a flat wall filmed head-on by a camera sliding sideways.

The wall is the plane y = 3 m, seen by cameras at (x, 0, 1) looking along +y, so every pixel's depth is
exactly 3 m and pixel (u, v) shows the wall point x = eye_x + (u - cx) / fx * 3, z = 1 - (v - cy) / fy * 3.
Coloured rectangles on the wall are the instances; their colour is painted into every frame.
"""

from __future__ import annotations

import numpy as np

from tracklift.datasets.scene import Frame, Intrinsics, Mesh, SceneData
from tracklift.geometry.camera import look_at
from tracklift.structures import Instances

WALL_Y = 3.0
EYES_X = (-0.6, 0.0, 0.6)
INTR = Intrinsics(fx=60.0, fy=60.0, cx=39.5, cy=29.5, width=80, height=60)

#: name -> (x0, x1, z0, z1) rectangle on the wall, metres, and its RGB colour.
PATCHES = {
    "red": ((-0.4, 0.0, 0.7, 1.2), (230, 20, 20)),
    "blue": ((0.5, 0.9, 0.6, 1.1), (20, 20, 230)),
    "right_edge": ((2.1, 2.5, 0.8, 1.2), (20, 200, 20)),  # only the rightmost camera sees it
    "wide_left": ((-2.5, -1.0, 1.3, 1.5), (200, 200, 20)),  # seen best from the leftmost camera
}
WALL_COLOR = (128, 128, 128)


def _in_rect(x: np.ndarray, z: np.ndarray, rect) -> np.ndarray:
    x0, x1, z0, z1 = rect
    return (x >= x0) & (x <= x1) & (z >= z0) & (z <= z1)


def wall_scene(spacing: float = 0.05) -> tuple[SceneData, Instances, list[str]]:
    """The scene, its instances and their names.

    Instances, in order: the ``PATCHES`` on the wall, then ``far`` (a wall patch no camera sees) and
    ``hidden`` (a patch 0.5 m behind the wall, in view but occluded).
    """
    xs = np.arange(-4.0, 4.0 + 1e-9, spacing)
    zs = np.arange(-0.5, 2.5 + 1e-9, spacing)
    gx, gz = np.meshgrid(xs, zs, indexing="ij")
    gx, gz = gx.ravel(), gz.ravel()
    wall = np.stack([gx, np.full_like(gx, WALL_Y), gz], axis=1)
    hx, hz = np.meshgrid(np.arange(-0.3, 0.3, spacing), np.arange(0.8, 1.2, spacing), indexing="ij")
    hidden = np.stack([hx.ravel(), np.full(hx.size, WALL_Y + 0.5), hz.ravel()], axis=1)
    verts = np.concatenate([wall, hidden]).astype(np.float32)
    n_wall = len(wall)
    names, masks = [], []
    for name, (rect, _) in PATCHES.items():
        m = np.zeros(len(verts), bool)
        m[:n_wall] = _in_rect(gx, gz, rect)
        names.append(name)
        masks.append(m)
    far = np.zeros(len(verts), bool)
    far[:n_wall] = _in_rect(gx, gz, (3.6, 4.0, 0.0, 0.5))
    hid = np.zeros(len(verts), bool)
    hid[n_wall:] = True
    names += ["far", "hidden"]
    masks += [far, hid]
    colors = np.full((len(verts), 3), WALL_COLOR, np.uint8)

    frames = []
    v, u = np.mgrid[0 : INTR.height, 0 : INTR.width]
    for i, ex in enumerate(EYES_X):
        pose = look_at(eye=(ex, 0.0, 1.0), target=(ex, WALL_Y, 1.0))
        px = ex + (u - INTR.cx) / INTR.fx * WALL_Y
        pz = 1.0 - (v - INTR.cy) / INTR.fy * WALL_Y
        img = np.empty((INTR.height, INTR.width, 3), np.uint8)
        img[:] = WALL_COLOR
        for rect, color in PATCHES.values():
            img[_in_rect(px, pz, rect)] = color
        depth = np.full((INTR.height, INTR.width), WALL_Y, np.float32)
        frames.append(Frame(index=i, color=img, depth=depth, pose=pose))
    data = SceneData("wall0000_00", INTR, frames, Mesh(verts, colors, None))
    return data, Instances(np.stack(masks)), names
