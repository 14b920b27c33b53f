"""Procedural room layout: floor, four walls, furniture groups, a door and pictures on the walls.

The room is the box [0, W] × [0, D] × [0, H] (metres, z up). Floor-standing things are placed by
rejection sampling on a 5 cm plan-view occupancy grid so that their footprints never overlap; a
placement is also refused when it would leave the camera too little free floor to walk through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tracklift.datasets.synthetic import props
from tracklift.datasets.synthetic.config import DEFAULT_CONFIG, SynthConfig
from tracklift.datasets.synthetic.furniture import GROUPS
from tracklift.datasets.synthetic.labels import STRUCTURE_LABELS
from tracklift.datasets.synthetic.primitives import BOX_SIDES, apply, box, translation
from tracklift.datasets.synthetic.things import Palette, Thing, facing, pose2d

CELL = 0.05  # plan-view grid step, metres
WALL_MARGIN = 0.45  # the camera keeps this far from the walls, metres
CLEARANCE = 0.35  # ... and this far from any floor-standing thing
MIN_FREE_AREA = 2.0  # m² of connected free floor the camera needs


@dataclass
class Layout:
    """A furnished room.

    Attributes:
        size: (W, D, H) room extents in metres.
        things: every instance, transforms into the world, structure first (floor, walls, ceiling).
        free: (nx, ny) bool plan-view grid, True where the camera may stand (cell ``CELL`` metres,
            cell (i, j) centred at ((i + 0.5)·CELL, (j + 0.5)·CELL)); the largest connected region only.
        light: (3,) world position of the ceiling light.
    """

    size: tuple[float, float, float]
    things: list[Thing]
    free: np.ndarray
    light: np.ndarray


def wall_pose(k: int, W: float, D: float, s: float = 0.0, inset: float = 0.0) -> np.ndarray:
    """Transform putting a wall thing (back on y = 0, front -y) on wall ``k`` at offset ``s`` from its middle.

    Walls: 0 at y = 0, 1 at x = W, 2 at y = D, 3 at x = 0; ``inset`` moves the thing into the room.
    """
    mid = [(W / 2, 0.0), (W, D / 2), (W / 2, D), (0.0, D / 2)][k]
    normal = [(0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0)][k]
    yaw = facing(*normal)
    return pose2d(mid[0], mid[1], yaw) @ translation(s, -inset, 0.0)


def wall_length(k: int, W: float, D: float) -> float:
    return W if k % 2 == 0 else D


class Floorplan:
    """Plan-view occupancy of the room on a ``CELL`` grid."""

    def __init__(self, W: float, D: float):
        self.W, self.D = W, D
        self.nx, self.ny = math.ceil(W / CELL), math.ceil(D / CELL)
        self.occ = np.zeros((self.nx, self.ny), dtype=bool)
        yy, xx = np.meshgrid((np.arange(self.ny) + 0.5) * CELL, (np.arange(self.nx) + 0.5) * CELL)
        self.centres = np.stack([xx, yy], -1)  # (nx, ny, 2)

    def footprint(self, thing: Thing, margin: float = 0.0) -> np.ndarray | None:
        """(nx, ny) cells covered by the thing's rotated plan-view rectangle grown by ``margin``;
        None when the (ungrown) rectangle leaves the room."""
        lo, hi = thing.local_bounds()
        return self.rect(thing.transform, lo[:2], hi[:2], margin)

    def rect(self, T: np.ndarray, lo, hi, margin: float = 0.0) -> np.ndarray | None:
        """Cells inside the rectangle [lo, hi] (2D, in the frame of the (4, 4) transform ``T``)."""
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]]])
        world = corners @ T[:2, :2].T + T[:2, 3]
        outside = (
            world.min() < -1e-6 or world[:, 0].max() > self.W + 1e-6 or world[:, 1].max() > self.D + 1e-6
        )
        if outside:
            return None
        rel = (self.centres - T[:2, 3]) @ T[:2, :2]  # into T's frame (the rotation is orthonormal)
        return np.all((rel >= lo - margin) & (rel <= hi + margin), axis=-1)

    def camera_space(self, occ: np.ndarray | None = None) -> np.ndarray:
        """Cells where the camera may stand: away from walls and things; largest connected region."""
        occ = self.occ if occ is None else occ
        r = int(round(CLEARANCE / CELL))
        disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
        free = ~ndimage.binary_dilation(occ, structure=disk)
        c = self.centres
        free &= (c[..., 0] > WALL_MARGIN) & (c[..., 0] < self.W - WALL_MARGIN)
        free &= (c[..., 1] > WALL_MARGIN) & (c[..., 1] < self.D - WALL_MARGIN)
        labels, n = ndimage.label(free)
        if n == 0:
            return free
        sizes = ndimage.sum(free, labels, index=np.arange(1, n + 1))
        return labels == (1 + int(np.argmax(sizes)))

    def try_add(self, things: list[Thing], margin: float = 0.05) -> bool:
        """Occupy the floor things' footprints if they fit and leave the camera room; else change nothing."""
        occ = self.occ.copy()
        for t in things:
            if not t.on_floor:
                continue
            inside = self.footprint(t)
            if inside is None:
                return False
            grown = self.footprint(t, margin)
            if np.any(grown & occ):
                return False
            occ |= inside
        if self.camera_space(occ).sum() * CELL * CELL < MIN_FREE_AREA:
            return False
        self.occ = occ
        return True


def _structure(rng: np.random.Generator, W: float, D: float, H: float, ceiling: bool) -> list[Thing]:
    """Floor, four walls (each its own instance) and optionally a ceiling."""
    floor_pal = Palette(rng, str(rng.choice(["wood", "painted"])), accent=0.0, texture="floor")
    only = lambda side: tuple(s for s in BOX_SIDES if s != side)  # noqa: E731
    things = [
        Thing("floor", [floor_pal.part("floor", "floor", [box(W, D, 0.0, W / 2, D / 2, 0.0, only("+z"))])])
    ]
    wall_pal = Palette(rng, "wall", accent=0.0, texture="plain")
    accent_wall = int(rng.integers(4)) if rng.random() < 0.3 else -1
    for k in range(4):
        pal = Palette(rng, "painted", accent=0.0) if k == accent_wall else wall_pal
        plane = box(wall_length(k, W, D), 0.0, H, 0.0, 0.0, 0.0, only("-y"))
        things.append(Thing("wall", [pal.part("wall", "wall", [plane])], transform=wall_pose(k, W, D)))
    if ceiling:
        pal = Palette(rng, "wall", accent=0.0)
        things.append(
            Thing("ceiling", [pal.part("ceiling", "ceiling", [box(W, D, 0.0, W / 2, D / 2, H, only("-z"))])])
        )
    for t in things:
        t.on_floor = False
    return things


def _choose_groups(rng: np.random.Generator, n: int) -> list[str]:
    names = list(GROUPS)
    counts = dict.fromkeys(names, 0)
    out = []
    for _ in range(n):
        avail = [g for g in names if counts[g] < GROUPS[g][3]]
        if not avail:
            break
        w = np.array([GROUPS[g][2] for g in avail])
        g = avail[int(rng.choice(len(avail), p=w / w.sum()))]
        counts[g] += 1
        out.append(g)
    return out


def _place_group(
    rng: np.random.Generator, plan: Floorplan, things: list[Thing], on_wall: bool
) -> list[Thing] | None:
    """Find a pose for a group (things in the group frame); return them in the world frame, or None."""
    floor = [t for t in things if t.on_floor]
    pts = np.concatenate([np.stack(t.world_bounds()) for t in floor])
    lo, hi = pts.min(0), pts.max(0)
    for _ in range(40):
        if on_wall:
            k = int(rng.integers(4))
            L = wall_length(k, plan.W, plan.D)
            room = L / 2 - 0.02
            if hi[0] - lo[0] > 2 * room:
                continue
            s = rng.uniform(-room - lo[0], room - hi[0])
            T = wall_pose(k, plan.W, plan.D, s, rng.uniform(0.01, 0.06))
        else:
            yaw = rng.choice([0.0, math.pi / 2]) + rng.uniform(-0.2, 0.2)
            x, y = rng.uniform(0.3, plan.W - 0.3), rng.uniform(0.3, plan.D - 0.3)
            centre = (lo + hi) / 2
            T = pose2d(x, y, yaw) @ translation(-centre[0], -centre[1], 0.0)
        placed = [t.moved(T) for t in things]
        if plan.try_add(placed):
            return placed
    return None


def _boxes_clear(lo: np.ndarray, hi: np.ndarray, others: list[Thing], pad: float = 0.05) -> bool:
    """No thing other than the room's structure comes within ``pad`` of the box [lo, hi]."""
    for t in others:
        if t.label in STRUCTURE_LABELS:
            continue
        olo, ohi = t.world_bounds()
        if np.all(lo < ohi + pad) and np.all(hi > olo - pad):
            return False
    return True


def _wall_things(rng: np.random.Generator, plan: Floorplan, H: float, things: list[Thing]) -> list[Thing]:
    """A door with its frame (60 %) and 0-2 pictures, wherever they clear the furniture."""
    out: list[Thing] = []
    W, D = plan.W, plan.D
    if rng.random() < 0.6:
        w, h = rng.uniform(0.8, 0.92), min(rng.uniform(1.98, 2.1), H - 0.2)
        door, frame = props.door(rng, w, h)
        for _ in range(30):
            k = int(rng.integers(4))
            room = wall_length(k, W, D) / 2 - w / 2 - 0.15
            if room <= 0:
                continue
            T = wall_pose(k, W, D, rng.uniform(-room, room))
            # the door needs clear floor in front of it (its swing) and nothing tall beside it
            lo, hi = np.array([-w / 2 - 0.15, -0.9, 0.0]), np.array([w / 2 + 0.15, 0.0, h])
            zone = plan.rect(T, lo[:2], hi[:2])
            if zone is None or np.any(zone & plan.occ):
                continue
            corners = np.stack(np.meshgrid(*zip(lo, hi), indexing="ij"), -1).reshape(-1, 3)
            world = apply(T, corners)
            if not _boxes_clear(world.min(0), world.max(0), things):
                continue
            out += [door.moved(T), frame.moved(T)]
            break
    for _ in range(int(rng.integers(0, 3))):
        w, h = rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.7)
        pic = props.picture(rng, w, h)
        for _ in range(20):
            k = int(rng.integers(4))
            room = wall_length(k, W, D) / 2 - w / 2 - 0.1
            z_hi = H - h - 0.2
            if room <= 0 or z_hi < 1.1:
                continue
            T = wall_pose(k, W, D, rng.uniform(-room, room)) @ translation(
                0, 0, rng.uniform(1.1, min(z_hi, 1.6))
            )
            placed = pic.moved(T)
            lo, hi = placed.world_bounds()
            # keep a slab in front of the picture free of furniture as well
            slab_lo, slab_hi = np.minimum(lo, lo + 0.3 * _inward(k)), np.maximum(hi, hi + 0.3 * _inward(k))
            if _boxes_clear(slab_lo, slab_hi, things + out):
                out.append(placed)
                break
    return out


def _inward(k: int) -> np.ndarray:
    return np.array([(0.0, 1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0)][k])


def generate_layout(seed: int, cfg: SynthConfig = DEFAULT_CONFIG) -> Layout:
    """A furnished room for a seed (depends only on the seed and ``cfg.room_fields``).

    Args:
        seed: scene seed.
        cfg: generator configuration.

    Returns:
        the :class:`Layout` (things in world coordinates, camera free space, light).
    """
    rng = np.random.default_rng([int(seed), 1])
    W, D = (float(rng.uniform(*cfg.room_size)) for _ in range(2))
    H = float(rng.uniform(*cfg.wall_height))
    plan = Floorplan(W, D)
    things = _structure(rng, W, D, H, cfg.ceiling)
    for name in _choose_groups(rng, cfg.n_groups):
        build, on_wall, _, _ = GROUPS[name]
        placed = _place_group(rng, plan, build(rng), on_wall)
        if placed is not None:
            things += [f for t in placed for f in t.flatten()]
    things += _wall_things(rng, plan, H, things)
    light = np.array([W / 2 + rng.uniform(-0.3, 0.3) * W, D / 2 + rng.uniform(-0.3, 0.3) * D, H - 0.05])
    return Layout((W, D, H), things, plan.camera_space(), light)
