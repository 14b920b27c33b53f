"""Mesh normals (per face, per vertex) and normals of organised point images."""

from __future__ import annotations

import numpy as np
import trimesh

from tracklift.geometry.camera import backproject_depth, centred_intrinsics
from tracklift.geometry.normals import face_normals, normals_from_points, shifted, vertex_normals


def test_face_normals_follow_the_winding_and_are_zero_for_degenerate_faces():
    v = np.array([[0.0, 0, 0], [2.0, 0, 0], [0, 3.0, 0], [4.0, 0, 0]])
    n = face_normals(v, np.array([[0, 1, 2], [0, 2, 1], [0, 1, 3]]))
    np.testing.assert_allclose(n, [[0, 0, 1], [0, 0, -1], [0, 0, 0]])


def test_vertex_normals_of_a_sphere_point_outwards_and_isolated_vertices_get_zero():
    s = trimesh.creation.icosphere(subdivisions=3)
    verts = np.vstack([s.vertices, [[9.0, 9.0, 9.0]]])  # one vertex used by no face
    n = vertex_normals(verts, s.faces)
    radial = s.vertices / np.linalg.norm(s.vertices, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", n[:-1], radial).min() > 0.99
    np.testing.assert_allclose(np.linalg.norm(n[:-1], axis=1), 1.0)
    assert (n[-1] == 0).all()


def test_normals_of_a_tilted_plane_and_at_a_depth_edge():
    intr = centred_intrinsics(80, 60)
    # plane z = 2 + 0.5 * y_cam, seen by the camera; its normal is ∝ (0, 0.5, -1)
    v = (np.arange(60, dtype=np.float32) - intr.cy) / intr.fy
    depth = np.repeat((2.0 / (1.0 - 0.5 * v))[:, None], 80, axis=1).astype(np.float32)
    depth[:, 40:] *= 0.7  # a nearer, parallel plane on the right half: a depth edge at column 40
    n = normals_from_points(backproject_depth(depth, intr), depth > 0, radius=2)
    expect = np.array([0.0, 0.5, -1.0]) / np.linalg.norm([0.0, 0.5, -1.0])
    inner = n[5:-5, 5:-5].reshape(-1, 3)
    assert np.all(np.linalg.norm(inner, axis=1) > 0.99)
    # every pixel, also right beside the edge, has its own plane's normal (not a blend across the edge)
    assert np.degrees(np.arccos(np.clip(inner @ expect, -1, 1))).max() < 3.0


def test_shifted_reads_the_neighbour_and_fills_outside():
    a = np.arange(6).reshape(2, 3)
    assert shifted(a, 0, 1, -1).tolist() == [[1, 2, -1], [4, 5, -1]]
    assert shifted(a, -1, 0, -1).tolist() == [[-1, -1, -1], [0, 1, 2]]
    assert (shifted(a, 2, 0, 7) == 7).all()
