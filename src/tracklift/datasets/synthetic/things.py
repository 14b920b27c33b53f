"""Objects built from parts, their colours and textures, and a few placement helpers.

An object ("thing") is one GT instance: a ScanNet200 label and a list of parts; a part is one or more
analytic shapes sharing a colour and a texture (a table top, one leg, a chair's back). Things are
described in their own frame (x right, y towards the back, z up, floor at z = 0; the front faces -y) and
carry a transform into their parent frame (group, then world).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field, replace

import numpy as np

from tracklift.datasets.synthetic.primitives import Shape, apply, rotation_z, translation


@dataclass(frozen=True)
class Texture:
    """Procedural albedo texture: smooth 3D value noise, evaluated at world points.

    Args:
        scale: (3,) feature size in metres along world x, y, z (unequal scales give grain or planks).
        amplitude: relative albedo variation (multiplied by ``SynthConfig.texture / 0.08``).
        seed: noise seed (different parts, different patterns).
        kind: pattern on top of the noise (see :func:`.appearance.albedo`): ``"noise"`` (none),
            ``"grain"`` (wood grain lines), ``"tiles"`` (tiles and grout), ``"stripes"``, ``"checks"``,
            ``"carpet"`` (fine, strong fibre noise).
        period: pattern period in metres (tile size, stripe width, grain spacing); unused by ``"noise"``.
    """

    scale: tuple[float, float, float]
    amplitude: float
    seed: int
    kind: str = "noise"
    period: float = 0.0


@dataclass
class Part:
    """One GT part: shapes (in the owning thing's frame) with one albedo colour (RGB in [0, 1]).

    ``material``, ``role`` and ``finish`` (the ``TEXTURES`` entry) say what the colour and texture were
    drawn as (``"wood"``, ``"leg"``, ``"fabric"``), so that a style can re-colour the part consistently
    with its siblings (see :mod:`.styles`).
    """

    name: str
    shapes: list[Shape]
    color: np.ndarray
    texture: Texture
    material: str = ""
    role: str = ""
    finish: str = ""


@dataclass(frozen=True)
class Surface:
    """A horizontal rectangle things can stand on, in the owner's frame; ``clearance`` = free height."""

    x0: float
    x1: float
    y0: float
    y1: float
    z: float
    clearance: float = math.inf


@dataclass
class Thing:
    """One instance: label, parts, transform (own frame → parent frame), support surfaces.

    Args:
        label: ScanNet200 category name (see ``labels.LABEL_IDS``).
        parts: the parts, in the thing's own frame.
        transform: (4, 4) own frame → parent frame.
        on_floor: stands on the floor (its footprint blocks the floor for furniture and camera).
        surfaces: support surfaces in the own frame (table tops, shelf boards).
        children: things standing on this one, in this one's frame.
        hides: ``"floor"`` if its plan-view box covers the floor under it completely (a cabinet, not a
            table), ``"wall"`` if its back covers the wall behind it (a door, a picture): the room's mesh
            leaves out the covered surface, which no camera could see.
    """

    label: str
    parts: list[Part]
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))
    on_floor: bool = True
    surfaces: list[Surface] = field(default_factory=list)
    children: list[Thing] = field(default_factory=list)
    hides: str = ""

    def cover_box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(lo, hi) in the own frame of the thin box where ``hides`` covers floor or wall, or None."""
        if not self.hides:
            return None
        lo, hi = self.local_bounds()
        lo, hi = lo.copy(), hi.copy()
        if self.hides == "floor":
            lo[2], hi[2] = lo[2] - 0.01, lo[2] + 0.01
        else:  # the back of a wall thing lies on y = hi[1]
            lo[1], hi[1] = hi[1] - 0.01, hi[1] + 0.01
        return lo, hi

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,), (3,) axis-aligned bounds of the parts in the own frame (children excluded)."""
        corners = np.concatenate([shape_corners(s) for p in self.parts for s in p.shapes])
        return corners.min(0), corners.max(0)

    def moved(self, T: np.ndarray) -> Thing:
        """A copy whose transform is ``T @ transform`` (re-parented by ``T``)."""
        return replace(self, transform=T @ self.transform)

    def flatten(self, T: np.ndarray | None = None) -> list[Thing]:
        """This thing and all its descendants with transforms composed into the frame of ``T``."""
        T = np.eye(4) if T is None else T
        me = replace(self, transform=T @ self.transform, children=[])
        out = [me]
        for c in self.children:
            out.extend(c.flatten(me.transform))
        return out

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds of the parts after ``transform`` (assumes it maps to the world)."""
        corners = np.concatenate([shape_corners(s) for p in self.parts for s in p.shapes])
        pts = apply(self.transform, corners)
        return pts.min(0), pts.max(0)


def shape_corners(shape: Shape) -> np.ndarray:
    """(8, 3) corners of a box that bounds the shape, in the shape owner's frame."""
    a, b, c = shape.size
    if shape.kind == "box":
        lo, hi = np.array([-a, -b, -c]) / 2, np.array([a, b, c]) / 2
    elif shape.kind == "cylinder":
        r = max(a, b)
        lo, hi = np.array([-r, -r, 0.0]), np.array([r, r, c])
    else:
        lo, hi = -np.array([a, b, c]), np.array([a, b, c])
    grid = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    return apply(shape.transform, lo + grid * (hi - lo))


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0.03, 1))))


# Base colour distributions: (hue range, saturation range, value range); hue None = any hue.
MATERIALS = {
    "wood": ((0.05, 0.11), (0.35, 0.7), (0.3, 0.75)),
    "painted": (None, (0.05, 0.45), (0.45, 0.92)),
    "fabric": (None, (0.2, 0.65), (0.25, 0.7)),
    "metal": ((0.55, 0.65), (0.0, 0.1), (0.2, 0.7)),
    "plastic": (None, (0.45, 0.9), (0.45, 0.95)),
    "cardboard": ((0.07, 0.1), (0.35, 0.55), (0.5, 0.75)),
    "wall": (None, (0.0, 0.12), (0.72, 0.9)),
    "foliage": ((0.22, 0.38), (0.45, 0.8), (0.25, 0.55)),
    "dark": (None, (0.0, 0.2), (0.08, 0.25)),
}

# Texture styles: (feature size in metres (x, y, z), amplitude).
TEXTURES = {
    "wood": ((0.25, 0.02, 0.02), 1.0),
    "fabric": ((0.012, 0.012, 0.012), 0.8),
    "plain": ((0.08, 0.08, 0.08), 0.5),
    "paper": ((0.03, 0.03, 0.03), 1.6),
    "floor": ((0.6, 0.09, 0.5), 1.4),
}


class Palette:
    """Colours of one object: every role (``"leg"``, ``"top"``…) gets a close variant of a base colour.

    Parts with the same role share the role's colour with a tiny extra jitter, so the parts of one object
    look alike but not identical; with probability ``accent`` a role takes a colour from another material
    (a fabric seat on a wooden chair), so colour alone never decides between part and whole.
    """

    def __init__(self, rng: np.random.Generator, material: str, accent: float = 0.2, texture: str = "plain"):
        self.rng = rng
        self.material = material
        self.texture = texture
        self.accent = accent
        self.base = self.sample(material)
        self.roles: dict[str, tuple[np.ndarray, str, str]] = {}

    def sample(self, material: str) -> np.ndarray:
        hue, sat, val = MATERIALS[material]
        h = self.rng.uniform(*hue) if hue else self.rng.random()
        return np.array(colorsys.rgb_to_hsv(*hsv(h, self.rng.uniform(*sat), self.rng.uniform(*val))))

    def part(self, name: str, role: str, shapes: list[Shape], texture: str | None = None) -> Part:
        """A part named ``name`` coloured by ``role``."""
        if role not in self.roles:
            r = self.rng
            if self.roles and r.random() < self.accent:
                other = r.choice(["fabric", "painted", "metal", "dark"])
                self.roles[role] = (
                    self.sample(str(other)),
                    "fabric" if other == "fabric" else "plain",
                    str(other),
                )
            else:
                jitter = np.array([r.normal(0, 0.015), r.normal(0, 0.06), r.normal(0, 0.06)])
                self.roles[role] = (self.base + jitter, self.texture, self.material)
        h, s, v = self.roles[role][0] + self.rng.normal(0, [0.004, 0.015, 0.015])
        style = texture or self.roles[role][1]
        scale, amp = TEXTURES[style]
        tex = Texture(scale, amp, int(self.rng.integers(1 << 30)))
        return Part(name, shapes, hsv(h, s, v), tex, material=self.roles[role][2], role=role, finish=style)


def pose2d(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """(4, 4) transform: rotate by ``yaw`` about z, then move to (x, y, z)."""
    return translation(x, y, z) @ rotation_z(yaw)


def facing(dx: float, dy: float) -> float:
    """The yaw that turns a thing's front (-y) towards the direction (dx, dy)."""
    return math.atan2(dx, -dy)


def place_on_surface(
    rng: np.random.Generator, surface: Surface, things: list[Thing], margin: float = 0.03, tries: int = 30
) -> list[Thing]:
    """Scatter things (own frames with the base at z = 0) on a surface without overlaps.

    Things are kept apart by their bounding circles; those that do not fit (too tall for the clearance,
    or no free spot after ``tries``) are left out. Returns them moved into the surface owner's frame.
    """
    placed: list[tuple[float, float, float]] = []
    out = []
    for t in things:
        lo, hi = t.local_bounds()
        r = float(np.hypot(*np.maximum(np.abs(lo[:2]), np.abs(hi[:2]))))
        if hi[2] > surface.clearance - 0.02:
            continue
        x_lo, x_hi = surface.x0 + r + margin, surface.x1 - r - margin
        y_lo, y_hi = surface.y0 + r + margin, surface.y1 - r - margin
        if x_lo > x_hi or y_lo > y_hi:
            continue
        for _ in range(tries):
            x, y = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
            if all(math.hypot(x - px, y - py) > r + pr + 0.02 for px, py, pr in placed):
                placed.append((x, y, r))
                out.append(t.moved(pose2d(x, y, rng.uniform(-math.pi, math.pi), surface.z)))
                out[-1].on_floor = False
                break
    return out
