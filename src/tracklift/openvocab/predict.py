"""CLIP features for predictions on disk: written beside a scene's prediction files, or filled in later."""

from __future__ import annotations

import numpy as np

from tracklift import storage
from tracklift.datasets.scene import Scene
from tracklift.errors import DataError
from tracklift.openvocab.config import ClipConfig
from tracklift.openvocab.features import ImageEncoder, features_from_views, select_views
from tracklift.openvocab.retrieval import clip_features_url, listing_mask_files, write_clip_features
from tracklift.structures import Instances

__all__ = ["fill_missing_features", "write_scene_features"]


def write_scene_features(
    pred_url: str, scene: Scene, instances: Instances, encoder: ImageEncoder, cfg: ClipConfig
) -> str:
    """Compute the instances' CLIP features and write ``<pred_url>/<scene>_clip.npz``.

    Args:
        pred_url: prediction folder that already holds the scene's listing ``<scene>.txt`` for ``instances``
            (same order, as :func:`tracklift.evaluation.write_predictions` writes it).
        scene: the scan.
        instances: K masks over the mesh vertices.
        encoder: the CLIP encoder.
        cfg: views and crops.

    Returns:
        URL of the feature file.
    """
    masks = listing_mask_files(pred_url, scene.scene_id)
    if len(masks) != len(instances):
        raise DataError(
            storage.join(pred_url, f"{scene.scene_id}.txt"),
            f"lists {len(masks)} masks, {len(instances)} instances were given",
        )
    views = select_views(scene, instances, cfg)
    feats = features_from_views(scene, views, encoder, cfg)
    counts = np.array([len(v) for v in views], dtype=np.int32)
    return write_clip_features(pred_url, scene.scene_id, feats, masks, counts, cfg)


def fill_missing_features(
    pred_url: str, scenes_url: str, encoder: ImageEncoder, cfg: ClipConfig
) -> list[str]:
    """Write feature files for the scenes that have a prediction listing but no ``<scene>_clip.npz``.

    Args:
        pred_url: prediction folder.
        scenes_url: corpus root, scene folder or list file (as ``tracklift predict --scenes``).
        encoder: the CLIP encoder.
        cfg: views and crops.

    Returns:
        ids of the scenes whose features were computed.
    """
    from tracklift.datasets.formats import list_scenes, open_scene
    from tracklift.evaluation import read_predictions

    done = []
    for url in list_scenes(scenes_url):
        scene = open_scene(url)
        listing = storage.join(pred_url, f"{scene.scene_id}.txt")
        if not storage.exists(listing) or storage.exists(clip_features_url(pred_url, scene.scene_id)):
            continue
        inst = read_predictions(pred_url, scene.scene_id, len(scene.vertices))
        write_scene_features(pred_url, scene, inst, encoder, cfg)
        done.append(scene.scene_id)
    return done
