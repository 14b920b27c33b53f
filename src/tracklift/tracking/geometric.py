"""A mask tracker from geometry alone: objects are voxels of a 3D memory, looked up from each frame's depth.

Every object given as a 2D mask writes the voxels its pixels' 3D points fall in into one shared memory
(``voxel`` metres per cell; each voxel keeps one owner, its mean Lab colour and its mean normal). On any
frame of the window each pixel with depth is looked up in that memory at its own 3D point: a pixel whose
point lies in an object's voxel, with a similar colour and normal, is that object's. Occlusion needs no
test (a pixel only sees the front surface), and all objects are predicted at once: one lookup of the
frame's points, one growth pass, one clean-up pass, whatever the number of objects.

From those pixels the masks grow for at most ``fill_radius`` pixels over neighbours of the same surface
(depth, colour and normal continuity) to cover surface first seen on this frame, but never onto a pixel
whose point lies in a voxel seen before: the memory also records every voxel any frame has shown, so
surface already seen as another object's, or as nobody's, is a known neighbour and stays out. Small islands are dropped, cracks closed, and an object
with fewer than ``min_visible_pixels`` pixels is absent on that frame but kept: it re-enters when it is
back in view.

Masks given with :meth:`GeometricTracker.add_masks` are the truth on their frame: their voxels become
the object's, taken from whichever object held them, and the object's voxels seen there outside the mask
are released. Predictions only add voxels nobody holds (``accumulate``), and growth never enters a voxel
another object holds, so a track cannot take over a known neighbour; the 3D memory does not depend on time, so every object known to the state is
predicted on every frame, in either direction, wherever it was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from tracklift.datasets.scene import Frame, Intrinsics
from tracklift.errors import ConfigError, DataError
from tracklift.geometry.camera import backproject_depth
from tracklift.geometry.compiled import jit, prange
from tracklift.geometry.normals import normals_from_points
from tracklift.geometry.voxels import KEY_AXIS_BITS
from tracklift.tracking.label_kernels import close_gaps, drop_islands, grow_labels, upsample_labels
from tracklift.tracking.rgbd import rgb_to_lab
from tracklift.tracking.voxel_memory import VoxelMemory

__all__ = ["GeometricConfig", "GeometricTracker", "GeometricTrackState"]


@dataclass
class GeometricConfig:
    """Settings of :class:`GeometricTracker`.

    Args:
        voxel: cell size of the 3D memory, metres. A pixel belongs to an object when its 3D point falls in
            one of the object's cells (or in the cell half a cell away along its normal: depth noise
            moves points across cell faces), so this is also the membership tolerance.
        color_tol: largest ΔE76 between a pixel and its voxel's mean colour (≤ 0: colour not checked).
        normal_tol_deg: largest angle between a pixel's normal and its voxel's mean normal (≥ 180: not
            checked); keeps masks from creeping onto the surface an object stands on.
        fill_radius: growth radius in pixels: how far a mask may extend over surface the memory does not
            hold yet (surface first seen on this frame).
        grow_depth_rel: growth joins neighbouring pixels whose depths differ by at most this share of
            their depth,
        grow_color: … whose colours differ by at most this ΔE76,
        grow_normal_deg: … and whose normals differ by at most this angle (degrees).
        close_radius: rounds of gap closing (each fills cracks about one pixel wider per side).
        min_visible_pixels: fewer mask pixels than this on a frame → the object is absent there.
        min_island_pixels: connected pieces of a mask smaller than this are dropped.
        accumulate: write the grown pixels of each prediction into the memory (only voxels nobody
            holds), so surface first seen later (the back of a chair, more of a wall) is tracked on the
            following frames. A track that grew over an unknown neighbour then keeps it: the caller cuts
            such drift when a fresh mask says otherwise (see :mod:`tracklift.tracking.consistent`).
        normal_radius: smoothing half-width of the per-pixel normals, pixels.
        stride: track on every ``stride``-th pixel row and column (a ``stride``² times smaller image, with
            the intrinsics scaled to match); predictions are brought back to full size along the full
            image's depth and colour edges (:func:`tracklift.tracking.label_kernels.upsample_labels`) and
            given masks always win at full size. Radii and pixel counts above stay in full-size pixels.
            0 (auto): ``max(1, round(width / work_width))``, so 320- and 640-wide scans track alike.
        work_width: the working width that ``stride = 0`` aims at, pixels.
        cache_frames: frames whose derived arrays (points, normals, Lab, voxel keys) stay in memory, at
            least (a caller that revisits frames asks for more with ``start(..., revisit=n)``).
    """

    voxel: float = field(default=0.02, metadata={"help": "3D memory cell, metres (membership tolerance)"})
    color_tol: float = field(default=25.0, metadata={"help": "largest colour difference (ΔE), <=0 off"})
    normal_tol_deg: float = field(default=50.0, metadata={"help": "largest normal angle, degrees"})
    fill_radius: int = field(default=8, metadata={"help": "growth radius over unknown surface, pixels"})
    grow_depth_rel: float = field(default=0.03, metadata={"help": "growth: largest relative depth step"})
    grow_color: float = field(default=10.0, metadata={"help": "growth: largest ΔE between neighbours"})
    grow_normal_deg: float = field(default=30.0, metadata={"help": "growth: largest normal angle"})
    close_radius: int = field(default=2, metadata={"help": "gap-closing rounds, pixels"})
    min_visible_pixels: int = field(default=40, metadata={"help": "fewer pixels → absent on that frame"})
    min_island_pixels: int = field(default=10, metadata={"help": "smaller mask pieces are dropped"})
    accumulate: bool = field(
        default=True, metadata={"help": "write grown pixels into free voxels of the memory"}
    )
    normal_radius: int = field(default=2, metadata={"help": "normal smoothing half-width, pixels"})
    stride: int = field(
        default=0,
        metadata={
            "help": "track on every stride-th pixel row and column (id maps stay full size); "
            "0: round(width / work_width), 2 at 320x240 (chosen on training scans: faster and no worse than 1)"
        },
    )
    work_width: int = field(default=160, metadata={"help": "working width of stride 0 (auto), pixels"})
    cache_frames: int = field(default=2, metadata={"help": "least frames of derived arrays kept in memory"})

    def stride_for(self, width: int) -> int:
        """The stride used on images ``width`` pixels wide."""
        return self.stride or max(1, round(width / self.work_width))

    def __post_init__(self):
        if self.voxel <= 0:
            raise ConfigError("GeometricConfig: voxel must be > 0")
        if self.stride < 0 or self.work_width < 1:
            raise ConfigError("GeometricConfig: stride must be >= 0 (0: auto) and work_width >= 1")
        if self.fill_radius < 0 or self.close_radius < 0 or self.min_visible_pixels < 1:
            raise ConfigError("GeometricConfig: radii must be >= 0 and min_visible_pixels >= 1")


@dataclass
class _FrameData:
    depth: np.ndarray  # (H, W) float32 metres, 0 invalid
    lab: np.ndarray  # (H, W, 3) float32
    normals: np.ndarray  # (H, W, 3) float32 world frame, 0 where undefined
    pix: np.ndarray  # (P,) flat indices of the pixels with depth
    lab_px: np.ndarray  # (P, 3) their Lab colours
    normals_px: np.ndarray  # (P, 3) their world normals
    keys: np.ndarray  # (3, P) voxel keys of their points: at the point, and ± half a voxel along its normal

    def subset(self, sel: np.ndarray) -> _FrameData:
        """The same images with only the pixels ``sel`` (indices into ``pix``) as its pixels with depth."""
        return _FrameData(
            self.depth,
            self.lab,
            self.normals,
            self.pix[sel],
            self.lab_px[sel],
            self.normals_px[sel],
            self.keys[:, sel],
        )


@dataclass
class GeometricTrackState:
    """Tracking state of one window of frames (returned by :meth:`GeometricTracker.start`).

    Attributes:
        frames: the window (positions 0..len-1); any sequence, read lazily (frames already in a list are
            checked when the window opens, others when first used).
        intrinsics: their depth intrinsics.
        ids: object id of each memory slot (slot ``s`` is ``ids[s - 1]``).
        memory: the voxels of all objects.
        seeds: ``{pos: {obj_id: (H, W) bool}}`` masks given with :meth:`GeometricTracker.add_masks`, made
            disjoint (see :func:`_disjoint`).
    """

    frames: Sequence[Frame]
    intrinsics: Intrinsics
    ids: list[int] = field(default_factory=list)
    memory: VoxelMemory = field(default_factory=VoxelMemory)
    seeds: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    cache_frames: int = 1
    stride: int = 1
    checked: set = field(default_factory=set)
    closed: bool = False

    def slot(self, obj_id: int) -> int:
        """The memory slot of ``obj_id`` (a new one for a new id)."""
        try:
            return self.ids.index(obj_id) + 1
        except ValueError:
            self.ids.append(obj_id)
            return len(self.ids)

    def voxel_count(self, obj_id: int) -> int:
        """Voxels of the memory owned by ``obj_id`` (0 for an unknown id)."""
        if obj_id not in self.ids:
            return 0
        return self.memory.count_of(self.ids.index(obj_id) + 1)


class GeometricTracker:
    """Implements :class:`tracklift.tracking.base.MaskTracker` by 3D voxel memory (no learned weights).

    ``scan_wide = True`` tells the granularity-consistent tracker that one state may span a whole scan
    (frames are read lazily and the memory is bounded by the scene's surface, not by the frame count), so
    it keeps one memory per scan instead of one window per keyframe segment.

    Args:
        cfg: settings.
    """

    scan_wide = True

    def __init__(self, cfg: GeometricConfig | None = None):
        self.cfg = cfg or GeometricConfig()

    # -- MaskTracker ---------------------------------------------------------------------------------

    def start(self, frames: Sequence[Frame], intrinsics: Intrinsics, revisit: int = 0) -> GeometricTrackState:
        """Open a window. Raises :class:`DataError` for a frame whose images do not match the intrinsics
        (frames given as a list or tuple are checked now, others when first used).

        ``revisit``: how many recent frames the caller comes back to (a keyframe segment and its two
        ends, for the granularity-consistent tracker's backward pass); their derived arrays stay cached
        (at least ``cfg.cache_frames``), so none is computed twice."""
        state = GeometricTrackState(
            frames,
            intrinsics,
            cache_frames=max(1, self.cfg.cache_frames, revisit),
            stride=self.cfg.stride_for(intrinsics.width),
        )
        if isinstance(frames, (list, tuple)):
            for pos in range(len(frames)):
                self._check_frame(state, pos)
        return state

    def add_masks(self, state: GeometricTrackState, pos: int, masks: dict[int, np.ndarray]) -> None:
        """Seed or correct objects with masks on frame ``pos``.

        Each mask is the truth on this frame: the voxels of its pixels' points become the object's
        (taken from whichever object held them), and the object's voxels seen on this frame outside its
        mask are released. Overlapping masks are first made disjoint (an overlapped pixel goes to the
        smaller mask).

        Args:
            state: from :meth:`start`.
            pos: position in the window.
            masks: ``{obj_id: (H, W) bool}``.
        """
        self._check_open(state)
        fd = self._frame_data(state, pos)
        h, w = state.intrinsics.height, state.intrinsics.width
        st = state.stride
        for obj_id, mask in masks.items():
            if np.shape(mask) != (h, w):
                raise DataError(
                    f"frame {state.frames[pos].index}",
                    f"mask of object {obj_id} is {np.shape(mask)}, expected {(h, w)}",
                )
        given = _disjoint({int(k): np.asarray(v, dtype=bool) for k, v in masks.items()})
        if pos in state.seeds:  # masks given earlier on this frame: all of them made disjoint again
            state.seeds[pos] = _disjoint({**state.seeds[pos], **given})
        else:
            state.seeds[pos] = given
        if not given:
            return
        slot_img = np.zeros(fd.depth.size, np.int32)
        slots = np.array([state.slot(k) for k in given], np.int32)
        for s, m in zip(slots, given.values()):
            slot_img[m[::st, ::st].ravel()] = s
        # release: voxels of the given objects seen here at a pixel outside their mask
        held = np.zeros(len(state.ids) + 1, bool)
        held[slots] = True
        own = slot_img[fd.pix]
        for k in range(len(fd.keys)):
            state.memory.release(fd.keys[k], held, own)
        # write: the voxels of the masks' points become theirs
        sel = own > 0
        state.memory.write(fd.keys[0, sel], own[sel], fd.lab_px[sel], fd.normals_px[sel])
        state.memory.observe(fd.keys[0])

    def propagate(
        self,
        state: GeometricTrackState,
        start: int,
        end: int | None = None,
        reverse: bool = False,
        only: Iterable[int] | None = None,
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yield ``(pos, {obj_id: (H, W) bool})`` from ``start`` to ``end`` inclusive (default: the last
        frame, or 0 when ``reverse``). Masks of different objects never overlap; absent objects are
        left out. On a frame with seeds the seeded masks are returned (they win over predictions).
        ``only`` restricts the prediction to these ids (the others still hold their voxels)."""
        self._check_open(state)
        n = len(state.frames)
        if not 0 <= start < n:
            raise IndexError(f"start {start} outside the window of {n} frames")
        end = (0 if reverse else n - 1) if end is None else end
        positions = range(start, end - 1, -1) if reverse else range(start, end + 1)
        for pos in positions:
            ids = self.predict_ids(state, pos, only)
            present = np.unique(ids)
            yield pos, {int(i): ids == i for i in present if i != 0}

    def predict_ids(
        self,
        state: GeometricTrackState,
        pos: int,
        only: Iterable[int] | None = None,
        learn: bool | None = None,
        grow_from_learned: bool = True,
        free: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W) int32 map of object ids on frame ``pos`` (0: none); what :meth:`propagate` yields as
        masks. ``only``: predict just these ids. ``learn``: write grown pixels into the memory (default
        ``cfg.accumulate``; the granularity-consistent tracker turns it off and confirms new surface
        with fresh keyframe masks instead). ``grow_from_learned``: growth may start from learned surface
        (False: only from surface given masks confirmed, which bounds how far an unconfirmed track can
        extend). ``free``: (H, W) bool, the only pixels the prediction may label; the others belong to
        objects predicted already (growth does not enter them) and their voxels are not looked up, which
        makes filling the gaps of a predicted frame (the backward pass) cost what the gaps cover."""
        self._check_open(state)
        learn = self.cfg.accumulate if learn is None else learn
        slots = self._predict(state, pos, only, learn, grow_from_learned, free)
        lut = np.array([0, *state.ids], np.int32)
        return lut[slots]

    def forget_before(self, state: GeometricTrackState, pos: int) -> None:
        """Drop the seeds and cached arrays of frames before ``pos`` (the 3D memory stays): a scan-wide
        state then holds memory bounded by the scene, not by the frames seen."""
        for p in [p for p in state.seeds if p < pos]:
            del state.seeds[p]
        for p in [p for p in state.cache if p < pos]:
            del state.cache[p]

    def close(self, state: GeometricTrackState) -> None:
        state.memory = VoxelMemory()
        state.seeds.clear()
        state.cache.clear()
        state.closed = True

    # -- prediction ----------------------------------------------------------------------------------

    def _predict(
        self,
        state: GeometricTrackState,
        pos: int,
        only: Iterable[int] | None,
        learn: bool,
        grow_from_learned: bool = True,
        free: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W) int32 slot map of frame ``pos``."""
        cfg = self.cfg
        st = state.stride
        fd = self._frame_data(state, pos)
        h, w = fd.depth.shape  # working size (full size / stride)
        # growth may enter a pixel whose voxel is the object's own or was never seen; surface already
        # seen as nobody's (-1) or as another object's is a known neighbour
        owner_img = np.zeros(h * w, np.int32)
        if free is not None:  # pixels outside ``free`` are taken: neighbours, not looked up
            free_w = np.ascontiguousarray(free[::st, ::st]).ravel()
            owner_img[~free_w] = -1
            fd = fd.subset(np.flatnonzero(free_w[fd.pix]))
        cos_tol = np.cos(np.deg2rad(cfg.normal_tol_deg)) if cfg.normal_tol_deg < 180 else -2.0
        owner, ok, seen, conf = state.memory.lookup(fd.keys, fd.lab_px, fd.normals_px, cfg.color_tol, cos_tol)
        owner_img[fd.pix] = np.where(owner > 0, owner, np.where(seen, -1, 0))
        label = np.zeros(h * w, np.int32)
        label[fd.pix[ok]] = owner[ok]
        # without grow_from_learned, growth starts only from voxels a given mask confirmed: surface learned
        # from earlier predictions is kept but does not grow further, so an unconfirmed track extends at
        # most fill_radius beyond what its masks showed, however long it goes unconfirmed
        seedable = np.zeros(h * w, bool)
        seedable[fd.pix[ok if grow_from_learned else ok & conf]] = True
        if only is not None:
            wanted = np.zeros(len(state.ids) + 1, bool)
            wanted[[state.ids.index(int(i)) + 1 for i in only if int(i) in state.ids]] = True
            label[~wanted[label]] = 0
        seeds = state.seeds.get(pos, {})  # disjoint already (add_masks)
        seeded = np.zeros(h * w, bool)
        for m in seeds.values():
            seeded |= m[::st, ::st].ravel()
        label[seeded] = -1
        label = label.reshape(h, w)
        step = grow_labels(
            label,
            seedable.reshape(h, w),
            owner_img.reshape(h, w),
            fd.depth,
            fd.lab,
            fd.normals,
            max(1, round(cfg.fill_radius / st)) if cfg.fill_radius else 0,
            cfg.grow_depth_rel,
            cfg.grow_color,
            float(np.cos(np.deg2rad(cfg.grow_normal_deg))),
        )
        # What this frame shows becomes known surface: growth will not enter it unless an object holds it.
        # Learning, an object's new surface is now in its memory and the grown pixels it did not learn
        # did not look like it; not learning, grown pixels stay open for the object's growth next frame.
        if learn:
            self._learn_grown(state, fd, label.ravel(), step.ravel())
            state.memory.observe(fd.keys[0])
        else:
            state.memory.observe(fd.keys[0, label.ravel()[fd.pix] == 0])
        drop_islands(label, max(1, cfg.min_island_pixels // (st * st)))
        close_gaps(label, -(-cfg.close_radius // st), 5)
        label[label < 0] = 0
        counts = np.bincount(label.ravel(), minlength=len(state.ids) + 1) * (st * st)
        absent = counts < cfg.min_visible_pixels
        absent[0] = False
        label[absent[label]] = 0
        if st > 1:  # back to full size, along the full image's depth and colour edges
            f = state.frames[pos]
            label = upsample_labels(
                label,
                fd.depth,
                f.color[::st, ::st],
                f.depth,
                f.color,
                st,
                cfg.grow_depth_rel,
                2 * cfg.grow_color,
            )
        for obj_id, m in seeds.items():
            label[m] = state.slot(obj_id)
        return label

    @staticmethod
    def _learn_grown(state, fd: _FrameData, label: np.ndarray, step: np.ndarray) -> None:
        """Write the grown pixels into free voxels of their objects' memory."""
        lab_of = label[fd.pix]
        sel = np.flatnonzero((step[fd.pix] > 0) & (lab_of > 0))
        state.memory.write(fd.keys[0, sel], lab_of[sel], fd.lab_px[sel], fd.normals_px[sel], only_free=True)

    # -- frames --------------------------------------------------------------------------------------

    def _check_frame(self, state: GeometricTrackState, pos: int) -> Frame:
        f = state.frames[pos]
        if pos not in state.checked:
            intr = state.intrinsics
            if f.depth.shape != (intr.height, intr.width) or f.color.shape[:2] != f.depth.shape:
                raise DataError(
                    f"frame {f.index}",
                    f"colour {f.color.shape} / depth {f.depth.shape} do not match intrinsics "
                    f"{intr.width}x{intr.height}",
                )
            state.checked.add(pos)
        return f

    def _frame_data(self, state: GeometricTrackState, pos: int) -> _FrameData:
        if pos in state.cache:
            return state.cache[pos]
        f = self._check_frame(state, pos)
        st = state.stride
        depth = np.ascontiguousarray(f.depth[::st, ::st], dtype=np.float32)
        valid = depth > 0
        cam = backproject_depth(depth, _strided(state.intrinsics, st))
        normals_cam = normals_from_points(cam, valid, self.cfg.normal_radius)
        pose = np.asarray(f.pose, dtype=np.float64)
        pix = np.flatnonzero(valid.ravel())
        lab = rgb_to_lab(f.color[::st, ::st])
        normals, normals_px, lab_px, keys = _world_normals_and_keys(
            cam, normals_cam, lab, pix, pose, self.cfg.voxel, KEY_AXIS_BITS
        )
        fd = _FrameData(depth, lab, normals, pix, lab_px, normals_px, keys)
        state.cache[pos] = fd
        while len(state.cache) > state.cache_frames:  # scans move forward: drop the earliest frame
            del state.cache[min(state.cache)]
        return fd

    @staticmethod
    def _check_open(state: GeometricTrackState) -> None:
        if state.closed:
            raise RuntimeError("this tracking state was closed")


@jit(parallel=True)
def _world_normals_and_keys(
    cam: np.ndarray,
    normals_cam: np.ndarray,
    lab: np.ndarray,
    pix: np.ndarray,
    pose: np.ndarray,
    voxel: float,
    bits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World-frame normals (H, W, 3) float32; of the pixels ``pix``: their world normals and Lab colours
    (P, 3) float32, and the (3, P) voxel keys (as :func:`tracklift.geometry.voxels.voxel_keys`) of their
    world points: at the point, and half a voxel along its normal either way."""
    h, w = cam.shape[:2]
    normals = np.zeros((h, w, 3), np.float32)
    normals_px = np.empty((len(pix), 3), np.float32)
    lab_px = np.empty((len(pix), 3), np.float32)
    keys = np.empty((3, len(pix)), np.int64)
    bias = 1 << (bits - 1)
    top = (1 << bits) - 1
    for i in prange(len(pix)):
        y, x = pix[i] // w, pix[i] % w
        cx, cy, cz = cam[y, x, 0], cam[y, x, 1], cam[y, x, 2]
        mx, my, mz = normals_cam[y, x, 0], normals_cam[y, x, 1], normals_cam[y, x, 2]
        px = pose[0, 0] * cx + pose[0, 1] * cy + pose[0, 2] * cz + pose[0, 3]
        py = pose[1, 0] * cx + pose[1, 1] * cy + pose[1, 2] * cz + pose[1, 3]
        pz = pose[2, 0] * cx + pose[2, 1] * cy + pose[2, 2] * cz + pose[2, 3]
        nx = pose[0, 0] * mx + pose[0, 1] * my + pose[0, 2] * mz
        ny = pose[1, 0] * mx + pose[1, 1] * my + pose[1, 2] * mz
        nz = pose[2, 0] * mx + pose[2, 1] * my + pose[2, 2] * mz
        normals[y, x, 0], normals[y, x, 1], normals[y, x, 2] = nx, ny, nz
        normals_px[i, 0], normals_px[i, 1], normals_px[i, 2] = (
            normals[y, x, 0],
            normals[y, x, 1],
            normals[y, x, 2],
        )
        lab_px[i, 0], lab_px[i, 1], lab_px[i, 2] = lab[y, x, 0], lab[y, x, 1], lab[y, x, 2]
        for j in range(3):
            s = 0.0 if j == 0 else (0.5 * voxel if j == 1 else -0.5 * voxel)
            qx = min(max(int(np.floor((px + s * nx) / voxel)) + bias, 0), top)
            qy = min(max(int(np.floor((py + s * ny) / voxel)) + bias, 0), top)
            qz = min(max(int(np.floor((pz + s * nz) / voxel)) + bias, 0), top)
            keys[j, i] = (qx << (2 * bits)) | (qy << bits) | qz
    return normals, normals_px, lab_px, keys


def _strided(intr: Intrinsics, stride: int) -> Intrinsics:
    """Intrinsics of the image made of every ``stride``-th pixel row and column (pixel ``i`` of it is
    pixel ``stride * i`` of the full image)."""
    if stride == 1:
        return intr
    return Intrinsics(
        intr.fx / stride,
        intr.fy / stride,
        intr.cx / stride,
        intr.cy / stride,
        -(-intr.width // stride),
        -(-intr.height // stride),
    )


def _disjoint(masks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Masks of one frame made disjoint: an overlapped pixel goes to the smaller mask."""
    if len(masks) < 2:
        return {k: v.copy() for k, v in masks.items()}
    order = sorted(masks, key=lambda k: -int(masks[k].sum()))
    label = np.full(next(iter(masks.values())).shape, -1, np.int64)
    for k in order:  # larger first, smaller overwrite
        label[masks[k]] = k
    return {k: label == k for k in masks if (label == k).any()}
