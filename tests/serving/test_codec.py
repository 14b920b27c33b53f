"""Request / response payloads without Ray: every format decodes to the same arrays, every malformed body
is a RequestError with the right status and a reason, responses round-trip through the client decoder."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from tracklift.errors import DataError
from tracklift.serving.codec import (
    Cloud,
    QueryRequest,
    RequestError,
    SceneRef,
    decode_query_request,
    decode_result,
    decode_segment_request,
    encode_cloud,
    encode_result_json,
    encode_result_npz,
    instance_payload,
    server_timing,
    wants_npz,
)
from tracklift.structures import Instances

LIMIT = 10_000


@pytest.fixture
def cloud():
    rng = np.random.default_rng(3)
    return rng.uniform(-2, 2, (500, 3)).astype(np.float32), rng.integers(0, 256, (500, 3), dtype=np.uint8)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _status(body: bytes, ctype: str, limit: int = LIMIT) -> tuple[int, str]:
    with pytest.raises(RequestError) as e:
        decode_segment_request(body, ctype, limit)
    assert isinstance(e.value, DataError) and e.value.problem
    return e.value.status, e.value.problem


@pytest.mark.parametrize("fmt", ["npz", "ply", "json"])
def test_formats_decode_to_the_same_cloud(cloud, fmt):
    points, colors = cloud
    body, ctype = encode_cloud(points, colors, fmt)
    out = decode_segment_request(body, ctype + "; charset=binary", LIMIT)
    assert isinstance(out, Cloud)
    np.testing.assert_array_equal(out.points, points)
    np.testing.assert_array_equal(out.colors, colors)
    assert out.points.dtype == np.float32


@pytest.mark.parametrize("fmt", ["npz", "json"])
def test_float_colors_and_missing_colors(cloud, fmt):
    points, colors = cloud
    fc = colors.astype(np.float32) / 255.0
    out = decode_segment_request(*encode_cloud(points, fc, fmt), LIMIT)
    np.testing.assert_allclose(out.colors, fc, atol=1e-7)
    grey = decode_segment_request(*encode_cloud(points, None, fmt), LIMIT)
    assert grey.colors.dtype == np.uint8 and np.all(grey.colors == 128)


def test_scene_url_request():
    out = decode_segment_request(b'{"scene_url": " s3://b/scans/scene0000_00 "}', "application/json", LIMIT)
    assert out == SceneRef("s3://b/scans/scene0000_00")
    assert _status(b'{"scene_url": "", "points": []}', "application/json")[0] == 400
    assert _status(b'{"scene_url": "x", "points": [[0,0,0]]}', "application/json")[0] == 400


def test_truncated_and_broken_ply(cloud):
    body, ctype = encode_cloud(*cloud, "ply")
    status, problem = _status(body[: len(body) // 2], ctype)
    assert status == 400
    assert _status(body[:40], ctype)[0] == 400  # header cut before end_header
    assert "PLY" in _status(b"not a ply at all", ctype)[1]


def test_ply_limit_is_checked_from_the_header(cloud):
    body, ctype = encode_cloud(*cloud, "ply")
    status, problem = _status(body, ctype, limit=100)
    assert status == 413 and "500 points" in problem and "100" in problem
    # a header claiming a huge cloud with almost no data: refused before parsing
    fake = b"ply\nformat binary_little_endian 1.0\nelement vertex 99999999\nproperty float x\nend_header\n"
    assert _status(fake, ctype)[0] == 413


def test_nan_empty_and_single_point(cloud):
    points, colors = cloud
    bad = points.copy()
    bad[7, 1] = np.nan
    status, problem = _status(*encode_cloud(bad, colors, "npz"))
    assert status == 400 and "NaN" in problem and "1 of 500" in problem
    status, problem = _status(*encode_cloud(bad, colors, "ply"))
    assert status == 400 and "non-finite" in problem
    status, problem = _status(b'{"points": [[0, 0, NaN], [1, 1, 1]]}', "application/json")
    assert status == 400 and "NaN" in problem
    for fmt in ("npz", "ply", "json"):
        status, problem = _status(*encode_cloud(np.zeros((0, 3), np.float32), None, fmt))
        assert status == 400 and "empty" in problem, fmt
    assert "at least 2" in _status(*encode_cloud(points[:1], None, "json"))[1]


def test_wrong_dtypes_and_shapes(cloud):
    points, colors = cloud
    cases = {
        "int points": _npz(points=points.astype(np.int64)),
        "string points": _npz(points=np.array([["a", "b", "c"]] * 3)),
        "2 columns": _npz(points=points[:, :2]),
        "colour count": _npz(points=points, colors=colors[:10]),
        "float colours > 1": _npz(points=points, colors=colors.astype(np.float32)),
        "bool colours": _npz(points=points, colors=colors > 0),
        "no points": _npz(xyz=points),
    }
    for what, body in cases.items():
        status, problem = _status(body, "application/x-npz")
        assert status == 400, what
    assert "dtype" in _status(cases["int points"], "application/x-npz")[1]
    # JSON: strings, ragged rows, colours out of range, not an object
    for body in (
        b'{"points": [["1", "2", "3"], ["1", "2", "3"]]}',
        b'{"points": [[1, 2, 3], [1, 2]]}',
        b'{"points": [[1, 2, 3], [1, 2, 4]], "colors": [[0, 0, 300], [0, 0, 0]]}',
        b"[1, 2, 3]",
        b"{not json",
        b'{"colors": [[1, 2, 3]]}',
    ):
        assert _status(body, "application/json")[0] == 400, body


def test_pickled_npz_is_refused():
    body = _npz(points=np.array([object(), object()], dtype=object))
    status, problem = _status(body, "application/x-npz")
    assert status == 400 and "pickle" in problem.lower()


def test_npz_that_unpacks_too_large_is_413():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("points.npy", b"\0" * (LIMIT * 3 * 8 * 2 + (2 << 20)))  # compresses to a few kB
    assert len(buf.getvalue()) < 100_000
    assert _status(buf.getvalue(), "application/x-npz")[0] == 413


def test_unsupported_media_type(cloud):
    body, _ = encode_cloud(*cloud, "npz")
    for ctype in ("text/csv", "", None):
        assert _status(body, ctype)[0] == 415


def test_query_requests():
    q = decode_query_request(b'{"scene_key": "cloud-1", "text": " a red chair ", "top_k": 3}')
    assert q == QueryRequest("a red chair", 3, "cloud-1", None)
    assert decode_query_request(b'{"scene_url": "s3://x", "text": "lamp"}').top_k == 5
    for body in (
        b'{"scene_key": "k", "text": ""}',
        b'{"scene_key": "k", "text": "   "}',
        b'{"scene_key": "k"}',
        b'{"scene_key": "k", "text": "x", "top_k": 0}',
        b'{"scene_key": "k", "text": "x", "top_k": true}',
        b'{"scene_key": "k", "text": "x", "top_k": "3"}',
        b'{"text": "x"}',
        b'{"scene_key": "k", "scene_url": "u", "text": "x"}',
        b'{"scene_key": 5, "text": "x"}',
        json.dumps({"scene_key": "k", "text": "x" * 2000}).encode(),
    ):
        with pytest.raises(RequestError) as e:
            decode_query_request(body)
        assert e.value.status == 400, body
    with pytest.raises(RequestError, match="empty query"):
        decode_query_request(b'{"scene_key": "k", "text": ""}')


def _instances() -> Instances:
    masks = np.zeros((3, 10), bool)
    masks[0, :4] = True
    masks[1, 3:7] = True  # overlaps instance 0 at point 3
    masks[2, 9] = True
    return Instances(masks, np.array([0.5, 0.9, 0.2]))


def test_payload_ids_follow_scores():
    p = instance_payload(_instances())
    assert p["instance_ids"].tolist() == [1, 1, 1, 2, 2, 2, 2, 0, 0, 3]  # point 3: higher score wins
    assert p["point_offsets"].tolist() == [0, 4, 8, 9]
    assert p["point_indices"][4:8].tolist() == [3, 4, 5, 6]


@pytest.mark.parametrize("fmt", ["json", "npz"])
def test_result_round_trip(fmt):
    inst = _instances()
    timings = {"decode": 1.5, "forward": 20.25}
    if fmt == "json":
        body, ctype = encode_result_json("cloud-abc", inst, timings, {"model": "m"}), "application/json"
    else:
        body, ctype = encode_result_npz("cloud-abc", inst, timings), "application/x-npz"
    res = decode_result(body, ctype)
    assert res.scene_key == "cloud-abc"
    np.testing.assert_array_equal(res.instances.masks, inst.masks)
    np.testing.assert_allclose(res.instances.scores, inst.scores)
    assert res.instance_ids.tolist() == inst.to_ids().tolist()
    assert res.timings_ms == timings
    if fmt == "json":
        assert res.extra["model"] == "m" and res.extra["num_instances"] == 3


def test_empty_result_round_trip():
    res = decode_result(encode_result_npz("k", Instances.empty(5), {}), "application/x-npz")
    assert len(res.instances) == 0 and res.instances.num_points == 5
    res = decode_result(encode_result_json("k", Instances.empty(5), {}), "application/json")
    assert len(res.instances) == 0 and res.instance_ids.tolist() == [0] * 5


def test_headers():
    assert wants_npz("application/json, application/x-npz;q=0.9")
    assert not wants_npz("application/json") and not wants_npz(None)
    assert server_timing({"decode": 1.23456, "forward": 2.0}) == "decode;dur=1.235, forward;dur=2.000"


# ------------------------------------------------------------------------- hostile inputs (issue 10)


def _npy_with_shape(shape: tuple, dtype: str = "<f4", payload: bytes = b"\0" * 24) -> bytes:
    """An NPZ whose ``points.npy`` header claims ``shape`` while holding only ``payload``."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": dtype, "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("points.npy", head.getvalue() + payload)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(10**12, 3), (10**6, 3), (7, 3)])
def test_npz_header_claiming_more_than_it_holds_is_refused(shape):
    """The old decoder allocated the claimed shape (10^12 x 3: MemoryError, a 500)."""
    status, problem = _status(_npy_with_shape(shape), "application/x-npz", limit=2 * 10**6)
    assert status == 400 and "points.npy" in problem and "holds 24 bytes" in problem


def test_npz_arrays_are_read_from_the_members_whose_headers_were_checked():
    """np.load prefers a member named plain "points" over "points.npy": a small honest points.npy beside a
    lying "points" must not make numpy allocate what the unchecked header claims."""
    honest = io.BytesIO()
    np.save(honest, np.zeros((5, 3), np.float32))
    lying = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        lying, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 3)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("points.npy", honest.getvalue())
        z.writestr("points", lying.getvalue() + b"\0" * 36)
    cloud = decode_segment_request(buf.getvalue(), "application/x-npz", LIMIT)
    assert cloud.points.shape == (5, 3)


def test_npz_over_the_point_limit_is_413_from_its_header():
    status, problem = _status(
        _npy_with_shape((LIMIT + 1, 3), payload=b"\0" * 12 * (LIMIT + 1)), "application/x-npz"
    )
    assert status == 413 and f"{LIMIT + 1} points, the limit is {LIMIT}" in problem


def test_ply_bombs_are_refused_from_the_header():
    head = b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    head += b"property float z\n"
    xyz = np.arange(9, dtype="<f4").tobytes()
    for extra in (b"element face 200000000\nproperty list uchar int vertex_indices\n", b"element junk 10\n"):
        body = head + extra + (b"property int a\n" if b"junk" in extra else b"") + b"end_header\n" + xyz
        status, problem = _status(body, "application/x-ply")
        assert status == 400 and "rows but only" in problem
    # a legitimate mesh upload: its faces are skipped, never decoded
    rng = np.random.default_rng(0)
    from tracklift.datasets.ply import encode_ply
    from tracklift.datasets.scene import Mesh

    mesh = Mesh(rng.uniform(size=(50, 3)), None, rng.integers(0, 50, (30_000, 3)))
    out = decode_segment_request(encode_ply(mesh), "application/x-ply", LIMIT)
    np.testing.assert_array_equal(out.points, mesh.vertices)


def test_json_that_cannot_hold_an_acceptable_cloud_is_413_before_parsing():
    rows = b"[0,0,0]," * (LIMIT + 10)
    body = b'{"points": [' + rows[:-1] + b"]}"
    tracemalloc.start()
    try:
        status, problem = _status(body, "application/json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 413 and str(LIMIT) in problem
    assert peak < 20_000, f"{peak} bytes spent refusing {len(body)} bytes of JSON"  # parsed: 1.6 MB
    wide = b'{"points": [[' + b"0," * (7 * LIMIT) + b"0]]}"  # one row, too many values
    assert _status(wide, "application/json")[0] == 413
    huge = b'{"points": [[0, 0, 0], [1, 1, 1]], "pad": "' + b" " * (LIMIT * 400) + b'"}'
    status, problem = _status(huge, "application/json")
    assert status == 413 and "send NPZ or PLY" in problem
    # what fits is still parsed: LIMIT points with colours
    pts = np.random.default_rng(1).uniform(size=(LIMIT, 3)).astype(np.float32)
    cols = np.random.default_rng(1).integers(0, 256, (LIMIT, 3), dtype=np.uint8)
    out = decode_segment_request(*encode_cloud(pts, cols, "json"), LIMIT)
    np.testing.assert_array_equal(out.points, pts)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"points": [[' + b"1" * 5000 + b", 0, 0], [1, 1, 1]]}", "too many digits"),
        (b'{"points": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
)
def test_json_the_parser_refuses_is_a_short_400(body, reason):
    status, problem = _status(body, "application/json", limit=10**6)
    assert status == 400 and reason in problem and len(problem) < 80
    assert "sys." not in problem and "recursion" not in problem
    query = b'{"scene_key": "k", "text": ' + (
        b"1" * 5000 if "digits" in reason else b"[" * 5000 + b"]" * 5000
    )
    with pytest.raises(RequestError) as e:  # queries share the parser (within their own size limit)
        decode_query_request(query + b"}")
    assert e.value.status == 400 and reason in e.value.problem


def test_large_query_bodies_are_413():
    with pytest.raises(RequestError) as e:
        decode_query_request(json.dumps({"scene_key": "k", "text": "x", "pad": "y" * 100_000}).encode())
    assert e.value.status == 413


@pytest.mark.parametrize(
    "body",
    [
        b'{"points": [[true, 1, 2], [0, 1, 2]]}',
        b'{"points": [[0.5, 1, false], [0, 1, 2]]}',
        b'{"points": [[true, false, true], [false, true, false]]}',
        b'{"points": [[0, 1, 2], [0, 1, 2]], "colors": [[true, 0, 0], [0, 0, 0]]}',
    ],
)
def test_json_booleans_are_refused_like_all_boolean_clouds(body):
    status, problem = _status(body, "application/json")
    assert status == 400 and "numbers only" in problem


def test_npz_archives_zipfile_cannot_open_are_400(cloud):
    body = bytearray(encode_cloud(*cloud, "npz")[0])
    central = body.find(b"PK\x01\x02")
    body[central + 6 : central + 8] = (251).to_bytes(2, "little")  # "needs zip version 25.1"
    status, problem = _status(bytes(body), "application/x-npz")
    assert status == 400 and "not an NPZ archive" in problem
