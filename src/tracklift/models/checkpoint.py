"""Segmenter checkpoints: one ``torch.save`` dict at a storage URL (file://, s3://, memory://, paths).

Layout (version 2)::

    {"format": "tracklift.segmenter", "version": 2,
     "config": dataclasses.asdict(ModelConfig), "backend": "torch",
     "state_dict": {...}, "extra": {...}}      # extra: anything the caller adds (trainer state)

Version 1 is the format of before superpoint decoding: the same layout, every model point-level and its
config without ``decoder_level`` (nor ``superpoints``). It is still read: the missing fields take their
defaults, ``decoder_level="point"``, which is what those models are, so they load and predict as before.
A version-1 file claiming another decoder level is refused. Loading a point-level checkpoint into a
superpoint-level model (or the reverse) is refused naming ``decoder_level``.

Weights do not depend on the sparse backend (see :mod:`tracklift.models.sparse`), so a checkpoint
written with one backend loads into another.

This module knows the file format and how weights go into a module; it does not build models (that is
:meth:`tracklift.models.segmenter.Segmenter.from_checkpoint`, which calls :func:`read_checkpoint` and
:func:`apply_weights`), so it imports nothing of the network. Every loader reads a checkpoint once, with
:func:`read_checkpoint`, and every weight that reaches a model passed its checks (format, version,
config, finite values).
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from typing import Any

import torch
from torch import nn

from tracklift import storage
from tracklift.config import from_dict
from tracklift.errors import ConfigError, DataError
from tracklift.models.config import ModelConfig, architecture_differences

FORMAT = "tracklift.segmenter"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: point-level models only (before decoder_level existed)


def checkpoint_dict(model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint of a :class:`~tracklift.models.Segmenter` as a dict (tensors on CPU)."""
    if getattr(model, "config", None) is None:
        raise ValueError("the model has no ModelConfig: build it with Segmenter.from_config to save it")
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": dataclasses.asdict(model.config),
        "backend": model.backend.name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }


def save_checkpoint(model: nn.Module, url: str, extra: dict[str, Any] | None = None) -> None:
    """Write ``model``'s checkpoint to ``url`` atomically."""
    buf = io.BytesIO()
    torch.save(checkpoint_dict(model, extra), buf)
    storage.write_bytes(url, buf.getvalue())


def first_non_finite(state: dict[str, Any]) -> str | None:
    """Name of the first floating-point tensor of ``state`` (in its order) holding NaN or ±inf, or None."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(value.isfinite().all()):
            return name
    return None


def read_checkpoint(url: str) -> tuple[dict[str, Any], ModelConfig]:
    """Read and check a checkpoint: the one place a checkpoint file is read.

    Returns:
        ``(checkpoint dict, its ModelConfig)``.

    Raises:
        DataError: missing file, not a tracklift segmenter checkpoint, unknown version, bad config, a
            weight holding NaN or infinite values (a diverged run: it would predict nothing).
    """
    data = storage.read_bytes(url)
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for corrupt or foreign files
        raise DataError(url, f"not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(url, f"not a tracklift segmenter checkpoint (no format={FORMAT!r} entry)")
    if ckpt.get("version") not in READABLE_VERSIONS:
        raise DataError(
            url,
            f"checkpoint version {ckpt.get('version')!r}, this tracklift reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}",
        )
    for key in ("config", "state_dict"):
        if not isinstance(ckpt.get(key), dict):
            raise DataError(url, f"checkpoint has no {key!r} dict")
    if ckpt["version"] == 1 and ckpt["config"].get("decoder_level", "point") != "point":
        raise DataError(url, "a version-1 checkpoint is point-level; its config says otherwise")
    try:
        cfg = from_dict(ModelConfig, ckpt["config"], where="checkpoint config").validate()
    except (ConfigError, ValueError) as e:
        raise DataError(url, f"bad model config: {e}") from None
    bad = first_non_finite(ckpt["state_dict"])
    if bad is not None:
        raise DataError(url, f"weight {bad!r} holds NaN or infinite values (a diverged run?); refusing it")
    return ckpt, cfg


def _state_problems(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    own = model.state_dict()
    problems = []
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        problems.append(
            f"missing weights {missing[:5]}" + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    if unexpected:
        problems.append(
            f"unexpected weights {unexpected[:5]}"
            + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")
        )
    for k in sorted(set(own) & set(state)):
        if tuple(own[k].shape) != tuple(state[k].shape):
            problems.append(
                f"{k}: shape {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the model"
            )
    return problems


def apply_weights(
    model: nn.Module, url: str, ckpt: dict[str, Any], cfg: ModelConfig, own_config: bool = False
) -> dict[str, Any]:
    """Load an already read checkpoint (:func:`read_checkpoint`) into ``model``.

    Args:
        model: a :class:`~tracklift.models.Segmenter`.
        url: where the checkpoint came from (for messages).
        ckpt, cfg: what :func:`read_checkpoint` returned.
        own_config: ``model`` was built from ``cfg`` itself, so only the weights are compared.

    Returns:
        the checkpoint's ``extra`` dict.

    Raises:
        DataError: the checkpoint's architecture differs from the model's (naming the fields), or its
            weights do not fit (naming the tensors).
    """
    if not own_config and getattr(model, "config", None) is not None:
        diffs = architecture_differences(cfg, model.config)
        if diffs:
            raise DataError(
                url, "checkpoint of another architecture (checkpoint vs model): " + "; ".join(diffs)
            )
        if cfg.voxel_size != model.config.voxel_size:
            warnings.warn(
                f"{url}: checkpoint trained at voxel_size {cfg.voxel_size} m, model uses {model.config.voxel_size} m",
                stacklevel=3,
            )
    problems = _state_problems(model, ckpt["state_dict"])
    if problems:
        what = "do not match its own config" if own_config else "do not fit the model"
        raise DataError(url, f"checkpoint weights {what}: " + "; ".join(problems))
    model.load_state_dict(ckpt["state_dict"])
    return ckpt.get("extra", {})


def load_weights(model: nn.Module, url: str) -> dict[str, Any]:
    """Read a checkpoint and load its weights into an existing model (e.g. to resume a curriculum stage).

    Returns:
        the checkpoint's ``extra`` dict.

    Raises:
        DataError: see :func:`read_checkpoint` and :func:`apply_weights`.
    """
    ckpt, cfg = read_checkpoint(url)
    return apply_weights(model, url, ckpt, cfg)
