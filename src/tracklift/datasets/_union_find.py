"""Felzenszwalb-Huttenlocher's sequential union-find passes, compiled with numba.

FH must visit edges one by one in weight order, each decision depending on the components built so far,
so it cannot be written as whole-array numpy. numba compiles the loop from plain Python: it installs from
PyPI wheels (numba + llvmlite) on every platform CPython runs on, with no compiler at install time, and
``cache=True`` keeps the machine code between processes (first use in a fresh environment compiles for
about 2-3 s). Without numba the same functions run as plain Python: correct, about 100x slower, with a
warning.
"""

from __future__ import annotations

import numpy as np

from tracklift.geometry.compiled import jit as _jit


@_jit
def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@_jit
def _join(parent: np.ndarray, rank: np.ndarray, size: np.ndarray, x: int, y: int) -> int:
    if rank[x] > rank[y]:
        x, y = y, x
    parent[x] = y
    size[y] += size[x]
    if rank[x] == rank[y]:
        rank[y] += 1
    return y


@_jit
def fh_roots(
    n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, k_thresh: float, min_size: int
) -> np.ndarray:
    """FH over edges already sorted by weight, then merging of segments under ``min_size``.

    Args:
        n: number of nodes.
        a, b: (E,) int64 edge endpoints, in increasing weight order.
        w: (E,) float64 weights, increasing.
        k_thresh: FH's ``k``: component threshold ``w_last + k_thresh / size``.
        min_size: the second pass joins across every edge with a side smaller than this.

    Returns:
        (n,) int64 root node of each node's segment.
    """
    parent = np.arange(n)
    rank = np.zeros(n, np.int64)
    size = np.ones(n, np.int64)
    threshold = np.full(n, k_thresh)
    for e in range(len(w)):
        ra = _find(parent, a[e])
        rb = _find(parent, b[e])
        if ra != rb and w[e] <= threshold[ra] and w[e] <= threshold[rb]:
            r = _join(parent, rank, size, ra, rb)
            threshold[r] = w[e] + k_thresh / size[r]
    for e in range(len(w)):
        ra = _find(parent, a[e])
        rb = _find(parent, b[e])
        if ra != rb and (size[ra] < min_size or size[rb] < min_size):
            _join(parent, rank, size, ra, rb)
    roots = np.empty(n, np.int64)
    for i in range(n):
        roots[i] = _find(parent, i)
    return roots
