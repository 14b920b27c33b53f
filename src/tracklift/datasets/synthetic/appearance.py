"""Surface appearance: per-part albedo with a procedural 3D texture and pattern, and Lambertian shading.

The texture is a function of the world point, so a surface looks the same from every view (what a
tracker needs) and the mesh's vertex colours agree with the images, as in a real reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AMBIENT = 0.42  # share of light that reaches every surface (walls bounce a lot indoors)

#: pattern kinds, in the order of their integer codes in ``PartTable.tex_kind``
KINDS = ("noise", "grain", "tiles", "stripes", "checks", "carpet")

_PRIMES = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F), np.uint32(0x9E3779B1))
_MIX = np.uint32(0x45D9F3B)
_SHIFT = np.uint32(16)


def _finalise01(h: np.ndarray) -> np.ndarray:
    """Scramble 32-bit hashes (in place) and map them to uniform [0, 1) float32."""
    h ^= h >> _SHIFT
    h *= _MIX
    h ^= h >> _SHIFT
    h *= _MIX
    h ^= h >> _SHIFT
    return h.astype(np.float32) * np.float32(1.0 / 4294967296.0)


def value_noise(points: np.ndarray, scale: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Smooth 3D value noise in [-1, 1].

    Args:
        points: (N, 3) world points, metres.
        scale: (N, 3) feature size per axis, metres.
        seed: (N,) integer seed per point (one per part).

    Returns:
        (N,) float64 noise, trilinearly interpolated between lattice values with a smoothstep.
    """
    q = points / scale
    i0 = np.floor(q)
    f = (q - i0).astype(np.float32)
    f = f * f * (3.0 - 2.0 * f)
    with np.errstate(over="ignore"):
        # per-axis parts of the lattice hash, for the lower and upper corner along each axis
        cell = i0.astype(np.int64).astype(np.uint32)
        axis = [[cell[:, k] * _PRIMES[k], (cell[:, k] + np.uint32(1)) * _PRIMES[k]] for k in range(3)]
        salt = (seed.astype(np.uint64) * np.uint64(0x9E3779B1) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        weights = [[1.0 - f[:, k], f[:, k]] for k in range(3)]
        out = np.zeros(len(points), dtype=np.float32)
        for dx in (0, 1):
            for dy in (0, 1):
                hxy = axis[0][dx] + axis[1][dy] + salt
                wxy = weights[0][dx] * weights[1][dy]
                for dz in (0, 1):
                    out += wxy * weights[2][dz] * _finalise01(hxy + axis[2][dz])
    return 2.0 * out.astype(np.float64) - 1.0


def _pattern(points: np.ndarray, kind: str, period: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """(N,) pattern value in about [-1, 1] of one kind at world points (``period`` (N,) metres)."""
    p = period[:, None]
    if kind == "grain":  # wavy lines across the plank, bent by coarse noise
        bend = value_noise(points, np.full_like(points, 0.15), seed + 11)
        return np.sin(2 * np.pi * (points[:, 1] + 0.7 * points[:, 2]) / p[:, 0] + 3.0 * bend) ** 3
    if kind == "tiles":  # floor tiles: one brightness per tile, dark grout lines between them
        cell = np.floor(points[:, :2] / p)
        tile = value_noise(
            np.column_stack([cell + 0.5, np.zeros(len(cell))]), np.ones_like(points), seed + 13
        )
        frac = points[:, :2] / p - cell
        grout = np.any((frac < 0.04) | (frac > 0.96), axis=1)
        return np.where(grout, -2.0, 0.5 * tile)
    if kind == "stripes":  # vertical stripes along walls and fabric
        return np.where(((points[:, 0] + points[:, 1]) / p[:, 0]) % 1.0 < 0.5, 1.0, -1.0)
    if kind == "checks":  # a 3D checkerboard: checks on every face of a cushion
        return np.where(np.floor(points / p).sum(axis=1) % 2 == 0, 1.0, -1.0)
    if kind == "carpet":  # fibres: fine strong noise over a soft mottle
        return value_noise(points, np.full_like(points, 0.006), seed + 17) + 0.5 * value_noise(
            points, np.full_like(points, 0.2), seed + 19
        )
    return np.zeros(len(points))


def albedo(points: np.ndarray, part: np.ndarray, parts, strength: float) -> np.ndarray:
    """Textured, patterned albedo of surface points.

    Args:
        points: (N, 3) world points, metres.
        part: (N,) part ids (index into the ``parts`` tables; 0 = none).
        parts: :class:`~tracklift.datasets.synthetic.meshing.PartTable`.
        strength: texture amplitude multiplier (``SynthConfig.texture / 0.08``).

    Returns:
        (N, 3) float64 RGB in [0, 1].
    """
    scale, seed = parts.tex_scale[part], parts.tex_seed[part]
    n = 0.65 * value_noise(points, scale, seed) + 0.35 * value_noise(points, scale * 0.3, seed + 7)
    amp = 0.12 * strength * parts.tex_amp[part]
    kind = parts.tex_kind[part]
    for code in np.flatnonzero(np.bincount(kind, minlength=len(KINDS))):
        if code == 0:
            continue
        at = np.flatnonzero(kind == code)
        # patterns are about twice as contrasted as the noise (stripes, tiles and grain are plainly visible)
        n[at] += 1.6 * _pattern(points[at], KINDS[code], parts.tex_period[part[at]], seed[at])
    return np.clip(parts.color[part] * (1.0 + amp * n)[:, None], 0.0, 1.0)


@dataclass(frozen=True)
class Lighting:
    """Point lights plus ambient light.

    Attributes:
        positions: (L, 3) world positions of the lights (or (3,) for one).
        intensity: strength of the direct light.
        ambient: share of light that reaches every surface.
        tint: (3,) RGB colour of the light.
    """

    positions: np.ndarray
    intensity: float = 1.0
    ambient: float = AMBIENT
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


def lambert(points: np.ndarray, normals: np.ndarray, light) -> np.ndarray:
    """(N, 3) RGB shading factor of ceiling point lights plus ambient light (normals must be unit).

    Args:
        points: (N, 3) world points.
        normals: (N, 3) unit normals facing the viewer.
        light: a :class:`Lighting`, or a (3,) light position (one white light, the default ambient).
    """
    if not isinstance(light, Lighting):
        light = Lighting(np.asarray(light, dtype=np.float64))
    positions = np.asarray(light.positions, dtype=np.float64).reshape(-1, 3)
    direct = np.zeros(len(points))
    for pos in positions:
        to_light = pos - points
        dist = np.linalg.norm(to_light, axis=1)
        cos = np.einsum("ij,ij->i", normals, to_light) / np.maximum(dist, 1e-9)
        falloff = np.minimum(1.0, 2.2 / np.maximum(dist, 1e-3))  # softened inverse distance
        direct += np.clip(cos, 0.0, 1.0) * falloff
    # several lights share the same total power, so a room is not brighter for having more bulbs
    direct *= light.intensity / np.sqrt(len(positions))
    shade = light.ambient + (1.0 - light.ambient) * direct
    return shade[:, None] * np.asarray(light.tint, dtype=np.float64)[None, :]
