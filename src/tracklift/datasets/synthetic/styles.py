"""Room styles: materials, patterns, colour schemes and lighting, drawn from a seed of their own.

A :class:`Style` depends only on its ``style_seed``: the floor (wood planks, tiles, carpet, concrete),
the walls (plain paint or striped wallpaper, and their colour), the upholstery (plain, striped or
checked fabric), the wood tone, a colour scheme (a base hue and how far colours stray from it, how
saturated they are), and the lights (how many, where as fractions of the room, how strong, how warm, how
much ambient light). :func:`apply_style` re-colours every part of a laid-out room by its ``material``,
``role`` and ``finish`` and places the lights; the geometry is untouched. So the layout seed and the
style seed vary independently, and a set of style seeds can be held out.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, replace

import numpy as np

from tracklift.datasets.synthetic.things import MATERIALS, TEXTURES, Texture, hsv

FLOORS = ("wood", "tiles", "carpet", "concrete")
WALLS = ("paint", "paint", "wallpaper")
FABRICS = ("plain", "stripes", "checks")

#: texture feature size (m) and amplitude per floor kind, and the pattern drawn on top
_FLOOR_TEXTURE = {
    "wood": ((0.6, 0.09, 0.5), 1.2, "grain"),
    "tiles": ((0.15, 0.15, 0.15), 0.6, "tiles"),
    "carpet": ((0.05, 0.05, 0.05), 0.9, "carpet"),
    "concrete": ((0.3, 0.3, 0.3), 1.4, "noise"),
}


@dataclass(frozen=True)
class Style:
    """The appearance of a room (see the module docstring). Colours are HSV triples in [0, 1].

    Attributes:
        seed: the style seed.
        floor: one of :data:`FLOORS`; ``floor_hsv`` its colour, ``floor_period`` its plank/tile size (m).
        wall: one of :data:`WALLS`; ``wall_hsv`` its colour, ``wall_period`` the stripe width (m).
        fabric: one of :data:`FABRICS`; ``fabric_period`` the stripe or check size (m).
        wood_hue: (lo, hi) hue range of wood; ``wood_value`` (lo, hi) its brightness (light or dark wood).
        hue: base hue of painted, plastic and fabric colours; ``spread`` how far they stray from it (0.5 =
            any hue); ``saturation`` a factor on their saturation.
        lights: (L, 2) light positions as fractions of the room's plan extent (hung 5 cm below the top).
        intensity: direct-light strength; ``ambient`` the share of light reaching every surface.
        tint: (3,) RGB multiplier of the light colour (warm or cool).
    """

    seed: int
    floor: str
    floor_hsv: tuple[float, float, float]
    floor_period: float
    wall: str
    wall_hsv: tuple[float, float, float]
    wall_period: float
    fabric: str
    fabric_period: float
    wood_hue: tuple[float, float]
    wood_value: tuple[float, float]
    hue: float
    spread: float
    saturation: float
    lights: tuple[tuple[float, float], ...]
    intensity: float
    ambient: float
    tint: tuple[float, float, float]


def sample_style(style_seed: int) -> Style:
    """The :class:`Style` of a style seed (deterministic)."""
    rng = np.random.default_rng([int(style_seed), 77])
    floor = str(rng.choice(FLOORS))
    if floor == "wood":
        floor_hsv = (rng.uniform(0.05, 0.11), rng.uniform(0.3, 0.65), rng.uniform(0.3, 0.75))
    elif floor == "carpet":
        floor_hsv = (rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.25, 0.6))
    else:  # tiles, concrete: greys and stone colours
        floor_hsv = (rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.2), rng.uniform(0.4, 0.85))
    wall = str(rng.choice(WALLS))
    wall_hsv = (rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.65, 0.92))
    light = rng.uniform(0.0, 1.0) < 0.5
    n_lights = int(rng.choice([1, 1, 2, 3]))
    warm = rng.uniform(-1.0, 1.0)  # -1 cool white … +1 warm bulb
    return Style(
        seed=int(style_seed),
        floor=floor,
        floor_hsv=tuple(float(x) for x in floor_hsv),
        floor_period=float(rng.uniform(0.3, 0.6) if floor == "tiles" else rng.uniform(0.1, 0.2)),
        wall=wall,
        wall_hsv=tuple(float(x) for x in wall_hsv),
        wall_period=float(rng.uniform(0.04, 0.15)),
        fabric=str(rng.choice(FABRICS)),
        fabric_period=float(rng.uniform(0.015, 0.06)),
        wood_hue=(0.05, 0.09) if light else (0.03, 0.08),
        wood_value=(0.55, 0.8) if light else (0.2, 0.45),
        hue=float(rng.random()),
        spread=float(rng.choice([0.06, 0.12, 0.25, 0.5])),
        saturation=float(rng.uniform(0.5, 1.3)),
        lights=tuple(
            (float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.25, 0.75))) for _ in range(n_lights)
        ),
        intensity=float(rng.uniform(0.75, 1.15)),
        ambient=float(rng.uniform(0.3, 0.55)),
        tint=(1.0 + 0.06 * warm, 1.0, 1.0 - 0.1 * warm),
    )


def _colour(rng: np.random.Generator, style: Style, material: str) -> np.ndarray:
    """An HSV colour for a material under the style's colour scheme."""
    hue, sat, val = MATERIALS.get(material, MATERIALS["painted"])
    if material == "wood":
        h, v = rng.uniform(*style.wood_hue), rng.uniform(*style.wood_value)
        return np.array([h, rng.uniform(*sat), v])
    if material in ("painted", "plastic", "fabric"):
        h = style.hue + (rng.uniform(-0.5, 0.5) if style.spread >= 0.5 else rng.normal(0, style.spread))
        s = rng.uniform(*sat) * style.saturation
        return np.array([h, s, rng.uniform(*val)])
    h = rng.uniform(*hue) if hue else rng.random()
    return np.array([h, rng.uniform(*sat), rng.uniform(*val)])


def _texture(rng: np.random.Generator, style: Style, thing_label: str, part) -> Texture:
    """The part's texture under the style (patterns for floors, walls, fabric and wood)."""
    seed = int(rng.integers(1 << 30))
    if thing_label == "floor":
        scale, amp, kind = _FLOOR_TEXTURE[style.floor]
        return Texture(scale, amp, seed, kind, style.floor_period)
    if thing_label == "wall":
        scale, amp = TEXTURES["plain"]
        kind = "stripes" if style.wall == "wallpaper" else "noise"
        return Texture(scale, amp, seed, kind, style.wall_period)
    if part.finish in TEXTURES:
        scale, amp = TEXTURES[part.finish]
    else:
        scale, amp = part.texture.scale, part.texture.amplitude
    if part.finish == "fabric" and part.material == "fabric":
        kind = "noise" if style.fabric == "plain" else style.fabric
        return Texture(scale, amp, seed, kind, style.fabric_period)
    if part.finish == "wood" and part.material == "wood":
        return Texture(scale, amp, seed, "grain", rng.uniform(0.008, 0.02))
    return Texture(scale, amp, seed)


def apply_style(things: list, style: Style) -> list:
    """Re-colour and re-texture every part of a room's things under ``style`` (geometry untouched).

    Parts of one thing that share a role share a colour (with a tiny jitter), as :class:`Palette` does;
    every wall shares the style's wall colour and the floor takes the floor colour.

    Args:
        things: the layout's things (world frame), in layout order.
        style: the style.

    Returns:
        new things (the input is not modified).
    """
    rng = np.random.default_rng([style.seed, 78])
    out = []
    for thing in things:
        roles: dict[str, np.ndarray] = {}
        parts = []
        for part in thing.parts:
            if thing.label == "floor":
                base = np.array(style.floor_hsv)
            elif thing.label in ("wall", "ceiling"):
                base = np.array(style.wall_hsv)
            else:
                key = f"{part.role}/{part.material}"
                if key not in roles:
                    roles[key] = _colour(rng, style, part.material or "painted")
                base = roles[key]
            h, s, v = base + rng.normal(0, [0.004, 0.015, 0.015])
            parts.append(replace(part, color=hsv(h, s, v), texture=_texture(rng, style, thing.label, part)))
        out.append(replace(thing, parts=parts))
    return out


def light_positions(style: Style, size: tuple[float, float, float]) -> np.ndarray:
    """(L, 3) world positions of the style's lights in a room of plan extent ``size`` (W, D, H)."""
    W, D, H = size
    return np.array([[fx * W, fy * D, H - 0.05] for fx, fy in style.lights], dtype=np.float64)


def describe(style: Style) -> dict:
    """A JSON-ready summary of a style (for a scene's metadata)."""
    return {
        "style_seed": style.seed,
        "floor": style.floor,
        "wall": style.wall,
        "fabric": style.fabric,
        "lights": len(style.lights),
        "hue": round(style.hue, 3),
        "wall_rgb": [round(float(c), 3) for c in colorsys.hsv_to_rgb(*style.wall_hsv)],
        "ambient": round(style.ambient, 3),
        "intensity": round(style.intensity, 3),
        "warmth": round((style.tint[0] - 1.0) / 0.06, 3) if math.isfinite(style.tint[0]) else 0.0,
    }
