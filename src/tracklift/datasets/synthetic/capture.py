"""A whole-room capture: the walk a person makes scanning a room, filmed as a video and subsampled.

ScanNet's captures walk the whole room with a hand-held sensor at 30 frames/s and are used every 10th-20th
frame. :func:`room_capture` does the same:

- the route visits the whole edge of the camera's free floor, which runs along the walls and around every
  piece of furniture (the free space already keeps clear of both), as one tour between waypoints about
  0.6 m apart (nearest-neighbour order improved by 2-opt on walking distances), smoothed;
- the camera rises and sinks slowly between ``camera_height`` bounds (looking over tables and beds) and
  turns, never faster than ``max_turn`` degrees per kept frame, towards points of interest (things, wall
  patches, floor patches) chosen greedily among those seen least so far, so that the room's surfaces are
  all looked at;
- the video advances ``step / frame_skip`` metres per video frame, with hand shake at video rate, and
  every ``frame_skip``-th frame is kept; asked for fewer frames than the route needs, the capture keeps
  that many spread evenly over the same video (``frames_span="route"``), so a short scan still walks the
  whole room.

:func:`surface_coverage` measures the result: the share of the GT surface seen by at least two kept frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.interpolate import PchipInterpolator
from scipy.sparse import csgraph

from tracklift.datasets.synthetic.config import SynthConfig
from tracklift.datasets.synthetic.labels import STRUCTURE_LABELS
from tracklift.datasets.synthetic.layout import CELL, Layout
from tracklift.datasets.synthetic.trajectory import (
    _grid_graph,
    _resample,
    _smooth_noise,
    _smooth_route,
)

WAYPOINT_SPACING = 0.6  # metres between the route's waypoints along the free space's edge
KEY_EVERY = 8  # kept frames between two choices of where to look
MIN_KEPT, MAX_KEPT = 100, 300  # kept frames of a whole-room capture when ``n_frames`` is not set


@dataclass
class Capture:
    """A captured walk.

    Attributes:
        video: (T, 4, 4) camera→world poses of every video frame.
        kept: (n,) indices into ``video`` of the kept frames (every ``frame_skip``-th).
        route_length: metres of the whole-room route.
    """

    video: np.ndarray
    kept: np.ndarray
    route_length: float

    @property
    def poses(self) -> np.ndarray:
        """(n, 4, 4) poses of the kept frames."""
        return self.video[self.kept]


def _waypoints(rng: np.random.Generator, free: np.ndarray) -> np.ndarray:
    """Node indices (into the free cells, row-major) of waypoints on the edge of the free space.

    The edge is the band of free cells within two cells of a blocked one; one waypoint per
    ``WAYPOINT_SPACING`` bin of it.
    """
    inside = ndimage.distance_transform_edt(np.pad(free, 1))[1:-1, 1:-1]
    band = free & (inside <= 2.0)
    cells = np.argwhere(band)
    if len(cells) == 0:
        cells = np.argwhere(free)
    bins = np.floor(cells * CELL / WAYPOINT_SPACING).astype(np.int64)
    key = bins[:, 0] * 100003 + bins[:, 1]
    order = rng.permutation(len(cells))  # a random representative of each bin
    _, first = np.unique(key[order], return_index=True)
    chosen = cells[order[first]]
    index = np.full(free.shape, -1, dtype=np.int64)
    index[free] = np.arange(int(free.sum()))
    return index[chosen[:, 0], chosen[:, 1]]


def _tour(dist: np.ndarray, start: int) -> list[int]:
    """Open tour through all waypoints: nearest neighbour from ``start``, then 2-opt (``dist`` (W, W))."""
    n = len(dist)
    tour, left = [start], set(range(n)) - {start}
    while left:
        cur = tour[-1]
        nxt = min(left, key=lambda j: dist[cur, j])
        tour.append(nxt)
        left.remove(nxt)
    tour_arr = np.array(tour)
    for _ in range(50):  # 2-opt on an open path: reverse tour[i:j+1] when it shortens the walk
        improved = False
        for i in range(1, n - 1):
            a, b = tour_arr[i - 1], tour_arr[i]
            c, d = tour_arr[i + 1 :], np.append(tour_arr[i + 2 :], -1)
            gain = dist[a, b] + np.where(d >= 0, dist[c, np.maximum(d, 0)], 0.0)
            gain -= dist[a, c] + np.where(d >= 0, dist[b, np.maximum(d, 0)], 0.0)
            j = int(np.argmax(gain))
            if gain[j] > 1e-9:
                tour_arr[i : i + j + 2] = tour_arr[i : i + j + 2][::-1]
                improved = True
        if not improved:
            break
    return [int(t) for t in tour_arr]


def room_route(rng: np.random.Generator, free: np.ndarray) -> np.ndarray:
    """(M, 2) smooth plan-view route (metres) through the free space that passes along its whole edge."""
    graph, _ = _grid_graph(free)
    cells = (np.argwhere(free) + 0.5) * CELL
    ways = _waypoints(rng, free)
    if len(ways) < 2:
        return np.stack([cells[0], cells[0] + 1e-3])
    dist, pred = csgraph.dijkstra(graph, indices=ways, return_predecessors=True)
    order = _tour(np.nan_to_num(dist[:, ways], posinf=1e6), int(rng.integers(len(ways))))
    route = [cells[ways[order[0]]]]
    for a, b in zip(order[:-1], order[1:]):
        if not np.isfinite(dist[a, ways[b]]):
            continue  # a waypoint the walker cannot reach (never happens on one connected free space)
        path = [int(ways[b])]
        while path[-1] != ways[a]:
            path.append(int(pred[a, path[-1]]))
        route.extend(cells[path[::-1][1:]])
    return _smooth_route(np.array(route), free)


def points_of_interest(layout: Layout) -> np.ndarray:
    """(P, 3) points the camera should look at: each thing's middle and top, wall patches every 0.8 m at
    three heights, floor patches every 0.8 m."""
    pois = []
    for t in layout.things:
        lo, hi = t.world_bounds()
        if t.label == "wall":
            length = float(np.hypot(hi[0] - lo[0], hi[1] - lo[1]))
            for s in (np.arange(0.4, length, 0.8) / length) if length > 0.8 else [0.5]:
                for z in (0.4, 1.1, 1.8):
                    pois.append([lo[0] + s * (hi[0] - lo[0]), lo[1] + s * (hi[1] - lo[1]), z])
        elif t.label not in STRUCTURE_LABELS and t.label not in ("book", "doorframe"):
            c = (lo + hi) / 2
            pois += [[c[0], c[1], c[2]], [c[0], c[1], hi[2]]]
    W, D, _ = layout.size
    grid = np.array([[x, y] for x in np.arange(0.4, W, 0.8) for y in np.arange(0.4, D, 0.8)])
    if len(grid):
        grid = grid[layout.inside_at(grid)]
        pois += [[x, y, 0.0] for x, y in grid]
    return np.array(pois, dtype=np.float64).reshape(-1, 3)


def _look_keys(
    xyz: np.ndarray, pois: np.ndarray, cfg: SynthConfig, every: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch (radians) at every ``every``-th position of ``xyz`` (K, 3): a greedy next-best view.

    Among the directions a turn can reach by the next key, take the one whose view holds the most
    points of interest seen least so far (each point weighs ``0.5 ** times_seen``), then count what it
    took in. Occlusion is ignored here (the rendered frames decide what is really seen).
    """
    seen = np.zeros(len(pois))
    half_h = math.atan(0.5 / cfg.focal) * 0.9  # (most of) half the field of view
    half_v = math.atan(0.5 * cfg.height / cfg.width / cfg.focal) * 0.9
    # ``every`` counts video frames; the turn limit is per kept frame (leave a fifth for the smoothing)
    max_delta = math.radians(cfg.max_turn) * every / cfg.frame_skip * 0.8
    pitch_options = np.radians([-50.0, -35.0, -20.0, -5.0, 8.0])
    yaws, pitches, prev = [], [], None
    for eye in xyz[::every]:
        d = pois - eye
        dist = np.hypot(d[:, 0], d[:, 1])
        yaw = np.arctan2(d[:, 1], d[:, 0])
        pitch = np.arctan2(d[:, 2], np.maximum(dist, 1e-3))
        near = (dist > 0.4) & (dist < 4.5)
        if prev is None:
            options = np.linspace(-math.pi, math.pi, 16, endpoint=False)
        else:
            options = prev + np.linspace(-max_delta, max_delta, 9)
        weight = np.where(near, 0.5**seen, 0.0)
        best, best_gain = (float(options[0]), float(pitch_options[2])), -1.0
        for y in options:
            dy = np.abs((yaw - y + math.pi) % (2 * math.pi) - math.pi)
            in_h = dy < half_h
            for p in pitch_options:
                gain = float(weight[in_h & (np.abs(pitch - p) < half_v)].sum()) + 0.05 * rng.random()
                if gain > best_gain:
                    best, best_gain = (float(y), float(p)), gain
        y, p = best
        dy = np.abs((yaw - y + math.pi) % (2 * math.pi) - math.pi)
        seen += near & (dy < half_h) & (np.abs(pitch - p) < half_v)
        yaws.append(y)
        pitches.append(p)
        prev = y
    return np.array(yaws), np.array(pitches)


def room_capture(layout: Layout, cfg: SynthConfig, rng: np.random.Generator) -> Capture:
    """A hand-held video walking the whole room, and the frames kept from it.

    Args:
        layout: the room.
        cfg: ``n_frames`` (kept frames; None = the whole route at ``step`` metres per kept frame, clipped
            to 100-300 frames by adjusting the pace), ``frame_skip``, ``step``, ``max_turn``,
            ``camera_height``, ``shake``, ``focal`` are used.
        rng: random generator (consumed).

    Returns:
        the :class:`Capture`; ``n_frames`` kept poses. With ``frames_span="route"`` an explicit
        ``n_frames`` below what the route needs keeps that many frames spread evenly over the same video
        (a coarser subsample, as ScanNet users keep every 20th frame instead of every 10th); more than it
        needs walks the route slower. With ``"start"`` the walk keeps the ``step`` pace and stops early (a
        person who stopped filming) or walks the route back.
    """
    k = cfg.frame_skip
    dense = room_route(rng, layout.free)
    length = float(np.linalg.norm(np.diff(dense, axis=0), axis=1).sum()) if len(dense) > 1 else 0.0
    need = int(np.clip(round(length / cfg.step), MIN_KEPT, MAX_KEPT))  # kept frames the route asks for
    keep = None  # the kept subsample of the every-k-th frames (None: all of them)
    if cfg.n_frames is None or cfg.frames_span == "route":
        n = max(need, cfg.n_frames or 0)
        step = max(length, 1e-3) / n
        if cfg.n_frames is not None and cfg.n_frames < n:
            keep = np.round(np.linspace(0, n - 1, cfg.n_frames)).astype(np.int64)
    else:
        n, step = cfg.n_frames, cfg.step
    T = (n - 1) * k + 1
    while len(dense) > 1 and np.linalg.norm(np.diff(dense, axis=0), axis=1).sum() < step * n * 1.3:
        dense = np.concatenate([dense, dense[::-1][1:]])  # walk back along the route
    # slow down in bends (rad per metre), drift ±20 % on straight stretches
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    grad = np.gradient(dense, axis=0) if len(dense) > 1 else np.ones_like(dense)
    heading = np.unwrap(np.arctan2(grad[:, 1], grad[:, 0]))
    bend = ndimage.gaussian_filter1d(np.abs(np.gradient(heading)) / np.maximum(np.gradient(arc), 1e-9), 3.0)
    drift = 1.0 + 0.2 * np.sin(2 * math.pi * arc / rng.uniform(1.5, 3.0) + rng.uniform(0, 2 * math.pi))
    pace = np.interp(np.linspace(0, arc[-1], T), arc, drift / (1.0 + 0.15 * np.minimum(bend, 40.0)))
    s = np.concatenate([[0.0], np.cumsum(pace[:-1])])
    s *= step * (n - 1) / max(s[-1], 1e-9)  # the kept frames are ``step`` apart on average
    s = np.minimum(s, arc[-1])
    xy = _resample(dense, s)

    lo, hi = cfg.camera_height
    mid, amp = (lo + hi) / 2, max(0.0, (hi - lo) / 2 - 0.05)
    phase, period = rng.uniform(0, 2 * math.pi), rng.uniform(40, 70) * k  # slow rise and fall
    z = mid + amp * np.sin(2 * math.pi * np.arange(T) / period + phase)

    every = KEY_EVERY * k
    key_yaw, key_pitch = _look_keys(np.column_stack([xy, z]), points_of_interest(layout), cfg, every, rng)
    keys = np.arange(len(key_yaw)) * every
    frames = np.arange(T)
    if len(keys) > 1:
        yaw = PchipInterpolator(keys, key_yaw, extrapolate=True)(frames)
        pitch = PchipInterpolator(keys, key_pitch, extrapolate=True)(frames)
    else:
        yaw, pitch = np.full(T, key_yaw[0]), np.full(T, key_pitch[0])
    limit = math.radians(cfg.max_turn) / k  # per video frame
    for arr in (yaw, pitch):
        arr[1:] = arr[0] + np.cumsum(np.clip(np.diff(arr), -limit, limit))

    # hand shake at video rate, the same physical amplitude and period as :func:`make_trajectory`'s
    shake = cfg.shake
    rot = [
        math.radians(0.25) * shake * rng.standard_normal(T)
        + _smooth_noise(rng, T, math.radians(0.5) * shake, 12.0 * k)
        for _ in range(3)
    ]
    roll = rng.normal(0, math.radians(1.5)) + rot[2]
    pos = [
        0.002 * shake * rng.standard_normal(T) + _smooth_noise(rng, T, 0.003 * shake, 10.0 * k)
        for _ in range(3)
    ]
    eye = np.column_stack([xy[:, 0] + pos[0], xy[:, 1] + pos[1], np.clip(z + pos[2], lo, hi)])
    video = poses_from_angles(eye, yaw + rot[0], pitch + rot[1], roll)
    kept = np.arange(0, T, k)
    return Capture(video, kept if keep is None else kept[keep], length)


def poses_from_angles(eye: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(T, 4, 4) camera→world poses, :func:`.trajectory.pose_from_angles` for arrays (T,) of angles."""
    f = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], -1)
    x = np.stack([f[:, 1], -f[:, 0], np.zeros(len(f))], -1)  # f × z
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(f, x)
    c, s = np.cos(roll)[:, None], np.sin(roll)[:, None]
    poses = np.zeros((len(f), 4, 4))
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2] = c * x + s * y, -s * x + c * y, f
    poses[:, :3, 3], poses[:, 3, 3] = eye, 1.0
    return poses


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) triangle areas in m²."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)]
    return np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2


def surface_coverage(areas: np.ndarray, views: np.ndarray, min_views: int = 2) -> float:
    """Share of a GT mesh's surface seen by at least ``min_views`` frames.

    Args:
        areas: (F,) triangle areas of the GT mesh (:func:`face_areas`).
        views: (F,) number of frames that saw each triangle (:func:`count_views`).
        min_views: frames that must see a triangle for it to count.

    Returns:
        seen area / total area in [0, 1] (0 for an empty mesh).
    """
    total = float(areas.sum())
    if total <= 0:
        return 0.0
    return float(areas[np.asarray(views) >= min_views].sum() / total)


def count_views(views: np.ndarray, face_map: np.ndarray) -> None:
    """Add one view (in place, ``views`` (F,) int) to every triangle a frame sees: those hit first by at
    least one pixel's ray (``face_map`` (H, W), -1 = nothing), so occluded and out-of-view surface does not
    count."""
    hit = np.zeros(len(views), dtype=bool)
    face = np.asarray(face_map).ravel()
    hit[face[face >= 0]] = True
    views += hit
