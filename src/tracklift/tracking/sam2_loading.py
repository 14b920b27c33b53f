"""SAM2 configuration, model building and checkpoint loading (through fsspec URLs).

SAM2 weights are never downloaded at run time: the user gives a checkpoint as a path or URL
(``file://``, ``s3://``, ``memory://``). A checkpoint is SAM2's own format, ``{"model": state_dict}``.
Without a checkpoint the model has random weights, which is only good for tests of the mechanics.

One model serves both the automatic mask generator and the video tracker: the network is built as
SAM2's video predictor class (a subclass of the image model with the same parameters), and
:func:`get_sam2_model` builds it once per process (per config) so a Ray actor holds a single copy.

Hydra: ``import sam2`` initialises Hydra's global state with SAM2's config module. That clashes with a
host application that uses Hydra itself, so :func:`import_sam2` undoes it, and configs are read with
OmegaConf and instantiated directly instead of through Hydra's global ``compose``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import logging
import os
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml

from tracklift import storage
from tracklift.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Sam2Config:
    """How to build and run SAM2 (automatic masks and video tracking).

    Args:
        model_config: SAM2 model config, a name inside the ``sam2`` package (``configs/sam2.1/...yaml``)
            or a URL/path of a YAML file of the same form.
        checkpoint: URL or path of the weights (``{"model": state_dict}``); None builds RANDOM weights,
            for tests only (a warning says so).
        device: torch device, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        image_size: square input size of the network in pixels (1024 as trained; 256/512 for CPU tests).
            Must be a multiple of 32. Checkpoints load at any size (no weight depends on it).
        overrides: extra model config values as ``model.key=value`` strings (Hydra's ``++`` prefix is
            accepted and ignored).
        mixed_precision: run under bfloat16 autocast on CUDA (as SAM2 recommends); ignored on CPU.
        cache_dir: local directory for copies of remote checkpoints; default ``$TRACKLIFT_CACHE`` or
            ``<tmp>/tracklift-checkpoints``.
        points_per_side: automatic masks: point-prompt grid is ``points_per_side²`` points.
        points_per_batch: automatic masks: point prompts decoded per forward pass (memory vs speed).
        pred_iou_thresh: automatic masks: drop masks whose predicted IoU is below this (SAM2Object: 0.7).
        stability_score_thresh: automatic masks: drop masks whose stability score is below this (0.92).
        stability_score_offset: automatic masks: logit offset of the stability score.
        box_nms_thresh: automatic masks: box IoU above which the lower-scoring duplicate is removed.
        min_mask_region_area: automatic masks: remove islands and fill holes smaller than this many
            pixels (at frame resolution); 0 disables.
        crop_n_layers: automatic masks: extra layers of image crops (0 = whole image only).
        use_m2m: automatic masks: one extra refinement pass feeding each mask back as a prompt.
        offload_state_to_cpu: tracking: keep SAM2's per-frame memory on the CPU (saves GPU memory,
            costs some speed).
        preload_frames: tracking: prepare every frame of a window when it starts instead of on demand
            (12 MB per frame at 1024; faster when a window is propagated more than once).
        offload_video_to_cpu: tracking: keep preloaded frames in CPU memory rather than on the device.
        trim_memory: tracking: during propagation, drop per-frame outputs that lie beyond SAM2's memory
            reach behind the current frame, so memory stays bounded on long windows. A later pass in
            the opposite direction then starts with less memory than an untrimmed state would give it.
        window: tracking: the longest window (frames) ``start`` accepts; callers split longer scans.
    """

    model_config: str = field(
        default="configs/sam2.1/sam2.1_hiera_t.yaml",
        metadata={"help": "SAM2 model config (package name or URL)"},
    )
    checkpoint: str | None = field(
        default=None, metadata={"help": "checkpoint URL/path ({'model': state_dict}); None = random weights"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device: cpu, cuda, cuda:N"})
    image_size: int = field(default=1024, metadata={"help": "network input size (pixels, multiple of 32)"})
    overrides: list[str] = field(default_factory=list, metadata={"help": "extra model.key=value settings"})
    mixed_precision: bool = field(default=True, metadata={"help": "bfloat16 autocast on CUDA"})
    cache_dir: str | None = field(default=None, metadata={"help": "local cache of remote checkpoints"})
    points_per_side: int = field(default=32, metadata={"help": "automatic masks: prompt grid side"})
    points_per_batch: int = field(default=64, metadata={"help": "automatic masks: prompts per forward pass"})
    pred_iou_thresh: float = field(default=0.7, metadata={"help": "automatic masks: min predicted IoU"})
    stability_score_thresh: float = field(default=0.92, metadata={"help": "automatic masks: min stability"})
    stability_score_offset: float = field(default=1.0, metadata={"help": "automatic masks: stability offset"})
    box_nms_thresh: float = field(default=0.7, metadata={"help": "automatic masks: box NMS IoU"})
    min_mask_region_area: int = field(
        default=0, metadata={"help": "automatic masks: remove islands/holes under this many pixels"}
    )
    crop_n_layers: int = field(default=0, metadata={"help": "automatic masks: crop layers"})
    use_m2m: bool = field(default=False, metadata={"help": "automatic masks: mask-to-mask refinement"})
    offload_state_to_cpu: bool = field(default=False, metadata={"help": "tracking: keep memory on CPU"})
    preload_frames: bool = field(default=False, metadata={"help": "tracking: prepare all frames at start"})
    offload_video_to_cpu: bool = field(default=True, metadata={"help": "tracking: preloaded frames on CPU"})
    trim_memory: bool = field(default=True, metadata={"help": "tracking: drop outputs beyond memory reach"})
    window: int = field(default=300, metadata={"help": "tracking: longest window start() accepts (frames)"})

    def __post_init__(self) -> None:
        if self.image_size <= 0 or self.image_size % 32:
            raise ConfigError(f"sam2.image_size must be a positive multiple of 32, got {self.image_size}")
        if self.points_per_side < 1 or self.points_per_batch < 1:
            raise ConfigError("sam2.points_per_side and sam2.points_per_batch must be at least 1")
        if self.window < 1:
            raise ConfigError(f"sam2.window must be at least 1, got {self.window}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ConfigError(f"sam2.device must be cpu, cuda or cuda:N, got {self.device!r}")

    def model_key(self) -> tuple:
        """What identifies the network (not the inference settings): the model cache key."""
        return (self.model_config, self.checkpoint, self.device, self.image_size, tuple(self.overrides))


def import_sam2():
    """Import the ``sam2`` package, leaving Hydra's global state as it was before.

    Returns:
        the ``sam2`` module.
    Raises:
        ImportError: sam2 is not installed (with how to install it).
    """
    try:
        from hydra.core.global_hydra import GlobalHydra
    except ImportError as e:
        raise ImportError(
            "the SAM2 backend needs the sam2 extra: `make install` or "
            "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'sam2==1.1.0'`"
        ) from e
    was_initialised = GlobalHydra.instance().is_initialized()
    try:
        import sam2
    except ImportError as e:
        raise ImportError(
            "the SAM2 backend needs sam2: `make install` or "
            "`SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'sam2==1.1.0'`"
        ) from e
    if not was_initialised and GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()  # sam2/__init__ claimed Hydra for itself; give it back
    return sam2


def feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """Backbone feature map sizes (strides 4, 8, 16) at an input size: SAM2's image predictor
    hard-codes them for 1024 (``_bb_feat_sizes``), so they must be set for any other size."""
    return [(image_size // s, image_size // s) for s in (4, 8, 16)]


def autocast(cfg: Sam2Config):
    """A context for running the network: bfloat16 autocast on CUDA, nothing on CPU."""
    if cfg.mixed_precision and cfg.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _read_model_config(name: str):
    from omegaconf import OmegaConf

    packaged = importlib.resources.files("sam2").joinpath(name)
    if packaged.is_file():
        text = packaged.read_text()
    elif "://" in name or os.path.isfile(name):
        text = storage.read_text(name)
    else:
        known = sorted(
            f"configs/{d.name}/{f.name}"
            for d in importlib.resources.files("sam2").joinpath("configs").iterdir()
            if d.is_dir()
            for f in d.iterdir()
            if f.name.endswith(".yaml")
        )
        raise ConfigError(f"unknown SAM2 model config {name!r}; packaged configs: {', '.join(known)}")
    cfg = OmegaConf.create(text)
    if "model" not in cfg:
        raise DataError(name, "not a SAM2 model config (no top-level 'model' section)")
    return cfg


def _model_settings(cfg: Sam2Config) -> dict[str, Any]:
    """Config values set on top of the YAML (dotted keys under ``model``)."""
    s = cfg.image_size // 16
    settings: dict[str, Any] = {
        # the video predictor class has the image model's parameters plus the tracking API
        "model._target_": "sam2.sam2_video_predictor.SAM2VideoPredictor",
        "model.image_size": cfg.image_size,
        # RoPE tables are sized for the stride-16 map; set them for the chosen input size
        "model.memory_attention.layer.self_attention.feat_sizes": [s, s],
        "model.memory_attention.layer.cross_attention.feat_sizes": [s, s],
        # SAM2's own inference settings for its predictors (build_sam's post-processing options)
        "model.sam_mask_decoder_extra_args": {
            "dynamic_multimask_via_stability": True,
            "dynamic_multimask_stability_delta": 0.05,
            "dynamic_multimask_stability_thresh": 0.98,
        },
        "model.binarize_mask_from_pts_for_mem_enc": True,
        "model.fill_hole_area": 8,
    }
    if importlib.util.find_spec("sam2._C") is None:
        # hole filling needs SAM2's compiled extension; without it SAM2 warns on every frame and skips it
        settings["model.fill_hole_area"] = 0
    for item in cfg.overrides:
        key, sep, value = item.lstrip("+").partition("=")
        if not sep or not key.startswith("model."):
            raise ConfigError(f"sam2.overrides entries are 'model.key=value', got {item!r}")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def build_sam2_model(cfg: Sam2Config) -> torch.nn.Module:
    """Build SAM2 (video predictor class) and load its checkpoint; always builds a new model.

    Args:
        cfg: the model fields of ``cfg`` are used (config, checkpoint, device, image size, overrides).
    Returns:
        the network in eval mode on ``cfg.device``.
    Raises:
        DataError: the checkpoint is missing, unreadable or belongs to another config.
        ConfigError: unknown model config, or a CUDA device on a machine without one.
    """
    import_sam2()
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"sam2.device is {cfg.device!r} but torch sees no CUDA device")
    conf = _read_model_config(cfg.model_config)
    for key, value in _model_settings(cfg).items():
        OmegaConf.update(conf, key, value, force_add=True)
    OmegaConf.resolve(conf)
    t0 = time.perf_counter()
    model = instantiate(conf.model, _recursive_=True)
    if cfg.checkpoint is None:
        msg = (
            f"SAM2 ({cfg.model_config}) built with RANDOM weights (checkpoint=None): its masks are "
            "meaningless; this is for tests only. Give sam2.checkpoint for real use."
        )
        log.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    else:
        load_checkpoint(model, cfg.checkpoint, cfg.model_config, cfg.cache_dir)
    model = model.to(cfg.device).eval()
    log.info(
        "built SAM2 %s at %d px on %s in %.1f s",
        *(cfg.model_config, cfg.image_size, cfg.device, time.perf_counter() - t0),
    )
    return model


_MODELS: dict[tuple, torch.nn.Module] = {}
_MODELS_LOCK = threading.Lock()


def get_sam2_model(cfg: Sam2Config) -> torch.nn.Module:
    """The process-wide SAM2 model for ``cfg``: built on first use, then reused (one per actor)."""
    key = cfg.model_key()
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = build_sam2_model(cfg)
        return model


def _cache_dir(cache_dir: str | None) -> str:
    return (
        cache_dir
        or os.environ.get("TRACKLIFT_CACHE")
        or os.path.join(tempfile.gettempdir(), "tracklift-checkpoints")
    )


def local_checkpoint_path(url: str, cache_dir: str | None = None) -> str:
    """A local file holding the checkpoint at ``url``: the file itself when it is local, else a cached copy.

    Remote objects are copied once per machine (keyed by URL, size and ETag/mtime, so a replaced object
    is fetched again) into ``cache_dir``; the copy is written under a temporary name and renamed, so a
    killed download never leaves a truncated checkpoint behind.

    Raises:
        DataError: the object does not exist.
    """
    from fsspec.implementations.local import LocalFileSystem

    fs, path = storage.filesystem(url)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise DataError(url, "checkpoint not found") from None
    if info.get("type") == "directory":
        raise DataError(url, "checkpoint is a directory, expected a file")
    if isinstance(fs, LocalFileSystem):
        return path
    version = str(info.get("ETag") or info.get("mtime") or info.get("LastModified") or "")
    digest = hashlib.sha256(f"{url}|{info.get('size')}|{version}".encode()).hexdigest()[:16]
    target_dir = _cache_dir(cache_dir)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, f"{digest}-{storage.basename(url)}")
    if os.path.exists(target):
        return target
    tmp = f"{target}.part-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    try:
        fs.get_file(path, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    log.info("copied %s to %s in %.1f s", url, target, time.perf_counter() - t0)
    return target


def read_checkpoint(url: str, cache_dir: str | None = None) -> dict[str, torch.Tensor]:
    """Read the ``model`` state dict of a SAM2 checkpoint (tensors on the CPU).

    Raises:
        DataError: missing, not a PyTorch file, or without a ``model`` state dict.
    """
    local = local_checkpoint_path(url, cache_dir)
    try:
        ckpt = torch.load(local, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise DataError(url, f"not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise DataError(url, "no 'model' state dict in the checkpoint (SAM2 checkpoints are {'model': ...})")
    return ckpt["model"]


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown


def load_checkpoint(model: torch.nn.Module, url: str, config_name: str, cache_dir: str | None = None) -> None:
    """Load a SAM2 checkpoint into ``model``, strictly: every key present and every shape equal.

    Args:
        model: a freshly built SAM2 network.
        url: checkpoint path or URL.
        config_name: the model config the network was built from (named in the error).
        cache_dir: see :func:`local_checkpoint_path`.
    Raises:
        DataError: the checkpoint belongs to another config (lists missing/unexpected keys and shape
            mismatches), or cannot be read.
    """
    state = read_checkpoint(url, cache_dir)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listing(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches (checkpoint vs model) {_listing(mismatched)}")
        raise DataError(url, f"checkpoint does not match config {config_name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
