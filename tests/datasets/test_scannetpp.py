"""ScanNet++ reader and writer: depth.bin encodings, RGB sources, pose sources and conventions, GT."""

import pickle
import struct

import numpy as np
import pytest

from tests.conftest import look_at, make_scene_data
from tests.datasets.test_scannet import assert_same_frames, assert_same_mesh_and_gt
from tracklift import storage
from tracklift.datasets import colmap, scannetpp, scannetpp_io
from tracklift.datasets.formats import detect_format, list_scenes, open_scene, write_scene
from tracklift.datasets.scene import Frame, Intrinsics, Mesh, SceneData
from tracklift.errors import DataError

try:
    import av  # noqa: F401

    HAVE_AV = True
except ImportError:
    HAVE_AV = False


def box_room(n_frames: int = 3, width: int = 64, height: int = 48, size=(4.0, 3.0, 2.5)) -> SceneData:
    """A camera inside an empty box room: depth is exact (ray to the nearest wall), the mesh samples the
    walls every 5 cm, so depth and mesh agree only under the right camera convention."""
    L = np.asarray(size)
    verts, gt = [], []
    for axis in range(3):
        a, b = [i for i in range(3) if i != axis]
        A, B = np.meshgrid(np.arange(0, L[a] + 1e-9, 0.05), np.arange(0, L[b] + 1e-9, 0.05))
        for side, value in ((0.0, 1), (L[axis], 2)):
            pts = np.zeros((A.size, 3))
            pts[:, axis], pts[:, a], pts[:, b] = side, A.ravel(), B.ravel()
            verts.append(pts)
            gt.append(np.full(A.size, (axis + 1) * 1000 + 2 * axis + value))
    verts, gt = np.concatenate(verts), np.concatenate(gt)
    intr = Intrinsics(fx=40.0, fy=40.0, cx=width / 2 - 0.5, cy=height / 2 - 0.5, width=width, height=height)
    v, u = np.mgrid[0:height, 0:width]
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, float)], -1).reshape(
        -1, 3
    )
    frames = []
    for i in range(n_frames):
        eye = np.array([1.0 + 0.4 * i, 1.0, 1.2])
        pose = look_at(eye, target=(3.6, 2.6 - 0.3 * i, 0.9))
        d = rays @ pose[:3, :3].T
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d > 0, (L - eye) / d, np.where(d < 0, -eye / d, np.inf))
        depth = t.min(axis=1).reshape(height, width).astype(np.float32)  # z of the ray is 1: t is depth
        color = np.clip(depth[..., None] * np.array([60, 40, 20]), 0, 255).astype(np.uint8)
        frames.append(Frame(index=2 * i, color=color, depth=depth, pose=pose))
    mesh = Mesh(verts, np.full((len(verts), 3), 200, np.uint8))
    labels = {1: "wall_x", 2: "wall_y", 3: "floor_ceiling"}
    return SceneData("0a1b2c3d4e", intr, frames, mesh, gt.astype(np.int64), labels=labels)


def _write(data, tmp_path, **kw) -> str:
    url = str(tmp_path / "data" / data.scene_id)
    scannetpp.write_scene(data, url, **kw)
    return url


@pytest.mark.parametrize("encoding", ["lz4", "stream"])
def test_roundtrip(tmp_path, encoding):
    data = make_scene_data("0d2ee665be", n_frames=4)
    url = _write(data, tmp_path, depth_encoding=encoding, color_size=(128, 96), excluded_vertices=[3, 5, 299])
    assert detect_format(url) == "scannetpp"
    assert list_scenes(str(tmp_path)) == [url]
    scene = open_scene(url)
    assert scene.format == "scannetpp" and scene.scene_id == "0d2ee665be"
    got, want = scene.intrinsics, data.intrinsics
    assert (got.width, got.height) == (want.width, want.height)
    np.testing.assert_allclose(
        [got.fx, got.fy, got.cx, got.cy], [want.fx, want.fy, want.cx, want.cy], atol=1e-9
    )
    # stream stores float32 metres exactly; lz4 stores millimetres
    depth_tol = 1e-7 if encoding == "stream" else 0.0005 + 1e-6
    assert_same_frames(data, scene, depth_tol=depth_tol, color_tol=6.0)
    assert scene.skipped == {}
    assert_same_mesh_and_gt(data, scene)
    mask = scene.eval_mask
    assert mask.shape == (300,) and set(np.flatnonzero(~mask)) == {3, 5, 299}


def test_frame_gaps_keep_their_numbers(tmp_path):
    data = make_scene_data("0d2ee665be", n_frames=3)  # frame indices 0, 10, 20
    url = _write(data, tmp_path, depth_encoding="stream")
    depth = scannetpp_io.DepthBin(storage.join(url, "iphone", "depth.bin"))
    depth.set_frame_pixels(64 * 48)
    assert len(depth) == 21 and not depth.frame(5).any()  # blank fillers keep positions = numbers
    np.testing.assert_array_equal(depth.frame(10), data.frames[1].depth.ravel())
    scene = open_scene(url)
    assert scene.frame_ids == [0, 10, 20]
    assert scene.frame(1).index == 10


@pytest.mark.skipif(not HAVE_AV, reason="PyAV not installed")
def test_video_rgb_is_lossless(tmp_path):
    data = make_scene_data("0d2ee665be", n_frames=3)
    url = _write(data, tmp_path)
    assert (tmp_path / "data" / "0d2ee665be" / "iphone" / "rgb.mkv").exists()
    scene = scannetpp.read_scene(url, rgb="video")
    for k, f in enumerate(data.frames):
        np.testing.assert_array_equal(scene.frame(k).color, f.color)  # FFV1 in RGB: exact
    # With no extracted JPEGs, "auto" falls back to the video.
    storage.remove(storage.join(url, "iphone", "rgb"), recursive=True)
    np.testing.assert_array_equal(open_scene(url).frame(2).color, data.frames[2].color)


@pytest.mark.skipif(not HAVE_AV, reason="PyAV not installed")
def test_video_resized_to_depth(tmp_path):
    data = make_scene_data("0d2ee665be", n_frames=2)
    url = _write(data, tmp_path, color_size=(128, 96))
    scene = scannetpp.read_scene(url, rgb="video")
    assert scene.frame(1).color.shape == (48, 64, 3)
    assert np.abs(scene.frame(1).color.astype(float) - data.frames[1].color).mean() < 4.0


def test_colmap_pose_source(tmp_path):
    data = make_scene_data("0d2ee665be", n_frames=3)
    data.frames[1].pose = data.frames[1].pose @ np.diag(
        [-1.0, -1.0, 1.0, 1.0]
    )  # 180° about z: q·w = 0 branch
    url = _write(data, tmp_path, color_size=(96, 72), pose_convention="opengl")
    storage.remove(storage.join(url, "iphone", "pose_intrinsic_imu.json"))
    scene = open_scene(url)  # auto → COLMAP, always OpenCV whatever the JSON said
    np.testing.assert_allclose(scene.intrinsics.K, data.intrinsics.K, atol=1e-9)
    assert_same_frames(data, scene, color_tol=6.0)


@pytest.mark.parametrize("convention", ["opencv", "opengl"])
def test_pose_convention_explicit_and_auto(tmp_path, convention):
    data = box_room()
    url = _write(data, tmp_path, pose_convention=convention)
    assert_same_frames(data, scannetpp.read_scene(url, pose_convention=convention), depth_tol=0.0006)
    wrong = "opengl" if convention == "opencv" else "opencv"
    assert not np.allclose(scannetpp.read_scene(url, pose_convention=wrong).poses, data.frames[0].pose)
    auto = scannetpp.read_scene(url, pose_source="json", pose_convention="auto")
    assert_same_frames(data, auto, depth_tol=0.0006)
    np.testing.assert_array_equal(auto.gt_instance, data.gt_instance)


def test_detect_pose_convention_scores(tmp_path):
    data = box_room()
    depths = [f.depth for f in data.frames]
    poses = [f.pose for f in data.frames]
    conv, scores = scannetpp.detect_pose_convention(poses, depths, data.intrinsics, data.mesh.vertices)
    assert conv == "opencv" and scores["opencv"] < 0.05 < scores["opengl"]
    gl = [p @ scannetpp.GL_TO_CV for p in poses]
    assert scannetpp.detect_pose_convention(gl, depths, data.intrinsics, data.mesh.vertices)[0] == "opengl"


def test_invalid_pose_skipped_and_counted(tmp_path):
    data = make_scene_data("0d2ee665be", n_frames=3)
    data.frames[1].pose = np.full((4, 4), -np.inf)
    url = _write(data, tmp_path)
    scene = scannetpp.read_scene(url, pose_convention="opencv")
    assert scene.frame_ids == [0, 20] and scene.skipped == {10: "invalid pose"}


def test_missing_intrinsics(tmp_path):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path, colmap=False)
    path = tmp_path / "data" / "0d2ee665be" / "iphone" / "pose_intrinsic_imu.json"
    path.write_text(path.read_text().replace('"intrinsic"', '"no_intrinsic"'))
    with pytest.raises(DataError, match=r"pose_intrinsic_imu\.json: missing intrinsics"):
        open_scene(url)


def test_corrupt_jpeg_names_file(tmp_path):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path)
    (tmp_path / "data" / "0d2ee665be" / "iphone" / "rgb" / "frame_000010.jpg").write_bytes(b"\xff\xd8junk")
    scene = scannetpp.read_scene(url, rgb="jpeg", pose_convention="opencv")
    with pytest.raises(DataError, match=r"rgb/frame_000010\.jpg: corrupt or unreadable image"):
        scene.frame(1)


def _depth_path(tmp_path):
    return tmp_path / "data" / "0d2ee665be" / "iphone" / "depth.bin"


@pytest.mark.parametrize(
    "shape, message",
    [
        ((10, 10), "depth frame holds 100 pixels, expected 3072"),
        ((100, 100), "corrupt depth frame, or not 3072"),
    ],
)
def test_depth_frame_of_wrong_size(tmp_path, shape, message):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path)
    frames = [f.depth for f in data.frames]
    frames[1] = np.ones(shape, np.float32)  # stored at position 10 after the filler frames
    blank = np.zeros((48, 64), np.float32)
    seq = [frames[i // 10] if i % 10 == 0 else blank for i in range(21)]
    _depth_path(tmp_path).write_bytes(scannetpp_io.encode_depth_bin(seq, "lz4"))
    scene = scannetpp.read_scene(url, pose_convention="opencv")
    scene.frame(0)
    with pytest.raises(DataError, match=r"depth\.bin#frame10: " + message):
        scene.frame(1)


@pytest.mark.parametrize("encoding", ["lz4", "stream"])
def test_truncated_depth_bin(tmp_path, encoding):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path, depth_encoding=encoding)
    raw = _depth_path(tmp_path).read_bytes()
    _depth_path(tmp_path).write_bytes(raw[: len(raw) - 30])
    with pytest.raises(DataError, match=r"depth\.bin: truncated"):
        open_scene(url)


def test_depth_bin_with_too_few_frames(tmp_path):
    data = make_scene_data("0d2ee665be")  # frames 0, 10, 20 → 21 depth frames written
    url = _write(data, tmp_path, depth_encoding="lz4")
    blocks = _depth_path(tmp_path).read_bytes()
    pos = 0
    for _ in range(15):  # keep the first 15 records
        pos += 4 + struct.unpack("<I", blocks[pos : pos + 4])[0]
    _depth_path(tmp_path).write_bytes(blocks[:pos])
    scene = scannetpp.read_scene(url, pose_convention="opencv")
    assert scene.frame_ids == [0, 10] and scene.skipped == {20: "no depth frame"}


def test_depth_bin_not_depth(tmp_path):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path)
    _depth_path(tmp_path).write_bytes(b"\xff" * 64)
    with pytest.raises(DataError, match=r"depth\.bin: not a depth\.bin in a known encoding"):
        open_scene(url)


def test_per_frame_deflate_encoding(tmp_path):
    """Some scenes hold per-frame raw-deflate float32 blocks; the toolkit falls back to those."""
    import zlib

    data = make_scene_data("0d2ee665be", n_frames=2)  # frames 0, 10
    url = _write(data, tmp_path)
    blank = np.zeros((48, 64), np.float32)
    parts = []
    for i in range(11):
        d = data.frames[i // 10].depth if i % 10 == 0 else blank
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        block = c.compress(d.astype("<f4").tobytes()) + c.flush()
        parts += [struct.pack("<I", len(block)), block]
    _depth_path(tmp_path).write_bytes(b"".join(parts))
    scene = scannetpp.read_scene(url, pose_convention="opencv")
    np.testing.assert_array_equal(scene.frame(1).depth, data.frames[1].depth)


def test_gt_segments_with_wrong_vertex_count(tmp_path):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path)
    (tmp_path / "data" / "0d2ee665be" / "scans" / "segments.json").write_text('{"segIndices": [1, 2]}')
    with pytest.raises(DataError, match=r"segments\.json: has 2 segment indices, the mesh has 300 vertices"):
        _ = open_scene(url).gt_instance


def test_dataset_level_class_list(tmp_path):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path)
    (tmp_path / "data" / "0d2ee665be" / "scans" / "semantic_classes.txt").unlink()
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "semantic_classes.txt").write_text("wall\nfloor\ntable\nchair\n")
    gt = scannetpp.read_scene(url, pose_convention="opencv").gt_instance
    np.testing.assert_array_equal(
        gt, np.select([data.gt_instance == 3001, data.gt_instance == 4002], [3001, 2002])
    )


def test_scene_is_picklable(tmp_path):
    data = make_scene_data("0d2ee665be")
    url = _write(data, tmp_path, depth_encoding="stream")
    scene = pickle.loads(pickle.dumps(open_scene(url)))
    np.testing.assert_allclose(scene.frame(2).depth, data.frames[2].depth, atol=1e-7)


def test_quaternion_roundtrip():
    rng = np.random.default_rng(0)
    mats = [np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), np.eye(3)]
    for _ in range(50):
        q = rng.normal(size=4)
        mats.append(colmap.quat_to_rot(q))
    for R in mats:
        np.testing.assert_allclose(colmap.quat_to_rot(colmap.rot_to_quat(R)), R, atol=1e-12)


def test_write_scene_via_registry(tmp_path):
    data = make_scene_data("0d2ee665be")
    url = str(tmp_path / "data" / "0d2ee665be")
    write_scene(data, url, "scannetpp")
    assert detect_format(url) == "scannetpp"
    assert open_scene(url).frame_ids == [0, 10, 20]


def test_stream_random_access_across_snapshots(tmp_path, monkeypatch):
    """Frames cut from the deflate stream are exact wherever the decompressor snapshots fall."""
    monkeypatch.setattr(scannetpp_io, "_SNAP_BYTES", 5000)  # not a multiple of the 12288-byte frame
    monkeypatch.setattr(scannetpp_io, "_READ", 777)
    rng = np.random.default_rng(1)
    frames = [np.round(rng.uniform(0.3, 5.0, (48, 64)), 2).astype(np.float32) for _ in range(30)]
    path = tmp_path / "depth.bin"
    path.write_bytes(scannetpp_io.encode_depth_bin(frames, "stream"))
    depth = scannetpp_io.DepthBin(str(path))
    assert depth.encoding == "stream" and len(depth._snaps) > 30
    depth.set_frame_pixels(64 * 48)
    assert len(depth) == 30
    for k in (29, 0, 17, 3, 17):
        np.testing.assert_array_equal(depth.frame(k), frames[k].ravel())
    with pytest.raises(DataError, match="no depth frame 30"):
        depth.frame(30)


def test_iphone_sizes(tmp_path):
    """Real proportions: 1920x1440 RGB, 256x192 depth in a deflate stream that does not state its size."""
    rng = np.random.default_rng(2)
    intr = Intrinsics(fx=200.0, fy=200.0, cx=127.5, cy=95.5, width=256, height=192)
    frames = [
        Frame(
            i,
            np.full((192, 256, 3), 40 * i, np.uint8),
            rng.uniform(0.5, 3, (192, 256)).astype(np.float32),
            look_at((i, 0.0, 1.0), (i, 3.0, 1.0)),
        )
        for i in range(2)
    ]
    mesh = Mesh(rng.uniform(0, 1, (50, 3)), None)
    data = SceneData("0d2ee665be", intr, frames, mesh)
    url = _write(data, tmp_path, depth_encoding="stream", color_size=(1920, 1440), video=False)
    scene = scannetpp.read_scene(url, pose_convention="opencv")
    assert scene.intrinsics.width == 256 and scene.intrinsics.height == 192
    np.testing.assert_allclose(scene.intrinsics.K, intr.K, atol=1e-9)
    assert_same_frames(data, scene, depth_tol=1e-7)
    assert scene.gt_instance is None and scene.eval_mask.all()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["scannet", "scannet-sens", "scannetpp"])
def test_synthetic_scene_roundtrip(tmp_path, fmt):
    """A generated room in each layout; for ScanNet++ written in OpenGL axes and recovered by 'auto'."""
    synthetic = pytest.importorskip("tracklift.datasets.synthetic")
    if not hasattr(synthetic, "generate_scene"):
        pytest.skip("synthetic generator not available yet")
    data = synthetic.generate_scene(0, synthetic.SynthConfig.classic(width=64, height=48, n_frames=4))
    url = str(tmp_path / ("data" if fmt == "scannetpp" else "scans") / data.scene_id)
    if fmt == "scannetpp":
        scannetpp.write_scene(data, url, pose_convention="opengl", color_size=(128, 96))
    else:
        write_scene(data, url, fmt)
    scene = open_scene(url)
    ids = list(range(len(data.frames))) if fmt == "scannet-sens" else None
    assert_same_frames(data, scene, frame_ids=ids, pose_atol=1e-5, color_tol=8.0)
    assert_same_mesh_and_gt(data, scene)
