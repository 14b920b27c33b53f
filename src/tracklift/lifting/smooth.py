"""Spatial smoothing of pseudo-labels over the mesh graph.

Vertices that no frame labelled confidently (unlabelled, or confidence under a threshold) take the label
held by a strict majority of their mesh neighbours (vertices sharing an edge). This fills pin-holes left by
grazing views and depth dropouts and cleans isolated wrong votes at object borders; it never overrides a
confident vertex. Iterating grows labels by one ring of vertices per iteration at most.
"""

from __future__ import annotations

import numpy as np

from tracklift.lifting.vote import PseudoLabels, group_winners


def mesh_edges(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed, de-duplicated vertex adjacency of a triangle mesh.

    Args:
        faces: (F, 3) int vertex indices.
        n_vertices: N.

    Returns:
        ``(src, dst)`` (E,) int64 each, both directions of every edge, sorted by ``src``.
    """
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    keep = a != b  # degenerate faces
    keys = np.unique(a[keep] * n_vertices + b[keep])
    return keys // n_vertices, keys % n_vertices


def smooth_labels(
    labels: PseudoLabels,
    faces: np.ndarray,
    min_confidence: float = 0.5,
    majority: float = 0.5,
    iterations: int = 1,
) -> PseudoLabels:
    """Relabel unsure vertices by their neighbours' majority.

    Args:
        labels: the voted labels (N vertices).
        faces: (F, 3) mesh triangles.
        min_confidence: vertices with ``ids == 0`` or ``confidence < min_confidence`` may be relabelled.
        majority: the neighbours' winning label must be held by more than this share of *all* the
            vertex's neighbours (labelled or not), so a vertex on the border of labelled and unlabelled
            regions stays unlabelled.
        iterations: smoothing passes.

    Returns:
        new labels; a relabelled vertex's confidence becomes the agreeing neighbours' mean confidence times
        their share of its neighbours; ``votes`` and ``seen`` are unchanged.
    """
    n = len(labels)
    src, dst = mesh_edges(faces, n)
    degree = np.bincount(src, minlength=n)
    ids, conf = labels.ids.copy(), labels.confidence.copy()
    for _ in range(max(0, iterations)):
        unsure = (ids == 0) | (conf < min_confidence)
        sel = unsure[src] & (ids[dst] != 0)
        if not sel.any():
            break
        s, d = src[sel], dst[sel]
        v, lab, cnt = group_winners(s, ids[d])
        # mean confidence of the agreeing neighbours
        agree = ids[d] == lab[np.searchsorted(v, s)]
        conf_sum = np.bincount(s[agree], weights=conf[d[agree]], minlength=n)[v]
        share = cnt / degree[v]
        take = share > majority
        v, lab = v[take], lab[take]
        new_conf = (conf_sum[take] / cnt[take] * share[take]).astype(np.float32)
        changed = ids[v] != lab
        ids[v[changed]] = lab[changed]
        conf[v[changed]] = new_conf[changed]
        if not changed.any():
            break
    return PseudoLabels(ids, conf, labels.votes, labels.seen, labels.score_half_vertices)
