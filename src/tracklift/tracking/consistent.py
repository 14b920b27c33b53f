"""The granularity-consistent tracker: the paper's core idea.

Automatic mask generators choose a granularity per view: the same chair is one mask in one frame and a
seat plus a back in the next. Lifting such masks frame by frame gives conflicting 3D labels. Here masks
are generated only on keyframes and *tracked* in between, and a fresh keyframe mask is accepted only if
it is an object nobody tracks yet:

  - it matches a tracked object (IoU ≥ ``match_iou``)          → the track keeps its id and its mask;
  - it is a part of one tracked object or a union of several    → rejected (granularity stays as first seen);
  - it lies mostly over untracked pixels (≥ ``new_ratio``)      → a new id, optionally propagated backward;
  - it re-finds an object that left the view (3D voxel overlap) → that object's old id.

A track that stays invisible for ``max_lost_keyframes`` keyframes ends. Tracking runs in segments from
one keyframe to the next, each a fresh tracker window seeded with every live object's mask, so SAM2's
memory stays bounded and objects can be added on any keyframe. The output is one int32 id map per frame
with ids stable across the scan.

Thresholds follow SAM2-based trackers (FACTS.md §3: match at IoU 0.7); the paper's own values are
unpublished, so each is a config field and is measured in benchmarks/bench_pseudo_labels.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tracklift.datasets.scene import Frame, Intrinsics, Scene
from tracklift.errors import ConfigError
from tracklift.geometry.camera import backproject_pixels, in_image, project
from tracklift.geometry.voxels import voxel_keys
from tracklift.tracking.base import Mask2D, MaskGenerator, MaskTracker, for_camera


@dataclass
class ConsistencyConfig:
    """Thresholds of the granularity-consistent tracker (all fractions in [0, 1])."""

    keyframe_interval: int = field(
        default=5,
        metadata={
            "help": "frames between keyframes (fresh masks); 5 = the independent baseline's mask frames, "
            "chosen on training scans (seeds 10-11, style 1010-1011) against 3 and 4"
        },
    )
    frame_step: int = field(default=1, metadata={"help": "use every n-th frame of the scan"})
    min_mask_area: int = field(
        default=64, metadata={"help": "fresh masks smaller than this (pixels) are dropped"}
    )
    min_score: float = field(default=0.0, metadata={"help": "fresh masks scoring below this are dropped"})
    match_iou: float = field(
        default=0.7, metadata={"help": "IoU with a track at which a fresh mask IS that track"}
    )
    part_ratio: float = field(
        default=0.8, metadata={"help": "share of a fresh mask inside one track at which it is a part of it"}
    )
    union_ratio: float = field(
        default=0.7,
        metadata={
            "help": "share of a track inside a fresh mask at which the mask contains it. Chosen on training "
            "scans (layout seeds 10-15, styles 1010-1015, per-vertex votes) against 0.6, 0.75 and 0.8 by the "
            "best tracked AP50 summed over the three priors (0.6 ran on controlled-high only): controlled-high "
            "57.3 vs 57.8 / 54.7 / 51.2, controlled-low 81.9 vs - / 80.7 / 86.5 (it costs this prior 4.6), "
            "weightless 37.4 at 0.7 and 0.8"
        },
    )
    new_ratio: float = field(
        default=0.4,
        metadata={
            "help": "share of a fresh mask over untracked pixels needed to start a new id (on those pixels "
            "only). Chosen on training scans (layout seeds 10-15, styles 1010-1015, per-vertex votes) against "
            "0.25 / 0.35 / 0.45 / 0.5 / 0.6 by the best tracked AP50 summed over the three priors: weightless "
            "39.0 vs 39.8 / 39.6 / 38.6 / 39.2 / 37.4, controlled-high 63.0 vs 56.1 / 61.4 / 62.9 / 56.7 / 57.3, "
            "controlled-low 82.6 vs 83.4 / 82.6 / 82.6 / 82.6 / 81.9"
        },
    )
    new_order: Literal["score_stability", "score", "area"] = field(
        default="score_stability",
        metadata={
            "help": "order in which fresh masks may start new ids: 'score_stability' (score x stability "
            "first, the priority the independent baseline and SAM's automatic mask generator give a "
            "proposal: a mask that holds across the generator's scales beats one that exists at a single "
            "scale), 'score' (confidence alone) or 'area' (wholes first). Chosen on training scans "
            "(layout seeds 10-15, styles 1010-1015, weightless prior, per-vertex votes): tracked AP50 37.4 "
            "with 'score_stability' vs 33.5 with 'score'; 'score' had beaten 'area' 24.8 vs 21.3 (seeds "
            "10-12). Generators without a stability score (1.0) order by score alone"
        },
    )
    backward: bool = field(
        default=True, metadata={"help": "propagate new objects back to the previous keyframe"}
    )
    max_lost_keyframes: int = field(
        default=10, metadata={"help": "keyframes a track may stay unseen before it ends"}
    )
    min_track_area: int = field(
        default=32, metadata={"help": "a tracked mask smaller than this counts as unseen"}
    )
    extend_seen_max: float = field(
        default=0.3,
        metadata={
            "help": "a track grows over a fresh mask's extra pixels only if at most this share was "
            "visible on the previous keyframe (new surface of the same object, not a coarser granularity)"
        },
    )
    part_memory_min: float = field(
        default=0.3,
        metadata={
            "help": "a fresh mask inside a track is a part of it only if this share of its 3D points is "
            "in the track's confirmed memory; otherwise the track leaked over a neighbour"
        },
    )
    union_memory_min: float = field(
        default=0.1,
        metadata={
            "help": "a fresh mask containing several tracks votes to merge only the tracks with at least this "
            "share of their pixels inside it in their confirmed 3D memory (the others leaked onto it). Chosen on "
            "training scans (seeds 10-15, styles 1010-1015) against 0.05, 0.2, 0.3 and no such test: tracked "
            "AP50 per vertex 50.5 vs 49.6 / 49.8 / 53.0 / 49.0 (controlled-high), 86.4 vs 85.5 / 82.4 / 77.1 / "
            "82.8 (controlled-low), the best sum"
        },
    )
    merge_votes: bool = field(
        default=True,
        metadata={
            "help": "merge tracks that most single-granularity keyframes propose as one mask (granularity "
            "chosen by the views' majority rather than the first view; views with nested multi-scale masks "
            "do not vote)"
        },
    )
    merge_min_votes: int = field(
        default=1, metadata={"help": "keyframes that must show a track set as one mask"}
    )
    drift_share: float = field(
        default=0.15,
        metadata={
            "help": "a propagated mask that spread over this share of surface seen on the previous keyframe "
            "as something else (another track or nothing) drifted: those pixels are cut from it"
        },
    )
    learn_between_keyframes: bool = field(
        default=True,
        metadata={
            "help": "scan-wide trackers: predictions between keyframes add the surface they grew over to the "
            "object's 3D memory as learned (growth never starts from learned surface, so an unconfirmed "
            "track extends at most the growth radius beyond what fresh masks confirmed)"
        },
    )
    learned_surface_grows: bool = field(
        default=True,
        metadata={
            "help": "scan-wide trackers: growth may start from surface learned between keyframes (more of "
            "an object's new surface is kept; an unconfirmed track can then creep along surface no frame "
            "showed before, never over surface seen as something else). Off bounds an unconfirmed track to "
            "the growth radius around what fresh masks confirmed; on was better on training scans "
            "(AP50 13.3 vs 4.9 weightless, 29.8 vs 25.3 controlled-high)"
        },
    )
    reid_voxel: float = field(
        default=0.05, metadata={"help": "voxel size (m) of the 3D memory used to re-find objects"}
    )
    reid_overlap: float = field(
        default=0.5, metadata={"help": "share of a fresh mask's voxels in a lost track's memory to revive it"}
    )

    def __post_init__(self):
        if self.new_order not in ("score_stability", "score", "area"):
            raise ConfigError(
                f"consistency.new_order must be 'score_stability', 'score' or 'area', got {self.new_order!r}"
            )


@dataclass
class TrackedScene:
    """Per-frame id maps with ids stable across the scan.

    Attributes:
        scene_id: the scene.
        positions: frame positions (indices into ``Scene.frame_ids``) that have an id map.
        id_maps: {position: (H, W) int32}, 0 = no object.
        stats: counts and timings (keyframes, fresh masks, matched, rejected, new, revived, ended, seconds).
    """

    scene_id: str
    positions: list[int]
    id_maps: dict[int, np.ndarray]
    stats: dict = field(default_factory=dict)


@dataclass
class _Track:
    id: int
    born: int
    last_seen: int
    lost: int = 0
    voxels: set = field(default_factory=set)


def generate_masks(generator: MaskGenerator, frame: Frame) -> list[Mask2D]:
    """Fresh masks for a frame; generators that need more than colour + depth (the controlled prior used in
    experiments) implement ``generate_frame(frame)``."""
    if hasattr(generator, "generate_frame"):
        return generator.generate_frame(frame)
    return generator.generate(frame.color, frame.depth)


class _KeyframePixels:
    """A keyframe's pixels with depth, lifted to world points once.

    The keyframe's decisions ask the same questions of hundreds of masks: which 3D-memory voxels a mask
    covers, how much of it the previous keyframe saw, what the previous keyframe saw there. Each is an
    index into arrays computed once per keyframe (the points, their voxel keys, their pixels on the
    previous keyframe) instead of a back-projection per mask. A mask's sample of points is the one
    :func:`tracklift.geometry.camera.depth_pixels` takes (row-major, evenly subsampled).
    """

    def __init__(self, frame: Frame, intr: Intrinsics, voxel: float):
        self.intr, self.voxel = intr, voxel
        self.valid = frame.depth > 0
        self.rows, self.cols = np.nonzero(self.valid)
        z = frame.depth[self.rows, self.cols].astype(np.float64)
        self.world = backproject_pixels(self.rows, self.cols, z, intr, frame.pose)
        self._valid_flat = self.valid.ravel()
        self._rank = np.cumsum(self._valid_flat) - 1  # flat pixel → its index among the pixels with depth
        self._keys: np.ndarray | None = None
        self._on_prev: tuple[Frame, np.ndarray, np.ndarray, np.ndarray] | None = None

    def index(self, mask: np.ndarray, max_points: int | None = None) -> np.ndarray:
        """Indices into this keyframe's pixels with depth of those in ``mask`` (an (H, W) bool image, or
        the ascending flat indices of its pixels), at most ``max_points`` spread evenly over the row-major
        order."""
        if mask.dtype == np.bool_:
            idx = np.flatnonzero(mask[self.valid])
        else:  # flat pixel indices: the cost of the mask's area, not of the image
            idx = self._rank[mask[self._valid_flat[mask]]]
        if max_points is not None and len(idx) > max_points:
            idx = idx[np.linspace(0, len(idx) - 1, max_points).astype(np.int64)]
        return idx

    def voxel_keys(self, mask: np.ndarray, max_points: int = 4000) -> set:
        """World-space voxel keys (as Python ints) of a mask's pixels with depth (subsampled); ``mask`` as
        in :meth:`index`."""
        if self._keys is None:
            self._keys = voxel_keys(self.world, self.voxel)
        return set(np.unique(self._keys[self.index(mask, max_points)]).tolist())

    def seen_on(self, prev: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`_seen_on` of every pixel with depth on ``prev`` (5 cm + 2 %), computed once."""
        if self._on_prev is None or self._on_prev[0] is not prev:
            self._on_prev = (prev, *_seen_on(self.world, prev, self.intr, 0.05, 0.02))
        return self._on_prev[1:]

    def visible_share(self, pixels: np.ndarray, prev: Frame, max_points: int = 2000) -> float:
        """Share of ``pixels`` (bool (H, W) on this keyframe, at most ``max_points`` of them) whose 3D points
        were visible on ``prev``: inside its image, in front of its camera, agreeing with its depth within
        5 cm + 2 %. Pixels without depth do not count; with none left the share is 1 (nothing measurable
        may not grow a track)."""
        idx = self.index(pixels, max_points)
        if len(idx) == 0:
            return 1.0  # nothing measurable: do not let it grow a track
        return float(self.seen_on(prev)[0][idx].mean())

    def seen_as(self, prev: Frame, prev_map: np.ndarray) -> np.ndarray:
        """(P,) int64: the id ``prev_map`` gave each pixel's point on ``prev`` (0: no track), -1 where
        ``prev`` did not see it."""
        ok, u, v = self.seen_on(prev)
        out = np.full(len(ok), -1, np.int64)
        out[ok] = prev_map[v[ok], u[ok]]
        return out


def _seen_on(
    world: np.ndarray, prev: Frame, intr: Intrinsics, abs_tol: float, rel_tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which world points ``prev`` saw: in its image, in front of the camera, depth agreeing within
    ``abs_tol + rel_tol * z`` metres. Returns ``(ok, u, v)``: (N,) bool and their pixel columns and rows."""
    u, v, zp = project(world, intr, prev.pose)
    ok = (zp > 1e-3) & in_image(u, v, intr)
    d = np.zeros(len(world))
    d[ok] = prev.depth[v[ok], u[ok]]
    ok &= (d > 0) & (np.abs(d - zp) < abs_tol + rel_tol * zp)
    return ok, u, v


class _LazyFrames(Sequence):
    """A read-only sequence of ``n`` frames fetched by ``get(i)`` when first used."""

    def __init__(self, get: Callable[[int], Frame], n: int):
        self._get, self._n = get, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._get(i % self._n)


def single_granularity(masks: list[Mask2D], tolerance: float = 0.02) -> bool:
    """True when a frame's masks barely overlap (at most ``tolerance`` of their summed area)."""
    if len(masks) < 2:
        return True
    total = sum(m.area for m in masks)
    union = np.any(np.stack([m.mask for m in masks]), axis=0).sum()
    return total - union <= tolerance * max(total, 1)


class GranularityConsistentTracker:
    """Runs mask generation on keyframes and tracking in between; see the module docstring.

    Args:
        generator: automatic mask generator (fresh masks on keyframes).
        tracker: mask tracker (propagation between keyframes).
        cfg: thresholds.
    """

    def __init__(self, generator: MaskGenerator, tracker: MaskTracker, cfg: ConsistencyConfig | None = None):
        self.generator = generator
        self.tracker = tracker
        self.cfg = cfg or ConsistencyConfig()

    # -- decisions on one keyframe -------------------------------------------------------------------
    def classify(
        self,
        fresh: list[Mask2D],
        current: dict[int, np.ndarray],
        seen_before: Callable[[np.ndarray], float] | None = None,
        in_memory: Callable[[int, np.ndarray], float] | None = None,
        record_unions: bool = True,
    ) -> tuple[list[np.ndarray], dict[int, np.ndarray], dict]:
        """Decide what each fresh keyframe mask is.

        Args:
            fresh: keyframe masks (H, W) bool with scores.
            current: {track id: (H, W) bool} tracked masks on this keyframe.
            seen_before: optional ``f(pixels) -> share`` of a pixel set that was already visible on the
                previous keyframe. A fresh mask that contains exactly one track and extends it over pixels
                that were NOT visible before is the same object showing more of itself: the track grows.
                Over pixels that were visible before, the track's granularity was a choice: it stays.
            in_memory: optional ``f(track id, pixels) -> share`` of a pixel set (ascending flat pixel
                indices) whose 3D points lie in the track's confirmed 3D memory (its keyframe masks). A
                fresh mask inside a track but outside its memory is a neighbour the propagated mask grew
                over: it becomes its own object. A fresh mask containing several tracks records as a union
                only those with ``union_memory_min`` of their pixels in it inside their memory (the others
                leaked onto it).
            record_unions: fill ``counts["unions"]`` (the granularity votes; views whose votes do not count
                skip the memory look-ups they need).

        Returns:
            new_masks: masks of new objects (non-overlapping with tracks and each other), in creation order.
            updates: {track id: refreshed mask} for matched (replaced) and extended (grown) tracks.
            counts: decisions {"matched", "extended", "part", "union", "overlap", "new"}; also
                ``counts["unions"]``: the sets of ≥ 2 track ids proposed as one mask, and
                ``counts["matched_ids"]``: the tracks a fresh mask matched.
        """
        cfg = self.cfg
        counts = {"matched": 0, "extended": 0, "part": 0, "reclaimed": 0, "union": 0, "overlap": 0, "new": 0}
        masks = [m for m in fresh if m.area >= cfg.min_mask_area and m.score >= cfg.min_score]
        if cfg.new_order == "area":
            masks.sort(key=lambda m: -m.area)
        elif cfg.new_order == "score_stability":
            masks.sort(key=lambda m: -m.score * m.stability)
        else:
            masks.sort(key=lambda m: -m.score)
        ids = list(current)
        stack = np.stack([current[i] for i in ids]) if ids else None
        covered = stack.any(0) if ids else None
        # tracked masks are disjoint in practice: then one id map and a bincount over a fresh mask's
        # pixels give its intersections with every track at the cost of its own area
        idmap = None
        if ids:
            flat = stack.reshape(len(ids), -1)
            areas = flat.sum(1)
            covered_flat = covered.ravel()
            if int(areas.sum()) == int(covered_flat.sum()):
                idmap = np.zeros(covered.size, np.int64)
                for k in range(len(ids)):
                    idmap[flat[k]] = k + 1
        new_masks: list[np.ndarray] = []
        taken = np.zeros(masks[0].mask.size if masks else 0, bool)  # the union of new_masks (flat)
        updates: dict[int, np.ndarray] = {}
        unions: set[tuple[int, ...]] = set()
        matched_ids: set[int] = set()

        def add_new(pix: np.ndarray, shape: tuple[int, ...]) -> None:
            new = np.zeros(shape, bool)
            new.ravel()[pix] = True
            new_masks.append(new)
            taken[pix] = True

        for m in masks:
            mask, area = m.mask, float(m.area)
            pix = np.flatnonzero(mask.ravel())  # every question below costs the mask's area
            if ids:
                if idmap is not None:
                    inter = np.bincount(idmap[pix], minlength=len(ids) + 1)[1:]
                else:
                    inter = flat[:, pix].sum(1)
                iou = inter / np.maximum(areas + area - inter, 1)
                best = int(np.argmax(iou))
                if iou[best] >= cfg.match_iou:
                    counts["matched"] += 1
                    matched_ids.add(ids[best])
                    if ids[best] not in updates:  # the fresh mask is sharper than the propagated one
                        updates[ids[best]] = mask & ~(covered & ~stack[best])
                    continue
                host = int(np.argmax(inter / area))
                if inter[host] / area >= cfg.part_ratio:
                    hid = ids[host]
                    confirmed = hid in updates and updates[hid].ravel()[pix].sum() / area >= cfg.part_ratio
                    if confirmed or in_memory is None or in_memory(hid, pix) >= cfg.part_memory_min:
                        counts["part"] += 1
                        continue
                    # a leak: the neighbour takes its pixels back and starts its own track
                    counts["reclaimed"] += 1
                    base = updates.get(hid, current[hid])
                    updates[hid] = base & ~mask
                    add_new(pix[~taken[pix]], mask.shape)
                    counts["new"] += 1
                    continue
                contained = (inter / np.maximum(areas, 1)) >= cfg.union_ratio
                touched = inter / np.maximum(areas, 1) > 0.05
                if contained.sum() == 1 and touched.sum() == 1 and seen_before is not None:
                    t = int(np.flatnonzero(contained)[0])
                    rest_pix = pix[~covered_flat[pix]]
                    if len(rest_pix) >= cfg.min_mask_area:
                        rest = np.zeros(mask.shape, bool)
                        rest.ravel()[rest_pix] = True
                        if seen_before(rest) < cfg.extend_seen_max:
                            counts["extended"] += 1
                            if ids[t] not in updates:
                                updates[ids[t]] = stack[t] | rest
                            continue
                if contained.sum() >= 1 and inter[contained].sum() / area >= 0.5:
                    counts["union"] += 1
                    members = np.flatnonzero(contained) if record_unions else []
                    if len(members) >= 2 and in_memory is not None:
                        # a track whose mask here lies outside its confirmed memory leaked onto this
                        # object between keyframes: containing it says nothing about granularity
                        members = [
                            i for i in members if in_memory(ids[i], pix[flat[i, pix]]) >= cfg.union_memory_min
                        ]
                    if len(members) >= 2:
                        unions.add(tuple(sorted(ids[i] for i in members)))
                    continue
            free = pix if covered is None else pix[~covered_flat[pix]]
            free = free[~taken[free]]
            if len(free) / area < cfg.new_ratio or len(free) < cfg.min_mask_area:
                counts["overlap"] += 1
                continue
            counts["new"] += 1
            add_new(free, mask.shape)
        return new_masks, updates, {**counts, "unions": unions, "matched_ids": matched_ids}

    # -- the whole scan ------------------------------------------------------------------------------
    def run(self, scene: Scene, log=None, on_keyframe=None) -> TrackedScene:
        """Track objects through ``scene``; returns per-frame id maps (positions into ``scene.frame_ids``).

        Args:
            scene: the scan.
            log: optional ``log(str)`` for progress lines.
            on_keyframe: optional ``on_keyframe(position, fresh_masks)`` called with each keyframe's
                fresh masks (labeling turns them into the single-view maps of curriculum stage 1).
        """
        cfg = self.cfg
        t0 = time.perf_counter()
        positions = list(range(0, len(scene), max(1, cfg.frame_step)))
        if not positions:
            return TrackedScene(scene.scene_id, [], {}, {"frames": 0, "keyframes": 0, "seconds": 0.0})
        # keyframes every keyframe_interval kept frames; the frames after the last one are tracked from it
        # (a fresh keyframe at the very end would cost a mask generation for at most interval - 1 frames)
        key_idx = list(range(0, len(positions), max(1, cfg.keyframe_interval)))
        last = len(positions) - 1
        frames: dict[int, Frame] = {}

        def frame(i: int) -> Frame:  # i indexes `positions`; cache only the current segment
            if i not in frames:
                frames[i] = scene.frame(positions[i])
            return frames[i]

        intr = scene.intrinsics
        generator = for_camera(self.generator, intr)  # e.g. the weightless generator's normals
        id_maps: dict[int, np.ndarray] = {}
        tracks: dict[int, _Track] = {}
        current: dict[int, np.ndarray] = {}  # masks of visible tracks on the current keyframe
        next_id = 1
        stats = {
            "keyframes": 0,
            "fresh": 0,
            "matched": 0,
            "part": 0,
            "union": 0,
            "overlap": 0,
            "new": 0,
            "revived": 0,
            "ended": 0,
            "drift_cut": 0,
            "generate_s": 0.0,
            "track_s": 0.0,
        }
        prev_key = None
        union_votes: dict[tuple[int, ...], list[int]] = {}  # track set → [views as one mask, views apart]
        # a tracker whose state may span the scan (the geometric one) keeps one 3D memory for all of it
        scan = None
        if getattr(self.tracker, "scan_wide", False):
            # the backward pass revisits a keyframe segment: both keyframes and the frames between
            scan = self.tracker.start(
                _LazyFrames(frame, len(positions)), intr, revisit=max(1, cfg.keyframe_interval) + 1
            )
        try:
            for n, ki in enumerate(key_idx):
                kf = frame(ki)
                tg = time.perf_counter()
                fresh = generate_masks(generator, kf)
                stats["generate_s"] += time.perf_counter() - tg
                if on_keyframe is not None:
                    on_keyframe(positions[ki], fresh)
                stats["keyframes"] += 1
                stats["fresh"] += len(fresh)
                px = _KeyframePixels(kf, intr, cfg.reid_voxel)
                seen_before = None
                if prev_key is not None:
                    prev = frame(prev_key)
                    seen_before = lambda m, px=px, prev=prev: px.visible_share(m, prev)  # noqa: E731

                def in_memory(tid: int, pix: np.ndarray, px=px) -> float:
                    keys = px.voxel_keys(pix, max_points=1500)
                    return len(keys & tracks[tid].voxels) / len(keys) if keys else 1.0

                # Only a view that offers one granularity (non-overlapping masks, as a single-choice
                # segmenter gives) states "these are one object"; a nested multi-scale proposal set (SAM,
                # weightless) offers every granularity at once and says nothing about the choice.
                votes = single_granularity(fresh)
                new_masks, updates, counts = self.classify(fresh, current, seen_before, in_memory, votes)
                for tid, m in updates.items():  # confirmed on this keyframe: the track's memory grows
                    tracks[tid].voxels |= px.voxel_keys(m, max_points=1500)
                unions, matched_ids = counts.pop("unions"), counts.pop("matched_ids")
                if votes:
                    self._vote_granularity(unions, matched_ids, current, union_votes)
                for k, v in counts.items():
                    stats[k] = stats.get(k, 0) + v
                current.update(updates)
                cuts: dict[int, np.ndarray] = {}
                if scan is not None and prev_key is not None:
                    cuts = self._cut_drift(
                        current, updates, px, frame(prev_key), id_maps[positions[prev_key]]
                    )
                    current.update(cuts)
                    stats["drift_cut"] += len(cuts)
                born: dict[int, np.ndarray] = {}
                for m in new_masks:
                    keys = px.voxel_keys(m)
                    revived = self._reidentify(keys, tracks, current)
                    if revived is not None:
                        tid = revived
                        stats["revived"] += 1
                        stats["new"] -= 1
                    else:
                        tid = next_id
                        next_id += 1
                        tracks[tid] = _Track(tid, born=ki, last_seen=ki)
                    tracks[tid].voxels |= keys
                    tracks[tid].lost = 0
                    tracks[tid].last_seen = ki
                    current[tid] = m
                    born[tid] = m
                # the keyframe's own map: tracked masks plus the new ones
                id_maps[positions[ki]] = self._paint(current, kf.depth.shape)
                tt = time.perf_counter()
                if scan is not None:  # what this keyframe's fresh masks confirmed becomes the 3D memory
                    self.tracker.add_masks(scan, ki, {**updates, **born})
                if born and cfg.backward and prev_key is not None:
                    if scan is not None:
                        self._backward_scan(scan, prev_key, ki, born, positions, id_maps)
                    else:
                        self._backward(prev_key, ki, born, frame, positions, id_maps, intr)
                kj = key_idx[n + 1] if n + 1 < len(key_idx) else last
                if kj > ki:
                    if scan is not None:
                        current = self._forward_scan(scan, ki, kj, positions, id_maps, tracks)
                    else:
                        current = self._forward(ki, kj, current, frame, positions, id_maps, intr, tracks)
                stats["track_s"] += time.perf_counter() - tt
                # bookkeeping of lost tracks
                for tid, tr in list(tracks.items()):
                    if tid in current:
                        tr.lost = 0
                    elif tr.lost >= 0:
                        tr.lost += 1
                        if tr.lost > cfg.max_lost_keyframes:
                            tr.lost = -1  # ended
                            stats["ended"] += 1
                if scan is not None and prev_key is not None:
                    self.tracker.forget_before(scan, prev_key)
                prev_key = ki
                for i in [i for i in frames if i < ki]:
                    del frames[i]
                if log:
                    log(
                        f"keyframe {n + 1}/{len(key_idx)}: {len(fresh)} fresh, {len(born)} new, {len(current)} tracked"
                    )
        finally:
            if scan is not None:
                self.tracker.close(scan)
        for p in positions:
            if p not in id_maps:
                id_maps[p] = np.zeros((intr.height, intr.width), np.int32)
        merged = self._merge_by_votes(union_votes, id_maps, next_id)
        stats["merged"] = merged
        stats.update(frames=len(positions), tracks=len(tracks), seconds=time.perf_counter() - t0)
        return TrackedScene(scene.scene_id, positions, id_maps, stats)

    def _vote_granularity(self, unions, matched_ids, current, votes) -> None:
        """Count, per set of tracks once proposed as one mask, the keyframes that see them as one
        object (proposed together, not matched apart) and as separate objects (matched apart, not
        proposed together). Keyframes that propose both say nothing."""
        for key in unions:
            votes.setdefault(key, [0, 0])
        for key, v in votes.items():
            if not all(t in current for t in key):
                continue
            together, apart = key in unions, all(t in matched_ids for t in key)
            if together and not apart:
                v[0] += 1
            elif apart and not together:
                v[1] += 1

    def _merge_by_votes(self, votes, id_maps, next_id) -> int:
        """Merge track sets that most views show as one object (the scan-level granularity choice);
        relabel every id map. Returns the number of tracks merged away."""
        cfg = self.cfg
        if not cfg.merge_votes:
            return 0
        parent = np.arange(next_id + 1)

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        merged = 0
        for key, (together, apart) in sorted(votes.items(), key=lambda kv: -kv[1][0]):
            if together >= cfg.merge_min_votes and together >= apart:
                roots = sorted({find(t) for t in key})
                for r in roots[1:]:
                    parent[r] = roots[0]
                    merged += 1
        if merged:
            lut = np.array([find(a) for a in range(next_id + 1)], np.int32)
            for p, m in id_maps.items():
                id_maps[p] = lut[m]
        return merged

    def _reidentify(self, keys: set, tracks: dict[int, _Track], current: dict[int, np.ndarray]) -> int | None:
        """Id of a live but unseen track whose 3D memory holds most of ``keys``, or None."""
        if not keys:
            return None
        best, best_share = None, self.cfg.reid_overlap
        for tid, tr in tracks.items():
            if tid in current or tr.lost < 0 or not tr.voxels:
                continue
            share = len(keys & tr.voxels) / len(keys)
            if share >= best_share:
                best, best_share = tid, share
        return best

    @staticmethod
    def _paint(masks: dict[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
        """Id map from masks; where masks overlap, the older track (smaller id) keeps the pixel."""
        out = np.zeros(shape, np.int32)
        for tid in sorted(masks, reverse=True):
            out[masks[tid]] = tid
        return out

    def _forward(self, ki, kj, current, frame, positions, id_maps, intr, tracks) -> dict[int, np.ndarray]:
        """Propagate ``current`` from keyframe ``ki`` to ``kj`` (inclusive); returns the masks on ``kj``."""
        if not current:
            for i in range(ki + 1, kj + 1):
                id_maps[positions[i]] = np.zeros((intr.height, intr.width), np.int32)
            return {}
        window = [frame(i) for i in range(ki, kj + 1)]
        state = self.tracker.start(window, intr)
        try:
            self.tracker.add_masks(state, 0, current)
            last: dict[int, np.ndarray] = {}
            for pos, masks in self.tracker.propagate(state, start=0):
                if pos == 0:
                    continue
                visible = {t: m for t, m in masks.items() if m.sum() >= self.cfg.min_track_area}
                id_maps[positions[ki + pos]] = self._paint(visible, window[pos].depth.shape)
                last = visible
        finally:
            self.tracker.close(state)
        for tid in last:  # memory grows only from keyframe-confirmed masks (see classify)
            tracks[tid].last_seen = kj
        return last

    def _drop_small(self, ids: np.ndarray) -> np.ndarray:
        """An id map without the ids covering fewer than ``min_track_area`` pixels (unseen there)."""
        counts = np.bincount(ids.ravel())
        small = counts < self.cfg.min_track_area
        small[0] = False
        if small.any():
            ids = np.where(small[ids], 0, ids).astype(np.int32)
        return ids

    def _forward_scan(self, scan, ki, kj, positions, id_maps, tracks) -> dict[int, np.ndarray]:
        """Scan-wide tracker: predict every known object on the frames after keyframe ``ki`` up to ``kj``
        (inclusive); returns the masks on ``kj``."""
        ids = None
        for i in range(ki + 1, kj + 1):
            ids = self.tracker.predict_ids(
                scan,
                i,
                learn=self.cfg.learn_between_keyframes,
                grow_from_learned=self.cfg.learned_surface_grows,
            )
            ids = self._drop_small(ids)
            id_maps[positions[i]] = ids
        last = {int(t): ids == t for t in np.unique(ids) if t} if ids is not None else {}
        for tid in last:
            if tid in tracks:
                tracks[tid].last_seen = kj
        return last

    def _backward_scan(self, scan, ki_prev, ki, born, positions, id_maps) -> None:
        """Scan-wide tracker: predict the objects born on ``ki`` back to ``ki_prev``, filling only
        unassigned pixels."""
        for i in range(ki - 1, ki_prev - 1, -1):
            target = id_maps[positions[i]]
            ids = self.tracker.predict_ids(
                scan,
                i,
                only=list(born),
                learn=self.cfg.learn_between_keyframes,
                grow_from_learned=self.cfg.learned_surface_grows,
                free=target == 0,
            )
            ids = self._drop_small(ids)
            fill = (target == 0) & (ids > 0)
            target[fill] = ids[fill]

    def _cut_drift(
        self, current, updates, px: _KeyframePixels, prev: Frame, prev_map: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Drift: a propagated mask (one no fresh mask confirmed on this keyframe) that covers surface the
        previous keyframe saw as something else (another track, or no track) spread over a neighbour. A
        track may gain surface nobody saw before (more of itself coming into view), not surface already
        seen apart from it. Returns ``{track id: mask without those pixels}`` for the tracks whose share
        of such pixels reaches ``drift_share``."""
        propagated = [tid for tid in current if tid not in updates]
        if not propagated:
            return {}
        # the propagated masks come from one id map, so they are disjoint: one map of them and one
        # projection of the keyframe give every track's count of pixels seen as something else
        k_of = np.zeros(current[propagated[0]].shape, np.int64)
        for k, tid in enumerate(propagated, start=1):
            k_of[current[tid]] = k
        seen_as = px.seen_as(prev, prev_map)
        k_px = k_of[px.rows, px.cols]
        tid_of = np.array([0, *propagated], np.int64)
        elsewhere = (k_px > 0) & (seen_as >= 0) & (seen_as != tid_of[k_px])
        n_other = np.bincount(k_px[elsewhere], minlength=len(propagated) + 1)
        areas = np.bincount(k_of.ravel(), minlength=len(propagated) + 1)
        drifted = (n_other >= self.cfg.drift_share * np.maximum(areas, 1)) & (
            n_other >= self.cfg.min_mask_area
        )
        cuts = {}
        for k in np.flatnonzero(drifted[1:]) + 1:  # 0: pixels of no propagated track
            other = np.flatnonzero(elsewhere & (k_px == k))
            cut = current[propagated[k - 1]].copy()
            cut[px.rows[other], px.cols[other]] = False
            cuts[propagated[k - 1]] = cut
        return cuts

    def _backward(self, ki_prev, ki, born, frame, positions, id_maps, intr) -> None:
        """Propagate newly born objects back to the previous keyframe, filling only unassigned pixels."""
        window = [frame(i) for i in range(ki_prev, ki + 1)]
        state = self.tracker.start(window, intr)
        try:
            self.tracker.add_masks(state, len(window) - 1, born)
            for pos, masks in self.tracker.propagate(state, start=len(window) - 1, reverse=True):
                if pos == len(window) - 1:
                    continue
                target = id_maps[positions[ki_prev + pos]]
                for tid in sorted(masks):
                    m = masks[tid]
                    if m.sum() >= self.cfg.min_track_area:
                        target[m & (target == 0)] = tid
        finally:
            self.tracker.close(state)
