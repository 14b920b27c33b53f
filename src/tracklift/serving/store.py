"""Segmentation results kept for ``/v1/query`` (a small LRU cache) and CLIP retrieval over them.

Scene keys are content addresses: a cloud's key hashes its points and colours, a stored scene's key its
URL, so resending the same input finds (and refreshes) the same entry. The cache lives in one replica:
with several replicas a ``scene_key`` may miss, and ``/v1/query`` with ``scene_url`` is the portable form.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from tracklift.datasets.scene import Scene
from tracklift.openvocab.config import ClipConfig
from tracklift.serving.codec import Cloud, RequestError
from tracklift.structures import Instances


def cloud_key(cloud: Cloud) -> str:
    """Content key of an uploaded cloud: ``cloud-<24 hex>``."""
    h = hashlib.blake2b(digest_size=12)
    for arr in (cloud.points, cloud.colors):
        a = np.ascontiguousarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return "cloud-" + h.hexdigest()


def scene_key(url: str) -> str:
    """Key of a scene segmented from its URL: ``scene-<24 hex>``."""
    return "scene-" + hashlib.blake2b(url.encode("utf-8"), digest_size=12).hexdigest()


@dataclass
class Entry:
    """One cached segmentation.

    Attributes:
        key: its scene key.
        instances: the prediction.
        scene: the lazily-read scene for ``scene_url`` requests (frames needed by CLIP), else None.
        features: (K, D) float32 CLIP features of the instances once computed.
    """

    key: str
    instances: Instances
    scene: Scene | None = None
    features: np.ndarray | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (the (K, N) masks dominate)."""
        return int(self.instances.masks.nbytes + (0 if self.features is None else self.features.nbytes))


class ResultCache:
    """A bounded LRU map ``scene_key → Entry`` (thread-safe: features are computed in worker threads).

    Args:
        capacity: entries kept; the least recently used ones are dropped beyond it.
        max_bytes: also drop the least recently used entries while the kept masks exceed this many bytes
            (the newest entry is always kept); None = no byte bound.
    """

    def __init__(self, capacity: int, max_bytes: int | None = None):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, entry: Entry) -> None:
        with self._lock:
            self._items[entry.key] = entry
            self._items.move_to_end(entry.key)
            while len(self._items) > self.capacity or (
                self.max_bytes is not None and len(self._items) > 1 and self.nbytes > self.max_bytes
            ):
                self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._items.values())

    def get(self, key: str) -> Entry | None:
        """The entry (now most recently used), or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._items)


class ClipRetrieval:
    """CLIP features per instance and text ranking, through :mod:`tracklift.openvocab`.

    Args:
        config: the deployment's ``ServeConfig.clip``.
    """

    def __init__(self, config: ClipConfig):
        from tracklift.openvocab.encoder import ClipEncoder

        self.config = config
        self.encoder = ClipEncoder.from_config(config)

    def info(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self.config)

    def ensure_features(self, entry: Entry) -> np.ndarray:
        """The entry's (K, D) features, computed once (under the entry's lock) from its scene's frames.

        Raises:
            RequestError: 422 when the entry came from an uploaded cloud (no images, no poses).
        """
        if entry.scene is None:
            raise RequestError(
                "scene_key",
                "this result came from an uploaded point cloud without RGB frames and poses; CLIP features "
                "need them: segment a stored scene with {'scene_url': ...} to query it",
                422,
            )
        with entry.lock:
            if entry.features is None:
                from tracklift.openvocab import instance_features

                entry.features = np.asarray(
                    instance_features(entry.scene, entry.instances, self.encoder, self.config), np.float32
                )
            return entry.features

    def rank(self, entry: Entry, text: str, top_k: int) -> list[dict]:
        """The ``top_k`` instances most similar to ``text``: dicts with ``id`` (1-based, as in the
        segmentation response), ``similarity``, ``seen`` (False: in no frame, similarity 0), ``score``,
        ``num_points`` and ``point_indices``."""
        from tracklift.openvocab import rank_instances

        feats = self.ensure_features(entry)
        if len(feats) == 0:
            return []
        text_emb = self.encoder.encode_text([text])[0]
        order, sim = rank_instances(feats, text_emb)
        out = []
        for k in np.asarray(order)[:top_k].tolist():
            mask = entry.instances.masks[k]
            out.append(
                {
                    "id": int(k) + 1,
                    "similarity": float(sim[k]),  # indexed by instance, not by rank
                    "seen": bool(np.any(feats[k])),  # a zero feature: no frame showed the instance
                    "score": float(entry.instances.scores[k]),
                    "num_points": int(mask.sum()),
                    "point_indices": np.flatnonzero(mask).tolist(),
                }
            )
        return out
