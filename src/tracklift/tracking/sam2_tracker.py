"""Video mask tracking with SAM2's video predictor, fed from in-memory frames.

SAM2's own ``init_state`` reads only an MP4 file or a folder of JPEGs. Here the inference state is built
from the window's ``Frame.color`` arrays: each frame is resized to the network size and normalised
with the ImageNet mean/std exactly as SAM2's JPEG loader does, on demand (so a window costs only its
uint8 frames) or up front (``preload_frames``). The state layout is that of ``sam2==1.1.0``.

Memory of a window stays bounded: frames are prepared on demand (or preloaded, on the CPU with
``offload_video_to_cpu``), SAM2 caches the features of the latest frame only, per-frame outputs beyond
the memory reach are dropped as tracking passes them (``trim_memory``), and ``offload_state_to_cpu``
keeps the per-frame memory on the CPU. :func:`state_footprint` counts what a window holds.

SAM2 draws a tqdm progress bar for every propagation; ``TQDM_DISABLE=1`` in the environment hides it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from tracklift.datasets.scene import Frame, Intrinsics
from tracklift.errors import ConfigError
from tracklift.tracking.sam2_loading import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Sam2Config,
    autocast,
    get_sam2_model,
    import_sam2,
)

log = logging.getLogger(__name__)


class FrameImages:
    """The network inputs of a window: item ``i`` is frame ``i`` as a (3, S, S) float32 tensor.

    Args:
        colors: (H, W, 3) uint8 RGB frames, all the same size (kept by reference, not copied).
        image_size: S, the network's square input size.
        preload: prepare every frame now (on ``device``) instead of at each access (on the CPU).
        device: where preloaded frames live.
    """

    def __init__(
        self, colors: Sequence[np.ndarray], image_size: int, preload: bool = False, device: str = "cpu"
    ):
        self.colors = list(colors)
        self.image_size = image_size
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
        self._ready: torch.Tensor | None = None
        if preload:
            self._ready = torch.stack([self._prepare(c) for c in self.colors]).to(device)

    def _prepare(self, color: np.ndarray) -> torch.Tensor:
        # PIL's default (bicubic) resize and float64 scaling, as SAM2's JPEG loader: same inputs, same masks
        size = (self.image_size, self.image_size)
        resized = np.asarray(Image.fromarray(color).resize(size))
        image = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()
        return (image - self._mean) / self._std

    def __len__(self) -> int:
        return len(self.colors)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._ready is not None:
            return self._ready[i]
        return self._prepare(self.colors[i])


@dataclass
class Sam2TrackState:
    """One window being tracked.

    Attributes:
        inference: SAM2's inference state (a dict in the layout of ``SAM2VideoPredictor.init_state``).
        height: frame height in pixels.
        width: frame width in pixels.
        n_frames: window length.
        closed: set by :meth:`Sam2Tracker.close`; a closed state cannot be used again.
    """

    inference: dict[str, Any]
    height: int
    width: int
    n_frames: int
    closed: bool = False


@dataclass
class Sam2StateFootprint:
    """What a window's inference state holds (see :func:`state_footprint`).

    Attributes:
        cond_outputs: per-frame outputs of seeded (conditioning) frames, summed over objects.
        non_cond_outputs: per-frame outputs of tracked frames, summed over objects (bounded by the
            memory reach when ``trim_memory`` is on).
        cached_frames: frames whose image features are cached (SAM2 keeps the latest one).
        preloaded_frames: network inputs prepared up front (``preload_frames``), 0 when lazy.
        tensors: tensors held by the state, counted once each.
        bytes_by_device: their bytes per device (``"cpu"``, ``"cuda:0"``…).
    """

    cond_outputs: int
    non_cond_outputs: int
    cached_frames: int
    preloaded_frames: int
    tensors: int
    bytes_by_device: dict[str, int]


def state_footprint(state: Sam2TrackState) -> Sam2StateFootprint:
    """Count the outputs, cached features and tensors a window holds, and where their bytes live.

    For tests and memory reports: walks the inference state (dicts, lists, tuples) once, counting each
    tensor once by identity; preloaded frames count as one tensor.

    Args:
        state: an open window from :meth:`Sam2Tracker.start`.
    """
    inference = state.inference
    seen: set[int] = set()
    by_device: dict[str, int] = {}

    def walk(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            if id(item) not in seen:
                seen.add(id(item))
                key = str(item.device)
                by_device[key] = by_device.get(key, 0) + item.numel() * item.element_size()
        elif isinstance(item, dict):
            for value in item.values():
                walk(value)
        elif isinstance(item, (list, tuple)):
            for value in item:
                walk(value)
        elif isinstance(item, FrameImages) and item._ready is not None:
            walk(item._ready)

    walk(inference)
    per_obj = inference.get("output_dict_per_obj", {}).values()
    images = inference.get("images")
    preloaded = len(images) if isinstance(images, FrameImages) and images._ready is not None else 0
    return Sam2StateFootprint(
        cond_outputs=sum(len(out["cond_frame_outputs"]) for out in per_obj),
        non_cond_outputs=sum(len(out["non_cond_frame_outputs"]) for out in per_obj),
        cached_frames=len(inference.get("cached_features", {})),
        preloaded_frames=preloaded,
        tensors=len(seen),
        bytes_by_device=by_device,
    )


class Sam2Tracker:
    """:class:`~tracklift.tracking.base.MaskTracker` on SAM2's video predictor.

    Each ``start`` opens an independent window (positions ``0..len-1``); object ids are the caller's
    and may be reused in every window. Seeding an object on a frame it was already tracked on makes
    that mask a fresh conditioning frame (re-seeding), not a correction blended with memory.

    Args:
        cfg: model and tracking settings.
        model: a built SAM2 network to share (e.g. with a :class:`Sam2MaskGenerator`); default: the
            process-wide model for ``cfg``.
    """

    def __init__(self, cfg: Sam2Config, model: torch.nn.Module | None = None):
        import_sam2()
        from sam2.sam2_video_predictor import SAM2VideoPredictor

        self.cfg = cfg
        self.model = model if model is not None else get_sam2_model(cfg)
        if not isinstance(self.model, SAM2VideoPredictor):
            raise TypeError(
                f"Sam2Tracker needs a SAM2VideoPredictor network, got {type(self.model).__name__}"
            )
        self._autocasting = cfg.mixed_precision and str(self.model.device).startswith("cuda")
        # frames further behind than this are never read again while tracking in the same direction
        self.memory_reach = max(
            self.model.num_maskmem * self.model.memory_temporal_stride_for_eval,
            self.model.max_obj_ptrs_in_encoder,
        )

    def start(self, frames: Sequence[Frame], intrinsics: Intrinsics | None = None) -> Sam2TrackState:
        """Open a window on ``frames`` (positions ``0..len(frames)-1``).

        Args:
            frames: consecutive frames; only ``color`` ((H, W, 3) uint8, one size for all) is used.
            intrinsics: not used (SAM2 tracks in 2D); accepted for the interface.
        Returns:
            the window's state, for :meth:`add_masks`, :meth:`propagate` and :meth:`close`.
        """
        if not frames:
            raise ValueError("cannot start a SAM2 window on no frames")
        if len(frames) > self.cfg.window:
            raise ConfigError(
                f"window of {len(frames)} frames is longer than sam2.window={self.cfg.window}: "
                "split the scan into shorter windows or raise sam2.window"
            )
        colors = [np.asarray(f.color) for f in frames]
        height, width = colors[0].shape[:2]
        for f, c in zip(frames, colors):
            if c.shape != (height, width, 3) or c.dtype != np.uint8:
                raise ValueError(
                    f"frame {f.index}: color must be ({height}, {width}, 3) uint8 like the window's first "
                    f"frame, got {c.shape} {c.dtype}"
                )
        device = self.model.device
        images = FrameImages(
            colors,
            self.model.image_size,
            preload=self.cfg.preload_frames,
            device="cpu" if self.cfg.offload_video_to_cpu else device,
        )
        storage_device = torch.device("cpu") if self.cfg.offload_state_to_cpu else device
        inference = {
            "images": images,
            "num_frames": len(images),
            "offload_video_to_cpu": self.cfg.offload_video_to_cpu,
            "offload_state_to_cpu": self.cfg.offload_state_to_cpu,
            "video_height": height,
            "video_width": width,
            "device": device,
            "storage_device": storage_device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }
        return Sam2TrackState(inference, int(height), int(width), len(frames))

    def _check(self, state: Sam2TrackState, pos: int) -> None:
        if state.closed:
            raise ValueError("this SAM2 window was closed")
        if not 0 <= pos < state.n_frames:
            raise IndexError(f"frame position {pos} outside the window 0..{state.n_frames - 1}")

    def add_masks(self, state: Sam2TrackState, pos: int, masks: dict[int, np.ndarray]) -> None:
        """Seed (or re-seed) objects on frame ``pos``.

        Args:
            state: from :meth:`start`.
            pos: frame position in the window.
            masks: {object id: (H, W) bool mask at frame resolution}; empty masks are skipped.
        """
        self._check(state, pos)
        inference = state.inference
        for obj_id, mask in masks.items():
            mask = np.asarray(mask)
            if mask.shape != (state.height, state.width):
                raise ValueError(
                    f"mask of object {obj_id}: shape {mask.shape}, frames are {state.height}x{state.width}"
                )
            if not mask.any():
                log.debug("object %s: empty seed mask on position %d skipped", obj_id, pos)
                continue
            obj_id = int(obj_id)
            obj_idx = inference["obj_id_to_idx"].get(obj_id)
            if obj_idx is not None:
                # forget that this frame was tracked, so SAM2 takes the mask as a new conditioning frame
                inference["frames_tracked_per_obj"][obj_idx].pop(pos, None)
            with autocast(self.cfg):
                self.model.add_new_mask(
                    inference, frame_idx=pos, obj_id=obj_id, mask=torch.from_numpy(mask.astype(bool))
                )

    def propagate(
        self, state: Sam2TrackState, start: int, end: int | None = None, reverse: bool = False
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Track the seeded objects frame by frame.

        Args:
            state: from :meth:`start`, with objects seeded by :meth:`add_masks`.
            start: first position to yield.
            end: last position to yield (inclusive); default the window's last frame (first if
                ``reverse``).
            reverse: track backwards in time.
        Returns:
            an iterator of ``(pos, {object id: (H, W) bool})`` for each position from ``start`` to
            ``end``; an object SAM2 finds absent on a frame has an all-False mask. With no object
            seeded, the dicts are empty.
        """
        self._check(state, start)  # checked here, not at the first next(): errors point at the call
        if end is None:
            end = 0 if reverse else state.n_frames - 1
        self._check(state, end)
        if (end < start and not reverse) or (end > start and reverse):
            raise ValueError(
                f"end {end} lies before start {start} in the tracking direction (reverse={reverse})"
            )
        return self._propagate(state, start, end, reverse)

    def _propagate(
        self, state: Sam2TrackState, start: int, end: int, reverse: bool
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        inference = state.inference
        if not inference["obj_ids"]:
            step = -1 if reverse else 1
            for pos in range(start, end + step, step):
                yield pos, {}
            return
        # SAM2 yields nothing for a reverse pass starting at frame 0: a one-frame pass is direction-free
        backwards = reverse and start != end
        # encode new seeds now, so their memory is float32 before the first frame reads it;
        # SAM2's own preflight inside propagate_in_video then has nothing left to do
        with autocast(self.cfg):
            self.model.propagate_in_video_preflight(inference)
        self._float_memory(inference)
        steps = self.model.propagate_in_video(
            inference, start_frame_idx=start, max_frame_num_to_track=abs(end - start), reverse=backwards
        )
        while True:
            with autocast(self.cfg):  # entered per step: autocast must not leak into the caller's code
                item = next(steps, None)
            if item is None:
                return
            frame_idx, obj_ids, logits = item
            self._float_memory(inference)
            if self.cfg.trim_memory:
                self._trim(inference, frame_idx, backwards)
            masks = (logits[:, 0] > 0).cpu().numpy()
            yield int(frame_idx), {int(o): masks[i] for i, o in enumerate(obj_ids)}

    def _float_memory(self, inference: dict[str, Any]) -> None:
        """Without autocast (CPU), turn SAM2's bfloat16 memory features back to float32.

        SAM2 stores memory features in bfloat16 and relies on autocast, or on float32 object pointers
        in the same memory, to get float32 back; a frame whose memory holds no pointer (e.g. the first
        frame of a reverse pass) fails on the CPU with a dtype mismatch (facebookresearch/sam2#308).
        The upcast is exact, so masks equal those of SAM2's own promotion.
        """
        if self._autocasting:
            return
        for per_obj in inference["output_dict_per_obj"].values():
            for outputs in per_obj.values():
                for out in outputs.values():
                    feats = out.get("maskmem_features")
                    if feats is not None and feats.dtype != torch.float32:
                        out["maskmem_features"] = feats.float()

    def _trim(self, inference: dict[str, Any], frame_idx: int, reverse: bool) -> None:
        """Drop non-conditioning outputs beyond the memory reach behind ``frame_idx``."""
        for out in inference["output_dict_per_obj"].values():
            stale = out["non_cond_frame_outputs"]
            for t in [t for t in stale if (t - frame_idx if reverse else frame_idx - t) > self.memory_reach]:
                del stale[t]

    def close(self, state: Sam2TrackState) -> None:
        """Release the window's memory; the state cannot be used afterwards."""
        if state.closed:
            return
        self.model.reset_state(state.inference)
        state.inference.clear()
        state.closed = True
