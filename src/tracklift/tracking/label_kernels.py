"""Compiled passes over an image of object labels, used by the geometric tracker on every frame.

A label image holds, per pixel, 0 (no object), a positive object slot, or -1 (a pixel no prediction may
take, such as a seeded mask). Each pass visits every object at once, so a frame costs the same whether
it shows two objects or fifty.
"""

from __future__ import annotations

import numpy as np

from tracklift.geometry.compiled import jit

__all__ = ["close_gaps", "drop_islands", "grow_labels", "upsample_labels"]

_DY = np.array([-1, -1, -1, 0, 0, 1, 1, 1], np.int64)
_DX = np.array([-1, 0, 1, -1, 1, -1, 0, 1], np.int64)


@jit
def _same_surface(
    y: int,
    x: int,
    yy: int,
    xx: int,
    depth: np.ndarray,
    lab: np.ndarray,
    normals: np.ndarray,
    depth_rel: float,
    color_tol: float,
    cos_tol: float,
) -> bool:
    """Neighbouring pixels (y, x) and (yy, xx) look like one surface: both have depth, their depth step
    is at most ``depth_rel`` of the nearer one, their colours differ by at most ``color_tol`` (ΔE76), and
    the normals one pixel before and one after the pair agree (``cos_tol``): smoothed normals turn over a
    few pixels at a fold, so a 3-pixel span keeps growth from crossing it in small acceptable steps."""
    h, w = depth.shape
    za, zb = depth[y, x], depth[yy, xx]
    if za <= 0 or zb <= 0 or abs(za - zb) > depth_rel * min(za, zb):
        return False
    d0, d1, d2 = lab[y, x, 0] - lab[yy, xx, 0], lab[y, x, 1] - lab[yy, xx, 1], lab[y, x, 2] - lab[yy, xx, 2]
    if d0 * d0 + d1 * d1 + d2 * d2 > color_tol * color_tol:
        return False
    dy, dx = yy - y, xx - x
    yb, xb, ya, xa = y - dy, x - dx, yy + dy, xx + dx
    if 0 <= yb < h and 0 <= xb < w and 0 <= ya < h and 0 <= xa < w:
        nb, na = normals[yb, xb], normals[ya, xa]
        known_b = nb[0] != 0 or nb[1] != 0 or nb[2] != 0
        known_a = na[0] != 0 or na[1] != 0 or na[2] != 0
        if known_b and known_a and nb[0] * na[0] + nb[1] * na[1] + nb[2] * na[2] < cos_tol:
            return False
    return True


@jit
def grow_labels(
    label: np.ndarray,
    seedable: np.ndarray,
    owner: np.ndarray,
    depth: np.ndarray,
    lab: np.ndarray,
    normals: np.ndarray,
    steps: int,
    depth_rel: float,
    color_tol: float,
    cos_tol: float,
) -> np.ndarray:
    """Grow every object's pixels over neighbouring pixels of the same surface, breadth first.

    A pixel joins the first object to reach it, at most ``steps`` pixels (8-connected) from that
    object's pixels, and only if the 3D memory does not give it to another object (``owner`` 0 or the
    growing object): growth covers surface first seen on this frame, never a neighbour already known.

    Args:
        label: (H, W) int32, modified in place: 0 free, > 0 object slot, -1 never taken.
        seedable: (H, W) bool: labelled pixels growth starts from (the others are kept but do not grow).
        owner: (H, W) int32 object slot whose 3D memory holds the pixel's point, 0 none.
        depth: (H, W) float32 metres (0 invalid); lab: (H, W, 3) float32; normals: (H, W, 3) float32.
        steps: growth radius in pixels.
        depth_rel, color_tol, cos_tol: see :func:`_same_surface`.

    Returns:
        (H, W) int32 step at which each pixel was grown (0: not grown).
    """
    h, w = label.shape
    step = np.zeros((h, w), np.int32)
    frontier = np.empty(h * w, np.int64)
    n = 0
    for i in range(h * w):
        if label.flat[i] > 0 and seedable.flat[i]:
            frontier[n] = i
            n += 1
    nxt = np.empty(h * w, np.int64)
    for it in range(1, steps + 1):
        m = 0
        for f in range(n):
            y, x = frontier[f] // w, frontier[f] % w
            k = label[y, x]
            for j in range(8):
                yy, xx = y + _DY[j], x + _DX[j]
                if yy < 0 or yy >= h or xx < 0 or xx >= w or label[yy, xx] != 0:
                    continue
                o = owner[yy, xx]
                if o != 0 and o != k:
                    continue
                if _same_surface(y, x, yy, xx, depth, lab, normals, depth_rel, color_tol, cos_tol):
                    label[yy, xx] = k
                    step[yy, xx] = it
                    nxt[m] = yy * w + xx
                    m += 1
        if m == 0:
            break
        frontier, nxt = nxt, frontier
        n = m
    return step


@jit
def drop_islands(label: np.ndarray, min_pixels: int) -> None:
    """Set to 0, in place, every 8-connected piece of one object smaller than ``min_pixels``."""
    h, w = label.shape
    seen = np.zeros((h, w), np.bool_)
    queue = np.empty(h * w, np.int64)
    for s in range(h * w):
        k = label.flat[s]
        if k <= 0 or seen.flat[s]:
            continue
        seen.flat[s] = True
        queue[0] = s
        head, tail = 0, 1
        while head < tail:
            y, x = queue[head] // w, queue[head] % w
            head += 1
            for j in range(8):
                yy, xx = y + _DY[j], x + _DX[j]
                if 0 <= yy < h and 0 <= xx < w and not seen[yy, xx] and label[yy, xx] == k:
                    seen[yy, xx] = True
                    queue[tail] = yy * w + xx
                    tail += 1
        if tail < min_pixels:
            for q in range(tail):
                label.flat[queue[q]] = 0


@jit
def close_gaps(label: np.ndarray, rounds: int, min_votes: int) -> None:
    """Fill cracks and small holes, in place: a free pixel (0) with at least ``min_votes`` of its 8
    neighbours on one object joins it. Each round widens the gaps filled by about a pixel per side."""
    h, w = label.shape
    for _ in range(rounds):
        src = label.copy()
        changed = False
        for y in range(h):
            for x in range(w):
                if src[y, x] != 0:
                    continue
                best, votes = 0, 0
                for j in range(8):
                    yy, xx = y + _DY[j], x + _DX[j]
                    if yy < 0 or yy >= h or xx < 0 or xx >= w:
                        continue
                    k = src[yy, xx]
                    if k <= 0 or k == best:
                        continue
                    c = 0
                    for i in range(8):
                        y2, x2 = y + _DY[i], x + _DX[i]
                        if 0 <= y2 < h and 0 <= x2 < w and src[y2, x2] == k:
                            c += 1
                    if c > votes:
                        best, votes = k, c
                if votes >= min_votes:
                    label[y, x] = best
                    changed = True
        if not changed:
            break


@jit
def upsample_labels(
    label: np.ndarray,
    depth_w: np.ndarray,
    color_w: np.ndarray,
    depth: np.ndarray,
    color: np.ndarray,
    stride: int,
    depth_rel: float,
    color_step: float,
) -> np.ndarray:
    """A label image computed on every ``stride``-th pixel brought back to full size along edges.

    Working pixel ``(i, j)`` is full-size pixel ``(stride * i, stride * j)``. Each full-size pixel takes the
    label of the most alike of the (up to 4) working pixels around it: depth step relative to its depth
    in units of ``depth_rel``, RGB distance in units of ``color_step``, and a small distance term that
    breaks ties towards the nearest. A pixel without depth takes its nearest working pixel's label. So
    an object's outline follows the depth and colour edges of the full image instead of a staircase of
    ``stride``-pixel blocks.
    """
    hs, ws = label.shape
    h, w = depth.shape
    out = np.empty((h, w), label.dtype)
    for y in range(h):
        i0 = min(y // stride, hs - 1)
        i1 = min(i0 + 1, hs - 1)
        for x in range(w):
            j0 = min(x // stride, ws - 1)
            j1 = min(j0 + 1, ws - 1)
            a = label[i0, j0]
            if a == label[i0, j1] and a == label[i1, j0] and a == label[i1, j1]:
                out[y, x] = a  # inside one label (most pixels): nothing to choose
                continue
            z = depth[y, x]
            ni = min(int(y / stride + 0.5), hs - 1)
            nj = min(int(x / stride + 0.5), ws - 1)
            if z <= 0:
                out[y, x] = label[ni, nj]
                continue
            best, best_cost = label[ni, nj], np.inf
            for i in (i0, i1):
                for j in (j0, j1):
                    zw = depth_w[i, j]
                    if zw <= 0:
                        continue
                    dz = (zw - z) / (depth_rel * z)
                    dc = 0.0
                    for c in range(3):
                        d = (float(color_w[i, j, c]) - float(color[y, x, c])) / color_step
                        dc += d * d
                    dy, dx = (stride * i - y) / stride, (stride * j - x) / stride
                    cost = dz * dz + dc + 0.25 * (dy * dy + dx * dx)
                    if cost < best_cost:
                        best, best_cost = label[i, j], cost
            out[y, x] = best
    return out
