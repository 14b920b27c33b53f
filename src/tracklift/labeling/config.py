"""``LabelConfig``: the one config of the label stage, and the 2D models it names.

The lifting, sample and tracker settings are the algorithms' own config objects, nested whole
(``cfg.lift`` with its ``visibility``, ``cfg.samples``, ``cfg.weightless``, ``cfg.consistency``,
``cfg.geometric``), so every setting is reachable as a flag (``--lift.min-votes 3``,
``--lift.visibility.depth-abs-tol 0.02``, ``--samples.voxel-size 0.04``, ``--geometric.stride 1``,
``--weightless.scales 0.5,2,8,32,128,512``) or a nested YAML key, and each default is stated
once, where the algorithm defines it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from tracklift.cluster.session import RUNNERS, choose_runner
from tracklift.errors import ConfigError
from tracklift.lifting import LiftConfig, SampleConfig, VisibilityConfig
from tracklift.tracking.base import MaskGenerator, MaskTracker
from tracklift.tracking.consistent import ConsistencyConfig
from tracklift.tracking.geometric import GeometricConfig
from tracklift.tracking.weightless import WeightlessConfig

# Settings that say where and how fast a run goes, or what views it adds, not what its results hold: left
# out of the config hash, so a rerun with more actors or another --limit reuses the scenes already done.
_RUN_ONLY = (
    "pictures",
    "scenes",
    "out",
    "format",
    "device",
    "limit",
    "force",
    "runner",
    "address",
    "num_actors",
    "num_cpus",
    "num_gpus",
    "scene_retries",
    "storage_retries",
)


@dataclass
class LabelConfig:
    """``tracklift label``: pseudo-label a scan corpus (in this process, or on Ray actors).

    Exit status: 0 when every scene is complete; 3 when some scenes failed or were refused (the others are
    complete; <out>/manifest.json gives each failure's reason); 1 when every scene failed or the run could
    not start. A scene labeled before with other settings is refused (its outputs kept) unless --force.
    """

    scenes: str = field(
        default="runs/synth", metadata={"help": "corpus root, scene folder, or list file URL"}
    )
    out: str = field(default="runs/labels", metadata={"help": "output URL"})
    format: str = field(default="auto", metadata={"help": "scan format (auto-detected by default)"})
    generator: str = field(default="weightless", metadata={"help": "mask generator: weightless | sam2"})
    tracker: str = field(default="geometric", metadata={"help": "mask tracker: geometric | sam2"})
    method: str = field(
        default="tracked",
        metadata={"help": "tracked (granularity-consistent) | independent (per-frame baseline)"},
    )
    sam2_checkpoint: str | None = field(
        default=None, metadata={"help": "SAM2 checkpoint URL (sam2 backends)"}
    )
    sam2_config: str = field(
        default="configs/sam2.1/sam2.1_hiera_t.yaml", metadata={"help": "SAM2 model config"}
    )
    sam2_image_size: int = field(default=1024, metadata={"help": "SAM2 input size"})
    device: str = field(default="cpu", metadata={"help": "torch device of the 2D models"})
    independent_step: int = field(
        default=5, metadata={"help": "independent method: frames between mask frames"}
    )
    granularity_policy: str = field(
        default="score", metadata={"help": "how overlapping proposals become one id map per frame"}
    )
    weightless: WeightlessConfig = field(default_factory=WeightlessConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    geometric: GeometricConfig = field(default_factory=GeometricConfig)
    lift: LiftConfig = field(default_factory=LiftConfig)
    samples: SampleConfig = field(default_factory=SampleConfig)
    write_shards: bool = field(default=True, metadata={"help": "write the stage 1/2/3 training shards"})
    pictures: bool = field(
        default=True, metadata={"help": "write tracks.png (frames + id maps) and pseudo_labels.png per scene"}
    )
    limit: int | None = field(default=None, metadata={"help": "label at most this many scenes"})
    shard_format: Literal["parquet", "npz"] = field(
        default="parquet", metadata={"help": "curriculum shard files: parquet | npz"}
    )
    force: bool = field(
        default=False,
        metadata={
            "help": "redo scenes whose outputs were made with other settings (without it such a scene is "
            "refused and its outputs kept)"
        },
    )
    # --- where it runs (the per-scene work above is the same in both runners) ---
    runner: Literal["auto", "local", "ray"] = field(
        default="auto",
        metadata={
            "help": "local: one process; ray: a Ray Data actor pool on a local Ray or the cluster at "
            "--address; auto: ray when --address or RAY_ADDRESS is set, else local"
        },
    )
    address: str | None = field(
        default=None,
        metadata={"help": "Ray cluster address (auto, host:port, ray://host:10001); default RAY_ADDRESS"},
    )
    num_actors: int = field(
        default=2, metadata={"help": "ray: labeling actors (each builds its models once)"}
    )
    num_cpus: float = field(default=1.0, metadata={"help": "ray: CPUs reserved per labeling actor"})
    num_gpus: float = field(
        default=0.0, metadata={"help": "ray: GPUs per labeling actor (0 on CPU-only clusters)"}
    )
    scene_retries: int = field(
        default=2,
        metadata={"help": "ray: times a scene is redone on a restarted actor after its actor died"},
    )
    storage_retries: int = field(
        default=5,
        metadata={
            "help": "ray: attempts of a storage read/write step (exponential backoff) before a scene fails"
        },
    )

    def __post_init__(self):
        if self.shard_format not in ("parquet", "npz"):
            raise ConfigError(f"shard_format must be parquet or npz, got {self.shard_format!r}")
        if self.runner not in RUNNERS:
            raise ConfigError(f"runner must be auto, local or ray, got {self.runner!r}")
        if self.num_actors < 1 or self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError("num_actors must be >= 1 and num_cpus / num_gpus >= 0")

    @property
    def shard_suffix(self) -> str:
        return "." + self.shard_format

    @property
    def visibility(self) -> VisibilityConfig:
        """The lifting's depth test (``cfg.lift.visibility``; flags ``--lift.visibility.*``)."""
        return self.lift.visibility

    @property
    def min_points(self) -> int:
        """Instances under this many points are dropped: from the samples and from the pseudo-labels."""
        return self.samples.min_points

    def uses_ray(self) -> bool:
        """Whether this config runs on Ray (:func:`tracklift.cluster.session.choose_runner`)."""
        return choose_runner(self.runner, self.address) == "ray"

    def output_settings(self) -> dict:
        """The settings that change what a scene's outputs hold (everything but where and how fast)."""
        values = asdict(self)
        for key in _RUN_ONLY:
            values.pop(key)
        return values

    def config_hash(self) -> str:
        """Short hash of :meth:`output_settings`, stored per scene to catch reruns with other settings."""
        text = json.dumps(self.output_settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_generator(cfg: LabelConfig) -> MaskGenerator:
    """The 2D mask generator ``cfg.generator`` names (built once per process or actor)."""
    if cfg.generator == "weightless":
        from tracklift.tracking.weightless import WeightlessMaskGenerator

        return WeightlessMaskGenerator(cfg.weightless)
    if cfg.generator == "sam2":
        from tracklift.tracking.sam2_backend import build_sam2_backends

        return build_sam2_backends(_sam2_config(cfg))[0]
    raise ConfigError(f"unknown generator {cfg.generator!r} (weightless | sam2)")


def build_tracker(cfg: LabelConfig) -> MaskTracker:
    """The mask tracker ``cfg.tracker`` names (built once per process or actor)."""
    if cfg.tracker == "geometric":
        from tracklift.tracking.geometric import GeometricTracker

        return GeometricTracker(cfg.geometric)
    if cfg.tracker == "sam2":
        from tracklift.tracking.sam2_backend import build_sam2_backends

        return build_sam2_backends(_sam2_config(cfg))[1]
    raise ConfigError(f"unknown tracker {cfg.tracker!r} (geometric | sam2)")


def _sam2_config(cfg: LabelConfig):
    from tracklift.tracking.sam2_loading import Sam2Config

    return Sam2Config(
        model_config=cfg.sam2_config,
        checkpoint=cfg.sam2_checkpoint,
        device=cfg.device,
        image_size=cfg.sam2_image_size,
    )
