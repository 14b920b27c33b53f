"""Where the label stage's outputs live under its output URL: the one place that spells these paths.

::

    scenes/<scene_id>/pseudo_labels.npz   per-vertex ids, confidence, votes, seen (lifting.shards)
    scenes/<scene_id>/pseudo_labels.txt   the same ids, one per vertex (for ``tracklift render/eval``)
    scenes/<scene_id>/tracks.png          frames and their id maps (same colour = same id)
    scenes/<scene_id>/pseudo_labels.png   the 3D pseudo-labels from above
    scenes/<scene_id>/status.json         written LAST: marks the scene complete (stats, timings)
    shards/stage1/<scene_id>.parquet      single-view partial clouds + that view's independent masks
    shards/stage2/<scene_id>.parquet      multi-view chunks + tracked ids
    shards/stage3/<scene_id>.parquet      the full scene + lifted tracked ids
                                          (``.npz`` with ``--shard-format npz``; lifting.shards)
    pred/<scene_id>.txt + pred/pred_mask/ the pseudo-labels in ScanNet prediction format (scored by eval)
    manifest.json                         per scene: status, frames, skipped frames, timings, error

Training reads ``shards/stage{N}/``, evaluation ``pred/``, the main job ``scenes/<id>/pseudo_labels.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracklift import storage


@dataclass(frozen=True)
class OutputLayout:
    """The paths of one labeling output folder.

    Args:
        root: the output URL (``tracklift label --out``).
    """

    root: str

    def scene_dir(self, scene_id: str) -> str:
        return storage.join(self.root, "scenes", scene_id)

    def scene_file(self, scene_id: str, name: str) -> str:
        """``scenes/<scene_id>/<name>``, e.g. ``pseudo_labels.npz``."""
        return storage.join(self.root, "scenes", scene_id, name)

    def pseudo_labels(self, scene_id: str) -> str:
        """The per-vertex pseudo-labels (:func:`tracklift.lifting.read_pseudo_labels`)."""
        return self.scene_file(scene_id, "pseudo_labels.npz")

    def status(self, scene_id: str) -> str:
        """``status.json``: present and ``complete`` once every other output of the scene is written."""
        return self.scene_file(scene_id, "status.json")

    def shard_dir(self, stage: int) -> str:
        """The folder of one curriculum stage's shards, ``shards/stage{stage}``."""
        return storage.join(self.root, "shards", f"stage{stage}")

    def shard(self, stage: int, scene_id: str, suffix: str) -> str:
        """One scene's shard of ``stage``; ``suffix`` is ``.parquet`` or ``.npz``."""
        return storage.join(self.shard_dir(stage), scene_id + suffix)

    @property
    def pred_dir(self) -> str:
        """The pseudo-labels as ScanNet-format predictions (``tracklift eval --pred``)."""
        return storage.join(self.root, "pred")

    @property
    def manifest(self) -> str:
        return storage.join(self.root, "manifest.json")

    @property
    def scenes_dir(self) -> str:
        return storage.join(self.root, "scenes")

    def relative(self, url: str) -> str:
        """``url`` (under the root) as a path relative to it, as ``status.json`` records outputs."""
        prefix = self.root.rstrip("/") + "/"
        if not url.startswith(prefix):
            raise ValueError(f"{url} is not under {self.root}")
        return url[len(prefix) :]

    def url(self, relative: str) -> str:
        """The URL of a path relative to the root (the inverse of :meth:`relative`)."""
        return storage.join(self.root, *relative.split("/"))
