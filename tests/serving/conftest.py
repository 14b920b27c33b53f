"""A live deployment for the serving tests: local Ray, Serve's proxy on 127.0.0.1 at a free port, a tiny
random-init checkpoint and a small synthetic scene written by the fixtures. One deployment per module;
a second application with a tiny CLIP model (random weights, saved and reloaded) for ``/v1/query``."""

from __future__ import annotations

import json
import os
import socket
from types import SimpleNamespace

import pytest
import torch

TOKEN = "test-token-123"
MAX_POINTS = 20_000
MAX_REQUEST_MB = 1.0

# ~3.5M parameters: a 2-layer ViT of width 64 at 64 px and a 2-layer text transformer (open_clip config).
TINY_CLIP = "tracklift-serve-tiny"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny checkpoint and one stored synthetic scene (about 12k vertices, 4 frames of 80×60)."""
    from tracklift.datasets.formats import write_scene
    from tracklift.datasets.synthetic.config import SynthConfig
    from tracklift.datasets.synthetic.generator import generate_scene
    from tracklift.models import ModelConfig, Segmenter, save_checkpoint

    root = tmp_path_factory.mktemp("serving")
    torch.manual_seed(0)
    model = Segmenter.from_config(ModelConfig.preset("tiny"))
    ckpt = str(root / "model.pt")
    save_checkpoint(model, ckpt)
    synth = SynthConfig.classic(
        width=80, height=60, n_frames=4, n_groups=2, room_size=(3.0, 3.5), mesh_resolution=0.08
    )
    data = generate_scene(3, synth)
    scenes = root / "scenes"
    scene_url = str(scenes / data.scene_id)
    write_scene(data, scene_url)
    return SimpleNamespace(root=root, checkpoint=ckpt, scenes=str(scenes), scene_url=scene_url)


@pytest.fixture(scope="module")
def server(artifacts):
    """Ray + Serve with the plain application (no CLIP) at ``/``; yields its base URL and config."""
    import ray
    from ray import serve

    from tracklift.serving.app import application
    from tracklift.serving.config import ServeConfig, proxy_ready_env

    os.environ.update(proxy_ready_env())
    assert not ray.is_initialized(), "another test left Ray running"
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
        cfg = ServeConfig(
            checkpoint=artifacts.checkpoint,
            port=port,
            token=TOKEN,
            max_batch_size=4,
            batch_wait_timeout_s=0.25,  # wide enough that concurrent test requests share a batch
            max_ongoing_requests=8,
            max_points=MAX_POINTS,
            max_request_mb=MAX_REQUEST_MB,
            cache_size=4,
            scene_prefixes=[artifacts.scenes],
        )
        serve.run(application(cfg), name="plain", route_prefix="/")
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", cfg=cfg, port=port)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def clip_server(server, artifacts):
    """A second application at ``/clip`` with a tiny CLIP model; yields its base URL and ClipConfig."""
    pytest.importorskip("open_clip")
    from ray import serve

    from tracklift.openvocab import ClipConfig, ClipEncoder
    from tracklift.serving.app import application

    model_config = artifacts.root / "tiny_clip.json"
    model_config.write_text(json.dumps(TINY_CLIP_CONFIG))
    torch.manual_seed(1)
    enc = ClipEncoder.from_config(ClipConfig(model=TINY_CLIP, model_config=str(model_config)))
    weights = artifacts.root / "tiny_clip.pt"
    torch.save(enc.model.state_dict(), weights)
    clip_cfg = ClipConfig(
        model=TINY_CLIP,
        checkpoint=str(weights),
        model_config=str(model_config),
        frame_step=1,
        frames_per_instance=5,
    )
    cfg = server.cfg.__class__(
        **{**server.cfg.__dict__, "clip": clip_cfg, "app_name": "clip", "route_prefix": "/clip"}
    )
    serve.run(application(cfg), name="clip", route_prefix="/clip")
    return SimpleNamespace(url=server.url + "/clip", clip_config=clip_cfg)
