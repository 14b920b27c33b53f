"""Open-vocabulary retrieval: CLIP features per 3D instance and text queries over them.

``ClipConfig`` and the retrieval helpers import nothing heavy; the encoder and the feature extraction
(torch, open_clip) load on first use, so ``from tracklift.openvocab import ClipConfig`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracklift.openvocab.config import ClipConfig
from tracklift.openvocab.retrieval import (
    ClipFeatures,
    QueryHit,
    clip_features_url,
    query_predictions,
    rank_instances,
    read_clip_features,
    write_clip_features,
)

if TYPE_CHECKING:
    from tracklift.openvocab.encoder import ClipEncoder
    from tracklift.openvocab.features import View, instance_features, select_views
    from tracklift.openvocab.predict import fill_missing_features, write_scene_features

_LAZY = {
    "ClipEncoder": "tracklift.openvocab.encoder",
    "View": "tracklift.openvocab.features",
    "instance_features": "tracklift.openvocab.features",
    "select_views": "tracklift.openvocab.features",
    "fill_missing_features": "tracklift.openvocab.predict",
    "write_scene_features": "tracklift.openvocab.predict",
}

__all__ = [
    "ClipConfig",
    "ClipEncoder",
    "ClipFeatures",
    "QueryHit",
    "View",
    "clip_features_url",
    "fill_missing_features",
    "instance_features",
    "query_predictions",
    "rank_instances",
    "read_clip_features",
    "select_views",
    "write_clip_features",
    "write_scene_features",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tracklift.openvocab' has no attribute {name!r}")
