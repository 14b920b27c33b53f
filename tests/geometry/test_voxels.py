"""Voxel cells, keys and the two downsampling rules."""

from __future__ import annotations

import numpy as np

from tracklift.geometry.voxels import (
    KEY_AXIS_BITS,
    voxel_cells,
    voxel_downsample_first,
    voxel_downsample_mean,
    voxel_index,
    voxel_keys,
)


def test_cells_are_half_open_cubes_floor_of_p_over_size():
    pts = np.array([[0.0, 0.0, 0.0], [0.0099, 0.01, -0.0001], [-0.01, 0.025, 0.03]])
    assert voxel_cells(pts, 0.01).tolist() == [[0, 0, 0], [0, 1, -1], [-1, 2, 3]]


def test_keys_equal_exactly_for_points_of_one_voxel_and_sort_like_cells():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-3, 3, (2000, 3))
    keys, cells = voxel_keys(pts, 0.25), voxel_cells(pts, 0.25)
    same_key = keys[:, None] == keys[None, :]
    same_cell = (cells[:, None, :] == cells[None, :, :]).all(-1)
    assert np.array_equal(same_key, same_cell)
    order = np.argsort(keys, kind="stable")
    lex = np.lexsort((cells[:, 2], cells[:, 1], cells[:, 0]))
    assert np.array_equal(cells[order], cells[lex])
    # keys are absolute: the same point gives the same key in another call with other points
    assert voxel_keys(pts[:1], 0.25)[0] == keys[0]
    assert KEY_AXIS_BITS == 21


def test_downsample_first_keeps_the_first_point_of_each_voxel_in_input_order():
    pts = np.array([[0.001, 0, 0], [0.002, 0, 0], [0.5, 0, 0], [-0.003, 0, 0]], np.float32)
    out, tag = voxel_downsample_first(pts, 0.01, np.arange(4))
    assert tag.tolist() == [0, 2, 3]
    np.testing.assert_array_equal(out, pts[[0, 2, 3]])
    same, tags = voxel_downsample_first(pts, 0.0, np.arange(4))
    assert same is pts and tags.tolist() == [0, 1, 2, 3]


def test_downsample_mean_averages_points_and_attributes_per_voxel():
    pts = np.array([[0.001, 0, 0], [0.003, 0, 0], [0.5, 0, 0], [-0.004, 0, 0]])
    colors = np.array([[10, 0, 0], [20, 0, 0], [5, 5, 5], [0, 0, 90]], np.uint8)
    weight = np.array([1.0, 3.0, 2.0, 4.0])
    p, c, w, inverse = voxel_downsample_mean(pts, 0.01, colors, weight, return_inverse=True)
    # voxels in ascending cell order: x cell -1, 0, 50
    np.testing.assert_allclose(p[:, 0], [-0.004, 0.002, 0.5])
    np.testing.assert_allclose(c, [[0, 0, 90], [15, 0, 0], [5, 5, 5]])
    np.testing.assert_allclose(w, [4.0, 2.0, 2.0])
    assert inverse.tolist() == [1, 1, 2, 0]
    assert len(voxel_downsample_mean(pts, 0.01)) == 1
    inv, m = voxel_index(pts, 0.01)
    assert np.array_equal(inv, inverse) and m == 3
