"""ScanNet v2 readers and writers: SensReader export and raw ``.sens``."""

import pickle

import numpy as np
import pytest

from tests.conftest import make_scene_data
from tracklift import storage
from tracklift.datasets import sens
from tracklift.datasets.formats import detect_format, list_scenes, open_scene, write_scene
from tracklift.datasets.images import encode_png
from tracklift.datasets.scannet import (
    read_export_scene,
    read_sens_scene,
    write_export_scene,
    write_sens_scene,
)
from tracklift.errors import DataError

# A rigid, clearly non-identity axisAlignment: 30° about z plus a shift.
_c, _s = np.cos(np.pi / 6), np.sin(np.pi / 6)
ALIGN = np.array([[_c, -_s, 0, 1.5], [_s, _c, 0, -2.0], [0, 0, 1, 0.25], [0, 0, 0, 1]])


def assert_same_frames(data, scene, frame_ids=None, pose_atol=1e-9, color_tol=4.0, depth_tol=0.0005 + 1e-6):
    """Every frame of ``data`` comes back: same pose, depth within ``depth_tol`` m, colour close."""
    assert scene.frame_ids == (frame_ids if frame_ids is not None else [f.index for f in data.frames])
    assert scene.poses.shape == (len(data.frames), 4, 4)
    for k, f in enumerate(data.frames):
        g = scene.frame(k)
        assert g.index == scene.frame_ids[k]
        np.testing.assert_allclose(g.pose, f.pose, atol=pose_atol)
        np.testing.assert_allclose(scene.poses[k], f.pose, atol=pose_atol)
        assert g.depth.dtype == np.float32 and g.depth.shape == f.depth.shape
        np.testing.assert_allclose(g.depth, f.depth, atol=depth_tol)
        assert np.array_equal(g.depth == 0, f.depth == 0)
        assert g.color.shape == f.color.shape
        assert np.abs(g.color.astype(float) - f.color).mean() < color_tol


def assert_same_mesh_and_gt(data, scene, atol=1e-5):
    np.testing.assert_allclose(scene.vertices, data.mesh.vertices, atol=atol)
    np.testing.assert_array_equal(scene.colors, data.mesh.colors)
    np.testing.assert_array_equal(scene.mesh.faces, data.mesh.faces)
    np.testing.assert_array_equal(scene.gt_instance, data.gt_instance)


@pytest.mark.parametrize("proto", ["file", "memory"])
def test_export_roundtrip(tmp_path, proto):
    data = make_scene_data(n_frames=4)
    root = str(tmp_path) if proto == "file" else "memory://scannet-rt"
    url = storage.join(root, "scans", data.scene_id)
    write_scene(data, url, "scannet")
    assert detect_format(url) == "scannet"
    assert list_scenes(root) == [url]
    scene = open_scene(url)
    assert scene.format == "scannet" and scene.scene_id == data.scene_id
    assert scene.intrinsics == data.intrinsics
    assert scene.skipped == {}
    assert_same_frames(data, scene)
    assert_same_mesh_and_gt(data, scene)


def test_export_larger_color_and_axis_alignment(tmp_path):
    data = make_scene_data()
    url = str(tmp_path / data.scene_id)
    write_export_scene(data, url, color_size=(128, 96), axis_align=ALIGN)
    # Stored un-aligned (as ScanNet does), at the colour size: the reader must undo both.
    stored = np.loadtxt(tmp_path / data.scene_id / "pose" / "10.txt")
    np.testing.assert_allclose(ALIGN @ stored, data.frames[1].pose, atol=1e-12)
    assert not np.allclose(stored, data.frames[1].pose, atol=0.1)
    assert open_scene(url).frame(0).color.shape == (48, 64, 3)
    from PIL import Image

    assert Image.open(tmp_path / data.scene_id / "color" / "0.jpg").size == (128, 96)
    scene = read_export_scene(url)
    assert scene.intrinsics == data.intrinsics
    assert_same_frames(data, scene, color_tol=6.0)
    assert_same_mesh_and_gt(data, scene)


def test_sens_roundtrip(tmp_path):
    data = make_scene_data(n_frames=4)
    url = str(tmp_path / "scans" / data.scene_id)
    write_sens_scene(data, url, color_size=(96, 72), axis_align=ALIGN)
    assert detect_format(url) == "scannet-sens"
    assert list_scenes(str(tmp_path)) == [url]
    scene = open_scene(url)
    assert scene.format == "scannet-sens"
    assert scene.intrinsics == data.intrinsics
    # Poses are float32 inside .sens.
    assert_same_frames(data, scene, frame_ids=[0, 1, 2, 3], pose_atol=1e-6, color_tol=6.0)
    assert_same_mesh_and_gt(data, scene)


def test_sens_reads_frames_lazily_by_offset(tmp_path):
    data = make_scene_data(n_frames=3)
    url = str(tmp_path / data.scene_id)
    write_sens_scene(data, url)
    index = sens.read_index(storage.join(url, f"{data.scene_id}.sens"))
    assert (
        len(index) == 3
        and index.header.depth_width == 64
        and index.header.color_compression == sens.COLOR_JPEG
    )
    assert np.all(np.diff(index.color_offset) > 0)
    # Corrupt frame 1's depth payload only: frames 0 and 2 still decode, frame 1 names the file.
    path = tmp_path / data.scene_id / f"{data.scene_id}.sens"
    raw = bytearray(path.read_bytes())
    d0 = int(index.color_offset[1] + index.color_bytes[1])
    raw[d0 : d0 + 8] = b"\x00" * 8
    path.write_bytes(bytes(raw))
    scene = read_sens_scene(url)
    scene.frame(2), scene.frame(0)
    with pytest.raises(DataError, match=r"\.sens#frame1: corrupt zlib depth"):
        scene.frame(1)


@pytest.mark.parametrize("fmt", ["scannet", "scannet-sens"])
def test_inf_pose_is_skipped_and_counted(tmp_path, fmt):
    data = make_scene_data(n_frames=3)
    data.frames[1].pose = np.full((4, 4), -np.inf)
    url = str(tmp_path / data.scene_id)
    write_scene(data, url, fmt)
    scene = open_scene(url)
    bad = 10 if fmt == "scannet" else 1
    assert scene.skipped == {bad: "invalid pose"}
    assert scene.frame_ids == ([0, 20] if fmt == "scannet" else [0, 2])
    np.testing.assert_allclose(scene.frame(1).pose, data.frames[2].pose, atol=1e-6)


def test_export_frames_without_images_are_skipped(tmp_path):
    data = make_scene_data(n_frames=3)
    url = tmp_path / data.scene_id
    write_export_scene(data, str(url))
    (url / "depth" / "20.png").unlink()
    scene = read_export_scene(str(url))
    assert scene.frame_ids == [0, 10] and scene.skipped == {20: "missing color or depth image"}


def test_corrupt_jpeg_names_file(tmp_path):
    data = make_scene_data()
    url = tmp_path / data.scene_id
    write_export_scene(data, str(url))
    (url / "color" / "10.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    scene = read_export_scene(str(url))
    scene.frame(0)
    with pytest.raises(DataError, match=r"color/10\.jpg: corrupt or unreadable image"):
        scene.frame(1)


def test_corrupt_png_names_file(tmp_path):
    data = make_scene_data()
    url = tmp_path / data.scene_id
    write_export_scene(data, str(url))
    (url / "depth" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=r"depth/0\.png: corrupt or unreadable image"):
        read_export_scene(str(url)).frame(0)


def test_depth_of_wrong_size_names_file(tmp_path):
    data = make_scene_data()
    url = tmp_path / data.scene_id
    write_export_scene(data, str(url))
    (url / "depth" / "10.png").write_bytes(encode_png(np.zeros((10, 12), np.uint16)))
    with pytest.raises(DataError, match=r"depth/10\.png: depth image is 12x10, expected 64x48"):
        read_export_scene(str(url)).frame(1)


def test_missing_intrinsics(tmp_path):
    data = make_scene_data()
    url = tmp_path / data.scene_id
    write_export_scene(data, str(url))
    (url / "intrinsic" / "intrinsic_depth.txt").unlink()
    with pytest.raises(DataError, match=r"intrinsic_depth\.txt: missing depth intrinsics"):
        read_export_scene(str(url))


@pytest.mark.parametrize("cut", [40, 2000, -100])
def test_truncated_sens_names_file(tmp_path, cut):
    data = make_scene_data(n_frames=3)
    url = tmp_path / data.scene_id
    write_sens_scene(data, str(url))
    path = url / f"{data.scene_id}.sens"
    raw = path.read_bytes()
    path.write_bytes(raw[:cut])
    with pytest.raises(DataError, match=rf"{data.scene_id}\.sens: truncated"):
        read_sens_scene(str(url))


def test_gt_segments_with_wrong_vertex_count(tmp_path):
    data = make_scene_data()
    url = tmp_path / data.scene_id
    write_export_scene(data, str(url))
    (url / f"{data.scene_id}_vh_clean_2.0.010000.segs.json").write_text('{"segIndices": [0, 1, 2]}')
    scene = read_export_scene(str(url))
    with pytest.raises(DataError, match=r"segs\.json: has 3 segment indices, the mesh has 300 vertices"):
        _ = scene.gt_instance


def test_label_map_sources(tmp_path):
    data = make_scene_data()
    url = tmp_path / data.scene_id
    write_export_scene(data, str(url))
    # An explicit map wins over the TSV written beside the scene; names it lacks become unannotated.
    gt = read_export_scene(str(url), label_map={"chair": 7}).gt_instance
    np.testing.assert_array_equal(gt, np.where(data.gt_instance == 3001, 7001, 0))
    # Without any label map the GT cannot be encoded: say so, naming the aggregation file.
    (url / "scannetv2-labels.combined.tsv").unlink()
    with pytest.raises(DataError, match=r"aggregation\.json: no label map"):
        _ = read_export_scene(str(url)).gt_instance
    # A dataset-level TSV two folders up (ScanNet's <root>/scans/<scene> layout) is found.
    (tmp_path / "scannetv2-labels.combined.tsv").write_text(
        "id\traw_category\tcategory\tcount\tnyu40id\n12\tchair\tchair\t1\t5\n13\ttable\ttable\t1\t7\n"
    )
    gt = read_export_scene(str(url)).gt_instance
    np.testing.assert_array_equal(
        gt, np.select([data.gt_instance == 3001, data.gt_instance == 4002], [12001, 13002])
    )
    gt40 = read_export_scene(str(url), label_column="nyu40id").gt_instance
    assert set(np.unique(gt40)) == {0, 5001, 7002}


def test_writer_rejects_unencodable_gt(tmp_path):
    data = make_scene_data()
    data.gt_instance[:5] = 3000  # instance 0 has no segGroup objectId
    with pytest.raises(ValueError, match="instance 0"):
        write_export_scene(data, str(tmp_path / "s"))


@pytest.mark.parametrize("fmt", ["scannet", "scannet-sens"])
def test_scene_is_picklable(tmp_path, fmt):
    """Ray ships scenes to workers: loaders must survive pickling."""
    data = make_scene_data()
    url = str(tmp_path / data.scene_id)
    write_scene(data, url, fmt)
    scene = pickle.loads(pickle.dumps(open_scene(url)))
    np.testing.assert_allclose(scene.frame(2).depth, open_scene(url).frame(2).depth)
    np.testing.assert_array_equal(scene.gt_instance, data.gt_instance)
