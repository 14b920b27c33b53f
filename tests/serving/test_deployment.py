"""The live deployment over a real socket: predictions equal Segmenter.predict, dynamic batching forms
batches, every bad input gets its status and reason, the token is enforced, and the replica keeps
serving after each failure. Fixtures (one deployment per module) are in conftest.py."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import torch

from tests.serving.conftest import MAX_POINTS, TOKEN
from tracklift.serving.client import Client, ServeError
from tracklift.serving.codec import encode_cloud

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def reference(artifacts):
    """The same checkpoint loaded in this process, run single-threaded like the replica."""
    from tracklift.models import load_checkpoint

    torch.set_num_threads(1)
    return load_checkpoint(artifacts.checkpoint)


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, token=TOKEN, timeout_s=120) as c:
        yield c


def _cloud(n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 2.5, (n, 3)).astype(np.float32)
    pts[: n // 2, 0] += 3.0
    return pts, rng.integers(0, 256, (n, 3), dtype=np.uint8)


def _same(result, ref) -> None:
    np.testing.assert_array_equal(result.instances.masks, ref.masks)
    np.testing.assert_allclose(result.instances.scores, ref.scores, rtol=1e-6)
    assert result.instance_ids.tolist() == ref.to_ids().tolist()


def _still_serving(client, reference) -> None:
    pts, cols = _cloud(600, seed=99)
    _same(client.segment(pts, cols), reference.predict(pts, cols))


def _post(server, path, body, ctype, headers=None, **kw):
    hdrs = {**AUTH, "Content-Type": ctype, **(headers or {})}
    return requests.post(server.url + path, data=body, headers=hdrs, timeout=60, **kw)


# ----------------------------------------------------------------------------------------------- success


def test_health_needs_no_token(server):
    r = requests.get(server.url + "/healthz", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_model_info(client, server, artifacts):
    info = client.model()
    assert info["checkpoint"] == artifacts.checkpoint and info["backend"] == "torch"
    assert info["model_config"]["decoder"]["num_queries"] == 8
    assert info["clip_config"] is None
    assert info["serving"]["max_batch_size"] == 4 and info["serving"]["auth"] is True
    assert info["serving"]["max_points"] == MAX_POINTS


@pytest.mark.parametrize(("fmt", "accept"), [("npz", "npz"), ("ply", "json"), ("json", "json")])
def test_segment_equals_predict(client, reference, fmt, accept):
    pts, cols = _cloud(3000, seed=1)
    res = client.segment(pts, cols, fmt=fmt, accept=accept)
    ref = reference.predict(pts, cols)
    assert len(ref) > 0  # the random model does find something in two blobs
    _same(res, ref)
    assert res.scene_key.startswith("cloud-")
    for stage in ("decode", "queue", "voxelize", "forward", "postprocess", "total"):
        assert res.timings_ms[stage] >= 0, stage
    assert res.timings_ms["forward"] > 0 and res.timings_ms["total"] >= res.timings_ms["forward"]


def test_segment_float_colors_json_and_headers(server, reference):
    pts, cols = _cloud(1000, seed=2)
    fcols = cols.astype(np.float32) / 255.0
    body, ctype = encode_cloud(pts, fcols, "json")
    r = _post(server, "/v1/segment", body, ctype)
    assert r.status_code == 200, r.text
    out = r.json()
    ref = reference.predict(pts, fcols)
    assert out["instance_ids"] == ref.to_ids().tolist()
    assert [round(i["score"], 5) for i in out["instances"]] == [round(s, 5) for s in ref.scores.tolist()]
    assert "forward;dur=" in r.headers["Server-Timing"] and "encode;dur=" in r.headers["Server-Timing"]
    assert r.headers["X-Scene-Key"] == out["scene_key"]


def test_concurrent_requests_are_batched(server, reference):
    clouds = [_cloud(1500 + 300 * i, seed=10 + i) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        with Client(server.url, token=TOKEN) as c:
            results = list(pool.map(lambda pc: c.segment(*pc), clouds))
    sizes = [r.timings_ms["batch_size"] for r in results]
    assert max(sizes) > 1, sizes  # at least two requests shared a forward pass
    for (pts, cols), res in zip(clouds, results):
        ref = reference.predict(pts, cols)
        # a fused pass differs from a single one only in float summation order
        assert res.instances.masks.shape == ref.masks.shape
        assert (res.instances.masks == ref.masks).mean() >= 0.999
        np.testing.assert_allclose(res.instances.scores, ref.scores, atol=1e-4)


def test_segment_scene_url(client, reference, artifacts):
    from tracklift.datasets.formats import open_scene

    scene = open_scene(artifacts.scene_url)
    res = client.segment_scene(artifacts.scene_url)
    _same(res, reference.predict(scene.vertices, scene.colors))
    assert res.scene_key.startswith("scene-")
    assert client.segment_scene(artifacts.scene_url, accept="json").scene_key == res.scene_key


# --------------------------------------------------------------------------------------------- bad input


def _truncated_ply():
    body, ctype = encode_cloud(*_cloud(1000), "ply")
    return body[: len(body) // 2], ctype


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue(), "application/x-npz"


def _nan_cloud():
    pts, cols = _cloud(500)
    pts[3] = np.nan
    return encode_cloud(pts, cols, "npz")


BAD_SEGMENT = {
    "truncated PLY": (_truncated_ply, 400, "PLY"),
    "wrong dtype": (lambda: _npz(points=_cloud(100)[0].astype(np.int32)), 400, "dtype"),
    "NaN coordinates": (_nan_cloud, 400, "NaN"),
    "empty cloud": (lambda: encode_cloud(np.zeros((0, 3), np.float32), None, "npz"), 400, "empty"),
    "empty JSON cloud": (lambda: (b'{"points": []}', "application/json"), 400, "empty"),
    "malformed JSON": (lambda: (b'{"points": [[0, 0', "application/json"), 400, "JSON"),
    "too many points": (lambda: encode_cloud(*_cloud(MAX_POINTS + 1), "npz"), 413, str(MAX_POINTS)),
    "body over the limit": (lambda: (b"\0" * (2 << 20), "application/x-ply"), 413, "1048576 bytes"),
    "unsupported type": (lambda: (b"1,2,3", "text/csv"), 415, "text/csv"),
}


@pytest.mark.parametrize("case", list(BAD_SEGMENT))
def test_bad_segment_input(server, client, reference, case):
    make, status, reason = BAD_SEGMENT[case]
    body, ctype = make()
    r = _post(server, "/v1/segment", body, ctype)
    assert r.status_code == status, r.text
    err = r.json()
    assert reason in err["error"] + err["source"] and err["status"] == status
    _still_serving(client, reference)


def test_chunked_body_over_the_limit(server, client, reference):
    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"\0" * 65536

    r = _post(server, "/v1/segment", chunks(), "application/x-npz")
    assert r.status_code == 413 and "limit" in r.json()["error"]
    _still_serving(client, reference)


def test_scene_url_errors(server, client, reference, artifacts):
    forbidden = _post(server, "/v1/segment", json.dumps({"scene_url": "/etc"}), "application/json")
    assert forbidden.status_code == 403 and "allowed prefixes" in forbidden.json()["error"]
    missing = artifacts.scenes + "/no_such_scene"
    r = _post(server, "/v1/segment", json.dumps({"scene_url": missing}), "application/json")
    assert r.status_code == 404 and "no scene" in r.json()["error"]
    broken = artifacts.root / "scenes" / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "scene.json").write_text("{not json")
    r = _post(server, "/v1/segment", json.dumps({"scene_url": str(broken)}), "application/json")
    assert r.status_code == 422 and "scene.json" in r.json()["source"], r.text
    _still_serving(client, reference)


def test_routes_and_methods(server, client, reference):
    assert requests.get(server.url + "/v2/nothing", headers=AUTH, timeout=30).status_code == 404
    r = requests.get(server.url + "/v1/segment", headers=AUTH, timeout=30)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    _still_serving(client, reference)


# ------------------------------------------------------------------------------------------------- token


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_token_is_required(server, client, reference, header):
    body, ctype = encode_cloud(*_cloud(300), "npz")
    headers = {"Content-Type": ctype} | ({"Authorization": header} if header else {})
    for method, path in (("POST", "/v1/segment"), ("GET", "/v1/model"), ("POST", "/v1/query")):
        r = requests.request(method, server.url + path, data=body, headers=headers, timeout=30)
        assert r.status_code == 401, (method, path, r.text)
        assert "bearer token" in r.json()["error"] and r.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(ServeError) as e:
        Client(server.url, token="nope").model()
    assert e.value.status == 401
    _still_serving(client, reference)


# ------------------------------------------------------------------------------------------------- query


def test_query_errors_without_clip(server, client, reference, artifacts):
    uploaded = client.segment(*_cloud(800, seed=5))
    cases = [
        ({"scene_key": uploaded.scene_key, "text": ""}, 400, "empty query"),
        ({"scene_key": uploaded.scene_key, "text": "a chair"}, 422, "without RGB frames"),
        ({"scene_key": "cloud-000", "text": "a chair"}, 404, "unknown scene_key"),
        ({"scene_url": artifacts.scene_url, "text": "a chair"}, 503, "no CLIP model"),
    ]
    for obj, status, reason in cases:
        r = _post(server, "/v1/query", json.dumps(obj), "application/json")
        assert r.status_code == status, (obj, r.text)
        assert reason in r.json()["error"]
    _still_serving(client, reference)


def test_cache_is_bounded(server, client):
    keys = [client.segment(*_cloud(400, seed=200 + i)).scene_key for i in range(6)]  # cache_size is 4
    first = _post(server, "/v1/query", json.dumps({"scene_key": keys[0], "text": "x"}), "application/json")
    last = _post(server, "/v1/query", json.dumps({"scene_key": keys[-1], "text": "x"}), "application/json")
    assert first.status_code == 404 and "evicted" in first.json()["error"]
    assert last.status_code == 422  # still cached: refused only because it has no images


def test_query_ranks_by_clip(clip_server, artifacts):
    from tracklift.datasets.formats import open_scene
    from tracklift.models import load_checkpoint
    from tracklift.openvocab import ClipEncoder, instance_features, rank_instances

    with Client(clip_server.url, token=TOKEN, timeout_s=120) as c:
        assert c.model()["clip_config"]["model"] == clip_server.clip_config.model
        seg = c.segment_scene(artifacts.scene_url)
        out = c.query("a wooden table", scene_key=seg.scene_key, top_k=2)
        by_url = c.query("a wooden table", scene_url=artifacts.scene_url, top_k=10)
        empty = requests.post(
            clip_server.url + "/v1/query",
            json={"scene_key": seg.scene_key, "text": " "},
            headers=AUTH,
            timeout=30,
        )
    assert empty.status_code == 400
    assert out["scene_key"] == seg.scene_key == by_url["scene_key"]
    k = len(seg.instances)
    assert k > 0 and len(out["instances"]) == min(2, k) and len(by_url["instances"]) == min(10, k)
    sims = [h["similarity"] for h in by_url["instances"]]
    assert sims == sorted(sims, reverse=True)
    # the same ranking computed here from the same CLIP weights and the same predicted instances
    scene = open_scene(artifacts.scene_url)
    inst = load_checkpoint(artifacts.checkpoint).predict(scene.vertices, scene.colors)
    enc = ClipEncoder.from_config(clip_server.clip_config)
    order, sim = rank_instances(
        instance_features(scene, inst, enc, clip_server.clip_config), enc.encode_text(["a wooden table"])[0]
    )
    assert [h["id"] for h in by_url["instances"]] == (order + 1).tolist()
    np.testing.assert_allclose(sims, sim[order], atol=1e-4)
    assert all(h["seen"] == bool(h["similarity"] != 0) for h in by_url["instances"])
    for hit in by_url["instances"]:
        np.testing.assert_array_equal(hit["point_indices"], np.flatnonzero(inst.masks[hit["id"] - 1]))
