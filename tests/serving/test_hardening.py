"""Issue 10, Serve side, over a real socket on 127.0.0.1: what ``scene_url`` may read (deny by default,
schemes, ``..``, sibling prefixes, no listings in errors, S3 down is a 503), slow bodies and ``/healthz``
under load, a batch bounded by points, and the model's own ``max_voxels`` refusal on the served path.

Besides the module's ``server`` (conftest.py: local scenes allowed), a second application ``/strict`` runs
in the same Ray: no scene prefixes, a 3 s body deadline, at most 2500 points per forward pass, and a
checkpoint whose ``inference.max_voxels`` is 3000."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import requests
import torch

from tests.serving.conftest import TOKEN, _free_port
from tracklift.serving.client import Client
from tracklift.serving.codec import encode_cloud

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_VOXELS = 3000
BATCH_POINTS = 2500
S3_SCENES = "s3://tracklift-scans"


@pytest.fixture(scope="module", autouse=True)
def s3_down():
    """A moto S3 server that holds a scene and is then stopped, so that the replicas (started after this
    fixture, inheriting its environment) find S3 down. Runs before the ``server`` fixture starts Ray."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in keys}
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="tracklift-scans")
    s3.put_object(Bucket="tracklift-scans", Key="scene0/scene.json", Body=b"{}")
    moto.stop()
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def strict(server, artifacts):
    """The ``/strict`` application and a local copy of its model (for the reference refusal)."""
    from ray import serve

    from tracklift.models import ModelConfig, Segmenter, load_checkpoint, save_checkpoint
    from tracklift.serving.app import application

    base = ModelConfig.preset("tiny")
    cfg = dataclasses.replace(base, inference=dataclasses.replace(base.inference, max_voxels=MAX_VOXELS))
    torch.manual_seed(0)
    ckpt = str(artifacts.root / "strict.pt")
    save_checkpoint(Segmenter.from_config(cfg), ckpt)
    scfg = dataclasses.replace(
        server.cfg,
        checkpoint=ckpt,
        scene_prefixes=[],
        body_timeout_s=3.0,
        max_batch_points=BATCH_POINTS,
        batch_wait_timeout_s=0.5,
        num_cpus=0,  # the module's Ray has 2 CPUs; the plain application's replica holds one
        torch_threads=1,
        app_name="strict",
        route_prefix="/strict",
    )
    serve.run(application(scfg), name="strict", route_prefix="/strict")
    torch.set_num_threads(1)
    return SimpleNamespace(url=server.url + "/strict", model=load_checkpoint(ckpt))


def _post_json(url: str, obj: dict, timeout: float = 60) -> requests.Response:
    return requests.post(url + "/v1/segment", json=obj, headers=AUTH, timeout=timeout)


def _cloud(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 2.5, (n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3), dtype=np.uint8)


def _no_leak(r: requests.Response, *names: str) -> None:
    """No exception text, traceback or file-system name in a client-facing error."""
    text = r.text
    for bad in ("Traceback", "Error(", "Exception", "botocore", *names):
        assert bad not in text, (bad, text)


# -------------------------------------------------------------------------------------------- scene_url


def test_scene_url_refused_without_prefixes(strict, artifacts):
    home = os.path.expanduser("~")
    names = [n for n in sorted(os.listdir(home))[:5] if len(n) > 3]
    answers = {}
    for url in (artifacts.scene_url, home, "/etc/passwd", "/no/such/path", "file:///etc"):
        r = _post_json(strict.url, {"scene_url": url})
        assert r.status_code == 403, (url, r.text)
        assert "no --scene-prefixes" in r.json()["error"]
        _no_leak(r, "scene.json", *names)
        answers[url] = r.content
    # existing and missing paths get the same answer, byte for byte
    assert len(set(answers.values())) == 1
    query = {"scene_url": artifacts.scene_url, "text": "a chair"}
    r = requests.post(strict.url + "/v1/query", json=query, headers=AUTH, timeout=60)
    assert r.status_code == 403 and "no --scene-prefixes" in r.json()["error"], r.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/latest/meta-data",
        "foo://bar",
        "memory://scene",
        "zip://scene.json::file:///tmp/x.zip",
        "simplecache::file:///etc",
    ],
)
def test_scene_url_schemes_and_chains_are_refused(server, url):
    r = _post_json(server.url, {"scene_url": url})
    assert r.status_code == 400, r.text
    assert r.json()["source"] == "scene_url"
    _no_leak(r)


def test_scene_url_prefix_is_a_real_path_prefix(server, artifacts, tmp_path_factory):
    scenes = artifacts.scenes
    sibling = scenes + "_evil"  # a valid scene next to the allowed folder: startswith() let it through
    shutil.copytree(artifacts.scene_url, os.path.join(sibling, "copy"), dirs_exist_ok=True)
    link = os.path.join(scenes, "link_out")  # a symlink inside the prefix that leads outside it
    if not os.path.islink(link):
        os.symlink(sibling, link)
    scene_id = os.path.basename(artifacts.scene_url)
    cases = {
        sibling + "/copy": 403,
        "file://" + sibling + "/copy": 403,
        link + "/copy": 403,
        scenes + "/../../../etc": 400,
        f"{scenes}/{scene_id}/../{scene_id}": 400,
        "s3://tracklift-scans/../etc": 400,
    }
    for url, status in cases.items():
        r = _post_json(server.url, {"scene_url": url})
        assert r.status_code == status, (url, r.text)
        _no_leak(r, "scene.json")
    ok = _post_json(server.url, {"scene_url": "file://" + artifacts.scene_url})
    assert ok.status_code == 200, ok.text


def test_scene_url_errors_name_no_files(server, artifacts):
    # a folder inside the prefix that is not a scene: the reason is generic, no listing of its names
    folder = os.path.join(artifacts.scenes, "not_a_scene")
    os.makedirs(folder, exist_ok=True)
    for name in ("secret_one.txt", "secret_two.bin"):
        with open(os.path.join(folder, name), "w") as f:
            f.write("TOPSECRET-CONTENT\n")
    r = _post_json(server.url, {"scene_url": folder})
    assert r.status_code == 422, r.text
    _no_leak(r, "secret_one", "secret_two", "TOPSECRET")


@pytest.mark.slow  # deploys a third application and waits out the S3 client's retries
def test_s3_down_is_503(server):
    from ray import serve

    from tracklift.serving.app import application

    cfg = dataclasses.replace(
        server.cfg,
        scene_prefixes=[S3_SCENES + "/"],
        num_cpus=0,
        torch_threads=1,
        app_name="s3",
        route_prefix="/s3",
    )
    serve.run(application(cfg), name="s3", route_prefix="/s3")
    try:
        r = _post_json(server.url + "/s3", {"scene_url": S3_SCENES + "/scene0"}, timeout=120)
        assert r.status_code == 503, r.text
        assert "unavailable" in r.json()["error"]
        _no_leak(r, "127.0.0.1", "Endpoint")
    finally:
        serve.delete("s3")


# --------------------------------------------------------------------------------- slow bodies, healthz


def _slow_upload(port: int, path: str, stop: threading.Event, out: list, max_s: float) -> None:
    """POST a 1000-byte body at one byte per second until ``stop`` or ``max_s``; record the status line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=max_s + 30) as s:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            s.sendall(head.encode())
            t0 = time.monotonic()
            while not stop.is_set() and time.monotonic() - t0 < max_s:
                try:
                    s.sendall(b" ")
                except OSError:  # the server answered and closed: read its answer
                    break
                stop.wait(1.0)
                s.setblocking(False)
                try:
                    if s.recv(1, socket.MSG_PEEK):
                        break
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
            if stop.is_set():  # the test is over and no answer came: just hang up
                out.append("stopped")
                return
            s.settimeout(30)
            out.append(s.recv(200).split(b"\r\n", 1)[0].decode("latin-1"))
    except OSError as e:
        out.append(f"error {type(e).__name__}")


def _timed_health(url: str) -> tuple[float, int, int]:
    t0 = time.monotonic()
    g = requests.get(url + "/healthz", timeout=60)
    h = requests.head(url + "/healthz", timeout=60)
    return time.monotonic() - t0, g.status_code, h.status_code


def test_slow_bodies_do_not_pin_the_model(server):
    """More trickling uploads than the replica has slots (8): health and a real request still answer, and
    the trickles are cut by the minimum rate long before the 60 s body deadline."""
    stop, statuses = threading.Event(), []
    threads = [
        threading.Thread(target=_slow_upload, args=(server.port, "/v1/segment", stop, statuses, 40.0))
        for _ in range(server.cfg.max_ongoing_requests + 2)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        time.sleep(3.0)  # every upload has started and holds its connection
        took, get_status, head_status = _timed_health(server.url)
        assert get_status == 200 and head_status == 200
        assert took < 5.0, f"/healthz took {took:.1f} s behind slow uploads"
        pts, cols = _cloud(500, seed=3)
        with Client(server.url, token=TOKEN, timeout_s=25) as c:
            assert c.segment(pts, cols).instances.masks.shape[1] == 500
        for t in threads:
            t.join(60)
        assert time.monotonic() - t0 < 45, "trickling uploads were not cut before the deadline"
        assert len(statuses) == len(threads) and all(" 408" in s for s in statuses), statuses
    finally:
        stop.set()
        for t in threads:
            t.join(60)


def test_body_deadline_answers_408(strict, server):
    stop, statuses = threading.Event(), []
    threads = [
        threading.Thread(target=_slow_upload, args=(server.port, "/strict/v1/segment", stop, statuses, 40.0))
        for _ in range(3)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert time.monotonic() - t0 < 35, "the 3 s body deadline did not cut the uploads"
    assert statuses and all(" 408" in s for s in statuses), statuses


def test_health_answers_while_segmentation_runs(server):
    clouds = [_cloud(20_000, seed=40 + i) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        with Client(server.url, token=TOKEN, timeout_s=300) as c:
            futures = [pool.submit(c.segment, *pc) for pc in clouds]
            time.sleep(0.3)  # the first batch has started, the others are queued
            busy = sum(not f.done() for f in futures)
            took, get_status, head_status = _timed_health(server.url)
            results = [f.result() for f in futures]
    assert busy > 0  # requests were in flight while /healthz was asked
    assert get_status == 200 and head_status == 200
    assert took < 5.0, f"/healthz took {took:.1f} s behind segmentation"
    assert len(results) == 8


# ------------------------------------------------------------------------------------ model-side bounds


def test_batches_are_bounded_by_points(strict):
    clouds = [_cloud(1000, seed=60 + i) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        with Client(strict.url, token=TOKEN, timeout_s=120) as c:
            results = list(pool.map(lambda pc: c.segment(*pc), clouds))
    sizes = [int(r.timings_ms["batch_size"]) for r in results]
    assert max(sizes) * 1000 <= BATCH_POINTS, sizes  # 4 clouds arrived together, at most 2 fused
    info = requests.get(strict.url + "/v1/model", headers=AUTH, timeout=60).json()
    assert info["serving"]["max_batch_points"] == BATCH_POINTS


def test_max_voxels_refused_as_predict_refuses(strict):
    pts, cols = _cloud(20_000, seed=7)
    with pytest.raises(ValueError) as local:
        strict.model.predict(pts, cols)
    body, ctype = encode_cloud(pts, cols, "npz")
    r = requests.post(
        strict.url + "/v1/segment", data=body, headers={**AUTH, "Content-Type": ctype}, timeout=120
    )
    assert r.status_code == 413, r.text[:300]
    assert r.json()["error"] == str(local.value)
    assert f"max_voxels={MAX_VOXELS}" in r.json()["error"]
    small = _cloud(500, seed=8)
    with Client(strict.url, token=TOKEN, timeout_s=120) as c:
        res = c.segment(*small)
    np.testing.assert_array_equal(res.instances.masks, strict.model.predict(*small).masks)
