"""How well superpoints respect ground-truth instances: purity."""

from __future__ import annotations

import numpy as np

from tracklift.datasets.superpoints import contiguous_ids


def superpoint_purity(superpoints: np.ndarray, gt_instance: np.ndarray) -> float:
    """Share of annotated vertices whose superpoint's majority GT instance is their own.

    Unannotated vertices (GT 0) neither vote nor count: the majority of a superpoint is taken over its
    annotated vertices only, and the share is over annotated vertices only. A superpoint with no
    annotated vertex therefore plays no part. Ties between GT instances inside a superpoint do not change
    the result (the count of the majority is the same whichever instance wins). Purity 1 means every
    superpoint lies inside one GT instance (or the unannotated area); ScanNet's GT is built from its
    superpoints, so there it is 1 by construction.

    Args:
        superpoints: (N,) int superpoint id per vertex (any non-negative ids).
        gt_instance: (N,) int GT per vertex, 0 = unannotated (ScanNet's ``label*1000+inst`` or plain ids).

    Returns:
        Purity in [0, 1]; NaN when no vertex is annotated.
    """
    sp = np.asarray(superpoints).reshape(-1)
    gt = np.asarray(gt_instance, dtype=np.int64).reshape(-1)
    if sp.shape != gt.shape:
        raise ValueError(f"superpoints ({sp.shape[0]}) and GT ({gt.shape[0]}) differ in length")
    keep = gt != 0
    if not keep.any():
        return float("nan")
    s, g = contiguous_ids(sp[keep]), contiguous_ids(gt[keep])
    # Count each (superpoint, GT) pair, then keep each superpoint's largest count.
    pair = contiguous_ids(s * (int(g.max()) + 1) + g)
    counts = np.bincount(pair)
    sp_of_pair = np.zeros(len(counts), np.int64)
    sp_of_pair[pair] = s
    majority = np.zeros(int(s.max()) + 1, np.int64)
    np.maximum.at(majority, sp_of_pair, counts)
    return float(majority.sum() / keep.sum())
