"""The FastAPI ingress over a real socket: OpenAPI and /docs, load shedding with ``max_queued_requests``
(a bounded burst gets quick 503s with a reason, the rest 200, and the service answers normally after), and
live tuning through Serve ``user_config`` (same replica before and after, new limits in effect, bad values
refused while the old ones keep serving). Fixtures (Ray, Serve, the checkpoint) are in conftest.py."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import requests

from tests.serving.conftest import TOKEN
from tracklift.errors import ConfigError
from tracklift.serving.client import Client
from tracklift.serving.codec import encode_cloud

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _cloud(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 2.5, (n, 3)).astype(np.float32)
    pts[: n // 2, 0] += 3.0
    return pts, rng.integers(0, 256, (n, 3), dtype=np.uint8)


def _segment(url: str, n: int, seed: int = 0, timeout: float = 120) -> requests.Response:
    body, ctype = encode_cloud(*_cloud(n, seed), "npz")
    return requests.post(
        url + "/v1/segment", data=body, headers={**AUTH, "Content-Type": ctype}, timeout=timeout
    )


def _info(url: str) -> dict:
    r = requests.get(url + "/v1/model", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _deploy(server, name: str, **changes):
    """Deploy (or redeploy) the application ``name`` at ``/name`` with the module config plus changes."""
    from ray import serve

    from tracklift.serving.app import application

    cfg = dataclasses.replace(
        server.cfg,
        scene_prefixes=[],
        num_cpus=0,  # the module's Ray has 2 CPUs; the plain application's replica holds one
        torch_threads=1,
        app_name=name,
        route_prefix=f"/{name}",
        **changes,
    )
    serve.run(application(cfg), name=name, route_prefix=f"/{name}")
    return SimpleNamespace(url=f"{server.url}/{name}", cfg=cfg)


def _replicas(app: str) -> dict[str, str]:
    """Serve replica actors of application ``app``: actor name → actor id (a restart makes new ones)."""
    import ray

    out = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["name"].startswith(f"SERVE_REPLICA::{app}#"):
            handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
            out[actor["name"]] = handle._actor_id.hex()
    return out


# ------------------------------------------------------------------------------------------------ OpenAPI


def test_openapi_and_docs_are_served(server):
    r = requests.get(server.url + "/openapi.json", timeout=30)  # no token: it describes, it reaches no model
    assert r.status_code == 200, r.text[:300]
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert set(paths) >= {"/healthz", "/v1/model", "/v1/segment", "/v1/query"}
    for path, ops in paths.items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)
    segment = paths["/v1/segment"]["post"]
    body_types = set(segment["requestBody"]["content"])
    assert {"application/x-ply", "application/x-npz", "application/json"} <= body_types
    assert segment["requestBody"]["content"]["application/x-ply"]["schema"]["format"] == "binary"
    assert "application/x-npz" in segment["responses"]["200"]["content"]
    assert {"413", "415", "503"} <= set(segment["responses"])
    query_schema = paths["/v1/query"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "text" in query_schema["properties"]
    assert {"SegmentResponse", "ErrorBody", "ModelInfo"} <= set(spec["components"]["schemas"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    docs = requests.get(server.url + "/docs", timeout=30)
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "openapi.json" in docs.text


def test_routing_keeps_its_old_answers(server):
    """Unknown routes and wrong methods: behind the token (401 first), then 404 / 405 in the error format;
    a trailing slash is the same route (no redirect that would make a client send its body twice)."""
    r = requests.get(server.url + "/v2/nothing", timeout=30)
    assert r.status_code == 401 and "bearer token" in r.json()["error"]
    r = requests.get(server.url + "/v2/nothing", headers=AUTH, timeout=30)
    assert r.status_code == 404 and r.json()["source"] == "path" and "/v1/segment" in r.json()["error"]
    r = requests.post(server.url + "/healthz", timeout=30)
    assert r.status_code == 405 and r.headers["Allow"] == "GET" and r.json()["error"] == "use GET"
    r = requests.post(server.url + "/openapi.json", headers=AUTH, timeout=30)
    assert r.status_code == 405
    r = requests.get(server.url + "/v1/model/", headers=AUTH, timeout=30, allow_redirects=False)
    assert r.status_code == 200 and r.json()["serving"]["max_points"] == server.cfg.max_points


def test_hostile_requests_on_the_new_routes(server):
    """The documentation routes read no body, a long unknown path is not echoed back in full, and the
    service keeps serving."""
    big = b"\0" * (4 << 20)  # over the module's 1 MiB body limit
    r = requests.post(server.url + "/openapi.json", data=big, headers=AUTH, timeout=60)
    assert r.status_code == 405 and len(r.content) < 1000
    r = requests.get(server.url + "/docs", data=big, timeout=60)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    r = requests.get(server.url + "/" + "a" * 6000, headers=AUTH, timeout=60)
    assert r.status_code == 404 and len(r.content) < 1000, len(r.content)
    r = requests.get(server.url + "/openapi.json?" + "x=1&" * 2000, timeout=60)
    assert r.status_code == 200 and r.json()["paths"]
    assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
    assert _segment(server.url, 700, seed=9).status_code == 200


# --------------------------------------------------------------------------------------------- shedding


def test_a_burst_over_a_tiny_queue_gets_quick_503s_and_the_rest_200(server):
    shed = _deploy(
        server,
        "shed",
        max_batch_size=1,
        batch_wait_timeout_s=0.0,
        max_ongoing_requests=1,
        max_queued_requests=1,
    )
    assert _segment(shed.url, 500).status_code == 200  # warm: the first pass allocates
    body, ctype = encode_cloud(*_cloud(15_000, seed=1), "npz")
    start = threading.Barrier(12)
    answers: list[tuple[int, float, Any, str]] = []
    lock = threading.Lock()

    def one() -> None:
        start.wait()
        t0 = time.monotonic()
        r = requests.post(
            shed.url + "/v1/segment", data=body, headers={**AUTH, "Content-Type": ctype}, timeout=120
        )
        with lock:
            answers.append((r.status_code, time.monotonic() - t0, r.headers, r.text))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    statuses = sorted(a[0] for a in answers)
    assert len(answers) == 12 and set(statuses) <= {200, 503}, statuses
    shed_answers = [a for a in answers if a[0] == 503]
    assert shed_answers and statuses.count(200) >= 1, statuses
    for _, _, headers, text in shed_answers:
        err = json.loads(text)
        assert "overloaded" in err["error"] and "max_queued_requests" in err["error"], err
        assert err["status"] == 503 and headers["Retry-After"] == "1"
    # shed requests are refused at once, not after waiting their turn behind the served ones
    slowest_200 = max(a[1] for a in answers if a[0] == 200)
    assert min(a[1] for a in shed_answers) < slowest_200
    # and the service answers normally afterwards
    r = _segment(shed.url, 800, seed=2)
    assert r.status_code == 200, r.text
    assert requests.get(shed.url + "/healthz", timeout=30).status_code == 200
    assert _info(shed.url)["serving"]["max_queued_requests"] == 1


def test_max_queued_requests_is_validated():
    from tracklift.serving.config import ServeConfig

    for bad in (0, -2):
        with pytest.raises(ConfigError, match="max_queued_requests"):
            ServeConfig(checkpoint="c.pt", max_queued_requests=bad).validate()
    opts = ServeConfig(checkpoint="c.pt", max_queued_requests=7).deployment_options()
    assert opts["max_queued_requests"] == 7


# ------------------------------------------------------------------------------------------- live tuning


@pytest.fixture(scope="module")
def tune(server):
    return _deploy(server, "tune", max_points=20_000, max_batch_size=4, batch_wait_timeout_s=0.5)


def test_user_config_change_takes_effect_without_a_restart(server, tune):
    before = _replicas("tune")
    assert len(before) == 2, before  # the ingress and one model replica
    assert _segment(tune.url, 6000, seed=3).status_code == 200

    changed = _deploy(server, "tune", max_points=5000, max_batch_points=1000, score_threshold=1.0)
    info = _info(tune.url)["serving"]
    assert info["max_points"] == 5000 and info["max_batch_points"] == 1000 and info["score_threshold"] == 1.0
    assert info["user_config_error"] is None
    assert _replicas("tune") == before  # same actors: reconfigured in place, not restarted
    r = _segment(tune.url, 6000, seed=3)
    assert r.status_code == 413 and "5000" in r.json()["error"], r.text
    ok = _segment(tune.url, 900, seed=4)
    assert ok.status_code == 200 and ok.json()["num_instances"] == 0  # nothing scores 1.0

    # batches now split by points: 3 concurrent 900-point clouds never share a pass of <= 1000 points
    with Client(tune.url, token=TOKEN, timeout_s=120) as c:
        clouds = [_cloud(900, seed=10 + i) for i in range(3)]
        threads, sizes = [], []
        for pc in clouds:
            threads.append(
                threading.Thread(target=lambda pc=pc: sizes.append(c.segment(*pc).timings_ms["batch_size"]))
            )
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert sizes == [1, 1, 1], sizes

    # the ingress's body limit is live too
    _deploy(server, "tune", **{**_tunables(changed.cfg), "max_request_mb": 0.01})
    r = _segment(tune.url, 900, seed=4)
    assert r.status_code == 413 and str(int(0.01 * 1024 * 1024)) in r.json()["error"], r.text
    assert _replicas("tune") == before


def _tunables(cfg) -> dict:
    from tracklift.serving.config import TUNABLE

    return {k: getattr(cfg, k) for k in TUNABLE}


# (user_config, what the error names, whether a ServeConfig can even hold the value)
BAD_USER_CONFIG = [
    ({"max_points": "lots"}, "max_points", False),
    ({"max_batch_size": True}, "max_batch_size", False),
    ({"no_such_knob": 1}, "no_such_knob", False),
    ({"max_batch_size": 0}, "max_batch_size", True),
    ({"score_threshold": float("nan")}, "score_threshold", True),
    ({"nms_iou": 3.0}, "nms_iou", True),
    ({"max_batch_size": 64}, "max_ongoing_requests", True),  # batches could never fill
]


@pytest.mark.parametrize("bad, names, typed", BAD_USER_CONFIG)
def test_bad_user_config_is_refused_and_the_old_one_keeps_serving(server, tune, bad, names, typed):
    from ray import serve

    from tracklift.serving.app import application, deployment_version
    from tracklift.serving.deployment import TrackliftServer
    from tracklift.serving.ingress import TrackliftIngress

    good = _deploy(server, "tune", max_points=7000).cfg
    before = _replicas("tune")
    # through the config: refused before anything is deployed
    if typed:
        with pytest.raises(ConfigError, match=names):
            application(dataclasses.replace(good, **bad))
    # raw values sent to the running replicas (as an operator editing a deployment's user_config would)
    opts = {**good.deployment_options(), "user_config": {**good.user_config(), **bad}}
    pinned = {"version": deployment_version(good), "_internal": True}
    values = good.to_dict()
    model = TrackliftServer.options(**opts, **pinned).bind(values)
    serve.run(
        TrackliftIngress.options(**good.ingress_options(), **pinned).bind(model, values),
        name="tune",
        route_prefix="/tune",
    )
    info = _info(tune.url)["serving"]
    assert info["user_config_error"] and names in info["user_config_error"], info
    assert info["max_points"] == 7000 and info["max_batch_size"] == good.max_batch_size
    assert _replicas("tune") == before
    assert _segment(tune.url, 6000, seed=5).status_code == 200
    r = _segment(tune.url, 8000, seed=5)
    assert r.status_code == 413 and "7000" in r.json()["error"]
