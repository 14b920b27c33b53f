"""A CLIP image/text encoder built with open_clip from a user-supplied checkpoint.

Weights are never downloaded: the model is built from its architecture name (random weights) and the
checkpoint the user names is read through :mod:`tracklift.storage` (so ``s3://`` and ``https://`` work),
deserialised with ``torch.load`` and loaded strictly. A checkpoint that does not fit the architecture is a
:class:`~tracklift.errors.DataError` listing the missing / unexpected keys and mismatched shapes.

open_clip is the optional ``clip`` extra; it is imported when an encoder is built, not on import.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tracklift import storage
from tracklift.errors import ConfigError, DataError
from tracklift.openvocab.config import ClipConfig

__all__ = ["ClipEncoder", "load_clip_state_dict", "load_clip_weights", "register_model_config"]

# Keys OpenAI's TorchScript archives carry as buffers that open_clip's CLIP does not have.
_JIT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_MAX_LISTED = 5


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise ConfigError(
            "CLIP features need open_clip: pip install 'tracklift[clip]' (open-clip-torch)"
        ) from None
    return open_clip


def register_model_config(name: str, url: str) -> None:
    """Register an open_clip model config (JSON) under ``name`` so ``create_model(name)`` builds it.

    Args:
        name: architecture name to register (no ``/``).
        url: path or URL of a JSON file with ``embed_dim``, ``vision_cfg`` and ``text_cfg``.
    """
    open_clip = _open_clip()
    if "/" in name or not name:
        raise ConfigError(f"clip.model {name!r} cannot name a registered config (no '/' allowed)")
    try:
        cfg = json.loads(storage.read_text(url))
    except json.JSONDecodeError as e:
        raise DataError(url, f"not a JSON model config ({e})") from None
    missing = [
        k for k in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(cfg, dict) or k not in cfg
    ]
    if missing:
        raise DataError(url, f"open_clip model config lacks {', '.join(missing)}")
    # open_clip registers configs from files named <name>.json; its registry keeps entries after the file
    # is gone, so a temporary directory suffices.
    with tempfile.TemporaryDirectory(prefix="tracklift-clip-") as d:
        path = Path(d) / f"{name}.json"
        path.write_text(json.dumps(cfg))
        open_clip.add_model_config(path)


def load_clip_state_dict(url: str) -> dict[str, torch.Tensor]:
    """Read a CLIP checkpoint into a flat ``{name: tensor}`` dict (CPU).

    Accepts a bare state dict, a training checkpoint holding one under ``"state_dict"``, a
    ``.safetensors`` file and OpenAI's TorchScript archives; strips DataParallel's ``module.`` prefix.

    Args:
        url: path or URL of the checkpoint.

    Raises:
        DataError: the file is missing or is not a PyTorch checkpoint holding tensors.
    """
    data = storage.read_bytes(url)
    if str(url).endswith(".safetensors"):
        from safetensors.torch import load as load_safetensors

        try:
            obj: Any = load_safetensors(data)
        except Exception as e:  # safetensors raises its own error types
            raise DataError(url, f"not a safetensors file ({e})") from None
    else:
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many kinds for corrupt or foreign files
            obj = _load_torchscript(data)
            if obj is None:
                raise DataError(url, f"not a PyTorch checkpoint ({str(e).splitlines()[0]})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(url, "checkpoint holds no state dict (expected {parameter name: tensor})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(url, f"checkpoint entries are not tensors: {', '.join(map(str, bad[:_MAX_LISTED]))}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def _load_torchscript(data: bytes) -> dict[str, torch.Tensor] | None:
    """State dict of a TorchScript archive (how OpenAI ships CLIP), or None if ``data`` is not one."""
    try:
        with warnings.catch_warnings():
            # torch.jit.load is deprecated, but OpenAI's CLIP files are TorchScript archives
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception:  # anything that is not a TorchScript archive
        return None
    sd = module.state_dict()
    for key in _JIT_EXTRA_KEYS:
        sd.pop(key, None)
    return dict(sd)


def load_clip_weights(model: torch.nn.Module, url: str) -> None:
    """Load a checkpoint into an open_clip model, strictly.

    Args:
        model: a model built by ``open_clip.create_model``.
        url: checkpoint path or URL (see :func:`load_clip_state_dict`).

    Raises:
        DataError: naming ``url``, when keys are missing or unexpected or shapes differ (the checkpoint is
            for another architecture).
    """
    sd = load_clip_state_dict(url)
    own = model.state_dict()
    # Same adaptations open_clip makes for its own checkpoints: old-format text tower keys, scalar
    # logit_scale, and the position_ids buffer newer transformers no longer keep.
    if "positional_embedding" in sd and "positional_embedding" not in own:
        from open_clip.model import convert_to_custom_text_state_dict

        sd = convert_to_custom_text_state_dict(sd)
    for key in ("logit_scale", "logit_bias"):
        if key in sd and key in own and sd[key].ndim != own[key].ndim:
            sd[key] = sd[key].reshape(own[key].shape)
    position_ids = "text.transformer.embeddings.position_ids"
    if position_ids not in own:
        sd.pop(position_ids, None)
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = [
        f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(sd) & set(own))
        if sd[k].shape != own[k].shape
    ]
    problems = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            shown = ", ".join(items[:_MAX_LISTED]) + (" ..." if len(items) > _MAX_LISTED else "")
            problems.append(f"{len(items)} {what}: {shown}")
    if problems:
        raise DataError(
            url,
            "checkpoint does not fit the configured CLIP architecture (is clip.model right?): "
            + "; ".join(problems),
        )
    model.load_state_dict(sd, strict=True)


class _DropRecords(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


class ClipEncoder:
    """Unit-norm CLIP embeddings of RGB images and text prompts.

    Construct with :meth:`from_config`, or directly from an open_clip model, tokenizer and preprocessing.

    Args:
        model: an open_clip CLIP model (``encode_image`` / ``encode_text``), in eval mode.
        tokenizer: open_clip tokenizer: ``tokenizer(list[str]) -> (T, context) int64``.
        preprocess: PIL image → (3, S, S) float tensor (open_clip's evaluation transform).
        dim: embedding dimension D.
        name: architecture name (recorded beside stored features).
        device: torch device of ``model``.
        batch_size: images or prompts per forward pass.
        checkpoint: URL the weights came from (recorded beside stored features).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        preprocess: Any,
        dim: int,
        name: str = "",
        device: str = "cpu",
        batch_size: int = 32,
        checkpoint: str | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.dim = int(dim)
        self.name = name
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.checkpoint = checkpoint

    @classmethod
    def from_config(cls, cfg: ClipConfig) -> ClipEncoder:
        """Build the model named by ``cfg.model`` and load ``cfg.checkpoint`` into it (if given).

        Raises:
            ConfigError: open_clip is not installed or the architecture name is unknown.
            DataError: the checkpoint is missing, unreadable or for another architecture.
        """
        open_clip = _open_clip()
        if cfg.model_config:
            register_model_config(cfg.model, cfg.model_config)
        model_cfg = open_clip.get_model_config(cfg.model)
        if model_cfg is None:
            raise ConfigError(
                f"unknown CLIP architecture {cfg.model!r}; give one of open_clip.list_models() "
                "or --clip.model-config with its JSON config"
            )
        # pretrained=None and no tower weights: nothing may be fetched from a hub. open_clip then warns
        # that the model is random, which is wrong when our own checkpoint follows: drop that line.
        quiet = _DropRecords("No pretrained weights loaded") if cfg.checkpoint else None
        root = logging.getLogger()
        if quiet:
            root.addFilter(quiet)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                cfg.model, pretrained=None, device=cfg.device, pretrained_image=False, pretrained_text=False
            )
        finally:
            if quiet:
                root.removeFilter(quiet)
        if cfg.checkpoint:
            load_clip_weights(model, cfg.checkpoint)
        model.eval()
        tokenizer = open_clip.get_tokenizer(cfg.model)
        return cls(
            model,
            tokenizer,
            preprocess,
            dim=int(model_cfg["embed_dim"]),
            name=cfg.model,
            device=cfg.device,
            batch_size=cfg.batch_size,
            checkpoint=cfg.checkpoint,
        )

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed prompts.

        Args:
            texts: T strings.

        Returns:
            (T, D) float32, unit rows.
        """
        if isinstance(texts, str):
            raise TypeError("encode_text takes a list of strings, got one string")
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
            out.append(self._unit(self.model.encode_text(tokens)))
        return np.concatenate(out)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed RGB images (any size; each is resized and centre-cropped by the model's preprocessing).

        Args:
            images: n arrays of shape (H, W, 3), uint8 RGB.

        Returns:
            (n, D) float32, unit rows.

        Raises:
            DataError: naming ``images[i]``, for an image of the wrong shape, dtype or size 0.
        """
        from PIL import Image

        for i, img in enumerate(images):
            a = np.asarray(img)
            if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
                raise DataError(f"images[{i}]", f"expected a non-empty (H, W, 3) RGB array, got {a.shape}")
            if a.dtype != np.uint8:
                raise DataError(f"images[{i}]", f"expected uint8 RGB, got {a.dtype}")
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack(
                [
                    self.preprocess(Image.fromarray(np.ascontiguousarray(img)))
                    for img in images[start : start + self.batch_size]
                ]
            ).to(self.device)
            out.append(self._unit(self.model.encode_image(batch)))
        return np.concatenate(out)

    @staticmethod
    def _unit(x: torch.Tensor) -> np.ndarray:
        x = x.float()
        return torch.nn.functional.normalize(x, dim=-1).cpu().numpy().astype(np.float32)
