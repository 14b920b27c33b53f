"""Small objects (things on tables and shelves) and wall-mounted things (pictures, doors).

Every builder returns a :class:`Thing` in its own frame: base centred on the origin at z = 0, front
towards -y. Wall things have their back on the plane y = 0 and stick out towards -y.
"""

from __future__ import annotations

import math

import numpy as np

from tracklift.datasets.synthetic.primitives import Shape, box, cylinder, ellipsoid, rotation_x, translation
from tracklift.datasets.synthetic.things import Palette, Thing


def cup(rng: np.random.Generator) -> Thing:
    """Cup: body + handle."""
    pal = Palette(rng, "plastic", accent=0.3)
    r, h = rng.uniform(0.035, 0.048), rng.uniform(0.08, 0.12)
    parts = [pal.part("body", "body", [cylinder(r * 0.85, r, h, 0, 0, 0, open_sides=("bottom",))])]
    parts.append(pal.part("handle", "handle", [box(0.012, 0.035, h * 0.55, r + 0.012, 0, h * 0.25)]))
    return Thing("cup", parts, on_floor=False)


def bottle(rng: np.random.Generator) -> Thing:
    """Bottle: body + shoulder/neck + cap."""
    pal = Palette(rng, "plastic", accent=0.4)
    r, h = rng.uniform(0.03, 0.045), rng.uniform(0.15, 0.24)
    neck = rng.uniform(0.05, 0.08)
    parts = [
        pal.part("body", "body", [cylinder(r, r, h, 0, 0, 0, open_sides=("bottom", "top"))]),
        pal.part("neck", "body", [cylinder(r, r * 0.4, neck, 0, 0, h, open_sides=("top",))]),
        pal.part("cap", "cap", [cylinder(r * 0.42, r * 0.42, 0.025, 0, 0, h + neck, open_sides=("bottom",))]),
    ]
    return Thing("bottle", parts, on_floor=False)


def bowl(rng: np.random.Generator) -> Thing:
    """Bowl: foot ring + flared body."""
    pal = Palette(rng, "plastic", accent=0.2)
    r, h = rng.uniform(0.07, 0.11), rng.uniform(0.05, 0.08)
    parts = [
        pal.part("foot", "foot", [cylinder(r * 0.45, r * 0.45, 0.012, 0, 0, 0, open_sides=("bottom",))]),
        pal.part("body", "body", [cylinder(r * 0.5, r, h, 0, 0, 0.012, open_sides=("bottom",))]),
    ]
    return Thing("bowl", parts, on_floor=False)


def small_box(rng: np.random.Generator, max_size: float = 0.3, max_height: float = 0.25) -> Thing:
    """Box: body, sometimes with a lid as a second part."""
    pal = Palette(rng, str(rng.choice(["cardboard", "plastic", "painted"])), accent=0.3)
    sx, sy = rng.uniform(0.1, max_size), rng.uniform(0.08, max_size * 0.8)
    sz = rng.uniform(0.06, max_height)
    if rng.random() < 0.5:
        lid = min(0.03, sz * 0.25)
        parts = [
            pal.part("body", "body", [box(sx, sy, sz - lid, 0, 0, 0, open_sides=("-z",))]),
            pal.part("lid", "lid", [box(sx + 0.008, sy + 0.008, lid, 0, 0, sz - lid, open_sides=())]),
        ]
    else:
        parts = [pal.part("body", "body", [box(sx, sy, sz, 0, 0, 0, open_sides=("-z",))])]
    return Thing("box", parts, on_floor=False)


def book(rng: np.random.Generator, height: float, depth: float, lying: bool = False) -> Thing:
    """A book standing on its bottom edge (or lying flat): one part, paper-textured cover."""
    pal = Palette(rng, str(rng.choice(["plastic", "painted", "dark", "fabric"])), accent=0.0)
    thick = rng.uniform(0.015, 0.05)
    size = (height, depth, thick) if lying else (thick, depth, height)
    return Thing("book", [pal.part("cover", "cover", [box(*size, 0, 0, 0, open_sides=("-z",))], "paper")])


def lamp(rng: np.random.Generator) -> Thing:
    """Desk lamp: base + stem + shade."""
    pal = Palette(rng, str(rng.choice(["metal", "painted", "dark"])), accent=0.5)
    rb, stem = rng.uniform(0.06, 0.09), rng.uniform(0.2, 0.35)
    rs = rng.uniform(0.09, 0.14)
    parts = [
        pal.part("base", "base", [cylinder(rb, rb * 0.9, 0.025, 0, 0, 0, open_sides=("bottom",))]),
        pal.part("stem", "stem", [cylinder(0.008, 0.008, stem, 0, 0, 0.025, open_sides=("bottom",))]),
        pal.part("shade", "shade", [cylinder(rs, rs * 0.6, rs * 1.1, 0, 0, 0.025 + stem)], "fabric"),
    ]
    return Thing("lamp", parts, on_floor=False)


def monitor(rng: np.random.Generator) -> Thing:
    """Monitor: foot + neck + screen."""
    pal = Palette(rng, str(rng.choice(["dark", "metal"])), accent=0.3)
    w, h = rng.uniform(0.45, 0.65), rng.uniform(0.28, 0.4)
    neck = rng.uniform(0.08, 0.14)
    parts = [
        pal.part("foot", "stand", [box(0.22, 0.16, 0.015, 0, 0.02, 0, open_sides=("-z",))]),
        pal.part("neck", "stand", [box(0.05, 0.025, neck + 0.05, 0, 0.06, 0.015)]),
        pal.part("screen", "screen", [box(w, 0.03, h, 0, 0.035, 0.015 + neck)]),
    ]
    return Thing("monitor", parts, on_floor=False)


def keyboard(rng: np.random.Generator) -> Thing:
    """Keyboard: a flat slab (one part)."""
    pal = Palette(rng, str(rng.choice(["dark", "painted"])), accent=0.0)
    return Thing(
        "keyboard",
        [pal.part("body", "body", [box(rng.uniform(0.38, 0.46), 0.14, 0.025, 0, 0, 0, ("-z",))], "fabric")],
        on_floor=False,
    )


def laptop(rng: np.random.Generator) -> Thing:
    """Laptop: base + opened screen."""
    pal = Palette(rng, str(rng.choice(["metal", "dark"])), accent=0.2)
    w, d = rng.uniform(0.3, 0.36), rng.uniform(0.21, 0.25)
    tilt = math.radians(rng.uniform(10, 25))
    screen = Shape(
        "box", (w, 0.008, d), translation(0, d / 2, 0.018) @ rotation_x(-tilt) @ translation(0, 0, d / 2)
    )
    parts = [
        pal.part("base", "base", [box(w, d, 0.018, 0, 0, 0, ("-z",))]),
        pal.part("screen", "screen", [screen]),
    ]
    return Thing("laptop", parts, on_floor=False)


def potted_plant(rng: np.random.Generator, scale: float = 1.0) -> Thing:
    """Potted plant: pot + stem + 2-3 foliage blobs (pot on the floor when ``scale`` ≈ 2-3)."""
    pot_pal, leaf_pal = Palette(rng, "painted", accent=0.0), Palette(rng, "foliage", accent=0.0)
    rp, hp = rng.uniform(0.06, 0.09) * scale, rng.uniform(0.08, 0.12) * scale
    stem = rng.uniform(0.05, 0.12) * scale
    parts = [
        pot_pal.part("pot", "pot", [cylinder(rp * 0.75, rp, hp, 0, 0, 0, open_sides=("bottom",))]),
        leaf_pal.part("stem", "stem", [cylinder(0.008 * scale, 0.006 * scale, stem, 0, 0, hp)], "plain"),
    ]
    for k in range(int(rng.integers(2, 4))):
        r = rng.uniform(0.06, 0.1) * scale
        a = rng.uniform(0, 2 * math.pi)
        off = rng.uniform(0.0, 0.04) * scale
        blob = ellipsoid(r, r * rng.uniform(0.8, 1.1), r * 0.8, off * math.cos(a), off * math.sin(a), 0.0)
        blob = Shape(
            blob.kind, blob.size, translation(0, 0, hp + stem + r * 0.6 + 0.5 * k * r) @ blob.transform
        )
        parts.append(leaf_pal.part(f"leaves{k}", "leaves", [blob], "fabric"))
    return Thing("potted plant", parts, on_floor=False)


def trash_can(rng: np.random.Generator) -> Thing:
    """Trash can: body + rim."""
    pal = Palette(rng, str(rng.choice(["plastic", "metal", "dark"])), accent=0.3)
    r, h = rng.uniform(0.12, 0.18), rng.uniform(0.3, 0.45)
    parts = [
        pal.part("body", "body", [cylinder(r * 0.85, r, h, 0, 0, 0, open_sides=("bottom",))]),
        pal.part("rim", "rim", [cylinder(r + 0.01, r + 0.01, 0.03, 0, 0, h, open_sides=("bottom",))]),
    ]
    return Thing("trash can", parts)


def tabletop_item(rng: np.random.Generator) -> Thing:
    """A random small object for a table, desk or cabinet top."""
    kind = rng.choice(["cup", "cup", "bottle", "bowl", "box", "book", "plant", "lamp"])
    if kind == "cup":
        return cup(rng)
    if kind == "bottle":
        return bottle(rng)
    if kind == "bowl":
        return bowl(rng)
    if kind == "box":
        return small_box(rng, max_size=0.28, max_height=0.18)
    if kind == "book":
        t = book(rng, rng.uniform(0.18, 0.26), rng.uniform(0.13, 0.18), lying=True)
        t.on_floor = False
        return t
    if kind == "plant":
        return potted_plant(rng)
    return lamp(rng)


def picture(rng: np.random.Generator, w: float, h: float) -> Thing:
    """Picture (wall frame): frame (four bars, one part) + canvas. Bottom edge at z = 0, back on y = 0."""
    frame_pal = Palette(rng, str(rng.choice(["wood", "dark", "metal"])), accent=0.0, texture="wood")
    canvas_pal = Palette(rng, str(rng.choice(["painted", "plastic", "fabric"])), accent=0.0)
    b, t = rng.uniform(0.025, 0.05), rng.uniform(0.02, 0.035)
    bars = [
        box(w, t, b, 0, -t / 2, 0, ("+y",)),
        box(w, t, b, 0, -t / 2, h - b, ("+y",)),
        box(b, t, h - 2 * b, -w / 2 + b / 2, -t / 2, b, ("+y", "-z", "+z")),
        box(b, t, h - 2 * b, w / 2 - b / 2, -t / 2, b, ("+y", "-z", "+z")),
    ]
    canvas = box(w - 2 * b, t * 0.5, h - 2 * b, 0, -t * 0.25, b, ("+y", "-z", "+z", "-x", "+x"))
    parts = [frame_pal.part("frame", "frame", bars), canvas_pal.part("canvas", "canvas", [canvas], "paper")]
    return Thing("picture", parts, on_floor=False, hides="wall")


def door(rng: np.random.Generator, w: float, h: float) -> tuple[Thing, Thing]:
    """A closed door (panel + handle) and its doorframe (two jambs + header), back on y = 0."""
    pal = Palette(rng, str(rng.choice(["wood", "painted"])), accent=0.0, texture="wood")
    frame_pal = Palette(rng, "painted", accent=0.0)
    j, jt = rng.uniform(0.05, 0.08), rng.uniform(0.025, 0.04)
    panel = box(w, 0.02, h, 0, -0.01, 0, ("+y", "-z", "-x", "+x", "+z"))  # edges hidden by the frame
    handle_side = 1 if rng.random() < 0.5 else -1
    handle = box(0.12, 0.05, 0.025, handle_side * (w / 2 - 0.1), -0.045, h * 0.47, ("+y",))
    door_thing = Thing(
        "door", [pal.part("panel", "panel", [panel]), pal.part("handle", "handle", [handle], "plain")]
    )
    frame = [
        frame_pal.part("jamb_left", "jamb", [box(j, jt, h + j, -w / 2 - j / 2, -jt / 2, 0, ("+y", "-z"))]),
        frame_pal.part("jamb_right", "jamb", [box(j, jt, h + j, w / 2 + j / 2, -jt / 2, 0, ("+y", "-z"))]),
        frame_pal.part("header", "jamb", [box(w, jt, j, 0, -jt / 2, h, ("+y", "-x", "+x"))]),
    ]
    # wall-mounted: their plan-view boxes nest (the frame's encloses the door's), their geometry does not
    door_thing.on_floor, door_thing.hides = False, "wall"
    return door_thing, Thing("doorframe", frame, on_floor=False, hides="wall")
