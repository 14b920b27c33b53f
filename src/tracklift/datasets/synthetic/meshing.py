"""Tessellate a layout into one scene mesh with per-vertex GT instance and part ids.

Every part is its own mesh piece (no vertex is shared between parts, hence none between instances).
Small things are tessellated finer so that each instance has at least ``min_object_vertices`` vertices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tracklift.datasets.synthetic import appearance
from tracklift.datasets.synthetic.labels import LABEL_IDS, STRUCTURE_LABELS
from tracklift.datasets.synthetic.layout import Layout
from tracklift.datasets.synthetic.primitives import apply, surface_area, tessellate
from tracklift.datasets.synthetic.things import Thing
from tracklift.geometry.normals import vertex_normals

MIN_PART_VERTICES = 40  # tiny parts (a cup handle) are refined to keep at least about this many


@dataclass
class PartTable:
    """Per-part attributes, indexed by part id (row 0 = no part: black, no texture).

    Attributes:
        instance: (P + 1,) int64 GT instance id (``label * 1000 + inst``) of each part.
        name: part names (``"leg0"``, ``"top"``…), ``""`` for row 0.
        color: (P + 1, 3) float64 albedo in [0, 1].
        tex_scale: (P + 1, 3) texture feature size, metres.
        tex_amp: (P + 1,) texture amplitude.
        tex_seed: (P + 1,) int64 texture seed.
        tex_kind: (P + 1,) int64 pattern code (index into ``appearance.KINDS``; 0 = noise only).
        tex_period: (P + 1,) pattern period, metres.
    """

    instance: np.ndarray
    name: list[str]
    color: np.ndarray
    tex_scale: np.ndarray
    tex_amp: np.ndarray
    tex_seed: np.ndarray
    tex_kind: np.ndarray | None = None
    tex_period: np.ndarray | None = None

    def __post_init__(self):
        if self.tex_kind is None:
            self.tex_kind = np.zeros(len(self.instance), dtype=np.int64)
        if self.tex_period is None:
            self.tex_period = np.zeros(len(self.instance))


@dataclass
class SceneMesh:
    """The tessellated scene.

    Attributes:
        vertices: (N, 3) float64 world metres.
        faces: (F, 3) int64.
        normals: (N, 3) unit vertex normals.
        colors: (N, 3) uint8 shaded, textured vertex colours.
        vertex_part: (N,) int32 part id (1-based, unique in the scene).
        vertex_instance: (N,) int64 GT instance id (``label * 1000 + inst``).
        face_part: (F,) int32 part id of each face.
        parts: per-part attributes.
        labels: ``{label_id: name}`` of the labels present.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    vertex_part: np.ndarray
    vertex_instance: np.ndarray
    face_part: np.ndarray
    parts: PartTable
    labels: dict[int, str]


def _tessellate_thing(thing: Thing, spacing: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """World-frame (vertices, faces) of each part; tiny parts get a finer grid than ``spacing``.

    ``spacing`` is in world metres: a thing whose transform scales it is tessellated finer to match.
    """
    out = []
    stretch = float(np.linalg.norm(thing.transform[:3, :3], axis=0).max())
    stretch = 1.0 if abs(stretch - 1.0) < 1e-9 else stretch  # a rotation's column norms are 1 ± an ulp
    for part in thing.parts:
        area = sum(surface_area(s) for s in part.shapes)
        step = min(spacing / max(stretch, 1e-9), math.sqrt(area / MIN_PART_VERTICES))
        verts, faces, off = [], [], 0
        for s in part.shapes:
            v, f = tessellate(s, step)
            verts.append(v)
            faces.append(f + off)
            off += len(v)
        out.append((apply(thing.transform, np.concatenate(verts)), np.concatenate(faces)))
    return out


def thing_geometry(thing: Thing, resolution: float, min_vertices: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tessellate a thing at ``resolution``, refining until it has ``min_vertices`` (structure excepted)."""
    spacing = resolution
    pieces = _tessellate_thing(thing, spacing)
    if thing.label in STRUCTURE_LABELS:
        return pieces
    for _ in range(8):
        count = sum(len(v) for v, _ in pieces)
        if count >= min_vertices:
            break
        spacing *= 0.92 * math.sqrt(count / min_vertices)
        pieces = _tessellate_thing(thing, spacing)
    return pieces


def _cut_covered(verts: np.ndarray, faces: np.ndarray, covers: list) -> tuple[np.ndarray, np.ndarray]:
    """Drop the triangles whose three corners lie inside a cover box (surface hidden behind a door, under
    a cabinet), and the vertices no triangle uses any more."""
    covered = np.zeros(len(verts), dtype=bool)
    for T, lo, hi in covers:
        local = (verts - T[:3, 3]) @ np.linalg.inv(T[:3, :3]).T  # world → the covering thing's frame
        covered |= np.all((local > lo) & (local < hi), axis=1)
    keep = ~covered[faces].all(axis=1)
    used = np.zeros(len(verts), dtype=bool)
    used[faces[keep]] = True
    remap = np.cumsum(used) - 1
    return verts[used], remap[faces[keep]]


def build_mesh(layout: Layout, resolution: float, min_vertices: int, texture: float) -> SceneMesh:
    """Tessellate, label and colour every part of a layout.

    Args:
        layout: the furnished room.
        resolution: grid spacing, metres.
        min_vertices: lower bound on the vertex count of each non-structure instance.
        texture: texture amplitude multiplier.

    Returns:
        the :class:`SceneMesh`.
    """
    verts, faces, normals, vpart, fpart = [], [], [], [], []
    instance, names, colors, scales, amps, seeds = [0], [""], [np.zeros(3)], [np.ones(3)], [0.0], [0]
    kinds, periods = [0], [0.0]
    offset, pid = 0, 0
    labels: dict[int, str] = {}
    covers = [(t.transform, *t.cover_box()) for t in layout.things if t.hides]
    for k, thing in enumerate(layout.things):
        gt = LABEL_IDS[thing.label] * 1000 + k + 1
        labels[LABEL_IDS[thing.label]] = thing.label
        for part, (v, f) in zip(thing.parts, thing_geometry(thing, resolution, min_vertices)):
            if thing.label in STRUCTURE_LABELS and covers:
                v, f = _cut_covered(v, f, covers)
            pid += 1
            verts.append(v)
            faces.append(f + offset)
            normals.append(vertex_normals(v, f))
            vpart.append(np.full(len(v), pid, np.int32))
            fpart.append(np.full(len(f), pid, np.int32))
            offset += len(v)
            instance.append(gt)
            names.append(part.name)
            colors.append(part.color)
            scales.append(np.asarray(part.texture.scale))
            amps.append(part.texture.amplitude)
            seeds.append(part.texture.seed)
            kinds.append(appearance.KINDS.index(part.texture.kind))
            periods.append(part.texture.period)
    table = PartTable(
        np.array(instance, np.int64),
        names,
        np.array(colors, np.float64),
        np.array(scales, np.float64),
        np.array(amps, np.float64),
        np.array(seeds, np.int64),
        np.array(kinds, np.int64),
        np.array(periods, np.float64),
    )
    V, N, P = np.concatenate(verts), np.concatenate(normals), np.concatenate(vpart)
    rgb = appearance.albedo(V, P, table, texture) * appearance.lambert(V, N, layout.light)
    return SceneMesh(
        vertices=V,
        faces=np.concatenate(faces).astype(np.int64),
        normals=N,
        colors=np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8),
        vertex_part=P,
        vertex_instance=table.instance[P],
        face_part=np.concatenate(fpart),
        parts=table,
        labels=dict(sorted(labels.items())),
    )
