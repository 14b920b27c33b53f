"""Typed containers passed between stages: instance predictions over the points of one scene."""

from __future__ import annotations

from typing import Any

import numpy as np


class Instances:
    """K instance predictions over N points (mesh vertices or a point cloud), detectron2-style.

    Indexable like an array of instances: ``inst[inst.scores > 0.5]``, ``inst[[2, 0]]``, ``inst[1:3]``,
    ``inst[0]`` (a single instance stays an ``Instances`` of length 1).

    Args:
        masks: (K, N) bool, ``masks[k, i]`` is True when point i belongs to instance k.
        scores: (K,) float confidences (finite); default all 1.0.
        labels: optional (K,) int class ids (class-agnostic predictions leave it None).

    Raises:
        TypeError: masks are not boolean.
        ValueError: shapes disagree or scores are not finite.
    """

    def __init__(self, masks: np.ndarray, scores: np.ndarray | None = None, labels: np.ndarray | None = None):
        masks = np.asarray(masks)
        if masks.ndim != 2:
            raise ValueError(f"masks must be 2-D (K, N), got shape {masks.shape}")
        if masks.dtype != np.bool_:
            raise TypeError(f"masks must be bool, got {masks.dtype} (threshold them first, e.g. masks > 0.5)")
        k = masks.shape[0]
        if scores is None:
            scores = np.ones(k, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (k,):
            raise ValueError(
                f"scores must have shape ({k},) to match masks {masks.shape}, got {scores.shape}"
            )
        if not np.all(np.isfinite(scores)):
            raise ValueError("scores must be finite")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (k,):
                raise ValueError(
                    f"labels must have shape ({k},) to match masks {masks.shape}, got {labels.shape}"
                )
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise TypeError(f"labels must be integers, got {labels.dtype}")
            labels = labels.astype(np.int64)
        self.masks: np.ndarray = masks
        self.scores: np.ndarray = scores
        self.labels: np.ndarray | None = labels

    @classmethod
    def empty(cls, num_points: int) -> Instances:
        """No instances over ``num_points`` points."""
        return cls(np.zeros((0, int(num_points)), dtype=bool), np.zeros(0), None)

    @classmethod
    def from_ids(cls, ids: np.ndarray, scores: np.ndarray | None = None) -> Instances:
        """One instance per distinct non-zero id of a per-point id map.

        Args:
            ids: (N,) int instance id per point, 0 = no instance.
            scores: optional (K,) confidences, one per distinct non-zero id in ascending id order;
                default 1.0 each.

        Returns:
            Instances whose k-th mask is ``ids == sorted_nonzero_ids[k]``.
        """
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1-D (N,), got shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got {ids.dtype}")
        uniq, inverse = np.unique(ids, return_inverse=True)
        keep = uniq != 0
        # Row r of the mask matrix is the r-th non-zero id; built by one comparison, no loop over ids.
        row_of = np.cumsum(keep) - 1
        masks = np.zeros((int(keep.sum()), ids.shape[0]), dtype=bool)
        on = keep[inverse]
        masks[row_of[inverse[on]], np.nonzero(on)[0]] = True
        return cls(masks, scores)

    def to_ids(self) -> np.ndarray:
        """(N,) int64 per-point instance index 1..K (position in this container + 1), 0 = none.

        Where instances overlap the highest score wins; equal scores go to the earlier instance.
        """
        ids = np.zeros(self.num_points, dtype=np.int64)
        # Paint from the weakest to the strongest so the strongest is painted last.
        order = np.lexsort((-np.arange(len(self)), self.scores))
        for k in order:
            ids[self.masks[k]] = k + 1
        return ids

    @property
    def num_points(self) -> int:
        return int(self.masks.shape[1])

    @property
    def sizes(self) -> np.ndarray:
        """(K,) int64 number of points in each mask."""
        return self.masks.sum(axis=1, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def __getitem__(self, item: Any) -> Instances:
        if isinstance(item, (int, np.integer)):
            if not -len(self) <= item < len(self):
                raise IndexError(f"instance index {item} out of range for {len(self)} instances")
            item = [int(item)]
        if isinstance(item, np.ndarray) and item.dtype == np.bool_ and item.shape != (len(self),):
            raise IndexError(f"boolean index of shape {item.shape} for {len(self)} instances")
        labels = None if self.labels is None else self.labels[item]
        return Instances(self.masks[item], self.scores[item], labels)

    def __repr__(self) -> str:
        return f"Instances(num_instances={len(self)}, num_points={self.num_points})"
