"""Camera geometry: the pixel-rounding rule, projection, back-projection and their round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracklift.geometry.camera import (
    Intrinsics,
    backproject_depth,
    backproject_pixels,
    camera_directions,
    centred_intrinsics,
    depth_pixels,
    fov_intrinsics,
    in_image,
    look_at,
    overview_pose,
    pixel_index,
    project,
    project_batch,
    world_to_camera,
)

# fx = 64 and z = 1 keep every coordinate below exact in binary floating point
EXACT = Intrinsics(fx=64.0, fy=64.0, cx=32.0, cy=24.0, width=64, height=48)
INTR = Intrinsics(fx=100.0, fy=100.0, cx=31.5, cy=23.5, width=64, height=48)


def _rotated_pose() -> np.ndarray:
    pose = np.eye(4)
    c, s = np.cos(0.3), np.sin(0.3)
    pose[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    pose[:3, 3] = [1.0, -2.0, 0.5]
    return pose


def _camera_points(u: np.ndarray, v: np.ndarray, intr: Intrinsics = EXACT) -> np.ndarray:
    """Camera-frame points at depth 1 m landing at continuous image coordinates (u, v)."""
    u, v = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(v, np.float64))
    return np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], axis=1)


def _both(points: np.ndarray, intr: Intrinsics = EXACT):
    """(col, row) from the numpy and the torch projection, identity pose."""
    col, row, _ = project(points, intr, np.eye(4))
    rows, cols, _, inside = project_batch(torch.tensor(points, dtype=torch.float32), torch.eye(4)[None], intr)
    return (col, row), (cols[0].numpy(), rows[0].numpy(), inside[0].numpy())


def test_pixel_rule_is_floor_of_coordinate_plus_half():
    coord = np.array([-0.5, -0.49, 0.0, 0.49, 0.5, 1.5, 2.5, 3.5, -1.5])
    # pixel i covers [i - 0.5, i + 0.5): halves go to the right / lower pixel, never to the even one
    assert pixel_index(coord).tolist() == [0, 0, 0, 0, 1, 2, 3, 4, -1]
    assert pixel_index(coord).dtype == np.int64


def test_a_point_at_a_pixel_centre_maps_to_that_pixel():
    cols, rows = np.meshgrid(np.arange(64), np.arange(48))
    pts = _camera_points(cols.ravel(), rows.ravel())
    (col, row), (tcol, trow, inside) = _both(pts)
    assert np.array_equal(col, cols.ravel()) and np.array_equal(row, rows.ravel())
    assert np.array_equal(tcol, cols.ravel()) and np.array_equal(trow, rows.ravel()) and inside.all()


def test_half_pixel_coordinates_follow_the_rule_in_numpy_and_torch():
    # u = 2.5, 3.5, 10.5: half to even (np.rint) would give 2, 4, 10; the rule gives 3, 4, 11
    u = np.array([2.5, 3.5, 10.5, 7.49])
    v = np.array([4.5, 5.5, 0.5, 6.51])
    (col, row), (tcol, trow, _) = _both(_camera_points(u, v))
    assert col.tolist() == [3, 4, 11, 7] and row.tolist() == [5, 6, 1, 7]
    assert tcol.tolist() == col.tolist() and trow.tolist() == row.tolist()


def test_boundary_pixels_inside_and_outside_the_image():
    eps = 1e-3
    u = np.array([-0.5, -0.5 - eps, 63.5 - eps, 63.5, 10.0, 10.0])
    v = np.array([10.0, 10.0, 10.0, 10.0, -0.5, 47.5])
    (col, row), (tcol, trow, tin) = _both(_camera_points(u, v))
    assert col.tolist() == [0, -1, 63, 64, 10, 10] and row.tolist() == [10, 10, 10, 10, 0, 48]
    expect = [True, False, True, False, True, False]
    assert in_image(col, row, EXACT).tolist() == expect
    assert tin.tolist() == expect
    # the torch projection clamps outside pixels into the image (for safe indexing) and flags them
    assert tcol.tolist() == [0, 0, 63, 63, 10, 10] and trow.tolist() == [10, 10, 10, 10, 0, 47]


def test_points_behind_the_camera_are_outside():
    pts = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    (_, _), (_, _, inside) = _both(pts)
    _, _, z = project(pts, EXACT, np.eye(4))
    assert inside.tolist() == [False, False, True]
    assert z.tolist() == [-1.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backproject_then_project_returns_the_same_pixel(dtype):
    rng = np.random.default_rng(0)
    pose = _rotated_pose()
    rows, cols = rng.integers(0, 48, 500), rng.integers(0, 64, 500)
    z = rng.uniform(0.3, 8.0, 500).astype(dtype)
    pts = backproject_pixels(rows, cols, z, INTR, pose)
    assert pts.dtype == dtype and pts.shape == (500, 3)
    col, row, zc = project(pts, INTR, pose)
    assert np.array_equal(col, cols) and np.array_equal(row, rows)
    np.testing.assert_allclose(zc, z, rtol=1e-5)
    r, c, zt, inside = project_batch(
        torch.tensor(pts, dtype=torch.float32), torch.tensor(pose[None], dtype=torch.float32), INTR
    )
    assert inside.all() and np.array_equal(c[0].numpy(), cols) and np.array_equal(r[0].numpy(), rows)


def test_backproject_depth_and_project_are_inverse():
    intr = centred_intrinsics(64, 48)
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32)
    pose = _rotated_pose()
    pts = backproject_depth(depth, intr, pose)
    assert pts.dtype == np.float32 and pts.shape == (48, 64, 3)
    col, row, z = project(pts.reshape(-1, 3), intr, pose)
    vv, uu = np.mgrid[0:48, 0:64]
    assert np.array_equal(col, uu.ravel()) and np.array_equal(row, vv.ravel())
    np.testing.assert_allclose(z, depth.ravel(), rtol=1e-5)
    # the organised image and the pixel list agree, and depth 0 gives the camera centre
    flat = backproject_pixels(vv.ravel(), uu.ravel(), depth.ravel(), intr, pose)
    np.testing.assert_allclose(flat, pts.reshape(-1, 3), atol=1e-6)
    depth[0, 0] = 0.0
    assert np.array_equal(backproject_depth(depth, intr)[0, 0], [0.0, 0.0, 0.0])


def test_project_batch_matches_pinhole_model():
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 3.0]  # camera at (1, 2, 3), axes aligned with the world
    pts = torch.tensor([[1.0, 2.0, 5.0], [1.51, 2.0, 5.0], [1.0, 1.83, 5.0], [1.0, 2.0, 1.0]])
    rows, cols, z, inside = project_batch(pts, torch.tensor(pose[None]), INTR)
    np.testing.assert_allclose(z[0].numpy(), [2.0, 2.0, 2.0, -2.0])
    # u = 100 * 0.51 / 2 + 31.5 = 57; v = 100 * -0.17 / 2 + 23.5 = 15
    assert cols[0, 0] == 32 and rows[0, 0] == 24
    assert cols[0, 1] == 57 and rows[0, 1] == 24
    assert cols[0, 2] == 32 and rows[0, 2] == 15
    assert inside[0].tolist() == [True, True, True, False]  # the last one is behind the camera


def test_camera_directions_are_pixel_rays_at_unit_depth():
    intr = centred_intrinsics(8, 6)
    d = camera_directions(intr)
    assert d.shape == (48, 3) and (d[:, 2] == 1.0).all()
    vv, uu = np.mgrid[0:6, 0:8]
    np.testing.assert_array_equal(d, backproject_pixels(vv.ravel(), uu.ravel(), np.ones(48), intr))


def test_depth_pixels_mask_cut_and_even_subsampling():
    depth = np.array([[0.0, 1.0, 2.0], [3.0, np.nan, 5.0]], np.float32)
    rows, cols = depth_pixels(depth)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (0, 2), (1, 0), (1, 2)]
    mask = np.array([[True, True, False], [True, True, True]])
    rows, cols = depth_pixels(depth, mask, max_depth=4.0)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    rows, cols = depth_pixels(np.ones((10, 10)), max_points=4)
    assert (rows * 10 + cols).tolist() == [0, 33, 66, 99]  # first, last and evenly between


def test_intrinsics_helpers_centre_the_principal_point():
    c = centred_intrinsics(160, 120, focal=0.9)
    assert (c.fx, c.fy, c.cx, c.cy, c.width, c.height) == (144.0, 144.0, 79.5, 59.5, 160, 120)
    f = fov_intrinsics(200, 100, 90.0)
    assert (f.cx, f.cy) == (99.5, 49.5) and f.fx == pytest.approx(50.0)
    # a point 45° off-axis vertically lands on the edge of the 90° field of view
    _, row, _ = project(np.array([[0.0, 1.0, 1.0]]), f, np.eye(4))
    assert row[0] == round(49.5 + 50.0 + 0.5)


def test_look_at_points_the_camera_at_the_target_with_image_up():
    eye, target = np.array([2.0, -1.0, 1.5]), np.array([0.0, 0.5, 0.5])
    pose = look_at(eye, target)
    R = pose[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    cam = world_to_camera(target[None], pose)[0]
    np.testing.assert_allclose(cam[:2], 0.0, atol=1e-12)  # the target is on the optical axis
    assert cam[2] == pytest.approx(np.linalg.norm(target - eye))
    assert R[:, 1] @ [0.0, 0.0, 1.0] < 0  # image y (down) points against world up
    straight_down = look_at([0.0, 0.0, 3.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(straight_down[:3, 2], [0.0, 0.0, -1.0])
    assert np.isfinite(straight_down).all()


def test_overview_pose_sees_every_point_from_above():
    rng = np.random.default_rng(3)
    pts = rng.uniform([0.0, 0.0, 0.0], [6.0, 4.0, 2.5], (500, 3))
    intr = fov_intrinsics(320, 240, 45.0)
    pose = overview_pose(pts, intr, elevation=60.0)
    col, row, z = project(pts, intr, pose)
    assert (z > 0).all() and in_image(col, row, intr).all()
    assert pose[2, 3] > pts[:, 2].max()  # the camera is above the points, looking down at them
    assert pose[:3, 2] @ [0.0, 0.0, 1.0] == pytest.approx(-np.sin(np.radians(60.0)))
