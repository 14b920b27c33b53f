import numpy as np
import pytest

from tests.conftest import make_scene_data
from tracklift import storage
from tracklift.datasets.formats import detect_format, list_scenes, open_scene, write_scene
from tracklift.errors import DataError


def assert_same_scene(data, scene, color_tol=4.0):
    assert scene.scene_id == data.scene_id
    assert scene.intrinsics == data.intrinsics
    assert scene.frame_ids == [f.index for f in data.frames]
    for k, f in enumerate(data.frames):
        g = scene.frame(k)
        np.testing.assert_allclose(g.pose, f.pose, atol=1e-6)
        np.testing.assert_allclose(g.depth, np.round(f.depth * 1000) / 1000, atol=1e-6)
        assert np.abs(g.color.astype(float) - f.color).mean() < color_tol
    np.testing.assert_allclose(scene.vertices, data.mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(scene.colors, data.mesh.colors)
    np.testing.assert_array_equal(scene.gt_instance, data.gt_instance)


@pytest.mark.parametrize("proto", ["file", "memory"])
def test_roundtrip(tmp_path, proto):
    data = make_scene_data()
    root = str(tmp_path) if proto == "file" else "memory://rt"
    url = storage.join(root, data.scene_id)
    write_scene(data, url, "tracklift")
    assert detect_format(url) == "tracklift"
    assert list_scenes(root) == [url]
    scene = open_scene(url)
    assert_same_scene(data, scene)
    np.testing.assert_array_equal(scene.frame(1).instance, data.frames[1].instance)
    np.testing.assert_array_equal(scene.frame(2).part, data.frames[2].part)


def test_invalid_pose_is_skipped_and_counted(tmp_path):
    data = make_scene_data()
    data.frames[1].pose = np.full((4, 4), -np.inf)
    write_scene(data, str(tmp_path / "s"), "tracklift")
    scene = open_scene(str(tmp_path / "s"))
    assert scene.frame_ids == [0, 20]
    assert scene.skipped == {10: "invalid pose"}


def test_corrupt_jpeg_names_file(tmp_path):
    data = make_scene_data()
    write_scene(data, str(tmp_path / "s"), "tracklift")
    (tmp_path / "s" / "color" / "10.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    scene = open_scene(str(tmp_path / "s"))
    with pytest.raises(DataError, match=r"color/10\.jpg: corrupt"):
        scene.frame(1)


def test_wrong_depth_size_names_file(tmp_path):
    from tracklift.datasets.images import encode_png

    data = make_scene_data()
    write_scene(data, str(tmp_path / "s"), "tracklift")
    (tmp_path / "s" / "depth" / "0.png").write_bytes(encode_png(np.zeros((10, 10), np.uint16)))
    with pytest.raises(DataError, match=r"color/0\.jpg: depth image is 10x10, expected 64x48"):
        open_scene(str(tmp_path / "s")).frame(0)


def test_gt_wrong_vertex_count(tmp_path):
    data = make_scene_data()
    write_scene(data, str(tmp_path / "s"), "tracklift")
    (tmp_path / "s" / "gt_instance.txt").write_text("1\n2\n")
    with pytest.raises(DataError, match="ground truth has 2 values for 300 vertices"):
        _ = open_scene(str(tmp_path / "s")).gt_instance
