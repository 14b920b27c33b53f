"""The task wrapper: voxelize → sparse UNet → query decoder; losses in training, instances at inference.

Two decoder levels (``ModelConfig.decoder_level``): ``"point"`` decodes masks over the finest voxels
(:class:`~tracklift.models.decoder.QueryDecoder`); ``"superpoint"`` pools the finest backbone features per
superpoint and decodes masks over superpoints
(:class:`~tracklift.models.superpoint_decoder.SuperpointDecoder`). Everything after the decoder works on
"mask units" (voxels or superpoints): each point takes its unit's logit, so the losses (per-point BCE and
Dice, computed exactly as unit-level sums weighted by point counts), the matching and the post-processing
are the same code for both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from tracklift.models.backends.registry import get_backend
from tracklift.models.batch import PointBatch
from tracklift.models.checkpoint import apply_weights, read_checkpoint
from tracklift.models.config import InferenceConfig, ModelConfig, SuperpointConfig
from tracklift.models.criterion import InstanceCriterion
from tracklift.models.decoder import DecoderOutput, QueryDecoder
from tracklift.models.inference import scene_instances
from tracklift.models.losses import per_unit, scene_targets
from tracklift.models.sparse import Voxelization
from tracklift.models.superpoint_decoder import SuperpointDecoder
from tracklift.models.superpoints import BatchSuperpoints, batch_superpoints, input_stats, pool_superpoints
from tracklift.models.unet import SparseUNet
from tracklift.structures import Instances


class TooManyVoxels(ValueError):
    """A cloud occupies more voxels than ``InferenceConfig.max_voxels`` allows (raised before the forward
    pass; a ValueError like the other refusals of :meth:`Segmenter.predict`)."""


@dataclass
class SegmenterOutput:
    """Raw predictions for a batch.

    Attributes:
        decoder: every decoder stage's mask logits (over each scene's mask units: voxels or superpoints)
            and objectness logits.
        voxels: the voxelization (point ↔ voxel maps, voxel offsets per scene; the batch's superpoints when
            the model decodes per superpoint).
    """

    decoder: DecoderOutput
    voxels: Voxelization

    def scene_point2voxel(self, b: int, batch: PointBatch) -> torch.Tensor:
        """(N_b,) int64 scene-local voxel index of each point of scene b."""
        start = int(self.voxels.tensor.batch_offsets()[b])
        return self.voxels.point2voxel[batch.slices()[b]] - start

    def scene_point2unit(self, b: int, batch: PointBatch) -> torch.Tensor:
        """(N_b,) int64 scene-local mask unit of each point of scene b: its superpoint when the masks are
        per superpoint, else its voxel (the column of ``decoder.mask_logits[i][b]`` it takes)."""
        sp: BatchSuperpoints | None = self.voxels.superpoints
        if sp is None:
            return self.scene_point2voxel(b, batch)
        return sp.scene_ids(b, batch.slices()[b])


class Segmenter(nn.Module):
    """Class-agnostic 3D instance segmenter.

    Args:
        backbone: the sparse UNet (input channels 3 for RGB, 6 with xyz).
        decoder: the query decoder: a :class:`QueryDecoder` (masks per voxel) or a
            :class:`SuperpointDecoder` (masks per superpoint).
        criterion: matching and losses.
        voxel_size: voxel side, metres.
        use_xyz: append scene-centred xyz (metres) to the RGB features.
        inference: thresholds for :meth:`predict`.
        config: the config the parts were built from (needed to save checkpoints).
    """

    def __init__(
        self,
        backbone: SparseUNet,
        decoder: QueryDecoder | SuperpointDecoder,
        criterion: InstanceCriterion,
        voxel_size: float,
        use_xyz: bool = True,
        inference: InferenceConfig | None = None,
        config: ModelConfig | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.criterion = criterion
        self.voxel_size = float(voxel_size)
        self.use_xyz = use_xyz
        self.inference = inference or InferenceConfig()
        self.config = config
        self.num_points = config.loss.num_points if config is not None else None
        self.mask_unit_weight = config.loss.mask_unit_weight if config is not None else "points"
        self.backend = backbone.stem.conv.backend
        self.superpoint_level = isinstance(decoder, SuperpointDecoder)
        self.superpoint_cfg = config.superpoints if config is not None else SuperpointConfig()
        self.superpoint_stats = self.superpoint_level and config is not None and config.superpoint_stats

    @classmethod
    def from_config(cls, cfg: ModelConfig, backend: str | None = None) -> Segmenter:
        """Build from a :class:`ModelConfig`; ``backend`` overrides ``cfg.backend``."""
        if backend is not None:
            cfg = dataclasses.replace(cfg, backend=backend)
        cfg.validate()
        be = get_backend(cfg.backend)
        backbone = SparseUNet.from_config(cfg.unet, cfg.in_channels, be)
        if cfg.decoder_level == "superpoint":
            extra = 2 * cfg.in_channels if cfg.superpoint_stats else 0
            decoder = SuperpointDecoder.from_config(cfg.decoder, backbone.widths[0], extra)
        else:
            decoder = QueryDecoder.from_config(cfg.decoder, backbone.widths)
        return cls(
            backbone,
            decoder,
            InstanceCriterion.from_config(cfg.loss),
            cfg.voxel_size,
            cfg.use_xyz,
            cfg.inference,
            cfg,
        )

    @property
    def device(self) -> torch.device:
        return self.decoder.query_feat.weight.device

    def input_features(self, batch: PointBatch) -> torch.Tensor:
        """(N, 3 or 6) point features: RGB mapped to [-1, 1], then optionally xyz minus the scene mean."""
        feats = [batch.color * 2.0 - 1.0]
        if self.use_xyz:
            centred = torch.empty_like(batch.coord)
            for sl in batch.slices():
                centred[sl] = batch.coord[sl] - batch.coord[sl].mean(0)
            feats.append(centred)
        return torch.cat(feats, dim=1)

    # Inference phases, public so that serving runs (and times) exactly these steps and checks.

    def voxelize(self, batch: PointBatch) -> Voxelization:
        """Phase 1: quantize the batch to voxels (``batch`` on the model's device); features per
        :meth:`input_features`. A superpoint-level model also attaches the batch's superpoints
        (:meth:`superpoints`: the given ones, or the segmentator's for clouds without), with their input
        statistics when ``config.superpoint_stats``."""
        feats = self.input_features(batch)
        vox = self.voxelize_points(batch, feats)
        if self.superpoint_level:
            self.attach_superpoints(vox, batch, feats)
        return vox

    def attach_superpoints(
        self, vox: Voxelization, batch: PointBatch, feats: torch.Tensor | None = None
    ) -> None:
        """Phase 1 for a superpoint-level model: ``vox.superpoints`` (:meth:`superpoints`), with their
        input statistics when ``config.superpoint_stats``; ``feats``: :meth:`input_features`, if computed."""
        sp = self.superpoints(batch)
        if self.superpoint_stats:
            sp.input_stats = input_stats(self.input_features(batch) if feats is None else feats, sp)
        vox.superpoints = sp

    def voxelize_points(self, batch: PointBatch, feats: torch.Tensor | None = None) -> Voxelization:
        """The voxelization alone (phase 1 without superpoints); ``feats``: :meth:`input_features`, if
        already computed."""
        feats = self.input_features(batch) if feats is None else feats
        return self.backend.voxelize(batch.coord, batch.offset, feats, self.voxel_size)

    def superpoints(self, batch: PointBatch) -> BatchSuperpoints:
        """The batch's superpoints numbered batch-wide; scenes without any get
        :func:`~tracklift.models.superpoints.cloud_superpoints` (``config.superpoints``)."""
        return batch_superpoints(batch.coord, batch.slices(), batch.superpoints, self.superpoint_cfg)

    def forward_voxels(self, vox: Voxelization, all_stages: bool = True) -> DecoderOutput:
        """Phase 2: backbone and query decoder over the voxels (:meth:`decode`); ``all_stages=False`` keeps
        only the final decoder predictions."""
        return self.decode(self.backbone(vox.tensor), vox, all_stages)

    def pool(self, levels: list, vox: Voxelization) -> torch.Tensor:
        """(S, 2 * C0) mean and max of the finest backbone features over each superpoint's points, then
        the superpoint's input statistics when ``config.superpoint_stats``."""
        sp = vox.superpoints
        if sp is None:
            raise ValueError("superpoint decoding needs vox.superpoints: voxelize with Segmenter.voxelize")
        pooled = pool_superpoints(levels[0].feats[vox.point2voxel], sp)
        if not self.superpoint_stats:
            return pooled
        if sp.input_stats is None:
            raise ValueError("this model uses superpoint input statistics: voxelize with Segmenter.voxelize")
        return torch.cat([pooled, sp.input_stats.to(pooled.dtype)], dim=1)

    def decode(self, levels: list, vox: Voxelization, all_stages: bool = True) -> DecoderOutput:
        """The decoder on the backbone's levels: over voxels, or over superpoints after :meth:`pool`."""
        if self.superpoint_level:
            return self.decoder(self.pool(levels, vox), vox.superpoints, all_stages)
        return self.decoder(levels, all_stages)

    def postprocess(self, out: SegmenterOutput, batch: PointBatch) -> list[Instances]:
        """Phase 3: each scene's final-stage logits → :class:`Instances` over its points (thresholds of
        ``self.inference``; scoring and duplicate removal on the mask units, voxels or superpoints)."""
        return [
            scene_instances(
                out.decoder.mask_logits[-1][b],
                out.decoder.objectness[-1][b],
                out.scene_point2unit(b, batch),
                self.inference,
            )
            for b in range(batch.num_scenes)
        ]

    def run(self, batch: PointBatch, all_stages: bool = True) -> SegmenterOutput:
        """Voxelize, run the backbone and the decoder (``batch`` must be on the model's device);
        ``all_stages=False`` keeps only the final decoder predictions."""
        vox = self.voxelize(batch)
        return SegmenterOutput(self.forward_voxels(vox, all_stages), vox)

    def losses(self, out: SegmenterOutput, batch: PointBatch) -> dict[str, torch.Tensor]:
        """Weighted loss dict (sum the values for the training loss). Needs ``batch.instance``."""
        if batch.instance is None:
            raise ValueError("the batch has no instance targets")
        targets = [
            scene_targets(
                out.scene_point2unit(b, batch),
                batch.instance[sl],
                self.num_points,
                dtype=out.decoder.objectness[0].dtype,
            )
            for b, sl in enumerate(batch.slices())
        ]
        if self.mask_unit_weight == "equal":
            targets = [per_unit(t) for t in targets]
        return self.criterion(out.decoder, targets)

    def forward(self, batch: PointBatch) -> dict[str, torch.Tensor] | SegmenterOutput:
        """Training mode with targets: the loss dict (``loss_mask``, ``loss_dice``, ``loss_objectness`` and
        their ``_<stage>`` auxiliary versions). Otherwise the raw :class:`SegmenterOutput`."""
        batch = batch.to(self.device)
        out = self.run(batch)
        if self.training and batch.instance is not None:
            return self.losses(out, batch)
        return out

    @torch.inference_mode()
    def predict_batch(self, batch: PointBatch) -> list[Instances]:
        """Instances of every scene of a batch (runs in eval mode, restores the previous mode)."""
        self.check_size(batch)
        was_training = self.training
        self.eval()
        try:
            batch = batch.to(self.device)
            return self.postprocess(self.run(batch, all_stages=False), batch)
        finally:
            self.train(was_training)

    def check_size(self, batch: PointBatch) -> None:
        """Refuse a cloud whose voxel count exceeds ``inference.max_voxels`` before it exhausts memory.

        Raises:
            TooManyVoxels: (a ValueError) naming the scene, its point and voxel counts, the limit and what
                to do.
        """
        limit = self.inference.max_voxels
        if limit is None:
            return
        for b, rows in enumerate(batch.slices()):
            cells = torch.floor(batch.coord[rows] / self.voxel_size).to(torch.int64)
            n_vox = int(torch.unique(cells, dim=0).shape[0]) if len(cells) > limit else len(cells)
            if n_vox > limit:
                raise TooManyVoxels(
                    f"scene {b} of the batch: {len(cells)} points occupy {n_vox} voxels of {self.voxel_size} m, "
                    f"over inference.max_voxels={limit}; crop the scene into parts or predict with a larger "
                    "voxel_size (memory grows with the voxel count)"
                )

    @classmethod
    def from_checkpoint(
        cls, url: str, device: str | torch.device = "cpu", backend: str | None = None
    ) -> Segmenter:
        """Load a trained model (file path, ``s3://``, ``memory://``) in eval mode, ready for :meth:`predict`.

        Args:
            url: the checkpoint (read once, checked by :func:`~tracklift.models.checkpoint.read_checkpoint`).
            device: where to put the model (``"cpu"``, ``"cuda"``, ...).
            backend: sparse backend to run it with (default: the one it was saved with).

        Raises:
            DataError: unreadable or foreign file, bad config, non-finite weights, weights that do not
                match the checkpoint's own config.
        """
        ckpt, cfg = read_checkpoint(url)
        model = cls.from_config(cfg, backend=backend)
        apply_weights(model, url, ckpt, cfg, own_config=True)
        return model.to(device).eval()

    def predict(self, points, colors, superpoints=None) -> Instances:
        """Segment one point cloud.

        Args:
            points: (N, 3) float coordinates, metres (N >= 2, all finite).
            colors: (N, 3) uint8 RGB, or floats in [0, 1].
            superpoints: optional (N,) non-negative int superpoint ids (e.g. ``Scene.superpoints``); a
                superpoint-level model computes them with its segmentator when absent (inside this call);
                a point-level model ignores them.

        Returns:
            :class:`~tracklift.structures.Instances` with (K, N) bool masks and (K,) scores.

        Raises:
            ValueError: empty or single-point cloud, NaN / infinite coordinates, bad colours, superpoint
                ids of the wrong length or negative.
        """
        return self.predict_batch(PointBatch.from_arrays(points, colors, superpoints=superpoints))[0]
