"""Furniture built from parts, and furniture groups (a dining set, a desk corner, a sofa corner…).

Part structure is what makes part-versus-whole granularity ambiguous: a table is a top and four legs, a
chair a seat, a back and legs, a bookshelf sides, boards and a back panel with boxes and books on the
boards (each its own instance), a sofa a base, a back, arm rests and seat cushions.

A group is a list of things in the group's frame: the back (wall side) on y = 0, everything at y ≤ 0.
Floor-standing things never overlap in plan view, and things on surfaces stay inside the surface, so
nothing interpenetrates. Faces no hand-held camera can see are left out, as a reconstruction would miss
them: bottoms on the floor, undersides of table tops and seats (below 0.8 m), backs against the wall.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tracklift.datasets.synthetic import props
from tracklift.datasets.synthetic.primitives import box, cylinder
from tracklift.datasets.synthetic.things import Palette, Surface, Thing, facing, place_on_surface, pose2d


def _legs(pal: Palette, x: float, y: float, h: float, t: float, round_: bool, names=None) -> list:
    """Four legs at (±x, ±y), height h, thickness t."""
    parts = []
    corners = [(-x, -y), (x, -y), (-x, y), (x, y)]
    for k, (lx, ly) in enumerate(corners):
        shape = (
            cylinder(t / 2, t / 2 * 0.8, h, lx, ly, 0, ("bottom", "top"))
            if round_
            else box(t, t, h, lx, ly, 0, ("-z", "+z"))
        )
        parts.append(pal.part((names or [f"leg{i}" for i in range(4)])[k], "leg", [shape]))
    return parts


def table(rng: np.random.Generator, label: str = "table", w=None, d=None, h=None) -> Thing:
    """Table: top + 4 legs (square or round)."""
    pal = Palette(rng, str(rng.choice(["wood", "wood", "painted"])), accent=0.2, texture="wood")
    w = w or rng.uniform(0.9, 1.6)
    d = d or rng.uniform(0.6, min(1.0, w))
    h = h or rng.uniform(0.72, 0.78)
    t, leg = rng.uniform(0.025, 0.05), rng.uniform(0.04, 0.07)
    inset = rng.uniform(0.03, 0.08)
    parts = [pal.part("top", "top", [box(w, d, t, 0, 0, h - t, ("-z",))])]
    parts += _legs(pal, w / 2 - inset - leg / 2, d / 2 - inset - leg / 2, h - t, leg, rng.random() < 0.3)
    return Thing(label, parts, surfaces=[Surface(-w / 2, w / 2, -d / 2, d / 2, h)])


def chair(rng: np.random.Generator, pal: Palette | None = None, dims: dict | None = None) -> Thing:
    """Chair: seat + back panel + 2 front legs + 2 rear legs rising into back posts."""
    pal = pal or Palette(rng, str(rng.choice(["wood", "painted", "metal"])), accent=0.4, texture="wood")
    d = dims or chair_dims(rng)
    sw, sd, sh, st, bh, leg = d["sw"], d["sd"], d["sh"], d["st"], d["bh"], d["leg"]
    parts = [pal.part("seat", "seat", [box(sw, sd, st, 0, 0, sh - st, ("-z",))])]
    lx = sw / 2 - leg / 2
    for k, x in enumerate((-lx, lx)):
        parts.append(
            pal.part(f"front_leg{k}", "leg", [box(leg, leg, sh - st, x, -sd / 2 + leg / 2, 0, ("-z", "+z"))])
        )
    # rear legs stand just behind the seat and rise above it as the back posts
    py = sd / 2 + leg / 2
    for k, x in enumerate((-lx, lx)):
        parts.append(pal.part(f"rear_leg{k}", "leg", [box(leg, leg, sh + bh, x, py, 0, ("-z",))]))
    back = box(sw - 2 * leg - 0.004, leg * 0.8, bh * rng.uniform(0.45, 0.75), 0, py, sh + bh * 0.2)
    parts.append(pal.part("back", "back", [back]))
    return Thing("chair", parts)


def chair_dims(rng: np.random.Generator) -> dict:
    return {
        "sw": rng.uniform(0.4, 0.48),
        "sd": rng.uniform(0.38, 0.45),
        "sh": rng.uniform(0.43, 0.48),
        "st": rng.uniform(0.03, 0.06),
        "bh": rng.uniform(0.3, 0.45),
        "leg": rng.uniform(0.03, 0.045),
    }


def bookshelf(rng: np.random.Generator) -> Thing:
    """Bookshelf: 2 sides, top, plinth, back panel, 2-4 boards; boxes and books on the boards."""
    pal = Palette(rng, str(rng.choice(["wood", "painted"])), accent=0.25, texture="wood")
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.4), rng.uniform(1.2, 2.0)
    t, plinth = 0.02, rng.uniform(0.05, 0.1)
    iw = w - 2 * t
    parts = [
        pal.part("side_left", "side", [box(t, d, h, -w / 2 + t / 2, -d / 2, 0, ("-z", "+y"))]),
        pal.part("side_right", "side", [box(t, d, h, w / 2 - t / 2, -d / 2, 0, ("-z", "+y"))]),
        pal.part("top", "top", [box(iw, d, t, 0, -d / 2, h - t, ("-x", "+x", "+y"))]),
        pal.part("plinth", "plinth", [box(iw, d - t, plinth, 0, -(d - t) / 2 - t, 0, ("-z", "-x", "+x"))]),
        pal.part(
            "back", "back", [box(iw, t, h - t - plinth, 0, -t / 2, plinth, ("-x", "+x", "-z", "+z", "+y"))]
        ),
    ]
    n_boards = int(rng.integers(2, 5))
    levels = np.linspace(plinth, h - t, n_boards + 2)[1:-1]
    surfaces = []
    lo = plinth
    for k, z in enumerate(levels):
        parts.append(
            pal.part(f"board{k}", "board", [box(iw, d - t, t, 0, -(d - t) / 2 - t, z, ("-x", "+x"))])
        )
        surfaces.append(Surface(-iw / 2, iw / 2, -d, -t, lo, z - lo))
        lo = z + t
    surfaces.append(Surface(-iw / 2, iw / 2, -d, -t, lo, h - t - lo))
    shelf = Thing("bookshelf", parts, surfaces=[Surface(-w / 2, w / 2, -d, 0, h)], hides="floor")
    shelf.children = [c for s in surfaces for c in _fill_shelf(rng, s)]
    return shelf


def _fill_shelf(rng: np.random.Generator, s: Surface) -> list[Thing]:
    """0-2 clusters along one shelf, left to right: a row of 2-6 books or a box; the rest stays empty."""
    out, x = [], s.x0 + rng.uniform(0.005, 0.1)
    depth = s.y1 - s.y0
    for _ in range(int(rng.integers(0, 3))):
        x += rng.uniform(0.0, 0.15)
        if rng.random() < 0.6:
            for _ in range(int(rng.integers(2, 7))):
                hb = min(rng.uniform(0.15, 0.28), s.clearance - 0.02)
                if hb < 0.1:
                    break
                b = props.book(rng, hb, min(rng.uniform(0.13, 0.2), depth - 0.02))
                lo, hi = b.local_bounds()
                if x + (hi[0] - lo[0]) > s.x1 - 0.003:
                    break
                out.append(b.moved(pose2d(x - lo[0], s.y0 + depth / 2 + rng.uniform(-0.02, 0.0), 0.0, s.z)))
                x += hi[0] - lo[0] + rng.uniform(0.003, 0.01)
        else:
            b = props.small_box(
                rng, max_size=min(0.32, depth - 0.02), max_height=min(0.3, s.clearance - 0.03)
            )
            lo, hi = b.local_bounds()
            fits = hi[2] <= s.clearance - 0.02 and hi[1] - lo[1] <= depth - 0.01
            if fits and x + hi[0] - lo[0] <= s.x1 - 0.005:
                out.append(b.moved(pose2d(x - lo[0], s.y0 + depth / 2, 0.0, s.z)))
                x += hi[0] - lo[0] + rng.uniform(0.01, 0.05)
    for t in out:
        t.on_floor = False
    return out


def cabinet(rng: np.random.Generator) -> Thing:
    """Cabinet: body + two doors + two handles; small things on top."""
    pal = Palette(rng, str(rng.choice(["wood", "painted"])), accent=0.3, texture="wood")
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.35, 0.55), rng.uniform(0.7, 1.05)
    gap = 0.004
    parts = [pal.part("body", "body", [box(w, d, h, 0, -d / 2, 0, ("-z", "+y"))])]
    dw = w / 2 - 1.5 * gap
    for k, sgn in enumerate((-1, 1)):
        cx = sgn * (gap / 2 + dw / 2)
        parts.append(pal.part(f"door{k}", "door", [box(dw, 0.018, h - 0.06, cx, -d - 0.009, 0.04, ("+y",))]))
        hx = sgn * (gap / 2 + 0.05)
        handle = box(0.02, 0.025, 0.12, hx, -d - 0.018 - 0.0125, h * 0.6, ("+y",))
        parts.append(pal.part(f"handle{k}", "handle", [handle], "plain"))
    cab = Thing("cabinet", parts, surfaces=[Surface(-w / 2, w / 2, -d, 0, h)], hides="floor")
    cab.children = place_on_surface(rng, cab.surfaces[0], [props.tabletop_item(rng) for _ in range(3)])
    return cab


def desk(rng: np.random.Generator) -> Thing:
    """Desk: top + two side panels + modesty panel; monitor and keyboard or a laptop, maybe a lamp."""
    pal = Palette(rng, str(rng.choice(["wood", "painted"])), accent=0.3, texture="wood")
    w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.8), rng.uniform(0.72, 0.76)
    t, p = 0.03, 0.025
    parts = [
        pal.part("top", "top", [box(w, d, t, 0, -d / 2, h - t, ("-z", "+y"))]),
        pal.part(
            "side_left", "side", [box(p, d - 0.04, h - t, -w / 2 + p / 2 + 0.01, -d / 2, 0, ("-z", "+z"))]
        ),
        pal.part(
            "side_right", "side", [box(p, d - 0.04, h - t, w / 2 - p / 2 - 0.01, -d / 2, 0, ("-z", "+z"))]
        ),
        pal.part(
            "panel", "panel", [box(w - 2 * p - 0.03, 0.018, 0.35, 0, -0.04, h - t - 0.35, ("+z", "+y"))]
        ),
    ]
    top = Surface(-w / 2, w / 2, -d, 0, h)
    things = []
    if rng.random() < 0.6:
        things.append(props.monitor(rng).moved(pose2d(rng.uniform(-0.15, 0.15), -0.16, 0.0, h)))
        things.append(props.keyboard(rng).moved(pose2d(rng.uniform(-0.1, 0.1), -d + 0.14, 0.0, h)))
    else:
        things.append(
            props.laptop(rng).moved(pose2d(rng.uniform(-0.1, 0.1), -d / 2, rng.uniform(-0.3, 0.3), h))
        )
    for t_ in things:
        t_.on_floor = False
    # the rest of the top, left or right of what is already there
    used = np.concatenate([np.stack(t_.world_bounds()) for t_ in things])
    if rng.random() < 0.5:
        extra = Surface(used[:, 0].max() + 0.02, w / 2, -d, 0, h)
    else:
        extra = Surface(-w / 2, used[:, 0].min() - 0.02, -d, 0, h)
    things += place_on_surface(rng, extra, [props.tabletop_item(rng) for _ in range(2)])
    return Thing("desk", parts, surfaces=[top], children=things)


def sofa(rng: np.random.Generator) -> Thing:
    """Couch: base + back + two arm rests + 2-3 seat cushions; pillows (own instances) on the seat."""
    pal = Palette(rng, "fabric", accent=0.25, texture="fabric")
    n = int(rng.integers(2, 4))
    cw = rng.uniform(0.5, 0.65)
    arm, d, back_t = rng.uniform(0.12, 0.22), rng.uniform(0.8, 0.95), rng.uniform(0.15, 0.22)
    inner = n * cw
    w = inner + 2 * arm
    base_h, cush_h, arm_h, back_h = (
        rng.uniform(0.2, 0.3),
        rng.uniform(0.12, 0.18),
        rng.uniform(0.55, 0.65),
        rng.uniform(0.75, 0.9),
    )
    parts = [
        pal.part(
            "base",
            "base",
            [box(inner, d - back_t, base_h, 0, -(d - back_t) / 2 - back_t, 0, ("-z", "-x", "+x"))],
        ),
        pal.part("back", "back", [box(inner, back_t, back_h, 0, -back_t / 2, 0, ("-z", "-x", "+x", "+y"))]),
        pal.part("arm_left", "arm", [box(arm, d, arm_h, -w / 2 + arm / 2, -d / 2, 0, ("-z", "+y"))]),
        pal.part("arm_right", "arm", [box(arm, d, arm_h, w / 2 - arm / 2, -d / 2, 0, ("-z", "+y"))]),
    ]
    for k in range(n):
        x = -inner / 2 + cw * (k + 0.5)
        cushion = box(
            cw - 0.006, d - back_t - 0.01, cush_h, x, -(d - back_t) / 2 - back_t - 0.005, base_h, ("-z",)
        )
        parts.append(pal.part(f"cushion{k}", "cushion", [cushion]))
    couch = Thing("couch", parts, surfaces=[], hides="floor")
    seat_z = base_h + cush_h
    pillows = []
    slots = rng.permutation(n)[: int(rng.integers(0, n))]
    for k in sorted(slots):
        pp = Palette(rng, str(rng.choice(["fabric", "plastic"])), accent=0.0, texture="fabric")
        pw, ph, pt = min(cw - 0.08, rng.uniform(0.35, 0.45)), rng.uniform(0.3, 0.4), rng.uniform(0.1, 0.14)
        body = box(pw, pt, ph, -inner / 2 + cw * (k + 0.5), -back_t - pt / 2 - 0.01, seat_z)
        pillows.append(Thing("pillow", [pp.part("body", "body", [body])], on_floor=False))
    couch.children = pillows
    return couch


# -- groups -----------------------------------------------------------------------------------------------


def dining_group(rng: np.random.Generator) -> list[Thing]:
    """A table with 1-4 matching chairs around it and things on the top; centred on the origin."""
    tab = table(rng)
    lo, hi = tab.local_bounds()
    w, d = hi[0] - lo[0], hi[1] - lo[1]
    tab.children = place_on_surface(
        rng, tab.surfaces[0], [props.tabletop_item(rng) for _ in range(int(rng.integers(1, 5)))]
    )
    pal = Palette(rng, str(rng.choice(["wood", "painted", "metal"])), accent=0.4, texture="wood")
    dims = chair_dims(rng)
    seats = [(0.0, -1), (0.0, 1), (-1, 0.0), (1, 0.0)]
    if w > 1.2:
        seats = [(-0.25, -1), (0.25, -1), (-0.25, 1), (0.25, 1), (-1, 0.0), (1, 0.0)]
    chosen = rng.permutation(len(seats))[: int(rng.integers(1, min(4, len(seats)) + 1))]
    things = [tab]
    for k in chosen:
        ax, ay = seats[k]
        # outside the table's footprint, facing it, with a little pulled-out and turned jitter
        gap = dims["sd"] / 2 + dims["leg"] + rng.uniform(0.06, 0.25)
        if ay != 0:
            x, y = ax * w + rng.uniform(-0.05, 0.05), ay * (d / 2 + gap)
        else:
            x, y = ax * (w / 2 + gap), rng.uniform(-0.05, 0.05)
        yaw = facing(-x if ay == 0 else 0.0, -y) + rng.uniform(-0.15, 0.15)
        things.append(chair(rng, pal, dims).moved(pose2d(x, y, yaw)))
    return things


def desk_group(rng: np.random.Generator) -> list[Thing]:
    """A desk against the wall with a chair in front of it."""
    dk = desk(rng)
    lo, _ = dk.local_bounds()
    ch = chair(rng)
    y = lo[1] - 0.36 - rng.uniform(0.0, 0.25)
    return [dk, ch.moved(pose2d(rng.uniform(-0.2, 0.2), y, facing(0, 1) + rng.uniform(-0.3, 0.3)))]


def shelf_group(rng: np.random.Generator) -> list[Thing]:
    """A bookshelf against the wall, sometimes with a box on the floor beside it."""
    shelf = bookshelf(rng)
    things = [shelf]
    if rng.random() < 0.5:
        _, hi = shelf.local_bounds()
        b = props.small_box(rng, max_size=0.45, max_height=0.4)
        blo, bhi = b.local_bounds()
        b.on_floor, b.hides = True, "floor"
        things.append(b.moved(pose2d(hi[0] + 0.05 - blo[0], -0.05 + blo[1], 0.0)))
    return things


def cabinet_group(rng: np.random.Generator) -> list[Thing]:
    return [cabinet(rng)]


def sofa_group(rng: np.random.Generator) -> list[Thing]:
    """A couch against the wall with a coffee table in front of it."""
    couch = sofa(rng)
    lo, hi = couch.local_bounds()
    things = [couch]
    if rng.random() < 0.8:
        w = min(hi[0] - lo[0] - 0.3, rng.uniform(0.8, 1.2))
        ct = table(rng, "coffee table", w=w, d=rng.uniform(0.45, 0.65), h=rng.uniform(0.38, 0.48))
        ct.children = place_on_surface(
            rng, ct.surfaces[0], [props.tabletop_item(rng) for _ in range(int(rng.integers(0, 3)))]
        )
        clo, chi = ct.local_bounds()
        things.append(ct.moved(pose2d(0.0, lo[1] - rng.uniform(0.3, 0.45) - chi[1], 0.0)))
    return things


def plant_group(rng: np.random.Generator) -> list[Thing]:
    """A large potted plant on the floor."""
    p = props.potted_plant(rng, scale=rng.uniform(2.2, 3.2))
    p.on_floor = True
    _, hi = p.local_bounds()
    return [p.moved(pose2d(0.0, -hi[1] - 0.02, 0.0))]


def storage_group(rng: np.random.Generator) -> list[Thing]:
    """A trash can and a stack of 1-3 boxes (each box its own instance) on the floor."""
    can = props.trash_can(rng)
    _, chi = can.local_bounds()
    things = [can.moved(pose2d(0.0, -chi[1] - 0.02, 0.0))]
    base = props.small_box(rng, max_size=0.55, max_height=0.4)
    blo, bhi = base.local_bounds()
    base.on_floor, base.hides = True, "floor"
    things.append(base.moved(pose2d(chi[0] + 0.08 - blo[0], blo[1] - 0.02, 0.0)))
    # each further box stands on the previous one, in the previous one's frame (base at z = 0)
    parent, lo, hi = things[-1], blo, bhi
    for _ in range(int(rng.integers(0, 3))):
        room = 0.8 * min(hi[0] - lo[0], hi[1] - lo[1])
        if room < 0.15:
            break
        nxt = props.small_box(rng, max_size=room, max_height=0.3)
        nlo, nhi = nxt.local_bounds()
        if max(nhi[0] - nlo[0], nhi[1] - nlo[1]) > room:
            break
        child = nxt.moved(pose2d(0.0, 0.0, rng.uniform(-0.2, 0.2), hi[2]))
        parent.children.append(child)
        parent, lo, hi = child, nlo, nhi
    return things


# name -> (builder, stands against a wall, weight, at most per room)
GROUPS: dict[str, tuple[Callable[[np.random.Generator], list[Thing]], bool, float, int]] = {
    "dining": (dining_group, False, 1.0, 2),
    "desk": (desk_group, True, 1.0, 2),
    "shelf": (shelf_group, True, 1.0, 2),
    "cabinet": (cabinet_group, True, 0.8, 3),
    "sofa": (sofa_group, True, 0.7, 1),
    "plant": (plant_group, True, 0.5, 2),
    "storage": (storage_group, True, 0.5, 2),
}


def group_radius(things: list[Thing]) -> float:
    """Half the diagonal of the group's plan-view bounds (for quick rejection)."""
    pts = np.concatenate([np.stack(t.world_bounds()) for t in things])
    return 0.5 * math.hypot(*(pts[:, :2].max(0) - pts[:, :2].min(0)))
