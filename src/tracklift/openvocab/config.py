"""Configuration of the open-vocabulary stage: which CLIP model, its weights, and how instances are cropped.

Kept free of torch and open_clip imports so that the CLI can declare its flags without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracklift.errors import ConfigError


@dataclass(frozen=True)
class ClipConfig:
    """CLIP model and per-instance feature extraction (OpenMask3D-style multi-scale crops).

    Args:
        model: open_clip architecture name (``ViT-B-32``, ``ViT-L-14``, ...; the OpenAI weights need the
            ``-quickgelu`` variants) or the name a ``model_config`` file is registered under.
        checkpoint: path or URL (``file://``, ``s3://``, ``https://``) of the weights: an open_clip state dict,
            a file open_clip's ``pretrained=`` accepts (``.bin`` / ``.pt`` / ``.safetensors``, or an OpenAI
            TorchScript archive). None builds the model with random weights (tests, speed measurements);
            weights are never downloaded.
        device: torch device of the model.
        model_config: optional path or URL of an open_clip model config JSON (``embed_dim``, ``vision_cfg``,
            ``text_cfg``) registered under the name ``model`` before the model is built.
        frames_per_instance: views per instance: the frames in which most of its vertices are visible
            (in the image, in front of the camera, and not occluded according to the frame's depth).
            OpenMask3D uses 5.
        crop_scales: crops per view, as multiples of the side of the square around the projected mask's box
            (1.0 = tight, larger = more context).
        min_mask_pixels: a view counts only when the instance's visible vertices fall in at least this many
            distinct pixels.
        frame_step: consider every ``frame_step``-th frame only (long scans at 30 fps repeat themselves).
        batch_size: crops (or prompts) per forward pass of the model.
        depth_abs_tol: occlusion test: absolute tolerance on ``|z - depth|``, metres.
        depth_rel_tol: occlusion test: relative tolerance, as a fraction of the measured depth.
    """

    model: str = field(default="ViT-B-32", metadata={"help": "open_clip architecture name"})
    checkpoint: str | None = field(
        default=None, metadata={"help": "CLIP weights URL (open_clip state dict); enables CLIP features"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device of the CLIP model"})
    model_config: str | None = field(
        default=None, metadata={"help": "open_clip model config JSON URL, registered under --clip.model"}
    )
    frames_per_instance: int = field(default=5, metadata={"help": "best views per instance"})
    crop_scales: tuple[float, ...] = field(
        default=(1.0, 1.5, 2.0), metadata={"help": "crop sizes around the projected mask's box"}
    )
    min_mask_pixels: int = field(default=16, metadata={"help": "smallest projected mask that counts"})
    frame_step: int = field(default=1, metadata={"help": "use every n-th frame"})
    batch_size: int = field(default=32, metadata={"help": "crops per CLIP forward pass"})
    depth_abs_tol: float = field(default=0.05, metadata={"help": "occlusion test tolerance, metres"})
    depth_rel_tol: float = field(default=0.02, metadata={"help": "occlusion test tolerance, share of depth"})

    def __post_init__(self):
        # The CLI and YAML hand lists; keep the config hashable and immutable.
        object.__setattr__(self, "crop_scales", tuple(float(s) for s in self.crop_scales))
        if not self.model:
            raise ConfigError("clip.model must name an open_clip architecture")
        if self.frames_per_instance < 1:
            raise ConfigError(f"clip.frames_per_instance must be >= 1, got {self.frames_per_instance}")
        if not self.crop_scales or min(self.crop_scales) <= 0:
            raise ConfigError(f"clip.crop_scales must be positive numbers, got {self.crop_scales}")
        if self.min_mask_pixels < 1:
            raise ConfigError(f"clip.min_mask_pixels must be >= 1, got {self.min_mask_pixels}")
        if self.frame_step < 1:
            raise ConfigError(f"clip.frame_step must be >= 1, got {self.frame_step}")
        if self.batch_size < 1:
            raise ConfigError(f"clip.batch_size must be >= 1, got {self.batch_size}")
        if self.depth_abs_tol < 0 or self.depth_rel_tol < 0:
            raise ConfigError("clip.depth_abs_tol and clip.depth_rel_tol must be >= 0")
