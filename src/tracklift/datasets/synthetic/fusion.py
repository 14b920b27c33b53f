"""A reconstruction as real scans have it: TSDF fusion of the noisy depth frames, GT voted from the frames.

ScanNet's ``_vh_clean_2.ply`` is a TSDF fusion of the depth video, cleaned and decimated, and its labels
were painted onto that mesh by annotators. This module does the same with the synthetic frames:

1. :func:`fuse_tsdf` integrates the noisy depth frames into Open3D's tensor ``VoxelBlockGrid`` (the legacy
   ``ScalableTSDFVolume`` returns an empty mesh in the 0.20 CPU build, see FACTS.md) and extracts the
   zero crossing by marching cubes. Only voxels some frame observed carry weight, so no surface the
   camera did not see is ever made up; objects touching the floor or a wall become one surface with it.
2. :func:`simplify` decimates the marching-cubes mesh (vertex clustering) to :data:`TARGET_DENSITY`.
3. :func:`vote_labels` projects every vertex into every frame, keeps the frames whose rendered depth
   agrees with the vertex (a depth test), and takes the majority GT instance and, within it, the majority
   GT part of the pixels it lands on; the vertex colour is the mean colour of those pixels.

Open3D is imported lazily (it is a 100 MB dependency that only fusion needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from tracklift.datasets.scene import Intrinsics
from tracklift.errors import DataError
from tracklift.geometry import camera

#: Vertices per m² of surface the fused mesh is decimated to. The synthetic generator's piecewise mesh
#: (the repository's ScanNet-like reference, a 4 cm grid) has 1 / 0.04² = 625 vertices per m²; ScanNet's
#: scene0000_00_vh_clean_2.ply (81k vertices for a room of roughly 150 m² of surface) is of the same order.
#: Marching cubes at 2 cm gives about 3,300 vertices per m², so decimation keeps about a fifth.
TARGET_DENSITY = 625.0

#: Connected pieces smaller than this many triangles are dropped (ScanNet's "clean" step removes floaters).
MIN_PIECE_FACES = 30


def _open3d():
    """The ``open3d`` module, or an error that says how to install it."""
    try:
        import open3d
        import open3d.core  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "fused synthetic meshes need Open3D: pip install 'tracklift[synth]' (open3d-cpu==0.20.0; on Debian "
            f"also apt-get install -y libusb-1.0-0), or use SynthConfig(mesh='parts') ({e})"
        ) from e
    return open3d


@dataclass
class FusedMesh:
    """A fused reconstruction.

    Attributes:
        vertices: (N, 3) float64 world metres.
        faces: (F, 3) int64.
    """

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def area(self) -> float:
        """Total surface area in m²."""
        tri = self.vertices[self.faces]
        return float(np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum() / 2)


@dataclass
class VotedLabels:
    """Per-vertex labels voted from the frames.

    Attributes:
        instance: (N,) int64 GT instance (``label * 1000 + inst``), 0 where no frame's depth test passed.
        part: (N,) int32 GT part id, 0 where unlabelled.
        colors: (N, 3) uint8 mean colour of the pixels the vertex was seen in (grey where never seen).
        views: (N,) int32 number of frames that saw the vertex.
    """

    instance: np.ndarray
    part: np.ndarray
    colors: np.ndarray
    views: np.ndarray


def fuse_tsdf(
    depths: list[np.ndarray],
    poses: list[np.ndarray],
    intrinsics: Intrinsics,
    voxel_size: float,
    depth_max: float,
    scene: str,
    trunc_voxels: float = 4.0,
) -> FusedMesh:
    """TSDF-fuse depth frames and extract the surface by marching cubes.

    Args:
        depths: (H, W) float depth images in metres, 0 = invalid (frames with no valid pixel are skipped
            by the caller).
        poses: (4, 4) camera→world poses, one per depth image.
        intrinsics: the depth camera.
        voxel_size: TSDF voxel edge in metres (about 0.02 for ScanNet-like meshes).
        depth_max: depth beyond this many metres is not integrated.
        scene: scene name for error messages.
        trunc_voxels: truncation distance in voxels.

    Returns:
        the marching-cubes :class:`FusedMesh`.

    Raises:
        DataError: when the fusion yields no triangle (e.g. every depth pixel invalid).
    """
    o3d = _open3d()
    o3c = o3d.core

    cpu = o3c.Device("CPU:0")
    # blocks of 8³ voxels; a room's surface touches a few thousand, and the grid grows if it needs more
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight"),
        attr_dtypes=(o3c.float32, o3c.float32),
        attr_channels=((1), (1)),
        voxel_size=float(voxel_size),
        block_resolution=8,
        block_count=20000,
        device=cpu,
    )
    K = o3c.Tensor(intrinsics.K, o3c.Dtype.Float64)
    for depth, pose in zip(depths, poses):
        # 16-bit millimetres, as a sensor writes them (Open3D refuses float32 depth here)
        image = o3d.t.geometry.Image(o3c.Tensor(np.round(np.asarray(depth) * 1000.0).astype(np.uint16)))
        extrinsic = o3c.Tensor(np.linalg.inv(np.asarray(pose, dtype=np.float64)), o3c.Dtype.Float64)
        blocks = grid.compute_unique_block_coordinates(image, K, extrinsic, 1000.0, depth_max, trunc_voxels)
        grid.integrate(blocks, image, K, extrinsic, 1000.0, depth_max, trunc_voxels)
    try:
        mesh = grid.extract_triangle_mesh(weight_threshold=1.0)
        vertices = mesh.vertex.positions.numpy().astype(np.float64)
        faces = mesh.triangle.indices.numpy().astype(np.int64)
    except RuntimeError as e:  # Open3D raises on an empty grid
        raise DataError(scene, f"TSDF fusion of {len(depths)} frames gave no surface ({e})") from None
    if len(faces) == 0:
        raise DataError(scene, f"TSDF fusion of {len(depths)} frames gave a mesh with zero faces")
    return canonical(FusedMesh(vertices, faces))


def simplify(mesh: FusedMesh, density: float = TARGET_DENSITY) -> FusedMesh:
    """Decimate to about ``density`` vertices per m² by vertex clustering, then drop small floaters.

    Vertex clustering (one vertex per cell of a grid, at the cell's mean) keeps the surface's shape at
    the cell size and is fast: on a 175k-vertex room it took 1.1 s here, quadric-error decimation 16 s.
    On marching-cubes meshes of rooms it gives about 0.8 / cell² vertices per m² (measured: a 4 cm cell
    gave 794 per m²), so the cell is ``1 / sqrt(0.8 * density)`` (4.5 cm for 625 per m²).

    Args:
        mesh: the marching-cubes mesh.
        density: target vertices per m² of surface.

    Returns:
        the decimated :class:`FusedMesh` (unchanged if it is already coarser than the target).
    """
    o3d = _open3d()
    if len(mesh.vertices) > density * mesh.area:
        legacy = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.faces.astype(np.int32))
        )
        cell = 1.0 / np.sqrt(0.8 * density)
        legacy = legacy.simplify_vertex_clustering(
            voxel_size=float(cell), contraction=o3d.geometry.SimplificationContraction.Average
        )
        legacy.remove_degenerate_triangles()
        legacy.remove_duplicated_triangles()
        legacy.remove_unreferenced_vertices()
        mesh = canonical(
            FusedMesh(np.asarray(legacy.vertices, np.float64), np.asarray(legacy.triangles, np.int64))
        )
    return drop_small_pieces(mesh, MIN_PIECE_FACES)


def canonical(mesh: FusedMesh) -> FusedMesh:
    """The same mesh with vertices sorted by position and faces sorted, so that output is deterministic
    (Open3D's voxel hash map and vertex clustering emit vertices in an order that varies run to run)."""
    v = mesh.vertices
    key = np.round(v, 6)
    order = np.lexsort((key[:, 2], key[:, 1], key[:, 0]))
    rank = np.empty(len(v), dtype=np.int64)
    rank[order] = np.arange(len(v))
    f = rank[mesh.faces]
    # rotate each triangle to start at its smallest index (keeps the winding), then sort the triangles
    shift = np.argmin(f, axis=1)
    f = np.stack([f[np.arange(len(f)), (shift + k) % 3] for k in range(3)], axis=1)
    f = f[np.lexsort((f[:, 2], f[:, 1], f[:, 0]))]
    return FusedMesh(v[order], f)


def face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """(F,) connected-component id of every face (faces sharing a vertex are connected)."""
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = sparse.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n_vertices, n_vertices))
    _, vertex_label = csgraph.connected_components(graph, directed=False)
    return vertex_label[faces[:, 0]]


def drop_small_pieces(mesh: FusedMesh, min_faces: int) -> FusedMesh:
    """Remove connected pieces of fewer than ``min_faces`` triangles and the vertices left unused."""
    comp = face_components(mesh.faces, len(mesh.vertices))
    sizes = np.bincount(comp)
    keep = sizes[comp] >= min_faces
    if keep.all() or not keep.any():
        return mesh
    faces = mesh.faces[keep]
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[faces] = True
    remap = np.cumsum(used) - 1
    return FusedMesh(mesh.vertices[used], remap[faces])


def depth_tolerance(z: np.ndarray, voxel_size: float) -> np.ndarray:
    """How far (metres) a fused vertex may lie from the rendered surface and still count as seen there:
    the TSDF's own error (about a voxel) plus three standard deviations of the sensor noise at ``z``."""
    from tracklift.datasets.synthetic.sensor import depth_sigma

    return 1.5 * voxel_size + 3.0 * depth_sigma(z)


def project(
    points: np.ndarray, pose: np.ndarray, intrinsics: Intrinsics
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points into a frame, keeping those that land in the image in front of the camera.

    Args:
        points: (N, 3) world metres.
        pose: (4, 4) camera→world.
        intrinsics: the camera.

    Returns:
        index (M,) of the kept points, their flat pixel index ``row * W + col`` (M,) and their z-depth (M,)
        in metres.
    """
    col, row, z = camera.project(points, intrinsics, pose)
    keep = np.flatnonzero(
        (z > 1e-3) & (col >= 0) & (row >= 0) & (col < intrinsics.width) & (row < intrinsics.height)
    )
    return keep, row[keep] * intrinsics.width + col[keep], z[keep].astype(np.float64)


def _argmax_per_row(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For entries (rows (M,) sorted ascending, values (M,)), the index of each distinct row's largest
    value (the first on ties), in row order."""
    order = np.lexsort((-values, rows))
    first = np.flatnonzero(np.r_[True, rows[order][1:] != rows[order][:-1]])
    return order[first]


def vote_labels(
    vertices: np.ndarray,
    frames: list,
    exact_depths: list[np.ndarray],
    intrinsics: Intrinsics,
    part_instance: np.ndarray,
    voxel_size: float,
) -> VotedLabels:
    """Label a reconstruction from the frames that see it, as annotators label the fused mesh.

    Args:
        vertices: (N, 3) fused mesh vertices, world metres.
        frames: the rendered frames (``color``, ``pose``, GT ``part`` maps).
        exact_depths: (H, W) noise-free rendered depth of each frame (the depth test's reference; holes in
            the sensor depth do not hide a surface from an annotator).
        intrinsics: the camera.
        part_instance: (P + 1,) GT instance of each part id (row 0 = none).
        voxel_size: the TSDF voxel, metres (sets the depth-test tolerance).

    Returns:
        :class:`VotedLabels`: majority instance, the majority part among that instance's parts, mean colour.
    """
    n = len(vertices)
    rows, cols = [], []
    color_sum = np.zeros((n, 3))
    views = np.zeros(n, dtype=np.int64)
    for frame, exact in zip(frames, exact_depths):
        idx, pix, z = project(vertices, frame.pose, intrinsics)
        ref = exact.ravel()[pix]
        seen = (ref > 0) & (np.abs(ref - z) < depth_tolerance(z, voxel_size))
        idx, pix = idx[seen], pix[seen]
        part = frame.part.ravel()[pix]
        labelled = part > 0
        rows.append(idx[labelled])
        cols.append(part[labelled])
        np.add.at(color_sum, idx, frame.color.reshape(-1, 3)[pix].astype(np.float64))
        views[idx] += 1
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols).astype(np.int64) if cols else np.zeros(0, np.int64)
    # votes per (vertex, part), then per (vertex, instance)
    n_parts = len(part_instance)
    pairs, votes = np.unique(r * n_parts + c, return_counts=True)
    vert, part_id = pairs // n_parts, pairs % n_parts
    inst_ids, inst_of_part = np.unique(part_instance, return_inverse=True)
    key = vert * len(inst_ids) + inst_of_part[part_id]
    inst_pairs, where = np.unique(key, return_inverse=True)
    inst_votes = np.bincount(where, weights=votes).astype(np.int64)
    winner = np.full(n, -1, dtype=np.int64)
    iv, ii = inst_pairs // len(inst_ids), inst_pairs % len(inst_ids)
    best = _argmax_per_row(iv, inst_votes)
    winner[iv[best]] = ii[best]
    instance = np.where(winner >= 0, inst_ids[np.maximum(winner, 0)], 0).astype(np.int64)
    # the majority part among the winning instance's parts, so that part and instance always agree
    same = inst_of_part[part_id] == winner[vert]
    part = np.zeros(n, dtype=np.int32)
    pv, pp = vert[same], part_id[same]
    best = _argmax_per_row(pv, votes[same])
    part[pv[best]] = pp[best]
    mean = color_sum / np.maximum(views, 1)[:, None]
    mean[views == 0] = 128.0
    colors = np.clip(np.rint(mean), 0, 255).astype(np.uint8)
    return VotedLabels(instance, part, colors, views.astype(np.int32))


@dataclass
class Reconstruction:
    """A fused, decimated, labelled reconstruction of a scan.

    Attributes:
        mesh: the decimated mesh.
        labels: per-vertex GT, parts, colours and view counts.
        skipped_frames: frames left out because none of their depth pixels is valid.
        marching_cubes_vertices: vertices before decimation.
    """

    mesh: FusedMesh
    labels: VotedLabels
    skipped_frames: int
    marching_cubes_vertices: int


def reconstruct(
    frames: list,
    exact_depths: list[np.ndarray],
    intrinsics: Intrinsics,
    part_instance: np.ndarray,
    scene: str,
    voxel_size: float = 0.02,
    depth_max: float = 7.0,
    density: float = TARGET_DENSITY,
) -> Reconstruction:
    """Fuse the noisy depth frames of a scan, decimate, and label the result from the frames.

    Args:
        frames: rendered frames (noisy ``depth``, ``color``, ``pose``, GT ``part`` maps).
        exact_depths: noise-free depth of each frame (for the labels' depth test).
        intrinsics: the camera.
        part_instance: (P + 1,) GT instance of each part id.
        scene: scene name for error messages.
        voxel_size: TSDF voxel, metres.
        depth_max: depth beyond this is not integrated, metres.
        density: vertices per m² after decimation (0 = no decimation).

    Returns:
        the :class:`Reconstruction`.

    Raises:
        DataError: naming ``scene``, when the fused mesh has no face (e.g. every depth pixel invalid).
    """
    use = [k for k, f in enumerate(frames) if np.any(np.asarray(f.depth) > 0)]
    skipped = len(frames) - len(use)
    if not use:
        raise DataError(
            scene, f"fused mesh has zero faces: all {len(frames)} depth frames are invalid (no depth > 0)"
        )
    fused = fuse_tsdf(
        [frames[k].depth for k in use],
        [frames[k].pose for k in use],
        intrinsics,
        voxel_size,
        depth_max,
        scene,
    )
    n_mc = len(fused.vertices)
    mesh = simplify(fused, density) if density > 0 else drop_small_pieces(fused, MIN_PIECE_FACES)
    labels = vote_labels(
        mesh.vertices,
        [frames[k] for k in use],
        [exact_depths[k] for k in use],
        intrinsics,
        part_instance,
        voxel_size,
    )
    return Reconstruction(mesh, labels, skipped, n_mc)
