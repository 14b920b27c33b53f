"""A mask generator without learned weights: multi-scale graph segmentation of one RGB-D frame.

It stands in for SAM's automatic mask generator where no weights are available, and behaves like it in
the way that matters to tracklift: it proposes overlapping masks of parts *and* wholes, and which of
them wins on a given frame depends on that frame's view (the granularity problem the tracker solves).

Method (all on one frame; never any ground truth):
  1. Work on a grid ``work_width`` cells wide (block means of colour and valid depth).
  2. Per cell: CIE Lab colour, inverse depth, surface normal (from depth and the intrinsics).
  3. An 8-connected cell graph whose edge weight combines colour difference (ΔE), a depth
     discontinuity measure (how much the inverse depth departs from the planar prediction of either
     side: zero on any plane, even a grazing floor; large at occlusion boundaries) and the normal angle.
     Masks follow geometry, not texture: on planar surfaces (no depth or normal edge nearby) colour is
     read with thin lines removed (tile grout, grain lines) and colour steps between two textured cells
     are discounted, so a tiled or wooden floor stays whole while a rug or poster of another colour
     lying flush on it keeps its boundary; near geometric edges (objects and their parts) colour counts
     as it is.
  4. Felzenszwalb-Huttenlocher merging on the graph's minimum spanning tree (the only edges the
     algorithm ever merges along), once per scale ``k`` in increasing order, each scale starting from
     the previous one: a nested hierarchy of segments from parts to wholes. The bulk of the merges runs
     as vectorised rounds of mutually-best merges; the remaining few thousand edges, where rounds stop
     paying off, are processed one by one in weight order as in the original algorithm.
  5. Segments become full-resolution masks (labels upsampled guided by colour and depth), pixels
     without depth are dropped, small holes filled, tiny masks dropped, near-duplicates across scales
     (IoU > ``dedup_iou``) collapsed.
  6. ``score`` = boundary contrast (mean edge weight on the segment boundary against the mean inside);
     ``stability`` = IoU agreement with the best-matching segment at the neighbouring scales.

:func:`select_granularity` turns the overlapping proposals of one frame into a non-overlapping id map,
as the independent per-frame baseline does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from tracklift.datasets.scene import Intrinsics
from tracklift.errors import ConfigError
from tracklift.geometry.camera import backproject_depth, centred_intrinsics
from tracklift.geometry.normals import normals_from_points, shifted
from tracklift.tracking.base import Mask2D
from tracklift.tracking.rgbd import check_rgbd, rgb_to_lab, texture_energy, without_thin_lines

__all__ = ["WeightlessConfig", "WeightlessMaskGenerator", "select_granularity"]

# 8-connectivity: each undirected neighbour pair once
_DIRS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass
class WeightlessConfig:
    """Settings of :class:`WeightlessMaskGenerator` (defaults tuned on the synthetic scans at 320×240).

    Args:
        work_width: width of the segmentation grid in cells; the image is block-averaged by
            ``stride = max(1, round(width / work_width))`` (so 320 and 640 wide inputs segment alike).
        focal: focal length as a fraction of the image width, used for normals when no intrinsics are
            given (0.9 ≈ Kinect / ScanNet depth camera).
        scales: Felzenszwalb ``k`` values in increasing order (edge-weight × cells); each adds a coarser
            level to the hierarchy.
        min_segment_cells: segments smaller than this many cells are absorbed by their most similar
            neighbour after every scale.
        color_scale: ΔE76 colour difference that counts as edge weight 1.
        depth_scale: relative depth discontinuity (departure from the planar prediction / depth) that
            counts as edge weight 1.
        normal_scale_deg: normal angle (degrees) that counts as edge weight 1.
        normal_radius: smoothing half-width and difference baseline of the normals, in cells.
        planar_reach: a cell is on a planar surface when no edge within this many cells has a geometric
            weight (depth and normal terms) of ``planar_max_weight`` or more; on planar surfaces colour
            edges are read without thin lines and discounted by texture. 0 turns both off.
        planar_max_weight: see ``planar_reach``.
        ridge_reach: on planar surfaces, dark or bright lines up to ``2 * ridge_reach`` cells wide (tile
            grout, wood-grain lines) are removed before colour differences are taken
            (:func:`~tracklift.tracking.rgbd.without_thin_lines`); 0 turns this off.
        texture_window: window (cells) of the texture measure
            (:func:`~tracklift.tracking.rgbd.texture_energy`); on planar surfaces, colour edges between
            two textured cells are divided by ``1 + texture / texture_scale``. Below 2 turns this off.
        texture_scale: texture energy (mean ΔE per cell step) at which colour edges weigh half.
        min_valid_share: share of a cell's pixels that must have depth for the cell to be used.
        invalid_boundary_weight: edge weight credited to a segment's border with depth-less cells (sensor
            shadows often mark occlusion boundaries).
        score_offset: added to the denominator of the contrast score (weights below it read as noise).
        min_area_frac: masks covering less than this share of the image are dropped.
        max_area_frac: masks covering more than this share of the image are dropped.
        max_hole_frac: enclosed holes up to this share of the image are filled (pixels with depth only).
        dedup_iou: proposals overlapping an already kept (higher-score) one above this IoU are dropped.
        max_masks: at most this many masks per frame (highest score first).
    """

    work_width: int = field(default=160, metadata={"help": "segmentation grid width in cells"})
    focal: float = field(default=0.9, metadata={"help": "focal / width when no intrinsics are given"})
    scales: list[float] = field(
        default_factory=lambda: [0.5, 2.0, 8.0, 32.0, 128.0, 512.0],
        metadata={"help": "Felzenszwalb k per level"},
    )
    min_segment_cells: int = field(
        default=6, metadata={"help": "segments under this many cells are absorbed"}
    )
    color_scale: float = field(default=10.0, metadata={"help": "ΔE giving edge weight 1"})
    depth_scale: float = field(
        default=0.02, metadata={"help": "relative depth discontinuity giving weight 1"}
    )
    normal_scale_deg: float = field(default=30.0, metadata={"help": "normal angle (deg) giving weight 1"})
    planar_reach: int = field(default=3, metadata={"help": "planar = no geometric edge this near, cells"})
    planar_max_weight: float = field(default=1.5, metadata={"help": "geometric weight below which is planar"})
    ridge_reach: int = field(default=2, metadata={"help": "thin lines up to 2x this wide ignored, cells"})
    texture_window: int = field(default=5, metadata={"help": "texture measure window, cells (<2 = off)"})
    texture_scale: float = field(
        default=3.0, metadata={"help": "texture (ΔE per cell) at which colour edges count half"}
    )
    normal_radius: int = field(default=1, metadata={"help": "normal smoothing half-width, cells"})
    min_valid_share: float = field(default=0.5, metadata={"help": "share of a cell's pixels with depth"})
    invalid_boundary_weight: float = field(default=1.0, metadata={"help": "weight of borders to no-depth"})
    score_offset: float = field(default=0.1, metadata={"help": "contrast score denominator offset"})
    min_area_frac: float = field(default=0.001, metadata={"help": "smallest mask, share of the image"})
    max_area_frac: float = field(default=0.95, metadata={"help": "largest mask, share of the image"})
    max_hole_frac: float = field(default=0.002, metadata={"help": "largest filled hole, share of image"})
    dedup_iou: float = field(default=0.9, metadata={"help": "IoU above which proposals collapse"})
    max_masks: int = field(default=200, metadata={"help": "at most this many masks per frame"})

    def __post_init__(self):
        if self.work_width < 8:
            raise ConfigError("WeightlessConfig.work_width must be >= 8")
        if (
            not self.scales
            or any(b <= a for a, b in zip(self.scales, self.scales[1:]))
            or self.scales[0] <= 0
        ):
            raise ConfigError("WeightlessConfig.scales must be positive and strictly increasing")
        if self.ridge_reach < 0 or self.planar_reach < 0:
            raise ConfigError("WeightlessConfig.ridge_reach and planar_reach must be >= 0")
        for name in (
            "color_scale",
            "depth_scale",
            "normal_scale_deg",
            "focal",
            "texture_scale",
            "planar_max_weight",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"WeightlessConfig.{name} must be > 0")
        if not 0 < self.dedup_iou <= 1:
            raise ConfigError("WeightlessConfig.dedup_iou must be in (0, 1]")


class WeightlessMaskGenerator:
    """Automatic masks of one RGB-D frame from colour, depth and normals (no learned weights).

    Implements :class:`tracklift.tracking.base.MaskGenerator`.

    Args:
        cfg: settings.
        intrinsics: camera of the frames (any image size: rescaled to the frame). ``None``: a centred
            camera with ``fx = fy = cfg.focal * width``.
    """

    def __init__(self, cfg: WeightlessConfig | None = None, intrinsics: Intrinsics | None = None):
        self.cfg = cfg or WeightlessConfig()
        self.intrinsics = intrinsics

    def for_camera(self, intrinsics: Intrinsics) -> WeightlessMaskGenerator:
        """This generator for a scan shot with ``intrinsics`` (its normals use that camera); a generator
        given a camera at construction keeps it."""
        if self.intrinsics is not None:
            return self
        return WeightlessMaskGenerator(self.cfg, intrinsics)

    # -- public -------------------------------------------------------------------------------------

    def generate(self, color: np.ndarray, depth: np.ndarray) -> list[Mask2D]:
        """Args: color (H, W, 3) uint8 RGB; depth (H, W) float32 metres (0 = invalid).

        Returns:
            masks (each (H, W) bool, no pixel without depth), possibly overlapping across scales, highest
            ``score`` first.
        """
        color, depth = check_rgbd(color, depth, "WeightlessMaskGenerator.generate input")
        cfg = self.cfg
        h, w = depth.shape
        stride = max(1, int(round(w / cfg.work_width)))
        hs, ws = max(1, h // stride), max(1, w // stride)
        intr = _cell_intrinsics(self._intrinsics(w, h), stride, hs, ws)

        lab_px = rgb_to_lab(color)
        lab_c, z_c, valid_c = _block_means(lab_px, depth, stride, hs, ws, cfg.min_valid_share)
        normals = normals_from_points(backproject_depth(z_c, intr), valid_c, cfg.normal_radius)
        eu, ev, wt = _edge_weights(lab_c, z_c, normals, valid_c, cfg)

        n = hs * ws
        levels = _hierarchy(n, eu, ev, wt, cfg.scales, cfg.min_segment_cells)
        fine_px = _upsample_labels(levels[0], lab_c, z_c, valid_c, lab_px, depth, stride, cfg)
        return self._masks(levels, fine_px, valid_c, eu, ev, wt, depth > 0)

    # -- steps --------------------------------------------------------------------------------------

    def _intrinsics(self, w: int, h: int) -> Intrinsics:
        if self.intrinsics is None:
            return centred_intrinsics(w, h, self.cfg.focal)
        if (self.intrinsics.width, self.intrinsics.height) == (w, h):
            return self.intrinsics
        return self.intrinsics.scaled(w, h)

    def _masks(self, levels, fine_px, valid_c, eu, ev, wt, has_depth) -> list[Mask2D]:
        """Score, deduplicate and rasterise the segments of every level.

        Args:
            levels: per level, (n_cells,) segment ids (nested: level 0 is the finest).
            fine_px: (H, W) level-0 segment per pixel, -1 without depth.
            valid_c: (hs, ws) cells with depth.
            eu, ev, wt: the cell graph's edges and weights.
            has_depth: (H, W) bool.
        """
        cfg = self.cfg
        h, w = fine_px.shape
        n_fine = int(levels[0].max()) + 1
        px = fine_px >= 0
        area_fine = np.bincount(fine_px[px], minlength=n_fine).astype(np.float64)
        cell_lab0 = levels[0]
        # nested hierarchy: every fine segment lies in exactly one segment of each level
        maps = []
        for lv in levels:
            m = np.zeros(n_fine, np.int64)
            m[cell_lab0] = lv
            maps.append(m)

        contrast = [_contrast(lv, valid_c, eu, ev, wt, cfg) for lv in levels]
        sizes = [np.bincount(lv[valid_c.ravel()], minlength=int(lv.max()) + 1) for lv in levels]
        stab = _stability(levels, sizes, valid_c.ravel())

        # candidates: (level, segment) with enough area
        cand_level, cand_seg, cand_area = [], [], []
        lo, hi = cfg.min_area_frac * h * w, cfg.max_area_frac * h * w
        for li, m in enumerate(maps):
            area = np.bincount(m, weights=area_fine, minlength=int(m.max()) + 1)
            segs = np.flatnonzero((area >= lo) & (area <= hi))
            cand_level += [li] * len(segs)
            cand_seg.append(segs)
            cand_area.append(area[segs])
        if not cand_level:
            return []
        cand_level = np.asarray(cand_level)
        cand_seg = np.concatenate(cand_seg)
        cand_area = np.concatenate(cand_area)
        score = np.array([contrast[li][s] for li, s in zip(cand_level, cand_seg)])
        stability = np.array([stab[li][s] for li, s in zip(cand_level, cand_seg)])

        # IoU of candidates through their fine-segment membership (sparse: n_cand × n_fine)
        rows, cols = [], []
        for ci, (li, s) in enumerate(zip(cand_level, cand_seg)):
            members = np.flatnonzero(maps[li] == s)
            rows.append(np.full(len(members), ci))
            cols.append(members)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        memb = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(cand_level), n_fine))
        inter = (memb @ sparse.diags(area_fine) @ memb.T).toarray()
        union = cand_area[:, None] + cand_area[None, :] - inter
        iou = inter / np.maximum(union, 1e-9)

        order = np.lexsort((-stability, -score))
        kept: list[int] = []
        for ci in order:
            if kept and iou[ci, kept].max() > cfg.dedup_iou:
                continue
            kept.append(int(ci))
            if len(kept) >= cfg.max_masks:
                break

        boxes = ndimage.find_objects(fine_px + 1, max_label=n_fine)
        max_hole = cfg.max_hole_frac * h * w
        out = []
        for ci in kept:
            members = cols[rows == ci]
            member_flag = np.zeros(n_fine + 1, bool)
            member_flag[members] = True  # index -1 (no depth) reads the last, always False
            bb = [boxes[m] for m in members if boxes[m] is not None]
            y0, y1 = min(b[0].start for b in bb), max(b[0].stop for b in bb)
            x0, x1 = min(b[1].start for b in bb), max(b[1].stop for b in bb)
            crop = member_flag[fine_px[y0:y1, x0:x1]]
            crop = _fill_small_holes(crop, has_depth[y0:y1, x0:x1], max_hole)
            mask = np.zeros((h, w), bool)
            mask[y0:y1, x0:x1] = crop
            out.append(Mask2D(mask, float(score[ci]), float(stability[ci])))
        out.sort(key=lambda m: -m.score)
        return out


# -- graph construction ------------------------------------------------------------------------------


def _cell_intrinsics(intr: Intrinsics, stride: int, hs: int, ws: int) -> Intrinsics:
    """The camera of the cell grid: the image cropped to ``hs*stride × ws*stride`` (cropping the right
    and bottom keeps fx, cx) and block-averaged by ``stride`` (cell j is centred on pixel
    ``j*stride + (stride-1)/2``)."""
    return Intrinsics(
        intr.fx / stride,
        intr.fy / stride,
        (intr.cx + 0.5) / stride - 0.5,
        (intr.cy + 0.5) / stride - 0.5,
        ws,
        hs,
    )


def _block_means(lab_px, depth, stride, hs, ws, min_valid_share):
    """Cell means of Lab (all pixels) and depth (valid pixels); cells with too little depth are invalid."""
    hh, ww = hs * stride, ws * stride
    lab = lab_px[:hh, :ww].reshape(hs, stride, ws, stride, 3).mean(axis=(1, 3))
    d = depth[:hh, :ww].reshape(hs, stride, ws, stride)
    ok = d > 0
    cnt = ok.sum(axis=(1, 3))
    z = np.where(cnt > 0, d.sum(axis=(1, 3)) / np.maximum(cnt, 1), 0.0).astype(np.float32)
    valid = cnt >= max(1, int(np.ceil(min_valid_share * stride * stride)))
    z[~valid] = 0.0
    return lab.astype(np.float32), z, valid


def _edge_weights(lab, z, normals, valid, cfg: WeightlessConfig):
    """Edges (u, v, weight) of the 8-connected graph between valid cells.

    Depth term: inverse depth is affine in the image on any plane, so an edge's inverse-depth step is
    predicted by the step just before it or just after it; the smaller misprediction, relative to the
    inverse depth, is the discontinuity (near zero on planes and folds' sides, large at occlusions).

    Colour term: on planar surfaces (no depth or normal edge within ``planar_reach`` cells) colour is
    read from :func:`~tracklift.tracking.rgbd.without_thin_lines` (tile grout and grain lines gone),
    and colour steps between two textured cells are discounted by the texture energy
    (:func:`~tracklift.tracking.rgbd.texture_energy`); elsewhere (objects, their parts, their
    surroundings) colour counts as it is.
    """
    h, w = valid.shape
    idx = np.arange(h * w).reshape(h, w)
    iz = np.where(valid, 1.0 / np.maximum(z, 1e-6), 0.0).astype(np.float32)
    cos_scale = np.deg2rad(cfg.normal_scale_deg)
    has_n = np.any(normals != 0, axis=-1)
    geo_terms, geo_max = [], np.zeros((h, w), np.float32)
    for dy, dx in _DIRS:
        e = valid & shifted(valid, dy, dx, False)
        izp, izq = iz[e], shifted(iz, dy, dx, 0.0)[e]
        izb, vb = shifted(iz, -dy, -dx, 0.0)[e], shifted(valid, -dy, -dx, False)[e]
        iza, va = shifted(iz, 2 * dy, 2 * dx, 0.0)[e], shifted(valid, 2 * dy, 2 * dx, False)[e]
        step = izq - izp
        res_b = np.where(vb, np.abs(step - (izp - izb)), np.inf)
        res_a = np.where(va, np.abs(step - (iza - izq)), np.inf)
        res = np.minimum(np.minimum(res_b, res_a), np.abs(step))
        rel = res / (0.5 * (izp + izq))
        npq, nq = normals[e], shifted(normals, dy, dx, 0.0)[e]
        both_n = has_n[e] & shifted(has_n, dy, dx, False)[e]
        ang = np.where(both_n, np.arccos(np.clip(np.einsum("nc,nc->n", npq, nq), -1.0, 1.0)), 0.0)
        geo2 = (rel / cfg.depth_scale) ** 2 + (ang / cos_scale) ** 2
        geo_terms.append((e, geo2))
        # the strongest geometric edge at each cell, from either end
        grid = np.zeros((h, w), np.float32)
        grid[e] = geo2
        np.maximum(geo_max, np.maximum(grid, shifted(grid, -dy, -dx, 0.0)), out=geo_max)

    lab_plane, tex = lab, None
    if cfg.planar_reach > 0 and (cfg.ridge_reach > 0 or cfg.texture_window > 1):
        size = 2 * cfg.planar_reach + 1
        planar = ndimage.maximum_filter(geo_max, size=size, mode="nearest") < cfg.planar_max_weight**2
        if cfg.ridge_reach > 0:
            lab_plane = np.where(planar[..., None], without_thin_lines(lab, 2 * cfg.ridge_reach + 1), lab)
        if cfg.texture_window > 1:
            tex = np.where(planar, texture_energy(lab, cfg.texture_window), 0.0)

    eus, evs, ws = [], [], []
    for (dy, dx), (e, geo2) in zip(_DIRS, geo_terms):
        dlab = np.linalg.norm(lab_plane[e] - shifted(lab_plane, dy, dx, 0.0)[e], axis=-1)
        if tex is not None:
            # both sides textured: the step may be texture; a plain side next to texture is a boundary
            dlab = dlab / (1.0 + np.minimum(tex[e], shifted(tex, dy, dx, 0.0)[e]) / cfg.texture_scale)
        wt = np.sqrt((dlab / cfg.color_scale) ** 2 + geo2)
        eus.append(idx[e])
        evs.append(shifted(idx, dy, dx, -1)[e])
        ws.append(wt.astype(np.float64))
    return np.concatenate(eus), np.concatenate(evs), np.concatenate(ws)


# -- segmentation -------------------------------------------------------------------------------------


def _hierarchy(n, eu, ev, wt, scales, min_size) -> list[np.ndarray]:
    """Nested Felzenszwalb segmentations, one per scale; each (n,) int64 compact labels per cell."""
    if len(eu) == 0:
        return [np.arange(n)] * len(scales)
    # Felzenszwalb's merges only ever use minimum-spanning-tree edges (Kruskal order), so work on the tree
    g = sparse.coo_matrix((wt + 1e-6, (eu, ev)), shape=(n, n)).tocsr()
    tree = csgraph.minimum_spanning_tree(g).tocoo()
    tu, tv, tw = tree.row.astype(np.int64), tree.col.astype(np.int64), tree.data - 1e-6
    lab = np.arange(n)
    size = np.ones(n)
    internal = np.zeros(n)
    levels = []
    for k in scales:
        lab, size, internal, tu, tv, tw = _merge_rounds(lab, size, internal, tu, tv, tw, float(k))
        lab, size, internal, tu, tv, tw = _absorb_small(lab, size, internal, tu, tv, tw, min_size)
        levels.append(lab.copy())
    return levels


def _relabel(parent, lab, size, internal):
    uniq, new = np.unique(parent, return_inverse=True)
    size2 = np.bincount(new, weights=size, minlength=len(uniq))
    int2 = np.zeros(len(uniq))
    np.maximum.at(int2, new, internal)
    return new, new[lab], size2, int2


def _min_edge_per_comp(cu, cv, w, n_comp):
    """For each component, the id of its lightest incident edge (-1 if none). Ties: lower edge id."""
    m = len(cu)
    ends = np.concatenate([cu, cv])
    eid = np.concatenate([np.arange(m), np.arange(m)])
    order = np.lexsort((eid, np.concatenate([w, w]), ends))
    ends_s = ends[order]
    first = np.r_[True, ends_s[1:] != ends_s[:-1]][: len(ends_s)]
    best = np.full(n_comp, -1)
    best[ends_s[first]] = eid[order][first]
    return best


def _merge_rounds(lab, size, internal, tu, tv, tw, k, min_merge_share=0.03):
    """Felzenszwalb merging at scale ``k``: vectorised rounds for the bulk, then the exact sequential tail.

    An edge between components A and B is acceptable when its weight is at most
    ``min(Int(A) + k/|A|, Int(B) + k/|B|)``. Each round every component picks its lightest acceptable
    edge and edges picked by both ends are merged (a matching, so no chain merges past the criterion).
    Rounds merge fewer and fewer pairs on long chains of rising weights, so once a round merges less
    than ``min_merge_share`` of the components the remaining edges are processed one by one in weight
    order (Kruskal, as in the original algorithm) — by then they are few.
    """
    while True:
        tu, tv, cu, cv, tw = _inter_edges(lab, tu, tv, tw)
        if len(tu) == 0:
            return lab, size, internal, tu, tv, tw
        thr = internal + k / size
        ok = tw <= np.minimum(thr[cu], thr[cv])
        if not ok.any():
            return lab, size, internal, tu, tv, tw
        oi = np.flatnonzero(ok)
        best = _min_edge_per_comp(cu[oi], cv[oi], tw[oi], len(size))
        j = np.arange(len(oi))
        sel = oi[(best[cu[oi]] == j) & (best[cv[oi]] == j)]
        if len(sel) < min_merge_share * len(size):
            break
        parent = np.arange(len(size))
        parent[cv[sel]] = cu[sel]
        new_of, lab, size2, int2 = _relabel(parent, lab, size, internal)
        np.maximum.at(int2, new_of[cu[sel]], tw[sel])
        size, internal = size2, int2

    # sequential tail over the (few) remaining inter-component edges
    order = np.argsort(tw, kind="stable")
    parent = list(range(len(size)))
    sz, it = size.tolist(), internal.tolist()
    a_list, b_list, w_list = cu[order].tolist(), cv[order].tolist(), tw[order].tolist()

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, w in zip(a_list, b_list, w_list):
        a, b = find(a), find(b)
        if a != b and w <= min(it[a] + k / sz[a], it[b] + k / sz[b]):
            parent[b] = a
            sz[a] += sz[b]
            it[a] = max(it[a], it[b], w)
    roots = np.array([find(x) for x in range(len(parent))])
    new_of, lab, size, _ = _relabel(roots, lab, size, internal)
    is_root = roots == np.arange(len(roots))
    internal = np.zeros(len(size))
    internal[new_of[is_root]] = np.asarray(it)[is_root]  # a root holds its merged component's Int
    tu, tv, _, _, tw = _inter_edges(lab, tu, tv, tw)
    return lab, size, internal, tu, tv, tw


def _inter_edges(lab, tu, tv, tw):
    """Drop edges inside a component (they never separate components again); return their labels too."""
    cu, cv = lab[tu], lab[tv]
    keep = cu != cv
    return tu[keep], tv[keep], cu[keep], cv[keep], tw[keep]


def _absorb_small(lab, size, internal, tu, tv, tw, min_size):
    """Merge every segment under ``min_size`` cells into the neighbour across its lightest edge."""
    while True:
        tu, tv, cu, cv, tw = _inter_edges(lab, tu, tv, tw)
        small = size < min_size
        if len(tu) == 0 or not small.any():
            break
        best = _min_edge_per_comp(cu, cv, tw, len(size))
        src = np.flatnonzero(small & (best >= 0))
        if len(src) == 0:
            break
        e = best[src]
        g = sparse.coo_matrix((np.ones(len(e)), (cu[e], cv[e])), shape=(len(size), len(size)))
        _, parent = csgraph.connected_components(g, directed=False)
        # internal differences are not raised: absorbing noise says nothing about the segment's texture
        _, lab, size, internal = _relabel(parent, lab, size, internal)
    return lab, size, internal, tu, tv, tw


def _upsample_labels(cell_lab, lab_c, z_c, valid_c, lab_px, depth, stride, cfg) -> np.ndarray:
    """Full-resolution fine labels: each pixel takes the label of the most similar of its 4 nearest cells
    (colour, depth, then distance), -1 where the pixel has no depth."""
    h, w = depth.shape
    hs, ws = valid_c.shape
    cell_lab = cell_lab.reshape(hs, ws)
    if stride == 1:
        out = np.where(valid_c & (depth > 0), cell_lab, -1)
        return out.astype(np.int64)
    cy = (np.arange(h) + 0.5) / stride - 0.5
    cx = (np.arange(w) + 0.5) / stride - 0.5
    y0 = np.clip(np.floor(cy).astype(np.int64), 0, hs - 1)
    x0 = np.clip(np.floor(cx).astype(np.int64), 0, ws - 1)
    y1, x1 = np.minimum(y0 + 1, hs - 1), np.minimum(x0 + 1, ws - 1)
    zpx = np.maximum(depth, 1e-6)
    best_cost = np.full((h, w), np.inf, np.float32)
    best = np.full((h, w), -1, np.int64)
    for yy in (y0, y1):
        for xx in (x0, x1):
            Y, X = yy[:, None], xx[None, :]
            dl = np.linalg.norm(lab_px - lab_c[Y, X], axis=-1) / cfg.color_scale
            dz = np.abs(depth - z_c[Y, X]) / zpx / (4 * cfg.depth_scale)
            dd = ((cy[:, None] - Y) ** 2 + (cx[None, :] - X) ** 2) * 0.25
            cost = np.where(valid_c[Y, X], dl**2 + dz**2 + dd, np.inf).astype(np.float32)
            better = cost < best_cost
            best_cost[better] = cost[better]
            best[better] = cell_lab[Y, X][better]
    best[depth <= 0] = -1
    return best


# -- scoring ------------------------------------------------------------------------------------------


def _contrast(lv, valid_c, eu, ev, wt, cfg) -> np.ndarray:
    """Per segment: mean boundary weight B, mean internal weight I → ``B / (B + I + offset)``."""
    n_seg = int(lv.max()) + 1
    lu, lvv = lv[eu], lv[ev]
    inner = lu == lvv
    isum = np.bincount(lu[inner], weights=wt[inner], minlength=n_seg)
    icnt = np.bincount(lu[inner], minlength=n_seg)
    b = ~inner
    # (astype: numpy's bincount of an empty array with weights is int64)
    bsum = (
        np.bincount(lu[b], weights=wt[b], minlength=n_seg)
        + np.bincount(lvv[b], weights=wt[b], minlength=n_seg)
    ).astype(np.float64)
    bcnt = (np.bincount(lu[b], minlength=n_seg) + np.bincount(lvv[b], minlength=n_seg)).astype(np.float64)
    # borders with depth-less cells inside the image (sensor shadows at occlusions, holes)
    inval = (~valid_c).astype(np.float32)
    nb_inval = ndimage.convolve(inval, np.ones((3, 3), np.float32), mode="constant", cval=0.0).ravel()
    vmask = valid_c.ravel()
    bsum += np.bincount(lv[vmask], weights=nb_inval[vmask] * cfg.invalid_boundary_weight, minlength=n_seg)
    bcnt += np.bincount(lv[vmask], weights=nb_inval[vmask], minlength=n_seg)
    B = bsum / np.maximum(bcnt, 1)
    internal_mean = isum / np.maximum(icnt, 1)
    return B / (B + internal_mean + cfg.score_offset)


def _stability(levels, sizes, valid) -> list[np.ndarray]:
    """Per level and segment: mean best IoU with the neighbouring levels (nesting makes IoU a size ratio)."""
    out = []
    nl = len(levels)
    for li in range(nl):
        lv, sz = levels[li], sizes[li].astype(np.float64)
        acc = np.zeros(len(sz))
        cnt = 0
        for lj in (li - 1, li + 1):
            if not 0 <= lj < nl:
                continue
            cnt += 1
            other, osz = levels[lj], sizes[lj].astype(np.float64)
            if lj > li:  # the coarser segment containing this one
                anc = np.zeros(len(sz), np.int64)
                anc[lv[valid]] = other[valid]
                acc += sz / np.maximum(osz[anc], 1)
            else:  # the largest finer segment inside this one
                best = np.zeros(len(sz))
                np.maximum.at(best, lv[valid], osz[other[valid]])
                acc += best / np.maximum(sz, 1)
        out.append(acc / cnt if cnt else np.ones(len(sz)))
    return out


def _fill_small_holes(mask: np.ndarray, has_depth: np.ndarray, max_hole: float) -> np.ndarray:
    holes = ndimage.binary_fill_holes(mask) & ~mask & has_depth
    if not holes.any():
        return mask
    hl, nh = ndimage.label(holes)
    small = np.bincount(hl.ravel(), minlength=nh + 1) <= max_hole
    small[0] = False
    return mask | small[hl]


# -- granularity selection ----------------------------------------------------------------------------


def select_granularity(
    masks: list[Mask2D],
    policy: str = "score",
    rng: np.random.Generator | None = None,
    min_kept_fraction: float = 0.5,
    jitter: float = 0.0,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """One non-overlapping id map from overlapping proposals (the independent per-frame baseline).

    Masks are visited in priority order; each claims its still unclaimed pixels if they are at least
    ``min_kept_fraction`` of its area (otherwise it is skipped), so every pixel goes to the
    highest-priority mask covering it. Whether a part or its whole wins depends on the frame's scores:
    this is what makes the baseline's granularity change from view to view.

    Args:
        masks: proposals of one frame.
        policy: ``"score"`` (score × stability, highest first), ``"large"`` (largest first), ``"small"``
            (smallest first) or ``"random"`` (a random order from ``rng``).
        rng: random generator for ``"random"`` and ``jitter``.
        min_kept_fraction: share of its own area a mask must still claim to be kept.
        jitter: standard deviation of multiplicative log-normal noise on the scores (``"score"`` only),
            emulating a learned model's score noise.
        shape: (H, W) of the id map, needed only when ``masks`` is empty.

    Returns:
        (H, W) int32 ids 1..n (0 = no mask), numbered in priority order.
    """
    if not masks:
        if shape is None:
            raise ValueError("select_granularity: no masks and no shape given")
        return np.zeros(shape, np.int32)
    rng = rng if rng is not None else np.random.default_rng(0)
    areas = np.array([m.area for m in masks], np.float64)
    if policy == "score":
        key = np.array([m.score * m.stability for m in masks])
        if jitter > 0:
            key = key * np.exp(rng.normal(0.0, jitter, len(masks)))
        order = np.argsort(-key, kind="stable")
    elif policy == "large":
        order = np.argsort(-areas, kind="stable")
    elif policy == "small":
        order = np.argsort(areas, kind="stable")
    elif policy == "random":
        order = rng.permutation(len(masks))
    else:
        raise ValueError(f"select_granularity: unknown policy {policy!r}")
    ids = np.zeros(masks[0].mask.shape, np.int32)
    nxt = 1
    for i in order:
        free = masks[i].mask & (ids == 0)
        nfree = int(free.sum())
        if nfree > 0 and nfree >= min_kept_fraction * areas[i]:
            ids[free] = nxt
            nxt += 1
    return ids
