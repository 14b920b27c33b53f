"""A hand-held camera walk through the room: smooth path, changing points of interest, hand shake.

The path joins changing goals by shortest paths through the camera's free floor space (the largest region
at least ``WALL_MARGIN`` from the walls and ``CLEARANCE`` from any floor-standing thing), smoothed. The camera turns smoothly between points of interest (things), never faster than
``SynthConfig.max_turn`` degrees per frame before hand shake, at 1.2-1.8 m height.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, sparse
from scipy.interpolate import PchipInterpolator
from scipy.sparse import csgraph

from tracklift.datasets.synthetic.config import SynthConfig
from tracklift.datasets.synthetic.labels import STRUCTURE_LABELS
from tracklift.datasets.synthetic.layout import CELL, Layout


def is_free(free: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N,) bool: plan-view points (N, 2) in metres that fall on free cells of the grid."""
    ij = np.floor(np.asarray(xy) / CELL).astype(np.int64)
    ok = (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < free.shape[0]) & (ij[:, 1] < free.shape[1])
    out = np.zeros(len(ij), dtype=bool)
    out[ok] = free[ij[ok, 0], ij[ok, 1]]
    return out


def _grid_graph(free: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """8-connected graph of the free cells; edge cost = length × a penalty near the free space's edge.

    Returns the (C, C) sparse graph and the (nx, ny) map from cell to node index (-1 = not free).
    """
    index = np.full(free.shape, -1, dtype=np.int64)
    index[free] = np.arange(int(free.sum()))
    edge = ndimage.distance_transform_edt(np.pad(free, 1))[1:-1, 1:-1] * CELL
    penalty = 1.0 + 2.0 * np.clip(0.3 - edge, 0.0, None) / 0.3  # prefer the middle of the free space
    rows, cols, cost = [], [], []
    nx, ny = free.shape
    for di, dj in ((1, 0), (0, 1), (1, 1), (1, -1)):
        a = index[max(0, -di) : nx - max(0, di), max(0, -dj) : ny - max(0, dj)]
        b = index[max(0, di) : nx + min(0, di) or None, max(0, dj) : ny + min(0, dj) or None]
        pa = penalty[max(0, -di) : nx - max(0, di), max(0, -dj) : ny - max(0, dj)]
        pb = penalty[max(0, di) : nx + min(0, di) or None, max(0, dj) : ny + min(0, dj) or None]
        ok = (a >= 0) & (b >= 0)
        rows.append(a[ok])
        cols.append(b[ok])
        cost.append(math.hypot(di, dj) * CELL * (pa[ok] + pb[ok]) / 2)
    r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(cost)
    n = int(free.sum())
    return sparse.csr_matrix(
        (np.concatenate([w, w]), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(n, n)
    ), index


def _route(rng: np.random.Generator, free: np.ndarray, length: float) -> np.ndarray:
    """(M, 2) polyline through free cell centres, from goal to goal, at least ``length`` metres long.

    Goals are free spots 1.2-4 m away along the free space, preferring ones ahead of the current heading
    and sweeping around the room; consecutive goals are joined by shortest paths on the grid.
    """
    graph, index = _grid_graph(free)
    cells = (np.argwhere(free) + 0.5) * CELL
    centre = cells.mean(0)
    sweep = 1.0 if rng.random() < 0.5 else -1.0
    node = int(rng.integers(len(cells)))
    route, walked, heading = [cells[node]], 0.0, None
    for _ in range(100):
        if walked >= length:
            break
        dist, pred = csgraph.dijkstra(graph, indices=node, return_predecessors=True)
        far = np.flatnonzero(np.isfinite(dist) & (dist > 1.2) & (dist < 4.0))
        if len(far) == 0:
            far = np.flatnonzero(np.isfinite(dist) & (dist > 0.3))
        if len(far) == 0:
            break
        # the way each goal's path sets off: its point 0.6 m along the shortest path (avoids U-turns)
        order = np.argsort(dist)
        lead = np.arange(len(dist))
        for v in order[np.isfinite(dist[order]) & (dist[order] > 0.6)]:
            lead[v] = lead[pred[v]]
        vec = cells[lead[far]] - cells[node]
        vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-9)
        a0 = math.atan2(*(cells[node] - centre)[::-1])
        a1 = np.arctan2(cells[far, 1] - centre[1], cells[far, 0] - centre[0])
        progress = sweep * ((a1 - a0 + math.pi) % (2 * math.pi) - math.pi)
        ahead = vec @ heading if heading is not None else np.zeros(len(far))
        score = (
            np.clip(progress, -1, 1) + ahead + 2.0 * np.minimum(ahead + 0.3, 0) + 0.5 * rng.random(len(far))
        )
        goal = int(far[np.argmax(score)])
        path = [goal]
        while path[-1] != node:
            path.append(int(pred[path[-1]]))
        pts = cells[path[::-1]]
        route.extend(pts[1:])
        walked += float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
        heading = pts[-1] - pts[max(0, len(pts) - 6)]
        heading = heading / max(np.linalg.norm(heading), 1e-9)
        node = goal
    return np.array(route)


def _smooth_route(route: np.ndarray, free: np.ndarray, sigma: float = 0.3, ds: float = 0.02) -> np.ndarray:
    """Gaussian-smooth a free polyline (``sigma`` metres), falling back to it wherever smoothing leaves
    the free space, so that the result stays free."""
    seg = np.linalg.norm(np.diff(route, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] < ds:
        return route
    s = np.arange(0.0, arc[-1], ds)
    dense = np.stack([np.interp(s, arc, route[:, k]) for k in range(2)], -1)
    smooth = ndimage.gaussian_filter1d(dense, sigma / ds, axis=0, mode="nearest")
    for _ in range(4):
        bad = ~is_free(free, smooth)
        if not bad.any():
            return smooth
        w = np.maximum(ndimage.gaussian_filter1d(bad.astype(np.float64), sigma / ds / 2) * 4, bad)
        w = np.clip(w, 0.0, 1.0)[:, None]
        smooth = w * dense + (1 - w) * smooth
    smooth[~is_free(free, smooth)] = dense[~is_free(free, smooth)]
    return smooth


def _path(rng: np.random.Generator, free: np.ndarray, length: float) -> np.ndarray:
    """Dense (M, 2) smooth free path at least ``length`` metres long (back and forth if the room is tiny)."""
    target = length + 0.6
    for _ in range(6):  # smoothing shortens the route, so ask for more until it is long enough
        path = _smooth_route(_route(rng, free, target), free)
        got = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) if len(path) > 1 else 0.0
        if got >= length:
            break
        target *= 1.4
    if len(path) < 2:
        path = np.concatenate([path, path + 1e-4])
    while np.linalg.norm(np.diff(path, axis=0), axis=1).sum() < length:
        path = np.concatenate([path, path[::-1][1:]])
    return path


def _resample(dense: np.ndarray, s: np.ndarray) -> np.ndarray:
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    return np.stack([np.interp(s, arc, dense[:, k]) for k in range(dense.shape[1])], -1)


def _frame_arcs(dense: np.ndarray, step: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) arc-length positions of the frames along the path.

    The walker advances ``step`` metres per frame (±20 % drift) on straight stretches and slows down in
    bends, to a near stop when turning around.
    """
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    grad = np.gradient(dense, axis=0)
    heading = np.unwrap(np.arctan2(grad[:, 1], grad[:, 0]))
    ds = np.maximum(np.gradient(arc), 1e-9)
    bend = ndimage.gaussian_filter1d(np.abs(np.gradient(heading)) / ds, 3.0)  # rad per metre
    drift = 1.0 + 0.2 * np.sin(2 * math.pi * arc / rng.uniform(1.5, 3.0) + rng.uniform(0, 2 * math.pi))
    pace = step * drift / (1.0 + 0.15 * np.minimum(bend, 40.0))
    out = np.zeros(n)
    for k in range(1, n):
        out[k] = min(out[k - 1] + float(np.interp(out[k - 1], arc, pace)), arc[-1])
    return out


def _points_of_interest(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """(P, 3) points the camera looks at: centres of the things' upper halves.

    Books are left out (a full bookshelf would otherwise hold the camera's attention for the whole video).
    """
    pois = []
    for t in layout.things:
        if t.label in STRUCTURE_LABELS or t.label in ("book", "doorframe"):
            continue
        lo, hi = t.world_bounds()
        pois.append([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] + 0.7 * (hi[2] - lo[2])])
    if not pois:  # an empty room: look at the middle of the walls
        W, D, _ = layout.size
        pois = [[W / 2, 0.0, 1.0], [W, D / 2, 1.0], [W / 2, D, 1.0], [0.0, D / 2, 1.0]]
    return np.array(pois, dtype=np.float64)


def pose_from_angles(eye: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(4, 4) camera→world pose (OpenCV axes) at ``eye`` looking along yaw/pitch (radians, z up), rolled."""
    f = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(f, x)
    c, s = math.cos(roll), math.sin(roll)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = c * x + s * y, -s * x + c * y, f, eye
    return pose


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float, period: float) -> np.ndarray:
    """(n,) sum of three random sinusoids (period in frames) with total standard deviation ``sigma``."""
    k = np.arange(n)
    out = np.zeros(n)
    for _ in range(3):
        p = period * rng.uniform(0.6, 1.6)
        out += math.sqrt(2 / 3) * sigma * np.sin(2 * math.pi * k / p + rng.uniform(0, 2 * math.pi))
    return out


def make_trajectory(layout: Layout, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Camera→world poses of a hand-held walk through the room.

    Args:
        layout: the room (its free space and things).
        cfg: ``n_frames`` (60 when None), ``step``, ``max_turn``, ``camera_height`` and ``shake`` are used.
        rng: random generator (consumed).

    Returns:
        (n_frames, 4, 4) float64 camera→world poses, OpenCV camera axes (x right, y down, z forward).
    """
    n = cfg.n_frames if cfg.n_frames is not None else 60
    length = 1.25 * cfg.step * max(n - 1, 1)  # enough path for the fastest pace
    dense = _path(rng, layout.free, length)
    s = _frame_arcs(dense, cfg.step, n, rng)
    xy = _resample(dense, s)
    lo, hi = cfg.camera_height
    base = rng.uniform(lo + 0.1, hi - 0.1) if hi - lo > 0.2 else (lo + hi) / 2
    z = np.clip(base + _smooth_noise(rng, n, 0.05, 40.0), lo, hi)

    # look at a new point of interest every ~15 frames, turning at most max_turn per frame
    pois = _points_of_interest(layout, rng)
    every = 15
    keys = np.arange(0, n + every - 1, every)
    key_yaw, key_pitch = [], []
    prev, recent = None, []
    max_delta = math.radians(cfg.max_turn) * every * 0.6
    for k in keys:
        eye = np.array([*xy[min(k, n - 1)], z[min(k, n - 1)]])
        d = pois - eye
        dist = np.hypot(d[:, 0], d[:, 1])
        yaw = np.arctan2(d[:, 1], d[:, 0])
        ok = (dist > 0.8) & (dist < 4.5)
        if prev is not None:
            ok &= np.abs((yaw - prev + math.pi) % (2 * math.pi) - math.pi) < max_delta
        fresh = ok.copy()
        fresh[recent] = False  # look at something new if possible
        if ok.any():
            j = int(rng.choice(np.flatnonzero(fresh if fresh.any() else ok)))
            recent = (recent + [j])[-4:]
            y = float(yaw[j])
            p = math.atan2(d[j, 2], dist[j])
        else:  # nothing within reach of a turn: turn towards the nearest-in-angle thing
            far_enough = dist > 0.5
            cand = np.flatnonzero(far_enough) if far_enough.any() else np.arange(len(pois))
            gap = (yaw[cand] - (prev if prev is not None else 0.0) + math.pi) % (2 * math.pi) - math.pi
            j = int(cand[np.argmin(np.abs(gap))])
            y = (prev if prev is not None else 0.0) + float(
                np.clip(gap[np.argmin(np.abs(gap))], -max_delta, max_delta)
            )
            p = math.atan2(d[j, 2], max(dist[j], 0.5))
        if prev is not None:
            y = prev + (y - prev + math.pi) % (2 * math.pi) - math.pi  # unwrap
        key_yaw.append(y)
        key_pitch.append(float(np.clip(p, math.radians(-50), math.radians(-8))))
        prev = y
    frames = np.arange(n)
    yaw = PchipInterpolator(keys, key_yaw)(frames) if len(keys) > 1 else np.full(n, key_yaw[0])
    pitch = PchipInterpolator(keys, key_pitch)(frames) if len(keys) > 1 else np.full(n, key_pitch[0])
    limit = math.radians(cfg.max_turn)
    for arr in (yaw, pitch):  # enforce the turn rate (the smooth curve rarely exceeds it)
        steps = np.clip(np.diff(arr), -limit, limit)
        arr[1:] = arr[0] + np.cumsum(steps)

    shake = cfg.shake
    rot = [
        math.radians(0.25) * shake * rng.standard_normal(n)
        + _smooth_noise(rng, n, math.radians(0.5) * shake, 12.0)
        for _ in range(3)
    ]
    roll = rng.normal(0, math.radians(1.5)) + rot[2]
    pos = [
        0.002 * shake * rng.standard_normal(n) + _smooth_noise(rng, n, 0.003 * shake, 10.0) for _ in range(3)
    ]
    poses = np.empty((n, 4, 4))
    for k in range(n):
        eye = np.array([xy[k, 0] + pos[0][k], xy[k, 1] + pos[1][k], np.clip(z[k] + pos[2][k], lo, hi)])
        poses[k] = pose_from_angles(eye, yaw[k] + rot[0][k], pitch[k] + rot[1][k], roll[k])
    return poses
