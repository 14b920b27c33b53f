"""Small synthetic scenes for the model tests."""

from __future__ import annotations

import numpy as np


def boxes_scene(n_per_box: int = 150, seed: int = 0, centers=None, labelled=True):
    """A trivially separable scene: points in a few well-separated 0.5 m boxes, one instance per box.

    Returns:
        (points (N, 3) float32 metres, colors (N, 3) uint8, ids (N,) int64 with ids 1..K).
    """
    rng = np.random.default_rng(seed)
    centers = centers or [(0.0, 0.0, 0.0), (1.6, 0.0, 0.0), (0.0, 1.6, 0.0), (1.6, 1.6, 0.6)]
    pts, ids, cols = [], [], []
    for k, c in enumerate(centers):
        pts.append(rng.uniform(-0.25, 0.25, (n_per_box, 3)) + np.asarray(c))
        ids.append(np.full(n_per_box, k + 1))
        cols.append(np.clip(rng.normal(60 + 45 * k, 10, (n_per_box, 3)), 0, 255))
    return (
        np.concatenate(pts).astype(np.float32),
        np.concatenate(cols).astype(np.uint8),
        np.concatenate(ids).astype(np.int64),
    )
