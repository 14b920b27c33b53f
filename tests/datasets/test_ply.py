"""The PLY reader: the layouts real meshes use decode as plyfile writes them, and a header's counts are never
trusted (issue 10, defect 1): an element that declares more rows than the file holds, or more than the cap,
is a DataError naming the file and the element, raised before anything of that size is allocated."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from tracklift.datasets.ply import decode_ply, encode_ply, read_ply
from tracklift.datasets.scene import Mesh
from tracklift.errors import DataError

URL = "memory://scans/mesh.ply"


def _ply(n=60, n_faces=40, text=False, order="<", xyz="f4", face_extra=False, junk_first=False) -> tuple:
    """A PLY written by plyfile and the arrays it holds."""
    rng = np.random.default_rng(n + n_faces)
    v = np.empty(n, [("x", xyz), ("y", xyz), ("z", xyz), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    xyz_values = rng.uniform(-3, 3, (n, 3)).astype(xyz)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    for i, c in enumerate("xyz"):
        v[c] = xyz_values[:, i]
    for i, c in enumerate(("red", "green", "blue")):
        v[c] = rgb[:, i]
    elements = [PlyElement.describe(v, "vertex")]
    faces = rng.integers(0, n, (n_faces, 3)).astype(np.int32)
    if n_faces:
        f = np.empty(n_faces, [("vertex_indices", "i4", (3,))] + ([("flags", "u1")] if face_extra else []))
        f["vertex_indices"] = faces
        elements.append(PlyElement.describe(f, "face"))
    if junk_first:
        j = np.zeros(4, [("a", "i2"), ("b", "f8")])
        elements.insert(0, PlyElement.describe(j, "junk"))
    buf = io.BytesIO()
    PlyData(elements, text=text, byte_order=order).write(buf)
    return buf.getvalue(), xyz_values.astype(np.float32), rgb, faces if n_faces else None


LAYOUTS = {
    "binary little-endian": {},
    "binary big-endian": {"order": ">"},
    "ascii": {"text": True, "order": "="},
    "double coordinates": {"xyz": "f8"},
    "ascii double": {"text": True, "order": "=", "xyz": "f8"},
    "face with an extra property": {"face_extra": True},
    "ascii face extra": {"text": True, "order": "=", "face_extra": True},
    "element before the vertices": {"junk_first": True},
    "ascii element before the vertices": {"text": True, "order": "=", "junk_first": True},
    "no faces": {"n_faces": 0},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_decode_like_plyfile_wrote_them(layout):
    data, xyz, rgb, faces = _ply(**LAYOUTS[layout])
    mesh = decode_ply(data, URL)
    np.testing.assert_array_equal(mesh.vertices, xyz)
    np.testing.assert_array_equal(mesh.colors, rgb)
    if faces is None:
        assert mesh.faces is None
    else:
        np.testing.assert_array_equal(mesh.faces, faces)
        assert mesh.faces.dtype == np.int32
    cloud = decode_ply(data, URL, faces=False)
    assert cloud.faces is None
    np.testing.assert_array_equal(cloud.vertices, xyz)


def test_encode_round_trip_and_read_from_storage():
    rng = np.random.default_rng(0)
    mesh = Mesh(rng.normal(size=(30, 3)), rng.integers(0, 256, (30, 3)), rng.integers(0, 30, (20, 3)))
    from tracklift import storage

    storage.write_bytes(URL, encode_ply(mesh))
    back = read_ply(URL)
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.faces, mesh.faces)


def _header(*elements: str, fmt: str = "binary_little_endian") -> bytes:
    return ("\n".join(["ply", f"format {fmt} 1.0", *elements, "end_header"]) + "\n").encode()


VERTS = "element vertex 3\nproperty float x\nproperty float y\nproperty float z"
XYZ = np.arange(9, dtype="<f4").tobytes()
FACE_LIST = "property list uchar int vertex_indices"


# 1e9 faces made the old reader pre-allocate an 8 GB object array; 2e8 took 15 s and 1.5 GB.
@pytest.mark.parametrize("count", [3_000_000, 200_000_000, 1_000_000_000])
def test_a_face_bomb_is_refused_before_allocating(count):
    bomb = (
        _header(VERTS, f"element face {count}", FACE_LIST)
        + XYZ
        + bytes([3, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0])
    )
    assert len(bomb) < 250
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            decode_ply(bomb, URL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.url == URL and f"{count} 'face' rows" in e.value.problem
    assert peak < 2 << 20, f"{peak} bytes allocated to refuse a {len(bomb)}-byte file"
    # a point cloud needs no faces, but a file that lies about them is still refused
    with pytest.raises(DataError, match="'face'"):
        decode_ply(bomb, URL, faces=False)


def test_a_huge_element_of_any_name_is_refused():
    """``element junk 10^12`` after the vertices: the old reader raised MemoryError."""
    data = _header(VERTS, "element junk 1000000000000", "property int a") + XYZ + b"\0" * 16
    with pytest.raises(DataError, match="1000000000000 'junk' rows"):
        decode_ply(data, URL)
    ascii_data = _header(VERTS, "element junk 1000000000000", "property int a", fmt="ascii")
    ascii_data += b"0 1 2\n3 4 5\n6 7 8\n1\n2\n"
    with pytest.raises(DataError, match="1000000000000 'junk' rows.*lines"):
        decode_ply(ascii_data, URL)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "ascii"])
def test_a_vertex_count_beyond_the_data_is_refused(fmt):
    body = XYZ if fmt != "ascii" else b"0 1 2\n3 4 5\n6 7 8\n"
    data = _header(VERTS.replace("vertex 3", "vertex 100000000000"), fmt=fmt) + body
    with pytest.raises(DataError, match="100000000000 'vertex' rows"):
        decode_ply(data, URL)


def test_the_row_cap_applies_to_decoded_elements_only():
    data, *_ = _ply(n=60, n_faces=200)
    with pytest.raises(DataError, match="60 rows, the limit is 50"):
        decode_ply(data, URL, max_rows=50)
    with pytest.raises(DataError, match="'face' has 200 rows, the limit is 100"):
        decode_ply(data, URL, max_rows=100)
    assert len(decode_ply(data, URL, faces=False, max_rows=100).vertices) == 60  # faces never decoded


def test_list_elements_never_become_per_row_objects():
    """A large legitimate face list decodes as one int32 array, quickly and with memory of its own size."""
    data, _, _, faces = _ply(n=1000, n_faces=400_000)
    tracemalloc.start()
    try:
        mesh = decode_ply(data, URL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(mesh.faces, faces)
    assert peak < 3 * faces.nbytes + (1 << 20)


@pytest.mark.parametrize("text", [False, True])
def test_faces_that_are_not_all_triangles(text):
    v = np.zeros(4, [("x", "f4"), ("y", "f4"), ("z", "f4")])
    f = np.empty(2, [("vertex_indices", object)])
    f["vertex_indices"] = [np.array([0, 1, 2]), np.array([0, 1, 2, 3])]
    buf = io.BytesIO()
    PlyData(
        [
            PlyElement.describe(v, "vertex"),
            PlyElement.describe(f, "face", val_types={"vertex_indices": "i4"}),
        ],
        text=text,
    ).write(buf)
    with pytest.raises(DataError, match="face"):
        decode_ply(buf.getvalue(), URL)
    assert len(decode_ply(buf.getvalue(), URL, faces=False).vertices) == 4


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not a ply", "not a PLY"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n", "end_header"),
        (_header(VERTS, fmt="binary_middle_endian") + XYZ, "format"),
        (_header(VERTS.replace("float z", "quaternion z")) + XYZ, "malformed PLY header"),
        (_header(VERTS.replace("vertex 3", "vertex -3")) + XYZ, "malformed PLY header"),
        (_header(VERTS) + XYZ[:-4], "3 'vertex' rows"),
        (_header("element vertex 2\nproperty float x\nproperty float y") + XYZ[:16], "no 'z'"),
        (_header("element junk 1", "property list uint int a", VERTS) + b"\0\0\0\xf0" + XYZ, "past the end"),
        (_header(VERTS, fmt="ascii") + b"0 1 2\n3 x 5\n6 7 8\n", "not a number"),
        (_header(VERTS, fmt="ascii") + b"0 1 2\n3 4 5 6 7\n8\n", "ragged"),
        (_header(VERTS, fmt="ascii") + b"0 1 2\n3 4 5\n6 7\n", "ragged"),
        (_header(VERTS) + np.array([0, 0, np.nan] * 3, "<f4").tobytes(), "non-finite"),
        (
            _header(VERTS, "element face 1", FACE_LIST)
            + XYZ
            + bytes([3, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0]),
            "outside",
        ),
        # a float list count (NaN, inf) cannot size a list: refused in the header, not an OverflowError later
        (
            _header("element face 1", "property list float int vertex_indices", VERTS)
            + np.array([np.nan], "<f4").tobytes()
            + XYZ,
            "count type must be an integer",
        ),
    ],
)
def test_malformed_files_name_the_problem(data, reason):
    with pytest.raises(DataError, match=reason) as e:
        decode_ply(data, URL)
    assert e.value.url == URL


@pytest.mark.parametrize("fmt", ["tracklift", "scannet"])
def test_a_scene_whose_mesh_is_a_bomb_fails_naming_the_mesh(tmp_path, fmt):
    """``label`` reads meshes with the same reader: the scene fails with the mesh file named."""
    from tests.conftest import make_scene_data
    from tracklift.datasets.formats import open_scene, write_scene

    url = str(tmp_path / "scene0000_00")
    write_scene(make_scene_data(), url, fmt)
    (mesh_path,) = [p for p in (tmp_path / "scene0000_00").iterdir() if p.suffix == ".ply"]
    mesh_path.write_bytes(
        _header(VERTS, "element face 1000000000", FACE_LIST) + XYZ + bytes([3, 0, 0, 0] * 4)
    )
    with pytest.raises(DataError, match="1000000000 'face' rows") as e:
        _ = open_scene(url).mesh
    assert e.value.url.endswith(mesh_path.name)
