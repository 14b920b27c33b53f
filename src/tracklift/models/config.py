"""Typed configuration of the 3D segmenter: backbone, decoder, losses, inference.

Loadable from YAML / CLI through :mod:`tracklift.config` (``from_dict(ModelConfig, ...)``) and stored in
checkpoints. Presets: :func:`ModelConfig.preset` (``"default"``: superpoint decoding, sized for real-time
CPU inference; ``"tiny"`` for tests; ``"small"`` and ``"base"``: the point-level decoders of before).

Loss and matching weights default to Mask3D's: ``conf/matcher/hungarian_matcher.yaml`` sets
``cost_class: 2, cost_mask: 5, cost_dice: 2, num_points: -1`` (all points), ``trainer/trainer.py`` uses
the same numbers as the loss weights, and ``conf/loss/set_criterion.yaml`` weighs the no-object class by
``eos_coef: 0.1`` (JonasSchult/Mask3D).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

# Fields that decide parameter shapes or how weights are used: checkpoints must agree on them.
ARCHITECTURE_FIELDS = {
    "use_xyz": None,
    "decoder_level": None,
    "superpoint_stats": None,
    "unet": ("widths", "depth", "norm"),
    "decoder": (
        "hidden_dim",
        "num_queries",
        "num_heads",
        "ffn_dim",
        "num_layers",
        "attn_levels",
        "pos_freqs",
    ),
}


@dataclass
class UNetConfig:
    """Residual sparse UNet backbone.

    Args:
        widths: channels per level, finest first; the number of levels is ``len(widths)`` (each level
            halves the resolution of the previous one).
        depth: residual blocks per level (encoder and decoder).
        norm: ``"bn"`` (BatchNorm over voxels) or ``"ln"`` (LayerNorm per voxel).
    """

    widths: list[int] = field(
        default_factory=lambda: [32, 64, 96, 128, 160], metadata={"help": "channels per level"}
    )
    depth: int = field(default=2, metadata={"help": "residual blocks per level"})
    norm: Literal["bn", "ln"] = field(default="bn", metadata={"help": "feature normalisation"})


@dataclass
class DecoderConfig:
    """Mask3D-style query decoder.

    Args:
        hidden_dim: query / attention width D.
        num_queries: number of learned queries Q (maximum instances per scene).
        num_heads: attention heads (must divide ``hidden_dim``).
        ffn_dim: hidden width of the feed-forward blocks.
        num_layers: decoder layers; layer i cross-attends to level ``attn_levels[i % len(attn_levels)]``.
        attn_levels: backbone levels to attend to (0 = finest), coarse first like Mask3D's ``hlevels``.
        max_attn_voxels: at most this many voxels of a level per scene take part in one cross-attention
            (a random subset in training, an even subset at inference); None = all.
        masked_attention: restrict each query's cross-attention to the voxels its previous mask covers.
        pos_freqs: Fourier frequencies of the voxel positional encoding (``hidden_dim // 2`` if 0).
        dropout: attention / FFN dropout.
    """

    hidden_dim: int = 128
    num_queries: int = 100
    num_heads: int = 8
    ffn_dim: int = 1024
    num_layers: int = 6
    attn_levels: list[int] = field(default_factory=lambda: [3, 2, 1, 0])
    max_attn_voxels: int | None = 4096
    masked_attention: bool = True
    pos_freqs: int = 0
    dropout: float = 0.0


@dataclass
class SuperpointConfig:
    """How the superpoint decoder gets superpoints for a cloud that comes without them.

    The point-cloud segmentator (:func:`tracklift.datasets.superpoints.segment_points`, the kNN variant of
    ScanNet's Segmentator) runs on the cloud's centroids in voxels of ``voxel_size`` and every point takes
    its voxel's superpoint. Coarser voxels make it faster (it runs inside the timed inference path) and
    superpoints can be no finer than a voxel.

    Args:
        voxel_size: voxel side of the segmented centroids, metres.
        knn: neighbours per centroid in the graph.
        k_thresh: Felzenszwalb-Huttenlocher's ``k`` (ScanNet's ``kThresh``).
        min_verts: segments of fewer centroids are merged into a neighbour (ScanNet's ``segMinVerts``).
    """

    voxel_size: float = 0.08
    knn: int = 8
    k_thresh: float = 0.01
    min_verts: int = 5


@dataclass
class LossConfig:
    """Hungarian matching costs and loss weights (Mask3D defaults, see the module doc).

    Args:
        mask_weight: weight of the per-point mask BCE (cost and loss).
        dice_weight: weight of the mask Dice (cost and loss).
        objectness_weight: weight of the objectness term (cost −prob, loss BCE).
        no_object_weight: relative weight of unmatched queries in the objectness loss (Mask3D eos_coef).
        num_points: labelled points per scene used for matching and mask losses (a fresh random subset
            every forward); None = all.
        aux_loss: add the losses of every intermediate decoder prediction (``loss_*_<i>``).
        mask_unit_weight: how the mask terms (matching costs and losses) weigh the mask units
            (superpoints, or finest voxels for the point-level decoder): ``points`` (each unit as many
            points as it holds: a per-point loss) or ``equal`` (each unit the same, targets the share of
            its points per instance: SPFormer's superpoint-level losses).
    """

    mask_weight: float = 5.0
    dice_weight: float = 2.0
    objectness_weight: float = 2.0
    no_object_weight: float = 0.1
    num_points: int | None = None
    aux_loss: bool = True
    mask_unit_weight: Literal["points", "equal"] = "points"


@dataclass
class InferenceConfig:
    """Turning queries into instances.

    The defaults were chosen on training-side validation rooms (``benchmarks/inference_thresholds.py``,
    ``benchmarks/results/inference_thresholds.json``, session 21): against 0.1 / 0.5 / 0.7, a score
    threshold of 0 and a mask threshold of 0.4 gave +1.1 AP50 averaged over three 2D priors and two seeds,
    every checkpoint gaining, AP level. OneFormer3D's ScanNet settings are the same (no score threshold,
    superpoint mask threshold 0.4). Checkpoints keep the thresholds they were saved with.

    Args:
        mask_threshold: a voxel (or superpoint) is in a query's mask when its mask probability exceeds
            this.
        score_threshold: instances scoring below this are dropped (score = objectness × mask quality);
            0 keeps every non-empty mask: AP ranks predictions by score, so low-scoring ones add recall
            at the end of the ranking.
        nms_iou: of two masks overlapping with IoU above this, the lower-scoring one is dropped
            (1.0 disables duplicate removal).
        min_points: masks with fewer points are dropped.
        max_instances: keep at most this many instances per scene (highest scores).
        max_voxels: a cloud occupying more voxels than this is refused with an error saying so (memory
            grows with the voxel count; crop the scene or raise ``voxel_size``); None = no limit.
    """

    mask_threshold: float = 0.4
    score_threshold: float = 0.0
    nms_iou: float = 0.7
    min_points: int = 1
    max_instances: int = 200
    max_voxels: int | None = 2_000_000


@dataclass
class ModelConfig:
    """The whole segmenter.

    Args:
        backend: sparse-convolution backend name (``"torch"``; others when installed).
        voxel_size: voxel side, metres.
        use_xyz: add the scene-centred coordinates (metres) to the RGB input features.
        decoder_level: ``"point"``: the queries attend to backbone voxels and masks are predicted per
            finest-level voxel (Mask3D); ``"superpoint"``: backbone features are pooled per superpoint, the
            queries (initialised from sampled superpoints) attend to them and masks are predicted per
            superpoint (SPFormer, OneFormer3D, Mask3D's segment mode). Checkpoints written before this
            field existed are point-level.
        superpoint_stats: superpoint level: append the mean and standard deviation of each superpoint's
            input features (colour, and scene-centred xyz with ``use_xyz``) to its pooled backbone
            features. Backbone features are per voxel, so two superpoints sharing 8 cm voxels (a small
            object against its neighbour) pool near-identical features; their own colour, position and
            spread still differ. Superpoint level only: the point decoder ignores it (so ``decoder_level``
            can be switched on a preset that sets it).
        superpoints: the segmentator for clouds without superpoints (superpoint level only).
        unet, decoder, loss, inference: the parts.
    """

    backend: str = "torch"
    voxel_size: float = 0.02
    use_xyz: bool = True
    decoder_level: Literal["point", "superpoint"] = "point"
    superpoint_stats: bool = False
    superpoints: SuperpointConfig = field(default_factory=SuperpointConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    @property
    def in_channels(self) -> int:
        return 6 if self.use_xyz else 3

    def validate(self) -> ModelConfig:
        """Raise ValueError on inconsistent values; returns self."""
        u, d = self.unet, self.decoder
        if not u.widths or any(w <= 0 for w in u.widths):
            raise ValueError(f"unet.widths must be positive, got {u.widths}")
        if u.depth < 1:
            raise ValueError(f"unet.depth must be >= 1, got {u.depth}")
        if d.hidden_dim % d.num_heads:
            raise ValueError(f"decoder.hidden_dim {d.hidden_dim} is not divisible by num_heads {d.num_heads}")
        bad = [lvl for lvl in d.attn_levels if not 0 <= lvl < len(u.widths)]
        if bad or not d.attn_levels:
            raise ValueError(f"decoder.attn_levels {d.attn_levels} must be levels 0..{len(u.widths) - 1}")
        if d.num_layers < 1 or d.num_queries < 1:
            raise ValueError("decoder.num_layers and decoder.num_queries must be >= 1")
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")
        if self.decoder_level not in ("point", "superpoint"):
            raise ValueError(f"decoder_level must be 'point' or 'superpoint', got {self.decoder_level!r}")
        sp = self.superpoints
        if not sp.voxel_size > 0 or sp.knn < 1:
            raise ValueError(f"superpoints.voxel_size must be > 0 and knn >= 1, got {sp}")
        if self.loss.mask_unit_weight not in ("points", "equal"):
            raise ValueError(
                f"loss.mask_unit_weight must be 'points' or 'equal', got {self.loss.mask_unit_weight!r}"
            )
        return self

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A named configuration.

        ``default``: superpoint decoding on a narrow 4-level UNet over 8 cm voxels (the voxel of the
        superpoint segmentator, so the backbone is no coarser than the masks it feeds), each superpoint's
        input statistics beside its pooled features (``superpoint_stats``: +6 to +10 validation AP50 on
        every prior, ``benchmarks/results/recipe_superpoint_stats.json``), 3 decoder layers, 50 queries.
        Chosen by per-phase CPU profiles at 50k points (``benchmarks/bench_inference.py``): the
        backbone's cost follows the voxel count, not the widths (gathers, scatters and kernel maps
        dominate at these widths), and 8 cm voxels hold a 50k-point room in under a third of the voxels
        of 2 cm ones; the decoder over ~200 superpoints costs a few milliseconds.

        ``tiny`` (tests: 3 levels 16-32-64, 8 queries, point level); ``small`` (the point-level model of
        before, 2 cm voxels); ``base`` (Mask3D-sized: 5 levels, 100 queries, 128-d decoder, point level).
        """
        if name == "default":
            cfg = cls(
                voxel_size=0.08,
                decoder_level="superpoint",
                superpoint_stats=True,
                unet=UNetConfig(widths=[16, 32, 64, 96], depth=1),
                decoder=DecoderConfig(
                    hidden_dim=64,
                    num_queries=50,
                    num_heads=4,
                    ffn_dim=128,
                    num_layers=3,
                    attn_levels=[0],
                ),
            )
        elif name == "tiny":
            cfg = cls(
                voxel_size=0.05,
                unet=UNetConfig(widths=[16, 32, 64], depth=1),
                decoder=DecoderConfig(
                    hidden_dim=32, num_queries=8, num_heads=4, ffn_dim=64, num_layers=3, attn_levels=[2, 1, 0]
                ),
            )
        elif name == "small":
            cfg = cls(
                voxel_size=0.02,
                unet=UNetConfig(widths=[32, 64, 96, 128], depth=1),
                decoder=DecoderConfig(
                    hidden_dim=96,
                    num_queries=50,
                    num_heads=4,
                    ffn_dim=256,
                    num_layers=3,
                    attn_levels=[3, 2, 1],
                ),
            )
        elif name == "base":
            cfg = cls()
        else:
            raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
        return dataclasses.replace(cfg, **overrides).validate()


PRESETS = ("default", "tiny", "small", "base")


def architecture_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """Human-readable list of the architecture fields on which two configs differ (empty if none)."""
    diffs = []
    for part, names in ARCHITECTURE_FIELDS.items():
        if names is None:
            va, vb = getattr(a, part), getattr(b, part)
            if va != vb:
                diffs.append(f"{part}: {va!r} vs {vb!r}")
            continue
        pa, pb = getattr(a, part), getattr(b, part)
        for n in names:
            va, vb = getattr(pa, n), getattr(pb, n)
            if (list(va) if isinstance(va, tuple) else va) != (list(vb) if isinstance(vb, tuple) else vb):
                diffs.append(f"{part}.{n}: {va!r} vs {vb!r}")
    return diffs
