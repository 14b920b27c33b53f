"""Text queries over instance features, and the feature files written beside predictions.

``<pred>/<scene>_clip.npz`` sits beside the ScanNet-format listing ``<pred>/<scene>.txt`` and holds:
  - ``features``: (K, D) float32, row k for the k-th instance of the listing (zero row = never seen);
  - ``masks``: (K,) str, the listing's mask file paths (relative to ``<pred>``), in listing order;
  - ``views``: (K,) int32 number of views each feature was averaged over;
  - ``model``, ``checkpoint``: the CLIP architecture and weights URL that produced the features
    (a query must embed its text with the same model).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np

from tracklift import storage
from tracklift.errors import DataError
from tracklift.openvocab.config import ClipConfig

__all__ = [
    "CLIP_SUFFIX",
    "ClipFeatures",
    "QueryHit",
    "clip_features_url",
    "listing_mask_files",
    "query_predictions",
    "rank_instances",
    "read_clip_features",
    "write_clip_features",
]

log = logging.getLogger(__name__)

CLIP_SUFFIX = "_clip.npz"


def rank_instances(features: np.ndarray, text_embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order instances by cosine similarity to a text embedding.

    Args:
        features: (K, D) instance features (zero rows = never seen).
        text_embedding: (D,) text embedding (need not be unit length, must not be zero).

    Returns:
        ``(order, similarity)``: (K,) int64 instance indices, most similar first, instances with a zero
        feature last (in index order); (K,) float32 cosine similarity per instance (0 for zero rows).
    """
    f = np.asarray(features, dtype=np.float64)
    t = np.asarray(text_embedding, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (K, D), got shape {f.shape}")
    if t.shape != (f.shape[1],):
        raise ValueError(f"text embedding must have shape ({f.shape[1]},), got {t.shape}")
    tn = np.linalg.norm(t)
    if not np.isfinite(tn) or tn == 0:
        raise ValueError("text embedding is zero or not finite")
    norms = np.linalg.norm(f, axis=1)
    seen = norms > 0
    sim = np.zeros(len(f))
    sim[seen] = (f[seen] @ t) / (norms[seen] * tn)
    # lexsort: the last key is the primary one; stable, so ties keep index order
    order = np.lexsort((-sim, ~seen)).astype(np.int64)
    return order, sim.astype(np.float32)


@dataclass
class ClipFeatures:
    """The content of one ``<scene>_clip.npz`` (see the module docstring)."""

    scene_id: str
    features: np.ndarray
    masks: list[str]
    views: np.ndarray
    model: str
    checkpoint: str


def clip_features_url(pred_url: str, scene_id: str) -> str:
    return storage.join(pred_url, scene_id + CLIP_SUFFIX)


def listing_mask_files(pred_url: str, scene_id: str) -> list[str]:
    """Mask paths (relative to ``pred_url``) of ``<pred_url>/<scene_id>.txt``, in listing order."""
    url = storage.join(pred_url, f"{scene_id}.txt")
    return [line.split()[0] for line in storage.read_text(url).splitlines() if line.strip()]


def write_clip_features(
    pred_url: str,
    scene_id: str,
    features: np.ndarray,
    masks: list[str],
    views: np.ndarray,
    cfg: ClipConfig,
) -> str:
    """Write ``<pred_url>/<scene_id>_clip.npz`` (atomically). Returns its URL.

    Args:
        pred_url: prediction folder.
        scene_id: scene name.
        features: (K, D) float32 per-instance features.
        masks: K mask paths, as in the listing.
        views: (K,) views per instance.
        cfg: the CLIP config that produced them (``model`` and ``checkpoint`` are recorded).
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) != len(masks) or len(views) != len(masks):
        raise ValueError(
            f"features {features.shape}, {len(masks)} mask files and {len(views)} view counts disagree"
        )
    buf = io.BytesIO()
    np.savez(
        buf,
        features=features,
        masks=np.asarray(masks, dtype=np.str_).reshape(len(masks)),
        views=np.asarray(views, dtype=np.int32),
        model=np.asarray(cfg.model),
        checkpoint=np.asarray(cfg.checkpoint or ""),
    )
    url = clip_features_url(pred_url, scene_id)
    storage.write_bytes(url, buf.getvalue())
    return url


def read_clip_features(url: str) -> ClipFeatures:
    """Read a ``<scene>_clip.npz``; a :class:`DataError` naming it when it is malformed."""
    name = storage.basename(url)
    if not name.endswith(CLIP_SUFFIX):
        raise DataError(url, f"CLIP feature files are named <scene>{CLIP_SUFFIX}")
    try:
        with np.load(io.BytesIO(storage.read_bytes(url)), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise DataError(url, f"not a CLIP feature file ({e})") from None
    missing = [k for k in ("features", "masks", "views", "model", "checkpoint") if k not in data]
    if missing:
        raise DataError(url, f"lacks {', '.join(missing)}")
    feats = data["features"]
    if feats.ndim != 2 or len(data["masks"]) != len(feats) or len(data["views"]) != len(feats):
        raise DataError(
            url, f"features {feats.shape}, {len(data['masks'])} masks and {len(data['views'])} views disagree"
        )
    if not np.all(np.isfinite(feats)):
        raise DataError(url, "features are not finite")
    return ClipFeatures(
        scene_id=name[: -len(CLIP_SUFFIX)],
        features=feats.astype(np.float32),
        masks=[str(m) for m in data["masks"]],
        views=data["views"].astype(np.int64),
        model=str(data["model"]),
        checkpoint=str(data["checkpoint"]),
    )


@dataclass(frozen=True)
class QueryHit:
    """One ranked instance: its scene, mask file (relative to the prediction folder) and similarity."""

    scene_id: str
    mask: str
    similarity: float
    seen: bool


def query_predictions(
    pred_url: str, text: str, encoder, top_k: int | None = None, scene_ids: list[str] | None = None
) -> list[QueryHit]:
    """Rank every predicted instance of a prediction folder against a text prompt.

    Args:
        pred_url: prediction folder holding ``<scene>_clip.npz`` files.
        text: the prompt.
        encoder: a :class:`~tracklift.openvocab.encoder.ClipEncoder` of the model the features came from.
        top_k: keep the best ``top_k`` (None = all).
        scene_ids: restrict to these scenes (default: every feature file in the folder).

    Returns:
        hits, most similar first; instances never seen come last.

    Raises:
        DataError: no feature file, or one made by another CLIP model or of another dimension.
    """
    names = [n for n in storage.listdir(pred_url) if n.endswith(CLIP_SUFFIX)]
    if scene_ids is not None:
        wanted = set(scene_ids)
        names = [n for n in names if n[: -len(CLIP_SUFFIX)] in wanted]
    if not names:
        raise DataError(pred_url, f"no CLIP feature files (<scene>{CLIP_SUFFIX}); run predict with --clip.*")
    t = encoder.encode_text([text])[0]
    rows: list[tuple[bool, float, str, int, str]] = []
    for name in names:
        url = storage.join(pred_url, name)
        cf = read_clip_features(url)
        if cf.model != encoder.name:
            raise DataError(
                url, f"features come from CLIP model {cf.model!r}, the query uses {encoder.name!r}"
            )
        if len(cf.features) and cf.features.shape[1] != len(t):
            raise DataError(url, f"features have dimension {cf.features.shape[1]}, the text {len(t)}")
        ckpt = getattr(encoder, "checkpoint", None)
        if cf.checkpoint and ckpt and cf.checkpoint != ckpt:
            log.warning("%s: features come from weights %s, the query uses %s", url, cf.checkpoint, ckpt)
        if not len(cf.features):
            continue
        _, sim = rank_instances(cf.features, t)
        seen = np.linalg.norm(cf.features, axis=1) > 0
        rows.extend((bool(seen[k]), float(sim[k]), cf.scene_id, k, cf.masks[k]) for k in range(len(sim)))
    rows.sort(key=lambda r: (not r[0], -r[1], r[2], r[3]))
    if top_k is not None:
        rows = rows[: max(0, int(top_k))]
    return [QueryHit(scene, mask, sim, seen) for seen, sim, scene, _, mask in rows]
