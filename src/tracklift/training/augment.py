"""Training augmentations of a point cloud, the way Pointcept and Mask3D do them.

Every function works on plain numpy arrays, so it composes with whatever a training sample looks like:

  - ``points``: (M, 3) float32 metres, z up (gravity along -z);
  - ``colors``: (M, 3) uint8 RGB;
  - ``labels``: (M,) int64 instance ids (> 0 an instance, 0 unlabelled, -1 outside the scan);
  - ``superpoints``: optional (M,) int64 superpoint id per point.

Geometric transforms (rotation about z, flips, scaling, elastic distortion) move points and keep every id;
colour transforms change colours only; the random crop keeps a subset of points and their ids, and sets to
0 (unlabelled, so ignored by the losses) every instance of which less than ``crop_min_instance_share`` of
its points survived (a sliver of an object is no object to learn). :func:`augment` applies the ones its
:class:`AugmentConfig` enables, in Pointcept's order: crop, rotation, flips, scaling, elastic, colour.

All randomness comes from the ``numpy.random.Generator`` passed in, so a seeded epoch sees the same
augmentations on a rerun.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "AugmentConfig",
    "augment",
    "auto_contrast",
    "color_jitter",
    "elastic_distortion",
    "random_crop",
    "random_flip",
    "random_rotate_z",
    "random_scale",
]


@dataclass
class AugmentConfig:
    """Which augmentations training applies, and how strong each is (all off unless ``enabled``).

    Defaults follow Pointcept's ScanNet instance-segmentation configs where they have one.

    Args:
        enabled: master switch; False leaves samples untouched.
        rotate_z: rotate about the gravity axis by an angle uniform in ``±rotate_z_deg`` degrees.
        rotate_z_deg: largest rotation, degrees (180 = any heading).
        flip: mirror x and y, each with probability 0.5.
        scale: scale all coordinates by one factor uniform in ``scale_range``.
        scale_range: (min, max) scale factor.
        elastic: Pointcept's two-scale elastic distortion (:func:`elastic_distortion`).
        elastic_granularity: noise grid spacing of each distortion, metres.
        elastic_magnitude: displacement scale of each distortion (one per granularity), metres.
        color_jitter: add Gaussian noise of ``color_jitter_std`` (fraction of 255) per channel and point.
        color_jitter_std: noise standard deviation as a fraction of the 0-255 range.
        auto_contrast: with probability ``auto_contrast_p``, stretch each channel to the full range and
            blend it with the original by a random factor (Pointcept's ChromaticAutoContrast).
        auto_contrast_p: probability of the auto-contrast.
        crop: keep a random axis-aligned box of the cloud in x/y (Mask3D crops large scenes).
        crop_share: (min, max) side of the box as a share of the cloud's x and y extents.
        crop_p: probability of cropping a sample.
        crop_min_instance_share: an instance keeping less than this share of its points is set to 0.
    """

    enabled: bool = field(default=False, metadata={"help": "apply training augmentations"})
    rotate_z: bool = field(default=True, metadata={"help": "random rotation about z"})
    rotate_z_deg: float = field(default=180.0, metadata={"help": "largest z rotation, degrees"})
    flip: bool = field(default=True, metadata={"help": "random x / y flips"})
    scale: bool = field(default=True, metadata={"help": "random scaling"})
    scale_range: tuple[float, float] = field(default=(0.9, 1.1), metadata={"help": "scale factor range"})
    elastic: bool = field(default=True, metadata={"help": "two-scale elastic distortion"})
    elastic_granularity: tuple[float, ...] = field(
        default=(0.2, 0.8), metadata={"help": "elastic noise grid spacings, metres"}
    )
    elastic_magnitude: tuple[float, ...] = field(
        default=(0.4, 1.6), metadata={"help": "elastic magnitudes, one per granularity"}
    )
    color_jitter: bool = field(default=True, metadata={"help": "Gaussian colour noise"})
    color_jitter_std: float = field(default=0.05, metadata={"help": "colour noise std, share of 255"})
    auto_contrast: bool = field(default=True, metadata={"help": "random auto-contrast"})
    auto_contrast_p: float = field(default=0.2, metadata={"help": "auto-contrast probability"})
    crop: bool = field(default=False, metadata={"help": "random x/y box crop"})
    crop_share: tuple[float, float] = field(default=(0.6, 1.0), metadata={"help": "box side share range"})
    crop_p: float = field(default=0.5, metadata={"help": "crop probability"})
    crop_min_instance_share: float = field(
        default=0.3, metadata={"help": "instances keeping less of their points become unlabelled"}
    )

    def __post_init__(self):
        self.scale_range = tuple(float(v) for v in self.scale_range)
        self.crop_share = tuple(float(v) for v in self.crop_share)
        self.elastic_granularity = tuple(float(v) for v in self.elastic_granularity)
        self.elastic_magnitude = tuple(float(v) for v in self.elastic_magnitude)
        if len(self.elastic_granularity) != len(self.elastic_magnitude):
            raise ValueError("AugmentConfig: one elastic_magnitude per elastic_granularity")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"AugmentConfig.scale_range must be 0 < min <= max, got {self.scale_range}")
        lo, hi = self.crop_share
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"AugmentConfig.crop_share must be 0 < min <= max <= 1, got {self.crop_share}")
        if any(g <= 0 for g in self.elastic_granularity) or any(m < 0 for m in self.elastic_magnitude):
            raise ValueError("AugmentConfig: elastic granularity must be > 0 and magnitude >= 0")
        for name in ("auto_contrast_p", "crop_p", "crop_min_instance_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1]")
        if self.color_jitter_std < 0 or self.rotate_z_deg < 0:
            raise ValueError("AugmentConfig: color_jitter_std and rotate_z_deg must be >= 0")


def random_rotate_z(points: np.ndarray, rng: np.random.Generator, max_deg: float = 180.0) -> np.ndarray:
    """(M, 3) points rotated about the z axis through the cloud's x/y centre by a uniform angle in
    ``±max_deg`` degrees (rotating about the centre keeps the cloud where it was)."""
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    c, s = np.cos(angle), np.sin(angle)
    centre = (points.min(0) + points.max(0)) / 2 if len(points) else np.zeros(3)
    centre[2] = 0.0
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return ((points - centre) @ rot.T + centre).astype(np.float32)


def random_flip(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(M, 3) points mirrored in x and in y (each with probability 0.5) about the cloud's centre."""
    out = points.astype(np.float32, copy=True)
    for axis in (0, 1):
        if rng.random() < 0.5 and len(out):
            centre = (out[:, axis].min() + out[:, axis].max()) / 2
            out[:, axis] = 2 * centre - out[:, axis]
    return out


def random_scale(
    points: np.ndarray, rng: np.random.Generator, scale_range: tuple[float, float] = (0.9, 1.1)
) -> np.ndarray:
    """(M, 3) points scaled by one factor uniform in ``scale_range`` about the cloud's centre."""
    factor = rng.uniform(*scale_range)
    centre = (points.min(0) + points.max(0)) / 2 if len(points) else np.zeros(3)
    return ((points - centre) * factor + centre).astype(np.float32)


def elastic_distortion(
    points: np.ndarray, rng: np.random.Generator, granularity: float, magnitude: float
) -> np.ndarray:
    """Smooth random displacement of (M, 3) points (Pointcept's ElasticDistortion, written anew).

    A grid of Gaussian noise with spacing ``granularity`` metres over the cloud's bounding box is smoothed
    with a box filter along each axis (three passes: a smooth field, not per-point jitter), interpolated
    trilinearly at every point and added times ``magnitude``. Pointcept uses two scales,
    ``(0.2, 0.4)`` and ``(0.8, 1.6)``.

    Returns:
        (M, 3) float32 displaced points.
    """
    if len(points) == 0 or magnitude == 0:
        return points.astype(np.float32, copy=True)
    lo = points.min(0)
    shape = (np.floor((points.max(0) - lo) / granularity).astype(int) + 3).tolist()
    noise = rng.standard_normal((3, *shape)).astype(np.float32)
    for _ in range(3):
        for axis in (1, 2, 3):
            noise = ndimage.uniform_filter1d(noise, size=3, axis=axis, mode="constant")
    # grid cell i sits at lo + (i - 1) * granularity: one cell of margin on each side
    coords = ((points - lo) / granularity + 1.0).T
    shift = np.stack([ndimage.map_coordinates(noise[d], coords, order=1, mode="nearest") for d in range(3)])
    return (points + magnitude * shift.T).astype(np.float32)


def color_jitter(colors: np.ndarray, rng: np.random.Generator, std: float = 0.05) -> np.ndarray:
    """(M, 3) uint8 colours plus Gaussian noise of ``std`` × 255 per channel and point, clipped."""
    noisy = colors.astype(np.float32) + rng.normal(0.0, std * 255.0, size=colors.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def auto_contrast(colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(M, 3) uint8 colours with each channel stretched to 0-255, blended with the original by a factor
    uniform in [0, 1) (Pointcept's ChromaticAutoContrast)."""
    if len(colors) == 0:
        return colors.copy()
    c = colors.astype(np.float32)
    lo, hi = c.min(0), c.max(0)
    stretched = (c - lo) * (255.0 / np.maximum(hi - lo, 1.0))
    blend = rng.random()
    return np.clip(np.rint((1 - blend) * c + blend * stretched), 0, 255).astype(np.uint8)


def random_crop(
    points: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    share: tuple[float, float] = (0.6, 1.0),
    min_instance_share: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points inside a random x/y box; unlabel instances cut below ``min_instance_share``.

    Args:
        points: (M, 3) metres.
        labels: (M,) int instance ids (> 0 instances; 0 and -1 are left as they are).
        rng: random stream.
        share: (min, max) box side as a share of the cloud's x and y extents (drawn per axis).
        min_instance_share: an instance of which fewer than this share of points is kept gets id 0.

    Returns:
        ``(index, labels)``: (K,) int64 positions of the kept points, ascending, and their (K,) ids after
        unlabelling cut instances. A box keeping fewer than 2 points keeps everything instead.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(points) < 2:
        return np.arange(len(points)), labels.copy()
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    side = (hi - lo) * rng.uniform(share[0], share[1], size=2)
    start = lo + (hi - lo - side) * rng.random(2)
    inside = np.all((points[:, :2] >= start) & (points[:, :2] <= start + side), axis=1)
    index = np.flatnonzero(inside)
    if len(index) < 2:
        return np.arange(len(points)), labels.copy()
    kept = labels[index].copy()
    ids, total = np.unique(labels[labels > 0], return_counts=True)
    if len(ids):
        after = np.zeros(len(ids), np.int64)
        kid, kn = np.unique(kept[kept > 0], return_counts=True)
        after[np.searchsorted(ids, kid)] = kn
        cut = ids[after < min_instance_share * total]
        kept[np.isin(kept, cut)] = 0
    return index, kept


def augment(
    points: np.ndarray,
    colors: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    cfg: AugmentConfig,
    superpoints: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Apply the augmentations ``cfg`` enables (module docstring for the order).

    Args:
        points: (M, 3) float metres.
        colors: (M, 3) uint8 RGB.
        labels: (M,) int instance ids.
        rng: random stream (the epoch's, for reproducible epochs).
        cfg: which augmentations and how strong.
        superpoints: optional (M,) int superpoint ids; cropped with the points.

    Returns:
        ``(points (K, 3) float32, colors (K, 3) uint8, labels (K,) int64, superpoints (K,) or None)``;
        K = M unless the crop removed points. The inputs are never modified.
    """
    points = np.asarray(points, dtype=np.float32)
    colors = np.asarray(colors, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if not cfg.enabled:
        return points, colors, labels, superpoints
    if cfg.crop and rng.random() < cfg.crop_p:
        index, labels = random_crop(points, labels, rng, cfg.crop_share, cfg.crop_min_instance_share)
        points, colors = points[index], colors[index]
        if superpoints is not None:
            superpoints = np.asarray(superpoints)[index]
    if cfg.rotate_z:
        points = random_rotate_z(points, rng, cfg.rotate_z_deg)
    if cfg.flip:
        points = random_flip(points, rng)
    if cfg.scale:
        points = random_scale(points, rng, cfg.scale_range)
    if cfg.elastic:
        for granularity, magnitude in zip(cfg.elastic_granularity, cfg.elastic_magnitude):
            points = elastic_distortion(points, rng, granularity, magnitude)
    if cfg.auto_contrast and rng.random() < cfg.auto_contrast_p:
        colors = auto_contrast(colors, rng)
    if cfg.color_jitter:
        colors = color_jitter(colors, rng, cfg.color_jitter_std)
    return points, colors, labels, superpoints
