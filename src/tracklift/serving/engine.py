"""Batched inference with a latency breakdown: the model side of the deployment, without Ray.

:meth:`SegmentEngine.predict_many` calls the model's own phases (:meth:`Segmenter.check_size`,
:meth:`~Segmenter.voxelize`, :meth:`~Segmenter.forward_voxels`, :meth:`~Segmenter.postprocess`) exactly as
:meth:`Segmenter.predict_batch` does, timing each, so a served prediction equals ``Segmenter.predict`` on
the same cloud, is refused for the same reasons, and the benchmark can say where the time goes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tracklift.models.batch import PointBatch
from tracklift.models.segmenter import Segmenter, SegmenterOutput
from tracklift.models.sparse import MAX_EXTENT
from tracklift.serving.codec import Cloud, RequestError
from tracklift.structures import Instances

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One cloud's instances and where its time went.

    Attributes:
        instances: (K, N) masks and (K,) scores over the cloud's points.
        timings_ms: ``voxelize``, ``forward`` (backbone + decoder), ``postprocess`` of the batch the
            cloud ran in, milliseconds.
        batch_size: clouds in that batch.
    """

    instances: Instances
    timings_ms: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1


class SegmentEngine:
    """A loaded :class:`Segmenter` answering batches of clouds.

    Args:
        model: the segmenter (any device; put in eval mode here).
        checkpoint: where it was loaded from (reported by ``/v1/model``).
        max_batch_points: most points fused into one forward pass (a replica's memory grows with it); a
            batch over it is split into consecutive groups, and a single larger cloud runs alone. None: no
            bound.
    """

    def __init__(self, model: Segmenter, checkpoint: str = "", max_batch_points: int | None = None):
        self.model = model.eval()
        self.checkpoint = checkpoint
        self.max_batch_points = max_batch_points
        self._sync = model.device.type == "cuda"

    @classmethod
    def from_checkpoint(
        cls, url: str, device: str = "cpu", backend: str | None = None, max_batch_points: int | None = None
    ) -> SegmentEngine:
        return cls(Segmenter.from_checkpoint(url, device=device, backend=backend), url, max_batch_points)

    def info(self) -> dict:
        """What ``GET /v1/model`` reports about the network."""
        import dataclasses

        cfg = self.model.config
        return {
            "checkpoint": self.checkpoint,
            "backend": self.model.backend.name,
            "device": str(self.model.device),
            "voxel_size_m": self.model.voxel_size,
            "model_config": dataclasses.asdict(cfg) if cfg is not None else None,
        }

    def check_extent(self, cloud: Cloud, source: str) -> None:
        """413 when the cloud spans more voxels than the sparse hash can address (checked per request,
        so one oversized cloud never fails the batch it would have joined)."""
        span = cloud.points.max(axis=0).astype(np.float64) - cloud.points.min(axis=0)
        voxels = int(np.floor(span.max() / self.model.voxel_size)) + 1
        if voxels > MAX_EXTENT:
            raise RequestError(
                source,
                f"the cloud spans {span.max():.1f} m, at most {MAX_EXTENT * self.model.voxel_size:.0f} m "
                f"at this model's {self.model.voxel_size} m voxels",
                413,
            )

    def check(self, cloud: Cloud, source: str) -> None:
        """Every refusal the model would give this cloud, before it joins a batch: the extent (413) and
        :meth:`Segmenter.check_size` (``inference.max_voxels``; raises ``TooManyVoxels``, a ValueError)."""
        self.check_extent(cloud, source)
        self.model.check_size(PointBatch.from_arrays(cloud.points, cloud.colors))

    def groups(self, clouds: list[Cloud]) -> list[list[Cloud]]:
        """Consecutive groups of at most ``max_batch_points`` points in total (a larger cloud alone)."""
        if self.max_batch_points is None:
            return [clouds]
        out: list[list[Cloud]] = []
        total = 0
        for c in clouds:
            n = len(c.points)
            if out and total + n <= self.max_batch_points:
                out[-1].append(c)
                total += n
            else:
                out.append([c])
                total = n
        return out

    def _clock(self) -> float:
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    @torch.no_grad()
    def _run(self, clouds: list[Cloud]) -> list[Prediction]:
        m = self.model
        t0 = self._clock()
        batch = PointBatch.collate([{"points": c.points, "colors": c.colors} for c in clouds])
        m.check_size(batch)  # the same refusal as Segmenter.predict_batch
        batch = batch.to(m.device)
        vox = m.voxelize(batch)
        t1 = self._clock()
        decoded = m.forward_voxels(vox, all_stages=False)
        t2 = self._clock()
        out = m.postprocess(SegmenterOutput(decoded, vox), batch)
        t3 = self._clock()
        timings = {
            "voxelize": (t1 - t0) * 1e3,
            "forward": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        return [Prediction(inst, dict(timings), len(clouds)) for inst in out]

    def predict_many(self, clouds: list[Cloud]) -> list[Prediction | Exception]:
        """Segment several clouds in one forward pass.

        Args:
            clouds: validated clouds (see :func:`tracklift.serving.codec.check_cloud`).

        Returns:
            one :class:`Prediction` per cloud, in order. Clouds run in groups of at most
            ``max_batch_points`` points; if a fused pass fails, each of its clouds is retried alone and a
            cloud that still fails gets its exception in its slot (the others are answered).
        """
        results: list[Prediction | Exception] = []
        for group in self.groups(clouds):
            results.extend(self._predict_group(group))
        return results

    def _predict_group(self, clouds: list[Cloud]) -> list[Prediction | Exception]:
        if not clouds:
            return []
        try:
            return list(self._run(clouds))
        except Exception as e:
            if len(clouds) == 1:
                return [e]
            log.warning("batch of %d failed (%s: %s); retrying one by one", len(clouds), type(e).__name__, e)
        results: list[Prediction | Exception] = []
        for c in clouds:
            try:
                results.append(self._run([c])[0])
            except Exception as e:  # reported to that request only
                results.append(e)
        return results
