"""Procedural room layout: floor, walls, furniture groups, a door and pictures on the walls.

The room lies in the box [0, W] × [0, D] × [0, H] (metres, z up) and is a rectangle, an L (one corner cut
away) or two rooms side by side joined by a wide opening in a partition wall. Its walls are segments
with the room on their left (:class:`WallSegment`). Floor-standing things are placed by rejection
sampling on a 5 cm plan-view occupancy grid so that their footprints never overlap; a placement is also
refused when it would leave the camera too little free floor to walk through. Each room draws a
furniture size factor and a clutter level (the share of small things kept on tables and shelves).
Colours, patterns and lights come from the room's style (:mod:`.styles`), drawn from its own seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from tracklift.datasets.synthetic import props
from tracklift.datasets.synthetic.appearance import Lighting
from tracklift.datasets.synthetic.config import DEFAULT_CONFIG, SynthConfig
from tracklift.datasets.synthetic.furniture import GROUPS
from tracklift.datasets.synthetic.labels import STRUCTURE_LABELS
from tracklift.datasets.synthetic.primitives import BOX_SIDES, apply, box, translation
from tracklift.datasets.synthetic.styles import Style, apply_style, light_positions, sample_style
from tracklift.datasets.synthetic.things import Palette, Thing, facing, pose2d

CELL = 0.05  # plan-view grid step, metres
WALL_MARGIN = 0.45  # the camera keeps this far from the walls, metres
CLEARANCE = 0.35  # ... and this far from any floor-standing thing
MIN_FREE_AREA = 2.0  # m² of connected free floor the camera needs
PARTITION = 0.1  # thickness of the wall between two rooms, metres


@dataclass
class Layout:
    """A furnished room.

    Attributes:
        size: (W, D, H) room extents in metres.
        things: every instance, transforms into the world, structure first (floor, walls, ceiling).
        free: (nx, ny) bool plan-view grid, True where the camera may stand (cell ``CELL`` metres,
            cell (i, j) centred at ((i + 0.5)·CELL, (j + 0.5)·CELL)); the largest connected region only.
        light: the room's lights (:class:`~.appearance.Lighting`, from its style).
        inside: (nx, ny) bool plan-view grid, True inside the room (None = the whole box).
        shape: ``"rect"``, ``"L"`` or ``"two"``.
        style: the room's :class:`~.styles.Style`.
        walls: the wall segments.
    """

    size: tuple[float, float, float]
    things: list[Thing]
    free: np.ndarray
    light: Lighting
    inside: np.ndarray | None = None
    shape: str = "rect"
    style: Style | None = None
    walls: list | None = None

    def inside_at(self, xy: np.ndarray) -> np.ndarray:
        """(N,) bool: plan-view points (N, 2) metres that lie inside the room."""
        xy = np.asarray(xy, dtype=np.float64)
        W, D, _ = self.size
        ok = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= W) & (xy[:, 1] <= D)
        if self.inside is None:
            return ok
        ij = np.clip(np.floor(xy / CELL).astype(np.int64), 0, np.array(self.inside.shape) - 1)
        return ok & self.inside[ij[:, 0], ij[:, 1]]


@dataclass(frozen=True)
class WallSegment:
    """A straight wall from ``a`` to ``b`` (plan view, metres) with the room on its left."""

    a: tuple[float, float]
    b: tuple[float, float]

    @property
    def length(self) -> float:
        return float(math.hypot(self.b[0] - self.a[0], self.b[1] - self.a[1]))

    @property
    def normal(self) -> np.ndarray:
        """(2,) unit normal pointing into the room."""
        d = np.subtract(self.b, self.a) / max(self.length, 1e-12)
        return np.array([-d[1], d[0]])

    def pose(self, s: float = 0.0, inset: float = 0.0) -> np.ndarray:
        """Transform putting a wall thing (back on y = 0, front -y) on this wall at offset ``s`` from its
        middle; ``inset`` moves the thing into the room."""
        mid = (np.asarray(self.a) + np.asarray(self.b)) / 2
        return pose2d(float(mid[0]), float(mid[1]), facing(*self.normal)) @ translation(s, -inset, 0.0)

    def distance(self, xy: np.ndarray) -> np.ndarray:
        """(...,) distance (metres) from plan points (..., 2) to the segment."""
        a, b = np.asarray(self.a), np.asarray(self.b)
        ab = b - a
        t = np.clip(((xy - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        return np.linalg.norm(xy - (a + t[..., None] * ab), axis=-1)


def room_outline(shape: str, W: float, D: float, rng: np.random.Generator) -> tuple[list, list]:
    """Walls and floor rectangles of a room shape in the box [0, W] × [0, D].

    Returns:
        (walls, floor): :class:`WallSegment` list (the room on each one's left) and floor rectangles
        ``(x0, y0, x1, y1)`` covering the inside.
    """
    if shape == "L":  # the corner at (W, D) is cut away
        cw, cd = W * rng.uniform(0.35, 0.5), D * rng.uniform(0.35, 0.5)
        pts = [(0.0, 0.0), (W, 0.0), (W, D - cd), (W - cw, D - cd), (W - cw, D), (0.0, D)]
        walls = [WallSegment(pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts))]
        return walls, [(0.0, 0.0, W, D - cd), (0.0, D - cd, W - cw, D)]
    rect = [WallSegment((0.0, 0.0), (W, 0.0)), WallSegment((W, 0.0), (W, D))]
    rect += [WallSegment((W, D), (0.0, D)), WallSegment((0.0, D), (0.0, 0.0))]
    if shape == "two":  # a partition at x = a with an opening [o0, o1] wide enough to walk through
        a = W * rng.uniform(0.42, 0.58)
        width = rng.uniform(1.5, 1.9)
        o0 = rng.uniform(0.2, D - width - 0.2)
        o1 = o0 + width
        left, right = a - PARTITION / 2, a + PARTITION / 2
        walls = rect + [WallSegment((left, 0.0), (left, o0)), WallSegment((left, o1), (left, D))]
        walls += [WallSegment((right, o0), (right, 0.0)), WallSegment((right, D), (right, o1))]
        floor = [(0.0, 0.0, left, D), (right, 0.0, W, D), (left, o0, right, o1)]
        return walls, floor
    return rect, [(0.0, 0.0, W, D)]


class Floorplan:
    """Plan-view occupancy of the room on a ``CELL`` grid."""

    def __init__(self, W: float, D: float, walls: list[WallSegment] | None = None, floor=None):
        self.W, self.D = W, D
        self.nx, self.ny = math.ceil(W / CELL), math.ceil(D / CELL)
        yy, xx = np.meshgrid((np.arange(self.ny) + 0.5) * CELL, (np.arange(self.nx) + 0.5) * CELL)
        self.centres = np.stack([xx, yy], -1)  # (nx, ny, 2)
        self.walls = walls or room_outline("rect", W, D, np.random.default_rng(0))[0]
        self.inside = np.zeros((self.nx, self.ny), dtype=bool)
        for x0, y0, x1, y1 in floor or [(0.0, 0.0, W, D)]:
            c = self.centres
            self.inside |= (c[..., 0] > x0) & (c[..., 0] < x1) & (c[..., 1] > y0) & (c[..., 1] < y1)
        self.wall_dist = np.min([w.distance(self.centres) for w in self.walls], axis=0)
        self.occ = np.zeros_like(self.inside)
        self.keep_clear = np.zeros_like(self.occ)  # furniture may not stand here (an opening's way through)
        self.connected = (
            len(self.walls) != 4
        )  # L-shaped and two-room plans keep their free floor in one piece

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
        # into T's frame (T may scale: furniture groups are grown or shrunk per room)
        rel = (self.centres - T[:2, 3]) @ np.linalg.inv(T[:2, :2]).T
        return np.all((rel >= lo - margin) & (rel <= hi + margin), axis=-1)

    def camera_space(self, occ: np.ndarray | None = None) -> np.ndarray:
        """Cells where the camera may stand: away from walls and things; largest connected region."""
        occ = self.occ if occ is None else occ
        r = int(round(CLEARANCE / CELL))
        disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
        free = ~ndimage.binary_dilation(occ, structure=disk)
        free &= self.inside & (self.wall_dist > WALL_MARGIN)
        labels, n = ndimage.label(free)
        if n == 0:
            return free
        sizes = ndimage.sum(free, labels, index=np.arange(1, n + 1))
        return labels == (1 + int(np.argmax(sizes)))

    def _free_cells(self, occ: np.ndarray) -> int:
        """Free cells of all connected regions (``camera_space`` keeps the largest only)."""
        r = int(round(CLEARANCE / CELL))
        disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
        return int(
            (
                ~ndimage.binary_dilation(occ, structure=disk) & self.inside & (self.wall_dist > WALL_MARGIN)
            ).sum()
        )

    def try_add(self, things: list[Thing], margin: float = 0.05) -> bool:
        """Occupy the floor things' footprints if they fit and leave the camera room; else change nothing."""
        occ = self.occ.copy()
        for t in things:
            if not t.on_floor:
                continue
            inside = self.footprint(t)
            if inside is None or np.any(inside & ~self.inside):  # nothing stands outside the room
                return False
            grown = self.footprint(t, margin)
            if np.any(grown & (occ | self.keep_clear)):
                return False
            occ |= inside
        free = self.camera_space(occ)
        if free.sum() * CELL * CELL < MIN_FREE_AREA:
            return False
        # a whole-room walk must reach every part of the room: refuse a placement that cuts off a
        # sizeable piece of the free floor (an arm of an L, the second room)
        if self.connected and free.sum() < 0.85 * self._free_cells(occ):
            return False
        self.occ = occ
        return True


def _structure(
    rng: np.random.Generator, plan: Floorplan, floor: list, H: float, ceiling: bool
) -> list[Thing]:
    """Floor, the walls (each its own instance) and optionally a ceiling."""
    floor_pal = Palette(rng, str(rng.choice(["wood", "painted"])), accent=0.0, texture="floor")
    only = lambda side: tuple(s for s in BOX_SIDES if s != side)  # noqa: E731
    rects = [(x1 - x0, y1 - y0, (x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in floor]
    floor_shapes = [box(w, d, 0.0, x, y, 0.0, only("+z")) for w, d, x, y in rects]
    things = [Thing("floor", [floor_pal.part("floor", "floor", floor_shapes)])]
    wall_pal = Palette(rng, "wall", accent=0.0, texture="plain")
    accent_wall = int(rng.integers(len(plan.walls))) if rng.random() < 0.3 else -1
    for k, wall in enumerate(plan.walls):
        pal = Palette(rng, "painted", accent=0.0) if k == accent_wall else wall_pal
        plane = box(wall.length, 0.0, H, 0.0, 0.0, 0.0, only("-y"))
        things.append(Thing("wall", [pal.part("wall", "wall", [plane])], transform=wall.pose()))
    if ceiling:
        pal = Palette(rng, "wall", accent=0.0)
        shapes = [box(w, d, 0.0, x, y, H, only("-z")) for w, d, x, y in rects]
        things.append(Thing("ceiling", [pal.part("ceiling", "ceiling", shapes)]))
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


def _pick_wall(rng: np.random.Generator, walls: list[WallSegment]) -> WallSegment:
    """A wall drawn with probability proportional to its length (short stubs are rarely chosen)."""
    if len(walls) == 4:  # a rectangle: uniform, as before walls became segments
        return walls[int(rng.integers(4))]
    lengths = np.array([w.length for w in walls])
    return walls[int(rng.choice(len(walls), p=lengths / lengths.sum()))]


def _place_group(
    rng: np.random.Generator, plan: Floorplan, things: list[Thing], on_wall: bool, scale: float = 1.0
) -> list[Thing] | None:
    """Find a pose for a group (things in the group frame, grown by ``scale`` in plan and ``√scale`` in
    height); return them in the world frame, or None."""
    S = np.diag([scale, scale, math.sqrt(scale), 1.0])
    things = [t.moved(S) for t in things]
    floor = [t for t in things if t.on_floor]
    pts = np.concatenate([np.stack(t.world_bounds()) for t in floor])
    lo, hi = pts.min(0), pts.max(0)
    for _ in range(40):
        if on_wall:
            wall = _pick_wall(rng, plan.walls)
            room = wall.length / 2 - 0.02
            if hi[0] - lo[0] > 2 * room:
                continue
            s = rng.uniform(-room - lo[0], room - hi[0])
            T = wall.pose(s, rng.uniform(0.01, 0.06))
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
    if rng.random() < 0.6:
        w, h = rng.uniform(0.8, 0.92), min(rng.uniform(1.98, 2.1), H - 0.2)
        door, frame = props.door(rng, w, h)
        for _ in range(30):
            wall = _pick_wall(rng, plan.walls)
            room = wall.length / 2 - w / 2 - 0.15
            if room <= 0:
                continue
            T = wall.pose(rng.uniform(-room, room))
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
            wall = _pick_wall(rng, plan.walls)
            room = wall.length / 2 - w / 2 - 0.1
            z_hi = H - h - 0.2
            if room <= 0 or z_hi < 1.1:
                continue
            T = wall.pose(rng.uniform(-room, room)) @ translation(0, 0, rng.uniform(1.1, min(z_hi, 1.6)))
            placed = pic.moved(T)
            lo, hi = placed.world_bounds()
            # keep a slab in front of the picture free of furniture as well
            inward = np.array([*wall.normal, 0.0])
            slab_lo, slab_hi = np.minimum(lo, lo + 0.3 * inward), np.maximum(hi, hi + 0.3 * inward)
            if _boxes_clear(slab_lo, slab_hi, things + out):
                out.append(placed)
                break
    return out


def generate_layout(seed: int, cfg: SynthConfig = DEFAULT_CONFIG) -> Layout:
    """A furnished room for a seed: its geometry depends only on the seed and ``cfg.room_fields``, its
    appearance (colours, patterns, lights) only on ``cfg.style_seed`` (the seed when None) and ``cfg.styled``.

    Args:
        seed: scene seed.
        cfg: generator configuration.

    Returns:
        the :class:`Layout` (things in world coordinates, camera free space, light).
    """
    rng = np.random.default_rng([int(seed), 1])
    # the variety draws (shape, furniture size, clutter) have their own stream, so that the rest of a
    # rectangular room is drawn as before they existed
    var = np.random.default_rng([int(seed), 5])
    shape = str(var.choice(list(cfg.room_shapes)))
    scale = float(var.uniform(*cfg.furniture_scale))
    clutter = float(var.uniform(*cfg.clutter))
    W, D = (float(rng.uniform(*cfg.room_size)) for _ in range(2))
    if shape == "two":  # two rooms side by side
        W = min(W * 1.7, 12.0)
    elif shape == "L":  # the cut corner takes about a fifth of the floor
        W, D = min(W * 1.15, 12.0), min(D * 1.15, 12.0)
    H = float(rng.uniform(*cfg.wall_height))
    walls, floor = room_outline(shape, W, D, var)
    plan = Floorplan(W, D, walls, floor)
    if shape == "two":  # keep the way through the opening clear of furniture
        a, o0, o1 = walls[4].a[0] + PARTITION / 2, walls[4].b[1], walls[5].a[1]
        c = plan.centres
        plan.keep_clear = (np.abs(c[..., 0] - a) < 0.9) & (c[..., 1] > o0 - 0.2) & (c[..., 1] < o1 + 0.2)
    things = _structure(rng, plan, floor, H, cfg.ceiling)
    for name in _choose_groups(rng, cfg.n_groups + (2 if shape == "two" else 0)):
        build, on_wall, _, _ = GROUPS[name]
        placed = _place_group(rng, plan, [_declutter(t, clutter, var) for t in build(rng)], on_wall, scale)
        if placed is not None:
            things += [f for t in placed for f in t.flatten()]
    things += _wall_things(rng, plan, H, things)
    u = rng.uniform(-0.3, 0.3, size=2)  # the unstyled light (the style's lights replace it)
    style = sample_style(int(seed) if cfg.style_seed is None else int(cfg.style_seed))
    if cfg.styled:
        things = apply_style(things, style)
        lighting = Lighting(light_positions(style, (W, D, H)), style.intensity, style.ambient, style.tint)
    else:
        lighting = Lighting(np.array([W / 2 + u[0] * W, D / 2 + u[1] * D, H - 0.05]))
    return Layout(
        (W, D, H),
        things,
        plan.camera_space(),
        lighting,
        inside=plan.inside,
        shape=shape,
        style=style if cfg.styled else None,
        walls=walls,
    )


def _declutter(thing: Thing, keep: float, rng: np.random.Generator) -> Thing:
    """The thing with each small thing standing on it (recursively) kept with probability ``keep``."""
    if not thing.children:
        return thing
    kids = [_declutter(c, keep, rng) for c in thing.children if rng.random() < keep]
    return replace(thing, children=kids)
