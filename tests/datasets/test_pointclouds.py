"""Reading point clouds as users have them: PLY (every common variant), PCD, NPY, NPZ, folders, S3 prefixes,
and the bad files: forged counts cost nothing, every problem is a DataError naming the file."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from tracklift import storage
from tracklift.datasets.pointclouds import (
    cloud_name,
    colors_uint8,
    list_point_clouds,
    read_point_cloud,
)
from tracklift.errors import DataError


def room(n: int = 200, seed: int = 0):
    """A small cloud: points (n, 3) float64 metres, colours (n, 3) uint8, a triangle strip over them."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1.0, 1.0, (n, 3))
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    faces = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], axis=1)
    return pts, rgb, faces


def write_user_ply(path, pts, rgb=None, faces=None, text=False, byte_order="<", coord="f4", color="u1"):
    """A PLY the way Open3D, MeshLab, CloudCompare or plyfile users write one."""
    fields = [("x", coord), ("y", coord), ("z", coord), ("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
    if rgb is not None:
        fields += [("red", color), ("green", color), ("blue", color)]
    vert = np.empty(len(pts), dtype=fields)
    vert["x"], vert["y"], vert["z"] = pts.T
    vert["nx"], vert["ny"], vert["nz"] = 0.0, 0.0, 1.0
    if rgb is not None:
        values = rgb / 255.0 if color.startswith("f") else rgb
        vert["red"], vert["green"], vert["blue"] = values.T
    elements = [PlyElement.describe(vert, "vertex")]
    if faces is not None:
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"}))
    PlyData(elements, text=text, byte_order=byte_order).write(str(path))


def write_pcd(path, pts, rgb=None, data="binary", rgb_type="F"):
    """A PCD file as PCL's ``pcl::io::savePCDFile`` writes one (rgb packed as 0x00RRGGBB)."""
    n = len(pts)
    fields, dtype = ["x", "y", "z"], [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        fields.append("rgb")
        dtype.append(("rgb", "<f4" if rgb_type == "F" else "<u4"))
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(fields)}\nSIZE {' '.join('4' for _ in fields)}\n"
        f"TYPE {' '.join('F' if f != 'rgb' else rgb_type for f in fields)}\nCOUNT {' '.join('1' for _ in fields)}\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    )
    rows = np.empty(n, dtype)
    rows["x"], rows["y"], rows["z"] = np.asarray(pts, np.float32).T
    if rgb is not None:
        packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
        rows["rgb"] = packed.view(np.float32) if rgb_type == "F" else packed
    if data == "binary":
        body = rows.tobytes()
    else:
        lines = []
        for r in rows:
            vals = [repr(float(r[f])) for f in ("x", "y", "z")]
            if rgb is not None:
                vals.append(repr(float(r["rgb"])) if rgb_type == "F" else str(int(r["rgb"])))
            lines.append(" ".join(vals))
        body = ("\n".join(lines) + "\n").encode()
    path.write_bytes(header.encode() + body)


PLY_VARIANTS = [
    # (id, text, byte order, coordinate type, colour type, with colours, with faces)
    ("binary-le-mesh-rgb", False, "<", "f4", "u1", True, True),
    ("binary-be-mesh-rgb", False, ">", "f4", "u1", True, True),
    ("binary-le-points-rgb", False, "<", "f4", "u1", True, False),
    ("binary-le-points-bare", False, "<", "f4", None, False, False),
    ("binary-le-double-float-colours", False, "<", "f8", "f4", True, False),
    ("binary-be-double-mesh-grey", False, ">", "f8", None, False, True),
    ("ascii-mesh-rgb", True, "=", "f4", "u1", True, True),
    ("ascii-points-bare", True, "=", "f4", None, False, False),
    ("ascii-points-float-colours", True, "=", "f4", "f4", True, False),
]


@pytest.mark.parametrize(
    "text, order, coord, color, with_rgb, with_faces",
    [v[1:] for v in PLY_VARIANTS],
    ids=[v[0] for v in PLY_VARIANTS],
)
def test_ply_variants_read_back_points_colours_and_faces(
    tmp_path, text, order, coord, color, with_rgb, with_faces
):
    pts, rgb, faces = room()
    path = tmp_path / "scan.ply"
    write_user_ply(
        path, pts, rgb if with_rgb else None, faces if with_faces else None, text, order, coord, color or "u1"
    )
    mesh = read_point_cloud(str(path))
    np.testing.assert_allclose(mesh.vertices, pts.astype(np.float32), atol=1e-6)
    if with_rgb:
        # float colours in [0, 1] come back as 0..255 (within rounding of the float32 round trip)
        np.testing.assert_allclose(mesh.colors.astype(int), rgb.astype(int), atol=1)
    else:
        assert (mesh.colors == 128).all()
    if with_faces:
        np.testing.assert_array_equal(mesh.faces, faces)
    else:
        assert mesh.faces is None


def test_quad_mesh_is_read_as_its_vertices(tmp_path):
    pts, rgb, _ = room(40)
    quads = np.stack([np.arange(0, 36), np.arange(1, 37), np.arange(2, 38), np.arange(3, 39)], axis=1)
    vert = np.empty(len(pts), [("x", "f4"), ("y", "f4"), ("z", "f4")])
    vert["x"], vert["y"], vert["z"] = pts.T
    face = np.empty(len(quads), [("vertex_indices", "i4", (4,))])
    face["vertex_indices"] = quads
    PlyData([PlyElement.describe(vert, "vertex"), PlyElement.describe(face, "face")]).write(
        str(tmp_path / "q.ply")
    )
    mesh = read_point_cloud(str(tmp_path / "q.ply"))
    assert len(mesh.vertices) == 40 and mesh.faces is None


@pytest.mark.parametrize("data", ["binary", "ascii"])
@pytest.mark.parametrize("rgb_type", ["F", "U"])
def test_pcd_with_packed_rgb(tmp_path, data, rgb_type):
    pts, rgb, _ = room()
    write_pcd(tmp_path / "scan.pcd", pts, rgb, data, rgb_type)
    mesh = read_point_cloud(str(tmp_path / "scan.pcd"))
    np.testing.assert_allclose(mesh.vertices, pts.astype(np.float32), atol=1e-6)
    np.testing.assert_array_equal(mesh.colors, rgb)
    assert mesh.faces is None


def test_pcd_without_colours_drops_nan_points(tmp_path):
    pts, _, _ = room()
    pts[[3, 10]] = np.nan  # organised clouds mark missing returns with NaN
    write_pcd(tmp_path / "scan.pcd", pts, None, "binary")
    mesh = read_point_cloud(str(tmp_path / "scan.pcd"))
    assert len(mesh.vertices) == len(pts) - 2 and (mesh.colors == 128).all()


@pytest.mark.parametrize("cols", ["none", "uint8", "unit-float", "byte-float"])
def test_npy_xyz_and_xyzrgb(tmp_path, cols):
    pts, rgb, _ = room()
    if cols == "none":
        arr = pts
    elif cols == "uint8":
        arr = np.concatenate([pts, rgb], axis=1)
    elif cols == "unit-float":
        arr = np.concatenate([pts, rgb / 255.0], axis=1)
    else:
        arr = np.concatenate([pts, rgb.astype(np.float64)], axis=1)
    np.save(tmp_path / "scan.npy", arr)
    mesh = read_point_cloud(str(tmp_path / "scan.npy"))
    np.testing.assert_allclose(mesh.vertices, pts.astype(np.float32), atol=1e-6)
    expected = np.full_like(rgb, 128) if cols == "none" else rgb
    np.testing.assert_array_equal(mesh.colors, expected)


@pytest.mark.parametrize("keys", [("points", "colors"), ("coord", "color"), ("xyz", "rgb"), ("xyz", None)])
@pytest.mark.parametrize("compressed", [False, True])
def test_npz_key_names(tmp_path, keys, compressed):
    pts, rgb, _ = room()
    arrays = {keys[0]: pts.astype(np.float32)}
    if keys[1]:
        arrays[keys[1]] = rgb
    (np.savez_compressed if compressed else np.savez)(tmp_path / "scan.npz", **arrays)
    mesh = read_point_cloud(str(tmp_path / "scan.npz"))
    np.testing.assert_allclose(mesh.vertices, pts.astype(np.float32))
    np.testing.assert_array_equal(mesh.colors, rgb if keys[1] else np.full_like(rgb, 128))


def test_folder_lists_supported_files_only(tmp_path):
    pts, rgb, _ = room()
    np.save(tmp_path / "b.npy", pts)
    write_pcd(tmp_path / "a.PCD", pts, rgb)
    (tmp_path / "notes.txt").write_text("not a cloud")
    assert [storage.basename(u) for u in list_point_clouds(str(tmp_path))] == ["a.PCD", "b.npy"]
    assert cloud_name(str(tmp_path / "a.PCD")) == "a"
    with pytest.raises(DataError, match="no point-cloud files"):
        list_point_clouds(str(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else ""))
    with pytest.raises(DataError, match="not found"):
        list_point_clouds(str(tmp_path / "missing.ply"))
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        list_point_clouds(str(tmp_path / "notes.txt"))


@pytest.mark.s3
def test_s3_prefix_is_listed_and_read(s3_bucket, tmp_path):
    pts, rgb, faces = room()
    write_user_ply(tmp_path / "room.ply", pts, rgb, faces)
    np.savez(tmp_path / "desk.npz", points=pts, colors=rgb)
    for name in ("room.ply", "desk.npz"):
        storage.write_bytes(f"{s3_bucket}/scans/{name}", (tmp_path / name).read_bytes())
    urls = list_point_clouds(f"{s3_bucket}/scans")
    assert urls == [f"{s3_bucket}/scans/desk.npz", f"{s3_bucket}/scans/room.ply"]
    mesh = read_point_cloud(urls[1])
    np.testing.assert_array_equal(mesh.faces, faces)


# ----------------------------------------------------------------------------------------------- bad input


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _forged_npy(shape: tuple[int, ...], payload: bytes = b"\0" * 24) -> bytes:
    """An .npy whose header declares ``shape`` (float64) over a few bytes of data."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return head.getvalue() + payload


BAD_FILES = {
    "forged-ply-count.ply": (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n" + b"\0" * 24,
        "declares 1000000000 'vertex' rows",
    ),
    "truncated-ascii.ply": (
        b"ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
        b"end_header\n0 0 0\n1 1 1\n",
        "only 2 lines",
    ),
    "not-a-ply.ply": (b"hello\n", "not a PLY file"),
    "forged-pcd-count.pcd": (
        b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1000000000\nHEIGHT 1\n"
        b"POINTS 1000000000\nDATA binary\n" + b"\0" * 24,
        "declares 1000000000 points",
    ),
    "forged-pcd-ascii.pcd": (
        b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 9\nHEIGHT 1\nPOINTS 9\n"
        b"DATA ascii\n0 0 0\n",
        "declares 9 points but only 1 lines",
    ),
    "compressed.pcd": (
        b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\n"
        b"DATA binary_compressed\n\0\0\0\0",
        "binary_compressed",
    ),
    "no-xyz.pcd": (
        b"VERSION 0.7\nFIELDS a b c\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\n"
        b"DATA binary\n" + b"\0" * 12,
        "no x, y, z fields",
    ),
    "x-count.pcd": (
        b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 2 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\n"
        b"DATA binary\n" + b"\0" * 16,
        "COUNT 1",
    ),
    "words.pcd": (
        b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\n"
        b"DATA ascii\n1 two 3\n",
        "not a number",
    ),
    "no-data-line.pcd": (b"VERSION 0.7\nFIELDS x y z\n", "no DATA line"),
    "forged-shape.npy": (_forged_npy((10**12, 3)), "header declares shape (1000000000000, 3)"),
    "pickled.npy": (_npy_bytes(np.array([{"a": 1}], dtype=object)), "pickled arrays are refused"),
    "wrong-shape.npy": (_npy_bytes(np.zeros((4, 4))), "expected an (N, 3) or (N, 6) array"),
    "nan.npy": (_npy_bytes(np.array([[0, 0, 0], [np.nan, 0, 0.0]])), "NaN or infinite"),
    "strings.npy": (_npy_bytes(np.array([["a", "b", "c"]])), "must be numbers"),
    "not-a-zip.npz": (b"PK\x03\x04 garbage", "not an NPZ archive"),
    "bad-colours.npy": (_npy_bytes(np.array([[0, 0, 0, 300, 0, 0], [1, 1, 1, 0, 0, 0.0]])), "0..255"),
    "empty.npy": (_npy_bytes(np.zeros((0, 3))), "no points"),
}


def _npz_with(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


BAD_FILES["forged-member.npz"] = (_npz_with({"points.npy": _forged_npy((10**9, 3))}), "array 'points.npy'")
BAD_FILES["no-points.npz"] = (_npz_with({"normals.npy": _npy_bytes(np.zeros((2, 3)))}), "no coordinates")
BAD_FILES["bad-colour-shape.npz"] = (
    _npz_with({"xyz.npy": _npy_bytes(np.zeros((2, 3))), "rgb.npy": _npy_bytes(np.zeros((3, 3), np.uint8))}),
    "colours must have shape (2, 3)",
)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_data_errors_naming_the_file_in_bounded_memory(tmp_path, name):
    data, problem = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    # tracemalloc counts the whole process: other threads' allocations and one-time work (a first import,
    # a cache filled) can add to one reading (10 MB once in a run of the suite), so the least of three
    # readings is the file's own cost; a reader that materialises a forged array allocates gigabytes on
    # every reading
    peaks = []
    for _ in range(3):
        tracemalloc.start()
        try:
            with pytest.raises(DataError) as err:
                read_point_cloud(str(path))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert str(path) in str(err.value) and problem in str(err.value), str(err.value)
    assert min(peaks) < 8 << 20, f"{peaks} bytes allocated for a {len(data)}-byte file"


def test_unsupported_suffix_and_oversized_file(tmp_path):
    (tmp_path / "scan.obj").write_text("v 0 0 0\n")
    with pytest.raises(DataError, match=r"scan\.obj: unsupported file type '\.obj'"):
        read_point_cloud(str(tmp_path / "scan.obj"))
    pts, _, _ = room(5000)
    np.save(tmp_path / "big.npy", pts)
    with pytest.raises(DataError, match="big.npy: 5000 points, the limit is 100"):
        read_point_cloud(str(tmp_path / "big.npy"), max_points=100)
    # a file larger than max_points can need is refused before it is read (2.4 MB of rows for 1 point)
    np.save(tmp_path / "huge.npy", np.zeros((100_000, 3)))
    with pytest.raises(DataError, match="huge.npy: file is 2400128 bytes, more than 1 points can need"):
        read_point_cloud(str(tmp_path / "huge.npy"), max_points=1)


def test_colour_rules():
    assert (colors_uint8(None, 2, "x") == 128).all()
    np.testing.assert_array_equal(colors_uint8(np.array([[0.0, 0.5, 1.0]] * 2), 2, "x")[0], [0, 128, 255])
    np.testing.assert_array_equal(
        colors_uint8(np.array([[0, 100, 255]] * 2, np.int64), 2, "x")[0], [0, 100, 255]
    )
    with pytest.raises(DataError, match="x: colours hold NaN"):
        colors_uint8(np.array([[np.nan, 0, 0]] * 2), 2, "x")
    with pytest.raises(DataError, match=r"x: colours must have shape \(2, 3\)"):
        colors_uint8(np.zeros((2, 4)), 2, "x")
