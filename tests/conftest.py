"""Shared fixtures: small hand-made scenes and a moto S3 server on 127.0.0.1."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from tracklift.datasets.scene import Frame, Intrinsics, Mesh, SceneData
from tracklift.geometry.camera import look_at


def _smooth_color(rng, height, width) -> np.ndarray:
    """Piecewise-smooth colours (like real images; random noise is not what JPEG is for)."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(40, 200, size=3)
    img = base + 30 * np.stack([np.sin(xx / 9.0), np.cos(yy / 7.0), np.sin((xx + yy) / 11.0)], -1)
    img[: height // 2, : width // 3] += 40
    return np.clip(img, 0, 255).astype(np.uint8)


def make_scene_data(
    scene_id: str = "scene0000_00",
    n_frames: int = 3,
    width: int = 64,
    height: int = 48,
    seed: int = 0,
    with_maps: bool = True,
) -> SceneData:
    """A small random but well-formed scene: random frames, a box-ish mesh, GT in ScanNet encoding."""
    rng = np.random.default_rng(seed)
    intr = Intrinsics(fx=50.0, fy=50.0, cx=width / 2 - 0.5, cy=height / 2 - 0.5, width=width, height=height)
    frames = []
    for i in range(n_frames):
        pose = look_at(eye=(2.0 + 0.1 * i, -1.0, 1.5), target=(0.0, 0.0, 0.5))
        depth = rng.uniform(0.5, 4.0, size=(height, width)).astype(np.float32)
        depth[rng.random((height, width)) < 0.05] = 0.0
        inst = np.zeros((height, width), np.int32)
        inst[: height // 2] = 3001
        inst[height // 2 :, : width // 2] = 4002
        frames.append(
            Frame(
                index=i * 10,
                color=_smooth_color(rng, height, width),
                depth=depth,
                pose=pose,
                instance=inst if with_maps else None,
                part=(inst % 1000) * 10 + 1 if with_maps else None,
            )
        )
    n = 300
    verts = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    faces = rng.integers(0, n, size=(200, 3)).astype(np.int32)
    gt = np.zeros(n, np.int64)
    gt[:120] = 3001
    gt[120:250] = 4002
    mesh = Mesh(verts, rng.integers(0, 256, size=(n, 3), dtype=np.uint8), faces)
    return SceneData(
        scene_id, intr, frames, mesh, gt, labels={3: "chair", 4: "table"}, parts=(gt % 1000).astype(np.int32)
    )


@pytest.fixture
def scene_data() -> SceneData:
    return make_scene_data()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1; yields its endpoint URL. Sets AWS env so s3fs/boto3 talk to it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket on the moto server; yields its ``s3://`` URL."""
    import uuid

    import boto3
    import fsspec

    name = f"tl-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    fsspec.filesystem("s3").invalidate_cache()
    return f"s3://{name}"


@pytest.fixture
def one_thread():
    """torch single-threaded for the test: tiny tensors gain nothing from threads, and on a shared 2-core
    machine OpenMP threads contending with other processes make such tests many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
