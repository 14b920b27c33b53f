"""The geometric tracker's 3D memory: which object holds each voxel, with its colour and normal.

An open-addressing hash table over the int64 voxel keys of :func:`tracklift.geometry.voxels.voxel_keys`
(linear probing, kept at most half full): a frame's 77 k pixel lookups cost about a millisecond, and
writing a mask's pixels is one pass with no sort. Each voxel stores its owner (an object slot ≥ 1; 0 for
surface observed but held by nobody, or released), and the sums of the Lab colours and unit normals of the pixels that last wrote it, with their
count, so a lookup compares a pixel against the voxel's mean appearance.
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
def _probe(keys: np.ndarray, key: int, shift: np.uint64, add: bool) -> int:
    """Slot of ``key``; when absent, -1, or (``add``) the empty slot it now occupies."""
    mask = len(keys) - 1
    h = _home(key, shift)
    while True:
        k = keys[h]
        if k == key:
            return h
        if k == _EMPTY:
            if add:
                keys[h] = key
                return h
            return -1
        h = (h + 1) & mask


@jit
def _find(keys: np.ndarray, key: int, shift: np.uint64) -> int:
    """Slot of ``key``, or -1."""
    return _probe(keys, key, shift, False)


@jit
def _find_or_add(keys: np.ndarray, key: int, shift: np.uint64) -> int:
    """Slot of ``key``, added (empty) when absent."""
    return _probe(keys, key, shift, True)


@jit
def _write(
    keys,
    owner,
    stamp,
    count,
    lab_sum,
    normal_sum,
    confirmed,
    shift,
    now,
    new_keys,
    slots,
    lab,
    normals,
    only_free,
) -> int:
    """Write pixels into the table: each pixel's voxel goes to its slot (the last pixel wins); a voxel's
    appearance is reset the first time this call (``now``) writes it, then accumulates. With
    ``only_free``, voxels held by another slot are left alone. Returns the number of voxels added."""
    added = 0
    for i in range(len(new_keys)):
        h = _find(keys, new_keys[i], shift)
        if h < 0:
            h = _find_or_add(keys, new_keys[i], shift)
            owner[h] = 0
            stamp[h] = -1
            added += 1
        if only_free and owner[h] != 0 and owner[h] != slots[i]:
            continue
        if stamp[h] != now:
            stamp[h] = now
            count[h] = 0
            for c in range(3):
                lab_sum[h, c] = 0.0
                normal_sum[h, c] = 0.0
        owner[h] = slots[i]
        confirmed[h] = not only_free
        count[h] += 1
        for c in range(3):
            lab_sum[h, c] += lab[i, c]
            normal_sum[h, c] += normals[i, c]
    return added


@jit
def _lookup(
    keys,
    owner,
    count,
    lab_sum,
    normal_sum,
    shift,
    queries,
    lab,
    normals,
    color_tol,
    cos_tol,
    confirmed,
    out_owner,
    out_ok,
    out_seen,
    out_confirmed,
) -> None:
    """Per query pixel: the owner of the first of its ``queries[:, i]`` keys held by an object (0: none),
    whether the pixel's colour and normal agree with that voxel's means, and whether its own voxel
    (``queries[0, i]``) was observed before."""
    n, k = queries.shape[1], queries.shape[0]
    # neighbouring pixels mostly share voxels: remember each row's last key and its slot
    last_key = np.full(k, _EMPTY, np.int64)
    last_slot = np.full(k, -1, np.int64)
    for i in range(n):
        h = -1
        for j in range(k):
            q = queries[j, i]
            if q != last_key[j]:
                last_key[j] = q
                last_slot[j] = _find(keys, q, shift)
            if j == 0:
                out_seen[i] = last_slot[0] >= 0
            s = last_slot[j]
            if s >= 0 and owner[s] > 0:
                h = s
                break
        if h < 0:
            out_owner[i] = 0
            out_ok[i] = False
            out_confirmed[i] = False
            continue
        out_owner[i] = owner[h]
        out_confirmed[i] = confirmed[h]
        ok = True
        if color_tol > 0:
            d2 = 0.0
            for c in range(3):
                d = lab[i, c] - lab_sum[h, c] / count[h]
                d2 += d * d
            ok = d2 <= color_tol * color_tol
        if ok and cos_tol > -1.0:
            pn = normals[i, 0] ** 2 + normals[i, 1] ** 2 + normals[i, 2] ** 2
            vn = normal_sum[h, 0] ** 2 + normal_sum[h, 1] ** 2 + normal_sum[h, 2] ** 2
            if pn > 0 and vn > 1e-12:
                dot = normals[i, 0] * normal_sum[h, 0] + normals[i, 1] * normal_sum[h, 1]
                dot += normals[i, 2] * normal_sum[h, 2]
                ok = dot >= cos_tol * np.sqrt(pn * vn)
        out_ok[i] = ok


@jit
def _observe(keys, owner, stamp, shift, new_keys) -> int:
    """Add the voxels ``new_keys`` not in the table as observed, held by nobody. Returns how many."""
    added = 0
    last = _EMPTY
    for i in range(len(new_keys)):
        if new_keys[i] == last:  # neighbouring pixels mostly share voxels
            continue
        last = new_keys[i]
        if _find(keys, last, shift) < 0:
            h = _find_or_add(keys, last, shift)
            owner[h] = 0
            stamp[h] = -1
            added += 1
    return added


@jit
def _release(keys, owner, shift, queries, slots_held, pixel_slot) -> None:
    """Set owner 0 on the voxels at ``queries`` whose owner is one of ``slots_held`` (bool by slot) and
    differs from the pixel's own slot."""
    for i in range(len(queries)):
        h = _find(keys, queries[i], shift)
        if h >= 0:
            o = owner[h]
            if o > 0 and slots_held[o] and o != pixel_slot[i]:
                owner[h] = 0


class VoxelMemory:
    """Voxel → (owner slot, mean Lab, mean normal), for the geometric tracker.

    Args:
        capacity: initial table size (rounded up to a power of two); the table doubles when half full.
    """

    def __init__(self, capacity: int = 1 << 16):
        cap = 1 << max(4, int(np.ceil(np.log2(max(capacity, 16)))))
        self._alloc(cap)
        self._used = 0
        self._now = 0

    def _alloc(self, cap: int) -> None:
        self.keys = np.full(cap, _EMPTY, np.int64)
        self.owner = np.zeros(cap, np.int32)
        self.stamp = np.full(cap, -1, np.int64)
        self.count = np.zeros(cap, np.int32)
        self.lab_sum = np.zeros((cap, 3), np.float32)
        self.normal_sum = np.zeros((cap, 3), np.float32)
        self.confirmed = np.zeros(cap, np.bool_)
        self._shift = np.uint64(64 - int(np.log2(cap)))

    def _reserve(self, extra: int) -> None:
        """Grow (rehash) so that ``extra`` more voxels keep the table at most half full."""
        need = self._used + extra
        if 2 * need <= len(self.keys):
            return
        cap = len(self.keys)
        while 2 * need > cap:
            cap *= 2
        old = (self.keys, self.owner, self.stamp, self.count, self.lab_sum, self.normal_sum, self.confirmed)
        self._alloc(cap)
        live = old[0] != _EMPTY
        slots = _insert_all(self.keys, old[0][live], self._shift)
        self.owner[slots] = old[1][live]
        self.stamp[slots] = old[2][live]
        self.count[slots] = old[3][live]
        self.lab_sum[slots] = old[4][live]
        self.normal_sum[slots] = old[5][live]
        self.confirmed[slots] = old[6][live]

    def __len__(self) -> int:
        """Voxels held by an object."""
        return int((self.owner > 0).sum())

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
        self._used += _write(
            self.keys,
            self.owner,
            self.stamp,
            self.count,
            self.lab_sum,
            self.normal_sum,
            self.confirmed,
            self._shift,
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
        self._used += _observe(self.keys, self.owner, self.stamp, self._shift, keys)

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
            self.owner,
            self.count,
            self.lab_sum,
            self.normal_sum,
            self._shift,
            np.ascontiguousarray(queries, np.int64),
            np.ascontiguousarray(lab, np.float32),
            np.ascontiguousarray(normals, np.float32),
            float(color_tol),
            float(cos_tol),
            self.confirmed,
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
            self.owner,
            self._shift,
            np.ascontiguousarray(queries, np.int64),
            np.ascontiguousarray(held, np.bool_),
            np.ascontiguousarray(pixel_slot, np.int32),
        )

    def count_of(self, slot: int) -> int:
        """Voxels held by ``slot``."""
        return int((self.owner == slot).sum())


@jit
def _insert_all(keys: np.ndarray, new_keys: np.ndarray, shift: np.uint64) -> np.ndarray:
    out = np.empty(len(new_keys), np.int64)
    for i in range(len(new_keys)):
        out[i] = _find_or_add(keys, new_keys[i], shift)
    return out
