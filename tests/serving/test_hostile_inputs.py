"""Hostile bodies over a real socket (issue 10, defects 1, 7, 11, 17): each gets its 4xx with a short reason,
never a 500 with exception text, and the replica keeps answering ``/healthz`` and segmenting. Uses the
module's own live deployment from conftest.py (1 MiB bodies, 20,000 points)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.serving.conftest import MAX_POINTS, TOKEN
from tracklift.serving.codec import encode_cloud

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _load_bodies():
    """The hostile-body builders of ``benchmarks/bench_hostile_memory.py``: the test sends what the
    memory benchmark measures."""
    path = Path(__file__).parents[2] / "benchmarks" / "bench_hostile_memory.py"
    spec = importlib.util.spec_from_file_location("bench_hostile_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bodies = _load_bodies()


HOSTILE = {
    "PLY face bomb 2e8": (lambda: bodies.ply_face_bomb(200_000_000), "application/x-ply", 400, "'face' rows"),
    "PLY face bomb 1e9": (
        lambda: bodies.ply_face_bomb(1_000_000_000),
        "application/x-ply",
        400,
        "'face' rows",
    ),
    "PLY element junk 1e12": (bodies.ply_junk_element, "application/x-ply", 400, "'junk' rows"),
    "NPZ header 1e12 x 3": (lambda: bodies.npz_claiming((10**12, 3)), "application/x-npz", 400, "points.npy"),
    "JSON rows beyond the limit": (
        lambda: b'{"points": [' + b",".join([b"[0,0,0]"] * (MAX_POINTS + 1000)) + b"]}",
        "application/json",
        413,
        str(MAX_POINTS),
    ),
    "JSON 5000-digit integer": (
        lambda: bodies.json_long_integer(5000),
        "application/json",
        400,
        "too many digits",
    ),
    "JSON nested 100000 deep": (
        lambda: bodies.json_nested(100_000),
        "application/json",
        400,
        "nested too deeply",
    ),
    "JSON booleans among numbers": (
        lambda: b'{"points": [[true, 0.5, 1], [0, 1, 2], [2, 1, 0]]}',
        "application/json",
        400,
        "numbers only",
    ),
}


def _post(server, body: bytes, ctype: str) -> requests.Response:
    headers = {**AUTH, "Content-Type": ctype}
    return requests.post(server.url + "/v1/segment", data=body, headers=headers, timeout=120)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_body_gets_a_short_4xx_and_the_replica_keeps_serving(server, case):
    make, ctype, status, reason = HOSTILE[case]
    r = _post(server, make(), ctype)
    assert r.status_code == status, r.text
    err = r.json()
    assert reason in err["error"] and err["status"] == status
    assert len(err["error"]) < 200 and "Error" not in err["error"]  # a reason, not an exception's text
    assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
    rng = np.random.default_rng(0)
    ok = _post(server, *encode_cloud(rng.uniform(0, 2, (500, 3)).astype(np.float32), None, "npz"))
    assert ok.status_code == 200 and ok.json()["num_points"] == 500


def test_a_mesh_upload_is_segmented_without_its_faces(server):
    """A real mesh PLY (faces included) is a point cloud to the server: its faces are skipped, not decoded."""
    from tracklift.datasets.ply import encode_ply
    from tracklift.datasets.scene import Mesh

    rng = np.random.default_rng(1)
    mesh = Mesh(rng.uniform(0, 2, (800, 3)), None, rng.integers(0, 800, (20_000, 3)))
    r = _post(server, encode_ply(mesh), "application/x-ply")
    assert r.status_code == 200 and r.json()["num_points"] == 800
