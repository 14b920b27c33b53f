"""Superpoints: ScanNet's Segmentator on meshes, a k-nearest-neighbour variant for point clouds, and files.

The mesh segmentator re-implements the algorithm of ScanNet's ``Segmentator`` (``segmentator mesh.ply
[kThresh=0.01] [segMinVerts=20]``, whose output is ``<s>_vh_clean_2.0.010000.segs.json``):

1. graph: one node per vertex, one edge per unique mesh edge (the three sides of every triangle);
2. weight of edge (a, b) from the vertex normals: ``w = 1 - n_a . n_b``; where the edge is convex, ``w`` is
   squared (so convex creases, e.g. a box's edges, separate less than concave ones such as where an object
   meets the floor). ScanNet calls an edge convex when ``n_b . (p_b - p_a) / |p_b - p_a| > 0`` for the
   orientation in which a face lists it; every interior edge is listed by two faces in opposite
   orientations and its sorted processing meets the smaller of the two weights first, so for a unique edge
   we take the smaller one: convex if either endpoint's normal leans away from the other endpoint;
3. Felzenszwalb-Huttenlocher: edges in increasing weight order (weights in float32 as ScanNet's are;
   ties keep edge order, so the result is deterministic), components ``A`` and ``B`` joined by an edge
   of weight ``w`` when ``w <= T(A)`` and ``w <= T(B)`` with ``T(C) = w_last(C) + kThresh / |C|``
   (``w_last`` = weight of the edge that last grew ``C``, 0 for a single vertex);
4. small segments: a second pass over the same sorted edges joins the two sides of every edge where
   either side has fewer than ``segMinVerts`` vertices.

Differences from ScanNet's C++, on purpose: vertex normals are the project's area-weighted unit normals
(ScanNet averages unit face normals without renormalising), and edges are deduplicated as in step 2.
Ids are renumbered 0..K-1 (ScanNet writes each segment's root vertex id).

The point-cloud variant (:func:`segment_points`) builds the graph from each point's ``knn`` nearest
neighbours (``scipy.spatial.cKDTree``) and estimates normals from the neighbourhood (the direction of least
variance). Such normals have no inside or outside, so its weight is ``1 - |n_a . n_b|`` without the
convexity step, unless oriented normals are passed in.

A mesh with zero faces: :func:`segment_mesh` raises :class:`DataError` naming the mesh;
:func:`compute_superpoints` (what ``Scene.superpoints`` and the writers call) treats it as the point cloud
it is and uses the kNN variant.

The union-find passes (:mod:`._union_find`) are compiled with numba, imported only when segmenting so
that readers stay quick to import.

Files (read and written by :mod:`tracklift.datasets.annotations`; every format stores the same JSON object, ``{"params": {...}, "sceneId": ..., "segIndices": [one
id per mesh vertex]}``): ScanNet ``<s>_vh_clean_2.0.010000.segs.json``, ScanNet++ ``scans/segments.json``,
tracklift ``superpoints.json`` beside ``mesh.ply``. Reading renumbers ids to 0..K-1 in increasing order of
the stored id (ids already 0..K-1 are kept as they are).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tracklift.errors import DataError
from tracklift.geometry.compiled import jit, prange, thread_budget
from tracklift.geometry.normals import vertex_normals

if TYPE_CHECKING:
    from tracklift.datasets.scene import Mesh

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SEGMENTATOR",
    "SegmentatorConfig",
    "compute_superpoints",
    "contiguous_ids",
    "estimate_normals",
    "felzenszwalb",
    "mesh_edges",
    "normal_edge_weights",
    "refine",
    "segment_mesh",
    "segment_points",
]


@dataclass(frozen=True)
class SegmentatorConfig:
    """Settings of the superpoint segmentator.

    Args:
        k_thresh: Felzenszwalb-Huttenlocher's ``k`` (ScanNet's ``kThresh``): larger gives larger segments.
            The threshold of a component ``C`` is ``w_last(C) + k_thresh / |C|`` (weights are in
            ``[0, 2]``, ``1 - cos`` of the normal angle).
        seg_min_verts: segments with fewer vertices are merged into a neighbour (ScanNet's
            ``segMinVerts``); 0 or 1 turns merging off.
        knn: neighbours per point of the point-cloud graph (also the normal-estimation neighbourhood).
    """

    k_thresh: float = 0.01
    seg_min_verts: int = 20
    knn: int = 16

    def params(self) -> dict:
        """The ``params`` object of a segments file (ScanNet's key names)."""
        return {"kThresh": self.k_thresh, "segMinVerts": self.seg_min_verts, "knn": self.knn}


DEFAULT_SEGMENTATOR = SegmentatorConfig()


# ------------------------------------------------------------------------------------------ the graph


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) float64 unit area-weighted vertex normals (the project's one implementation)."""
    return vertex_normals(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64))


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges of a triangle mesh.

    Args:
        faces: (F, 3) int vertex ids.

    Returns:
        (E, 2) int64, ``a < b`` in each row, rows sorted.
    """
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    return _unique_edges(e)


def _unique_edges(e: np.ndarray) -> np.ndarray:
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])  # np.sort(axis=1) is 20x slower
    e = np.stack([lo, hi], axis=1)[lo != hi]  # degenerate faces repeat a vertex
    if not len(e):
        return np.zeros((0, 2), np.int64)
    top = int(e.max()) + 1
    keys = np.sort(e[:, 0] * top + e[:, 1])  # one int64 key per edge
    # sort + neighbour comparison: np.unique on millions of keys was 100x slower than np.sort here
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return np.stack([keys // top, keys % top], axis=1)


def normal_edge_weights(
    points: np.ndarray, normals: np.ndarray, edges: np.ndarray, convexity: bool = True
) -> np.ndarray:
    """ScanNet's edge weights from vertex normals (see the module docstring).

    Args:
        points: (N, 3) positions.
        normals: (N, 3) unit normals (oriented when ``convexity``).
        edges: (E, 2) vertex ids.
        convexity: square the weight of convex edges (needs oriented normals); without it the normals'
            sign is ignored: ``1 - |n_a . n_b|``.

    Returns:
        (E,) float32 weights in ``[0, 2]``.
    """
    # float32 as in ScanNet's C++ (and half the memory traffic of gathering millions of rows)
    normals = np.asarray(normals, dtype=np.float32)
    a, b = edges[:, 0], edges[:, 1]
    na, nb = normals[a], normals[b]
    dot = np.einsum("ij,ij->i", na, nb)
    if not convexity:
        return 1.0 - np.abs(dot)
    w = 1.0 - dot
    points = np.asarray(points, dtype=np.float32)
    d = points[b] - points[a]
    # Convex when the far endpoint's normal points along the edge, in either of its two orientations.
    convex = (np.einsum("ij,ij->i", nb, d) > 0) | (np.einsum("ij,ij->i", na, -d) > 0)
    return np.where(convex, w * w, w)


# --------------------------------------------------------------------------- Felzenszwalb-Huttenlocher


def contiguous_ids(ids: np.ndarray) -> np.ndarray:
    """Renumber int ids to 0..K-1 in increasing order of the original id: (N,) int64."""
    ids = np.asarray(ids).reshape(-1)
    if not len(ids):
        return np.zeros(0, np.int64)
    order = np.argsort(ids)  # what np.unique(return_inverse=True) does, without its slow path
    s = ids[order]
    out = np.empty(len(ids), np.int64)
    out[order] = np.cumsum(np.concatenate([[False], s[1:] != s[:-1]]))
    return out


def felzenszwalb(
    n: int, edges: np.ndarray, weights: np.ndarray, k_thresh: float = 0.01, min_size: int = 20
) -> np.ndarray:
    """Felzenszwalb-Huttenlocher graph segmentation followed by merging of segments under ``min_size``.

    Args:
        n: number of nodes.
        edges: (E, 2) int node ids.
        weights: (E,) dissimilarities.
        k_thresh: FH's ``k``.
        min_size: segments smaller than this are merged across their lightest edges (<= 1: no merging).

    Returns:
        (n,) int64 segment id per node, 0..K-1 (numbered by each segment's root node id).
    """
    if n == 0:
        return np.zeros(0, np.int64)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    # Weights in float32 as ScanNet keeps them; non-negative float32 bit patterns order like the values,
    # so (bits << 32 | edge index) sorts by weight with ties in edge order, without a slow stable sort.
    w32 = np.maximum(np.asarray(weights, dtype=np.float32).reshape(-1), np.float32(0))
    key = (w32.view(np.uint32).astype(np.int64) << 32) | np.arange(len(w32), dtype=np.int64)
    order = np.sort(key) & 0xFFFFFFFF
    a = np.ascontiguousarray(edges[order, 0])
    b = np.ascontiguousarray(edges[order, 1])
    w = w32[order].astype(np.float64)
    from tracklift.datasets._union_find import fh_roots  # numba: imported only when segmenting

    return contiguous_ids(fh_roots(int(n), a, b, w, float(k_thresh), int(min_size)))


# ----------------------------------------------------------------------------------------- segmenters


def segment_mesh(
    vertices: np.ndarray,
    faces: np.ndarray | None,
    cfg: SegmentatorConfig = DEFAULT_SEGMENTATOR,
    source: str = "mesh",
) -> np.ndarray:
    """ScanNet's Segmentator on a triangle mesh.

    Args:
        vertices: (N, 3) metres.
        faces: (F, 3) int vertex ids; F must be > 0.
        cfg: segmentator settings.
        source: the mesh's URL, for the error message.

    Returns:
        (N,) int64 superpoint id per vertex, 0..K-1. Vertices on no face are segments of their own until
        merged (they have no edge, so they stay alone).

    Raises:
        DataError: the mesh has no faces (use :func:`segment_points` for point clouds).
    """
    if faces is None or len(faces) == 0:
        raise DataError(source, "the mesh has no faces: the mesh segmentator needs triangles")
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    normals = _vertex_normals(vertices, faces)
    edges = mesh_edges(faces)
    w = normal_edge_weights(vertices, normals, edges)
    return felzenszwalb(len(vertices), edges, w, cfg.k_thresh, cfg.seg_min_verts)


def _knn(points: np.ndarray, k: int) -> np.ndarray:
    """(N, k') neighbour ids (self excluded; k' = min(k, N - 1))."""
    from scipy.spatial import cKDTree

    k = min(int(k), len(points) - 1)
    if k <= 0:
        return np.zeros((len(points), 0), np.int64)
    _, idx = cKDTree(points).query(points, k=k + 1, workers=thread_budget())
    idx = np.asarray(idx, dtype=np.int64).reshape(len(points), k + 1)
    # Drop self (usually column 0, but duplicate points can swap places): keep k others per row.
    own = idx == np.arange(len(points))[:, None]
    own[own.sum(axis=1) == 0, -1] = True
    return idx[~own].reshape(len(points), k)


def estimate_normals(points: np.ndarray, k: int = 16, neighbours: np.ndarray | None = None) -> np.ndarray:
    """Unoriented unit normals: the least-variance direction of each point's neighbourhood.

    Args:
        points: (N, 3).
        k: neighbourhood size (the point itself is added).
        neighbours: optional (N, k) neighbour ids already computed.

    Returns:
        (N, 3) float64 unit normals (sign arbitrary).
    """
    p = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    nb = _knn(p, k) if neighbours is None else neighbours
    return _pca_normals(p, np.ascontiguousarray(nb, dtype=np.int64))


@jit(parallel=True)
def _pca_normals(p: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """The loop of :func:`estimate_normals`: per point, the covariance of it and its neighbours and the
    eigenvector of its smallest eigenvalue, in closed form (trigonometric eigenvalues of a symmetric 3x3
    matrix; the eigenvector is the largest cross product of two rows of ``C - lambda I``). One pass, no
    (N, k, 3) temporaries; points in parallel."""
    n, k = nb.shape
    out = np.zeros((n, 3))
    for i in prange(n):
        mx, my, mz = p[i, 0], p[i, 1], p[i, 2]
        for j in range(k):
            q = nb[i, j]
            mx += p[q, 0]
            my += p[q, 1]
            mz += p[q, 2]
        mx, my, mz = mx / (k + 1), my / (k + 1), mz / (k + 1)
        dx, dy, dz = p[i, 0] - mx, p[i, 1] - my, p[i, 2] - mz
        a00, a01, a02, a11, a12, a22 = dx * dx, dx * dy, dx * dz, dy * dy, dy * dz, dz * dz
        for j in range(k):
            q = nb[i, j]
            dx, dy, dz = p[q, 0] - mx, p[q, 1] - my, p[q, 2] - mz
            a00 += dx * dx
            a01 += dx * dy
            a02 += dx * dz
            a11 += dy * dy
            a12 += dy * dz
            a22 += dz * dz
        off = a01 * a01 + a02 * a02 + a12 * a12
        tr = (a00 + a11 + a22) / 3.0
        b00, b11, b22 = a00 - tr, a11 - tr, a22 - tr
        scale = np.sqrt((b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * off) / 6.0)
        if scale <= 1e-300:  # isotropic (or a single point): every direction is as good
            out[i, 2] = 1.0
            continue
        det = b00 * (b11 * b22 - a12 * a12) - a01 * (a01 * b22 - a12 * a02) + a02 * (a01 * a12 - b11 * a02)
        r = min(1.0, max(-1.0, det / (2.0 * scale**3)))
        lam = tr + 2.0 * scale * np.cos(np.arccos(r) / 3.0 + 2.0 * np.pi / 3.0)  # the smallest eigenvalue
        r0x, r0y, r0z = a00 - lam, a01, a02
        r1x, r1y, r1z = a01, a11 - lam, a12
        r2x, r2y, r2z = a02, a12, a22 - lam
        best = -1.0
        for c in range(3):  # the null vector of C - lam I: the longest cross product of two of its rows
            if c == 0:
                vx, vy, vz = r0y * r1z - r0z * r1y, r0z * r1x - r0x * r1z, r0x * r1y - r0y * r1x
            elif c == 1:
                vx, vy, vz = r0y * r2z - r0z * r2y, r0z * r2x - r0x * r2z, r0x * r2y - r0y * r2x
            else:
                vx, vy, vz = r1y * r2z - r1z * r2y, r1z * r2x - r1x * r2z, r1x * r2y - r1y * r2x
            nn = vx * vx + vy * vy + vz * vz
            if nn > best:
                best = nn
                out[i, 0], out[i, 1], out[i, 2] = vx, vy, vz
        if best <= 0.0:  # two equal smallest eigenvalues (points on a line): any perpendicular will do
            out[i, 0], out[i, 1], out[i, 2] = 0.0, 0.0, 1.0
            continue
        norm = np.sqrt(best)
        out[i, 0] /= norm
        out[i, 1] /= norm
        out[i, 2] /= norm
    return out


def segment_points(
    points: np.ndarray, cfg: SegmentatorConfig = DEFAULT_SEGMENTATOR, normals: np.ndarray | None = None
) -> np.ndarray:
    """The segmentator on a point cloud, over its k-nearest-neighbour graph.

    Args:
        points: (N, 3) metres.
        cfg: segmentator settings (``cfg.knn`` neighbours per point).
        normals: optional (N, 3) oriented unit normals; when given, weights use ScanNet's convexity step,
            otherwise normals are estimated from the neighbourhood and their sign is ignored.

    Returns:
        (N,) int64 superpoint id per point, 0..K-1.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    nb = _knn(p, cfg.knn)
    edges = _unique_edges(np.stack([np.repeat(np.arange(len(p)), nb.shape[1]), nb.reshape(-1)], axis=1))
    if normals is None:
        w = normal_edge_weights(p, estimate_normals(p, cfg.knn, nb), edges, convexity=False)
    else:
        w = normal_edge_weights(p, np.asarray(normals, dtype=np.float64).reshape(-1, 3), edges)
    return felzenszwalb(len(p), edges, w, cfg.k_thresh, cfg.seg_min_verts)


def compute_superpoints(
    mesh: Mesh, cfg: SegmentatorConfig = DEFAULT_SEGMENTATOR, source: str = "mesh"
) -> np.ndarray:
    """Superpoints of a scene mesh: the mesh segmentator, or the kNN variant when it has no faces.

    Args:
        mesh: the scene mesh (a point cloud when ``faces`` is None or empty).
        cfg: segmentator settings.
        source: the mesh's URL (logged).

    Returns:
        (N,) int64 superpoint id per vertex, 0..K-1.
    """
    if mesh.faces is None or len(mesh.faces) == 0:
        log.info("%s: no faces, superpoints from the %d-nearest-neighbour graph", source, cfg.knn)
        return segment_points(mesh.vertices, cfg)
    return segment_mesh(mesh.vertices, mesh.faces, cfg, source)


def refine(superpoints: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Split superpoints where GT values change inside them (the common refinement), ids 0..K-1.

    ScanNet's annotations are unions of segments, so a writer that stores GT as segments + groups must
    store segments that no GT boundary crosses. Superpoints that are already GT-pure come back unchanged
    (up to renumbering, none when their ids are 0..K-1).

    Args:
        superpoints: (N,) int ids.
        gt: (N,) int per-vertex GT.

    Returns:
        (N,) int64.
    """
    sp = np.asarray(superpoints, np.int64).reshape(-1)
    g = contiguous_ids(gt)
    # one int64 key per (superpoint, GT) pair, ordered like the pairs: faster than unique(axis=0)
    return contiguous_ids(sp * (int(g.max(initial=0)) + 1) + g)
