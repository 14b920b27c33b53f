"""Simple geometric baselines that need no learning: they calibrate what the evaluator's numbers mean."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tracklift.datasets.scene import Mesh


def mesh_connected_components(mesh: Mesh, min_vertices: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """One instance per connected component of the mesh's face graph.

    Args:
        mesh: triangle mesh (faces required).
        min_vertices: components smaller than this get id 0.

    Returns:
        ids: (N,) int64 per-vertex instance id (1..K, 0 = none).
        scores: (K,) float confidence of instance k+1 (its share of the largest component's size, so large
            coherent pieces rank first).
    """
    n = len(mesh.vertices)
    if mesh.faces is None or len(mesh.faces) == 0:
        raise ValueError("mesh_connected_components needs a mesh with faces")
    f = mesh.faces.astype(np.int64)
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    keep = np.flatnonzero(sizes >= min_vertices)
    remap = np.zeros(len(sizes), dtype=np.int64)
    remap[keep] = np.arange(1, len(keep) + 1)
    ids = remap[comp]
    scores = sizes[keep] / max(int(sizes.max()), 1)
    return ids, scores.astype(np.float64)
