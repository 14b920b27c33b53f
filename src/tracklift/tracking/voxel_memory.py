"""The geometric tracker's 3D memory: which object holds each voxel, with its colour and normal.

Two parts:

- an index: an open-addressing hash table over the int64 voxel keys of
  :func:`tracklift.geometry.voxels.voxel_keys` (linear probing, kept at most half full) that maps a key
  to its row;
- the rows: one per voxel ever seen, in the order voxels were first seen, holding the voxel's owner (an
  object slot ≥ 1; 0 for surface observed but held by nobody, or released) and the sums of the Lab
  colours and unit normals of the pixels that last wrote it, with their count, so a lookup compares a
  pixel against the voxel's mean appearance.

A frame's 77 k pixel lookups cost a few milliseconds and writing a mask's pixels is one pass with no sort.
Growing the index re-inserts only (key, row) pairs and growing the rows is one contiguous copy: a
whole-room scan at 2 cm holds about a million voxels, and scattering their 40-byte rows into a fresh,
twice-as-large table on every doubling cost more than the tracking itself (1.1 s for the last doubling
of a 100-frame scan on this machine; now about 30 ms).
"""

from __future__ import annotations

import numpy as np

from tracklift.geometry.compiled import jit

__all__ = ["VoxelMemory"]

_EMPTY = -1  # voxel keys are >= 0 (biased, packed cells)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier


@jit
def _home(key: int, shift: np.uint64) -> int:
    return np.int64((np.uint64(key) * _GOLDEN) >> shift)


@jit
def _find(keys: np.ndarray, rows: np.ndarray, key: int, shift: np.uint64) -> int:
    """Row of ``key``, or -1."""
    mask = len(keys) - 1
    h = _home(key, shift)
    while True:
        k = keys[h]
        if k == key:
            return rows[h]
        if k == _EMPTY:
            return -1
        h = (h + 1) & mask


@jit
def _add(keys: np.ndarray, rows: np.ndarray, key: int, row: int, shift: np.uint64) -> None:
    """Insert ``key`` (absent) with its ``row``."""
    mask = len(keys) - 1
    h = _home(key, shift)
    while keys[h] != _EMPTY:
        h = (h + 1) & mask
    keys[h] = key
    rows[h] = row


@jit
def _new_row(owner, stamp, n: int) -> int:
    """Initialise row ``n`` (an observed voxel held by nobody); returns it."""
    owner[n] = 0
    stamp[n] = -1
    return n


@jit
def _write(
    keys,
    rows,
    shift,
    n,
    owner,
    stamp,
    count,
    lab_sum,
    normal_sum,
    confirmed,
    now,
    new_keys,
    slots,
    lab,
    normals,
    only_free,
) -> int:
    """Write pixels into the memory: each pixel's voxel goes to its slot (the last pixel wins); a voxel's
    appearance is reset the first time this call (``now``) writes it, then accumulates. With
    ``only_free``, voxels held by another slot are left alone. ``n``: rows in use; returns the new count."""
    for i in range(len(new_keys)):
        r = _find(keys, rows, new_keys[i], shift)
        if r < 0:
            r = _new_row(owner, stamp, n)
            _add(keys, rows, new_keys[i], r, shift)
            n += 1
        if only_free and owner[r] != 0 and owner[r] != slots[i]:
            continue
        if stamp[r] != now:
            stamp[r] = now
            count[r] = 0
            for c in range(3):
                lab_sum[r, c] = 0.0
                normal_sum[r, c] = 0.0
        owner[r] = slots[i]
        confirmed[r] = not only_free
        count[r] += 1
        for c in range(3):
            lab_sum[r, c] += lab[i, c]
            normal_sum[r, c] += normals[i, c]
    return n


@jit
def _lookup(
    keys,
    rows,
    shift,
    owner,
    count,
    lab_sum,
    normal_sum,
    confirmed,
    queries,
    lab,
    normals,
    color_tol,
    cos_tol,
    out_owner,
    out_ok,
    out_seen,
    out_confirmed,
) -> None:
    """Per query pixel: the owner of the first of its ``queries[:, i]`` keys held by an object (0: none),
    whether the pixel's colour and normal agree with that voxel's means, and whether its own voxel
    (``queries[0, i]``) was observed before."""
    n, k = queries.shape[1], queries.shape[0]
    # neighbouring pixels mostly share voxels: remember each key row's last key and its voxel row
    last_key = np.full(k, _EMPTY, np.int64)
    last_row = np.full(k, -1, np.int64)
    for i in range(n):
        r = -1
        for j in range(k):
            q = queries[j, i]
            if q != last_key[j]:
                last_key[j] = q
                last_row[j] = _find(keys, rows, q, shift)
            if j == 0:
                out_seen[i] = last_row[0] >= 0
            s = last_row[j]
            if s >= 0 and owner[s] > 0:
                r = s
                break
        if r < 0:
            out_owner[i] = 0
            out_ok[i] = False
            out_confirmed[i] = False
            continue
        out_owner[i] = owner[r]
        out_confirmed[i] = confirmed[r]
        ok = True
        if color_tol > 0:
            d2 = 0.0
            for c in range(3):
                d = lab[i, c] - lab_sum[r, c] / count[r]
                d2 += d * d
            ok = d2 <= color_tol * color_tol
        if ok and cos_tol > -1.0:
            pn = normals[i, 0] ** 2 + normals[i, 1] ** 2 + normals[i, 2] ** 2
            vn = normal_sum[r, 0] ** 2 + normal_sum[r, 1] ** 2 + normal_sum[r, 2] ** 2
            if pn > 0 and vn > 1e-12:
                dot = normals[i, 0] * normal_sum[r, 0] + normals[i, 1] * normal_sum[r, 1]
                dot += normals[i, 2] * normal_sum[r, 2]
                ok = dot >= cos_tol * np.sqrt(pn * vn)
        out_ok[i] = ok


@jit
def _observe(keys, rows, shift, n, owner, stamp, new_keys) -> int:
    """Add the voxels ``new_keys`` not in the memory as observed, held by nobody. ``n``: rows in use;
    returns the new count."""
    last = _EMPTY
    for i in range(len(new_keys)):
        if new_keys[i] == last:  # neighbouring pixels mostly share voxels
            continue
        last = new_keys[i]
        if _find(keys, rows, last, shift) < 0:
            _add(keys, rows, last, _new_row(owner, stamp, n), shift)
            n += 1
    return n


@jit
def _release(keys, rows, shift, owner, queries, slots_held, pixel_slot) -> None:
    """Set owner 0 on the voxels at ``queries`` whose owner is one of ``slots_held`` (bool by slot) and
    differs from the pixel's own slot."""
    for i in range(len(queries)):
        r = _find(keys, rows, queries[i], shift)
        if r >= 0:
            o = owner[r]
            if o > 0 and slots_held[o] and o != pixel_slot[i]:
                owner[r] = 0


@jit
def _reindex(old_keys, old_rows, keys, rows, shift) -> None:
    """Insert every (key, row) of the old index into the new (empty) one."""
    for h in range(len(old_keys)):
        if old_keys[h] != _EMPTY:
            _add(keys, rows, old_keys[h], old_rows[h], shift)


# the per-voxel rows: (name, dtype, trailing shape)
_ROW_FIELDS = (
    ("owner", np.int32, ()),
    ("stamp", np.int64, ()),
    ("count", np.int32, ()),
    ("lab_sum", np.float32, (3,)),
    ("normal_sum", np.float32, (3,)),
    ("confirmed", np.bool_, ()),
)


class VoxelMemory:
    """Voxel → (owner slot, mean Lab, mean normal), for the geometric tracker.

    Args:
        capacity: initial number of voxels (the index is twice that, rounded up to a power of two); both
            double as needed.
    """

    def __init__(self, capacity: int = 1 << 15):
        cap = 1 << max(3, int(np.ceil(np.log2(max(capacity, 8)))))
        self._index(2 * cap)
        for name, dtype, shape in _ROW_FIELDS:
            setattr(self, name, np.zeros((cap, *shape), dtype))
        self._n = 0  # rows in use = voxels ever seen
        self._now = 0

    def _index(self, size: int) -> None:
        self.keys = np.full(size, _EMPTY, np.int64)
        self.rows = np.full(size, -1, np.int32 if size <= 1 << 31 else np.int64)
        self._shift = np.uint64(64 - int(np.log2(size)))

    def _reserve(self, extra: int) -> None:
        """Grow the index (keeping it at most half full) and the rows so that ``extra`` more voxels fit."""
        need = self._n + extra
        size = len(self.keys)
        if 2 * need > size:
            while 2 * need > size:
                size *= 2
            old_keys, old_rows = self.keys, self.rows
            self._index(size)
            _reindex(old_keys, old_rows, self.keys, self.rows, self._shift)
        if need > len(self.owner):
            cap = max(need, 2 * len(self.owner))
            for name, dtype, shape in _ROW_FIELDS:
                old = getattr(self, name)
                new = np.empty((cap, *shape), dtype)
                new[: self._n] = old[: self._n]
                setattr(self, name, new)

    def __len__(self) -> int:
        """Voxels held by an object."""
        return int((self.owner[: self._n] > 0).sum())

    def write(
        self,
        keys: np.ndarray,
        slots: np.ndarray,
        lab: np.ndarray,
        normals: np.ndarray,
        only_free: bool = False,
    ) -> None:
        """Give voxels to objects: ``keys`` (P,) int64 voxel keys of pixels, ``slots`` (P,) their object
        slots, ``lab`` / ``normals`` (P, 3) float32 their appearance. A voxel written by several pixels
        goes to the last of them and takes the mean of their appearance. ``only_free``: do not take
        voxels another object holds, and mark the voxels written as learned (not confirmed)."""
        if len(keys) == 0:
            return
        self._reserve(len(keys))
        self._now += 1
        self._n = _write(
            self.keys,
            self.rows,
            self._shift,
            self._n,
            self.owner,
            self.stamp,
            self.count,
            self.lab_sum,
            self.normal_sum,
            self.confirmed,
            self._now,
            np.ascontiguousarray(keys, np.int64),
            np.ascontiguousarray(slots, np.int32),
            np.ascontiguousarray(lab, np.float32),
            np.ascontiguousarray(normals, np.float32),
            only_free,
        )

    def observe(self, keys: np.ndarray) -> None:
        """Record the voxels ``keys`` (P,) as observed: a voxel seen but held by nobody is known surface
        that is no object's, which growth may not take (only never-seen surface is new)."""
        if len(keys) == 0:
            return
        self._reserve(len(keys))
        keys = np.ascontiguousarray(keys, np.int64)
        self._n = _observe(self.keys, self.rows, self._shift, self._n, self.owner, self.stamp, keys)

    def lookup(
        self, queries: np.ndarray, lab: np.ndarray, normals: np.ndarray, color_tol: float, cos_tol: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per pixel: the owner of its voxel and whether it looks like it.

        Args:
            queries: (K, P) int64 voxel keys per pixel, tried in order (the first held voxel counts).
            lab: (P, 3) float32 the pixels' Lab colours; normals: (P, 3) float32 their unit normals
                (zero where unknown, then not compared).
            color_tol: largest ΔE76 to the voxel's mean colour (≤ 0: not compared).
            cos_tol: smallest cosine to the voxel's mean normal (≤ -1: not compared).

        Returns:
            ``(owner, ok, seen, confirmed)``: (P,) int32 slots (0: no object), (P,) bool colour and
            normal agree, (P,) bool the pixel's own voxel was observed before (held or not), (P,) bool the
            holding voxel was written by a given mask (not learned from a prediction).
        """
        p = queries.shape[1]
        owner = np.zeros(p, np.int32)
        ok = np.zeros(p, bool)
        seen = np.zeros(p, bool)
        conf = np.zeros(p, bool)
        _lookup(
            self.keys,
            self.rows,
            self._shift,
            self.owner,
            self.count,
            self.lab_sum,
            self.normal_sum,
            self.confirmed,
            np.ascontiguousarray(queries, np.int64),
            np.ascontiguousarray(lab, np.float32),
            np.ascontiguousarray(normals, np.float32),
            float(color_tol),
            float(cos_tol),
            owner,
            ok,
            seen,
            conf,
        )
        return owner, ok, seen, conf

    def release(self, queries: np.ndarray, held: np.ndarray, pixel_slot: np.ndarray) -> None:
        """Free the voxels at ``queries`` (P,) whose owner is a slot marked in ``held`` (bool by slot) and
        is not the pixel's own ``pixel_slot`` (P,)."""
        _release(
            self.keys,
            self.rows,
            self._shift,
            self.owner,
            np.ascontiguousarray(queries, np.int64),
            np.ascontiguousarray(held, np.bool_),
            np.ascontiguousarray(pixel_slot, np.int32),
        )

    def count_of(self, slot: int) -> int:
        """Voxels held by ``slot``."""
        return int((self.owner[: self._n] == slot).sum())

    def seen_count(self) -> int:
        """Voxels ever observed (held or not)."""
        return self._n
