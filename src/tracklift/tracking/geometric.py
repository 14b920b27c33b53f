"""A mask tracker from geometry alone: objects are 3D point sets reprojected through depth and pose.

Every object seeded with a 2D mask becomes a voxel-downsampled world point set (with colour and normal
per point). On another frame of the window its points are projected with the frame's pose; points that
pass the occlusion test against the frame's depth mark where the object is visible (the *splat*). The
splat, widened by ``fill_radius`` pixels, bounds where the object's mask may lie; inside it a pixel joins
the object when its own 3D point lies within a distance tolerance of the object's nearest point with a
similar colour and normal (so the mask is dense, follows the real silhouette, and stops at occluders and
at neighbours of another colour or orientation). Gaps are closed, pixels claimed by several objects go
to the nearest one, and an object with fewer than ``min_visible_pixels`` pixels is reported absent on
that frame but kept: its points are projected again on later frames, so it re-enters when it is back in
view. With ``accumulate`` the points of each predicted mask extend the object's point set, so surfaces
first seen later (the back of a chair) are tracked too.

The 3D point sets do not depend on time, so every object known to the state is predicted on every
frame, whichever direction the propagation runs and wherever the object was seeded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from tracklift.datasets.scene import Frame, Intrinsics
from tracklift.errors import ConfigError, DataError
from tracklift.geometry.camera import backproject_depth, project
from tracklift.geometry.normals import normals_from_points, shifted
from tracklift.geometry.voxels import voxel_keys
from tracklift.tracking.rgbd import rgb_to_lab

__all__ = ["GeometricConfig", "GeometricTracker", "GeometricTrackState"]


@dataclass
class GeometricConfig:
    """Settings of :class:`GeometricTracker`.

    Args:
        depth_tol: occlusion test: a projected point is visible when its depth is within
            ``depth_tol + depth_tol_rel * depth`` metres of the frame's depth at its pixel.
        depth_tol_rel: relative part of the occlusion tolerance (sensor noise grows with depth).
        member_dist: a pixel joins an object when its 3D point is within
            ``member_dist + member_dist_rel * depth`` metres of the object's nearest point.
        member_dist_rel: relative part of the membership distance.
        color_tol: largest ΔE76 between a pixel and the nearest object point (≤ 0: colour not checked).
        normal_tol_deg: largest angle between a pixel's normal and the nearest object point's normal
            (≥ 180: not checked); keeps masks from creeping onto the surface an object stands on.
        fill_radius: pixels around the splat of visible points where the mask may lie; also the number
            of region-growing steps.
        grow_depth_rel: region growing joins neighbouring pixels whose depths differ by at most this
            share of their depth,
        grow_color: … whose colours differ by at most this ΔE76,
        grow_normal_deg: … and whose normals differ by at most this angle (degrees).
        close_radius: radius (pixels) of the morphological closing that fills gaps in a mask.
        min_visible_pixels: fewer mask pixels than this on a frame → the object is absent there.
        min_island_pixels: connected pieces of a mask smaller than this are dropped.
        voxel: resolution of the object point sets, metres.
        accumulate: add the points of each predicted mask to its object's point set.
        normal_radius: smoothing half-width of the per-pixel normals, pixels.
        cache_frames: derived per-frame arrays (world points, normals, Lab) kept in memory.
    """

    depth_tol: float = field(default=0.03, metadata={"help": "occlusion test tolerance, metres"})
    depth_tol_rel: float = field(default=0.02, metadata={"help": "occlusion tolerance per metre of depth"})
    member_dist: float = field(default=0.015, metadata={"help": "membership distance, metres"})
    member_dist_rel: float = field(default=0.008, metadata={"help": "membership distance per metre of depth"})
    color_tol: float = field(default=25.0, metadata={"help": "largest colour difference (ΔE), <=0 off"})
    normal_tol_deg: float = field(default=50.0, metadata={"help": "largest normal angle, degrees"})
    fill_radius: int = field(default=8, metadata={"help": "pixels around the splat the mask may cover"})
    grow_depth_rel: float = field(default=0.03, metadata={"help": "growth: largest relative depth step"})
    grow_color: float = field(default=10.0, metadata={"help": "growth: largest ΔE between neighbours"})
    grow_normal_deg: float = field(default=30.0, metadata={"help": "growth: largest normal angle"})
    close_radius: int = field(default=2, metadata={"help": "closing radius, pixels"})
    min_visible_pixels: int = field(default=40, metadata={"help": "fewer pixels → absent on that frame"})
    min_island_pixels: int = field(default=10, metadata={"help": "smaller mask pieces are dropped"})
    voxel: float = field(default=0.01, metadata={"help": "object point-set resolution, metres"})
    accumulate: bool = field(default=True, metadata={"help": "grow objects' point sets while tracking"})
    accumulate_grown: bool = field(default=False, metadata={"help": "also learn region-grown pixels"})
    normal_radius: int = field(default=2, metadata={"help": "normal smoothing half-width, pixels"})
    cache_frames: int = field(default=4, metadata={"help": "frames of derived arrays kept in memory"})

    def __post_init__(self):
        if min(self.depth_tol, self.member_dist, self.voxel) <= 0:
            raise ConfigError("GeometricConfig: depth_tol, member_dist and voxel must be > 0")
        if self.fill_radius < 0 or self.close_radius < 0 or self.min_visible_pixels < 1:
            raise ConfigError("GeometricConfig: radii must be >= 0 and min_visible_pixels >= 1")


class _Object:
    """One tracked object: world points (N, 3) metres with their Lab colours and unit normals (N, 3),
    one point per occupied voxel.

    Nearest-neighbour queries use a k-d tree of the first points plus a small tree of the points added
    since; the big tree is rebuilt only when the tail exceeds ``rebuild_share`` of it, so accumulating a
    few new points per frame does not cost a full rebuild per frame.
    """

    rebuild_share = 0.1

    def __init__(self, voxel: float):
        self.voxel = voxel
        self.points = np.zeros((0, 3), np.float32)
        self.lab = np.zeros((0, 3), np.float32)
        self.normals = np.zeros((0, 3), np.float32)
        self._keys = np.zeros(0, np.int64)  # sorted voxel keys of the points
        self._tree: cKDTree | None = None
        self._tree_n = 0
        self._tail: cKDTree | None = None

    def add(self, points: np.ndarray, lab: np.ndarray, normals: np.ndarray) -> int:
        """Add the points falling in voxels not yet occupied (first one per voxel). Returns how many."""
        if len(points) == 0:
            return 0
        keys = voxel_keys(points, self.voxel)
        uk, first = np.unique(keys, return_index=True)
        pos = np.searchsorted(self._keys, uk)
        if len(self._keys):
            new = (pos >= len(self._keys)) | (self._keys[np.minimum(pos, len(self._keys) - 1)] != uk)
        else:
            new = np.ones(len(uk), bool)
        idx = np.sort(first[new])
        if len(idx) == 0:
            return 0
        self.points = np.concatenate([self.points, points[idx].astype(np.float32)])
        self.lab = np.concatenate([self.lab, lab[idx].astype(np.float32)])
        self.normals = np.concatenate([self.normals, normals[idx].astype(np.float32)])
        self._keys = np.insert(self._keys, pos[new], uk[new])  # stays sorted: uk and pos ascend
        self._tail = None
        return len(idx)

    def keep(self, sel: np.ndarray) -> None:
        """Keep only the points where ``sel`` (N,) is True."""
        self.points, self.lab, self.normals = self.points[sel], self.lab[sel], self.normals[sel]
        self._keys = np.unique(voxel_keys(self.points, self.voxel))
        self._tree = self._tail = None
        self._tree_n = 0

    def query(self, p: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
        """Distances (inf beyond ``bound``) and indices of the nearest object points to ``p`` (M, 3)."""
        n = len(self.points)
        if self._tree is None or n - self._tree_n > self.rebuild_share * max(self._tree_n, 1):
            self._tree, self._tree_n, self._tail = cKDTree(self.points), n, None
        dist, nn = self._tree.query(p, k=1, distance_upper_bound=bound)
        if n > self._tree_n:
            if self._tail is None:
                self._tail = cKDTree(self.points[self._tree_n :])
            d2, n2 = self._tail.query(p, k=1, distance_upper_bound=bound)
            better = d2 < dist
            dist[better] = d2[better]
            nn[better] = n2[better] + self._tree_n
        return dist, np.minimum(nn, n - 1)


@dataclass
class _FrameData:
    points: np.ndarray  # (H, W, 3) world
    normals: np.ndarray  # (H, W, 3) world, 0 where undefined
    lab: np.ndarray  # (H, W, 3)
    depth: np.ndarray  # (H, W)
    valid: np.ndarray  # (H, W) bool
    agree: dict  # {(dy, dx): (H, W) bool}: pixel and its neighbour at (y+dy, x+dx) are on one surface


@dataclass
class GeometricTrackState:
    """Tracking state of one window of frames (returned by :meth:`GeometricTracker.start`).

    Attributes:
        frames: the window (positions 0..len-1).
        intrinsics: their depth intrinsics.
        objects: ``{obj_id: _Object}`` point sets.
        seeds: ``{pos: {obj_id: (H, W) bool}}`` masks given with :meth:`GeometricTracker.add_masks`.
    """

    frames: Sequence[Frame]
    intrinsics: Intrinsics
    objects: dict[int, _Object] = field(default_factory=dict)
    seeds: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    cache: OrderedDict = field(default_factory=OrderedDict)
    closed: bool = False


class GeometricTracker:
    """Implements :class:`tracklift.tracking.base.MaskTracker` by 3D reprojection (no learned weights).

    Args:
        cfg: settings.
    """

    def __init__(self, cfg: GeometricConfig | None = None):
        self.cfg = cfg or GeometricConfig()

    # -- MaskTracker ---------------------------------------------------------------------------------

    def start(self, frames: Sequence[Frame], intrinsics: Intrinsics) -> GeometricTrackState:
        """Open a window. Raises :class:`DataError` for a frame whose images do not match the intrinsics."""
        for f in frames:
            if f.depth.shape != (intrinsics.height, intrinsics.width) or f.color.shape[:2] != f.depth.shape:
                raise DataError(
                    f"frame {f.index}",
                    f"colour {f.color.shape} / depth {f.depth.shape} do not match intrinsics "
                    f"{intrinsics.width}x{intrinsics.height}",
                )
        return GeometricTrackState(list(frames), intrinsics)

    def add_masks(self, state: GeometricTrackState, pos: int, masks: dict[int, np.ndarray]) -> None:
        """Seed or correct objects with masks on frame ``pos``.

        A new id starts an object from the mask's pixels with depth. For a known id the mask is taken as
        the truth on this frame: the object's points visible here but outside the mask are removed, and
        the mask's points are added.

        Args:
            state: from :meth:`start`.
            pos: position in the window.
            masks: ``{obj_id: (H, W) bool}``.
        """
        self._check_open(state)
        fd = self._frame_data(state, pos)
        h, w = fd.depth.shape
        seeds = state.seeds.setdefault(pos, {})
        for obj_id, mask in masks.items():
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (h, w):
                raise DataError(
                    f"frame {state.frames[pos].index}",
                    f"mask of object {obj_id} is {mask.shape}, expected {(h, w)}",
                )
            obj_id = int(obj_id)
            seeds[obj_id] = mask
            sel = mask & fd.valid
            obj = state.objects.get(obj_id)
            if obj is None:
                obj = state.objects[obj_id] = _Object(self.cfg.voxel)
            elif len(obj.points):
                obj.keep(~self._visible_outside(state, pos, obj.points, mask))
            obj.add(fd.points[sel], fd.lab[sel], fd.normals[sel])

    def propagate(
        self, state: GeometricTrackState, start: int, end: int | None = None, reverse: bool = False
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yield ``(pos, {obj_id: (H, W) bool})`` from ``start`` to ``end`` inclusive (default: the last
        frame, or 0 when ``reverse``). Masks of different objects never overlap; absent objects are
        left out. On a frame with seeds the seeded masks are returned (they win over predictions)."""
        self._check_open(state)
        n = len(state.frames)
        if not 0 <= start < n:
            raise IndexError(f"start {start} outside the window of {n} frames")
        end = (0 if reverse else n - 1) if end is None else end
        positions = range(start, end - 1, -1) if reverse else range(start, end + 1)
        for pos in positions:
            yield pos, self._predict(state, pos)

    def close(self, state: GeometricTrackState) -> None:
        state.objects.clear()
        state.seeds.clear()
        state.cache.clear()
        state.closed = True

    # -- prediction ----------------------------------------------------------------------------------

    def _predict(self, state: GeometricTrackState, pos: int) -> dict[int, np.ndarray]:
        cfg = self.cfg
        fd = self._frame_data(state, pos)
        h, w = fd.depth.shape
        seeds = state.seeds.get(pos, {})
        ids = [i for i, o in state.objects.items() if len(o.points) and i not in seeds]

        # 1. candidates: each object's pixels within its tolerance, inside its widened splat
        cand_pix, cand_obj, cand_dist, cand_grown = [], [], [], []
        seeded = np.zeros((h, w), bool)
        for m in seeds.values():
            seeded |= m
        for k, obj_id in enumerate(ids):
            obj = state.objects[obj_id]
            pix, dist, grown = self._members(state, fd, pos, obj, seeded)
            cand_grown.append(grown)
            cand_pix.append(pix)
            cand_obj.append(np.full(len(pix), k))
            cand_dist.append(dist)

        # 2. each pixel to the nearest object
        label = np.full(h * w, -1, np.int64)
        member = np.zeros(h * w, bool)  # won by a member (not a grown pixel): may extend the point set
        if cand_pix:
            pix = np.concatenate(cand_pix)
            obj = np.concatenate(cand_obj)
            dist = np.concatenate(cand_dist)
            grown = np.concatenate(cand_grown)
            order = np.lexsort((obj, dist))
            pix, obj, grown = pix[order], obj[order], grown[order]
            first = np.unique(pix, return_index=True)[1]
            label[pix[first]] = obj[first]
            member[pix[first]] = ~grown[first]
        label = label.reshape(h, w)
        member = member.reshape(h, w)

        # 3. per object: drop specks, close gaps onto unclaimed pixels, test visibility, accumulate
        out: dict[int, np.ndarray] = {}
        claimed = (label >= 0) | seeded
        for k, obj_id in enumerate(ids):
            core = label == k
            if core.sum() < cfg.min_visible_pixels:
                continue
            mask = self._clean(core, claimed & ~core)
            if mask.sum() < cfg.min_visible_pixels:
                continue
            claimed |= mask
            out[obj_id] = mask
            if cfg.accumulate:
                # only members: grown pixels are a guess for this frame, and learning them would let a
                # mask creep a little further onto a touching surface on every frame
                learn = core & mask if cfg.accumulate_grown else core & mask & member
                self._accumulate(state.objects[obj_id], fd, learn)
        for obj_id, m in self._resolve_seeds(seeds).items():
            out[obj_id] = m
        return out

    def _members(self, state, fd: _FrameData, pos: int, obj: _Object, seeded: np.ndarray):
        """Pixels of ``obj`` on this frame.

        A pixel hit by a projected object point at nearly its own depth is a member directly (distance =
        depth difference); the other pixels of the widened splat are members when their 3D point lies
        within the membership distance of the object's nearest point. Either way the colour and normal
        of that point must agree with the pixel's. From the members the mask grows over neighbouring
        pixels of the same surface (see :func:`_agreement`) that also agree with their nearest object
        point in colour and normal.

        Returns:
            ``(pix, dist, grown)``: flat pixel indices, their distance to the object in metres (for
            grown pixels a rank behind any member), and whether each pixel was grown.
        """
        cfg = self.cfg
        h, w = fd.depth.shape
        empty = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool)
        col, row, z = project(obj.points, state.intrinsics, state.frames[pos].pose)
        inside = np.flatnonzero((z > 1e-3) & (col >= 0) & (col < w) & (row >= 0) & (row < h))
        col, row, z = col[inside], row[inside], z[inside]
        d = fd.depth[row, col]
        dz = np.abs(z - d)
        vis = (d > 0) & (dz <= cfg.depth_tol + cfg.depth_tol_rel * d) & ~seeded[row, col]
        if not vis.any():
            return empty
        # direct hits: the nearest-in-depth point of each pixel
        hit = vis & (dz <= cfg.member_dist + cfg.member_dist_rel * d)
        hpix, hpt, hdist = (row * w + col)[hit], inside[hit], dz[hit]
        order = np.lexsort((hdist, hpix))
        hpix, hpt, hdist = hpix[order], hpt[order], hdist[order]
        first = np.r_[True, hpix[1:] != hpix[:-1]][: len(hpix)]
        hpix, hpt, hdist = hpix[first], hpt[first], hdist[first]

        # the widened splat, within which the mask may lie
        col, row = col[vis], row[vis]
        r = cfg.fill_radius
        y0, y1 = max(row.min() - r, 0), min(row.max() + r + 1, h)
        x0, x1 = max(col.min() - r, 0), min(col.max() + r + 1, w)
        region = np.zeros((y1 - y0, x1 - x0), bool)
        region[row - y0, col - x0] = True
        if r > 0:  # a square widening, separable: much cheaper than a disk on large splats
            region = ndimage.maximum_filter1d(
                ndimage.maximum_filter1d(region, 2 * r + 1, axis=0), 2 * r + 1, axis=1
            )
        region &= fd.valid[y0:y1, x0:x1] & ~seeded[y0:y1, x0:x1]
        region[hpix // w - y0, hpix % w - x0] = False
        yy, xx = np.nonzero(region)
        yy += y0
        xx += x0
        tol = cfg.member_dist + cfg.member_dist_rel * fd.depth[yy, xx]
        # the reach of growth bounds the search: farther points cannot vouch for a pixel
        qdist, qnn = obj.query(fd.points[yy, xx], float(tol.max()) + 0.25)
        found = np.isfinite(qdist)

        pix = np.concatenate([hpix, (yy * w + xx)[found]])
        nn = np.concatenate([hpt, qnn[found]])
        dist = np.concatenate([hdist, qdist[found]])
        near = np.concatenate([np.ones(len(hpix), bool), qdist[found] <= tol[found]])
        ok = self._compatible(fd, obj, pix, nn)
        member = ok & near
        if r == 0 or not member.any():
            return pix[member], dist[member], np.zeros(int(member.sum()), bool)

        # region growing from the members over neighbours on the same surface: covers parts of the object
        # first seen on this frame
        allowed = np.zeros_like(region)
        allowed[pix[ok] // w - y0, pix[ok] % w - x0] = True
        core = np.zeros_like(region)
        core[pix[member] // w - y0, pix[member] % w - x0] = True
        agree = {k: v[y0:y1, x0:x1] for k, v in fd.agree.items()}
        grown, step = _grow(core, allowed, agree, r)
        gy, gx = np.nonzero(grown)
        # grown pixels rank behind every member of another object when pixels are contested
        gdist = cfg.member_dist + cfg.member_dist_rel * 10.0 + 1e-3 * step[gy, gx]
        pix = np.concatenate([pix[member], (gy + y0) * w + gx + x0])
        dist = np.concatenate([dist[member], gdist])
        grown_flag = np.r_[np.zeros(int(member.sum()), bool), np.ones(len(gy), bool)]
        return pix, dist, grown_flag

    def _compatible(self, fd: _FrameData, obj: _Object, pix: np.ndarray, nn: np.ndarray) -> np.ndarray:
        """(M,) bool: pixel ``pix`` agrees in colour and normal with object point ``nn``."""
        cfg = self.cfg
        w = fd.depth.shape[1]
        py, px = pix // w, pix % w
        ok = np.ones(len(pix), bool)
        if cfg.color_tol > 0:
            ok &= np.linalg.norm(fd.lab[py, px] - obj.lab[nn], axis=-1) <= cfg.color_tol
        if cfg.normal_tol_deg < 180:
            n_pix, n_obj = fd.normals[py, px], obj.normals[nn]
            known = np.any(n_pix != 0, axis=-1) & np.any(n_obj != 0, axis=-1)
            cos = np.einsum("nc,nc->n", n_pix, n_obj)
            ok &= ~known | (cos >= np.cos(np.deg2rad(cfg.normal_tol_deg)))
        return ok

    def _clean(self, core: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Drop small islands, then close gaps and fill holes, never onto pixels of other objects."""
        cfg = self.cfg
        ys, xs = np.nonzero(core)
        pad = cfg.close_radius + 1
        h, w = core.shape
        y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)
        x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
        m = core[y0:y1, x0:x1]
        lab, n = ndimage.label(m, structure=np.ones((3, 3), bool))
        if n > 1:
            sizes = np.bincount(lab.ravel(), minlength=n + 1)
            big = sizes >= cfg.min_island_pixels
            big[0] = False
            m = big[lab]
        if cfg.close_radius > 0:
            m = m | ndimage.binary_closing(m, _disk(cfg.close_radius))
        m = ndimage.binary_fill_holes(m)
        m &= ~others[y0:y1, x0:x1] | core[y0:y1, x0:x1]
        out = np.zeros_like(core)
        out[y0:y1, x0:x1] = m
        return out

    @staticmethod
    def _accumulate(obj: _Object, fd: _FrameData, sel: np.ndarray) -> None:
        sel = sel & fd.valid
        obj.add(fd.points[sel], fd.lab[sel], fd.normals[sel])

    @staticmethod
    def _resolve_seeds(seeds: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Seeds of one frame made disjoint: an overlapped pixel goes to the smaller mask."""
        if len(seeds) < 2:
            return {k: v.copy() for k, v in seeds.items()}
        order = sorted(seeds, key=lambda k: -int(seeds[k].sum()))
        label = np.full(next(iter(seeds.values())).shape, -1, np.int64)
        for k in order:  # larger first, smaller overwrite
            label[seeds[k]] = k
        return {k: label == k for k in seeds if (label == k).any()}

    # -- helpers -------------------------------------------------------------------------------------

    def _visible_outside(self, state, pos: int, points: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(N,) bool: points visible on frame ``pos`` (occlusion test passed) at a pixel outside ``mask``."""
        cfg = self.cfg
        fd = self._frame_data(state, pos)
        h, w = mask.shape
        col, row, z = project(points, state.intrinsics, state.frames[pos].pose)
        inside = (z > 1e-3) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.zeros(len(points), bool)
        ci, ri, zi = col[inside], row[inside], z[inside]
        d = fd.depth[ri, ci]
        vis = (d > 0) & (np.abs(zi - d) <= cfg.depth_tol + cfg.depth_tol_rel * d) & ~mask[ri, ci]
        out[np.flatnonzero(inside)[vis]] = True
        return out

    def _frame_data(self, state: GeometricTrackState, pos: int) -> _FrameData:
        if pos in state.cache:
            state.cache.move_to_end(pos)
            return state.cache[pos]
        f = state.frames[pos]
        depth = np.asarray(f.depth, dtype=np.float32)
        valid = depth > 0
        cam = backproject_depth(depth, state.intrinsics)
        normals_cam = normals_from_points(cam, valid, self.cfg.normal_radius)
        R = np.asarray(f.pose[:3, :3], dtype=np.float32)
        t = np.asarray(f.pose[:3, 3], dtype=np.float32)
        lab = rgb_to_lab(f.color)
        agree = _agreement(depth, lab, normals_cam, self.cfg)
        fd = _FrameData(cam @ R.T + t, normals_cam @ R.T, lab, depth, valid, agree)
        state.cache[pos] = fd
        while len(state.cache) > max(1, self.cfg.cache_frames):
            state.cache.popitem(last=False)
        return fd

    @staticmethod
    def _check_open(state: GeometricTrackState) -> None:
        if state.closed:
            raise RuntimeError("this tracking state was closed")


_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _agreement(depth: np.ndarray, lab: np.ndarray, normals: np.ndarray, cfg: GeometricConfig) -> dict:
    """``{(dy, dx): (H, W) bool}``: the pixel and its neighbour at offset (dy, dx) look like one surface.

    Both have depth, their relative depth step is small, their colours are similar, and the normals one
    pixel before and one pixel after the pair agree. The normals are smoothed, so across a fold they
    turn over a few pixels; comparing them over a 3-pixel span keeps growth from crossing the fold (a
    floor into a wall) in small, individually acceptable steps.
    """
    valid = depth > 0
    cos_tol = np.cos(np.deg2rad(cfg.grow_normal_deg))
    has_n = np.any(normals != 0, axis=-1)
    out = {}
    for dy, dx in _NEIGHBOURS:
        zq = shifted(depth, dy, dx, 0.0)
        ok = valid & (zq > 0) & (np.abs(depth - zq) <= cfg.grow_depth_rel * np.minimum(depth, zq))
        ok &= np.linalg.norm(lab - shifted(lab, dy, dx, 0.0), axis=-1) <= cfg.grow_color
        n_before, n_after = shifted(normals, -dy, -dx, 0.0), shifted(normals, 2 * dy, 2 * dx, 0.0)
        known = shifted(has_n, -dy, -dx, False) & shifted(has_n, 2 * dy, 2 * dx, False)
        ok &= ~known | (np.einsum("hwc,hwc->hw", n_before, n_after) >= cos_tol)
        out[(dy, dx)] = ok
    return out


def _grow(core: np.ndarray, allowed: np.ndarray, agree: dict, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic growth of ``core`` over agreeing neighbours inside ``allowed``.

    Returns:
        ``(grown, step)``: the pixels added (not in ``core``) and, per pixel, the step that added it.
    """
    mask = core.copy()
    step = np.zeros(core.shape, np.int32)
    for it in range(1, steps + 1):
        new = np.zeros_like(mask)
        for (dy, dx), ok in agree.items():
            new |= shifted(mask, dy, dx) & ok
        new &= allowed & ~mask
        if not new.any():
            break
        step[new] = it
        mask |= new
    return mask & ~core, step


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= r * r + r  # slightly fuller than a Euclidean disk: no lone corner gaps
