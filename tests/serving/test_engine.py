"""The deployment's Ray-free parts: batched inference equals Segmenter.predict, one failing cloud does not
sink its batch, the LRU cache, scene keys, and the serve config / builder args."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracklift.errors import ConfigError
from tracklift.models import ModelConfig, Segmenter
from tracklift.serving.codec import Cloud, RequestError
from tracklift.serving.config import ServeConfig
from tracklift.serving.engine import SegmentEngine
from tracklift.serving.store import Entry, ResultCache, cloud_key, scene_key
from tracklift.structures import Instances

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> Segmenter:
    torch.manual_seed(0)
    return Segmenter.from_config(ModelConfig.preset("tiny")).eval()


def _clouds(n: int, seed: int = 0) -> list[Cloud]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        m = 1500 + 400 * i
        pts = rng.uniform(0, 2.5, (m, 3)).astype(np.float32)
        pts[: m // 2, 0] += 3.0  # two blobs, so the random model has something to split
        out.append(Cloud(pts, rng.integers(0, 256, (m, 3), dtype=np.uint8)))
    return out


def test_batched_predictions_equal_predict(model):
    clouds = _clouds(3)
    engine = SegmentEngine(model, "mem://ckpt")
    preds = engine.predict_many(clouds)
    assert len(preds) == 3
    for c, p in zip(clouds, preds):
        ref = model.predict(c.points, c.colors)
        assert p.batch_size == 3
        assert set(p.timings_ms) == {"voxelize", "forward", "postprocess"}
        assert all(v >= 0 for v in p.timings_ms.values()) and p.timings_ms["forward"] > 0
        assert p.instances.masks.shape == ref.masks.shape
        # Fused and single passes differ only in float summation order: masks agree on >= 99.9 %.
        assert (p.instances.masks == ref.masks).mean() >= 0.999
        np.testing.assert_allclose(p.instances.scores, ref.scores, atol=1e-4)
    single = engine.predict_many(clouds[:1])[0]
    ref = model.predict(clouds[0].points, clouds[0].colors)
    np.testing.assert_array_equal(single.instances.masks, ref.masks)
    np.testing.assert_array_equal(single.instances.scores, ref.scores)


def test_failing_cloud_gets_its_own_error(model):
    clouds = _clouds(3, seed=1)
    huge = clouds[1].points.copy()
    huge[0] = [1e6, 0, 0]  # wider than the sparse hash can address: voxelize raises
    bad = Cloud(huge, clouds[1].colors)
    engine = SegmentEngine(model)
    with pytest.raises(RequestError) as e:
        engine.check_extent(bad, "cloud")
    assert e.value.status == 413 and "spans" in e.value.problem
    engine.check_extent(clouds[0], "cloud")  # a normal cloud passes
    out = engine.predict_many([clouds[0], bad, clouds[2]])
    assert isinstance(out[1], ValueError)
    for i in (0, 2):
        ref = model.predict(clouds[i].points, clouds[i].colors)
        np.testing.assert_array_equal(out[i].instances.masks, ref.masks)
        assert out[i].batch_size == 1  # retried alone
    assert engine.predict_many([]) == []


def test_engine_info(model):
    info = SegmentEngine(model, "s3://b/m.pt").info()
    assert info["checkpoint"] == "s3://b/m.pt" and info["backend"] == "torch"
    assert info["model_config"]["decoder"]["num_queries"] == 8 and info["voxel_size_m"] == 0.05


def test_lru_cache():
    cache = ResultCache(2)
    entries = [Entry(f"k{i}", Instances.empty(3)) for i in range(3)]
    cache.put(entries[0])
    cache.put(entries[1])
    assert cache.get("k0") is entries[0]  # k0 now most recent
    cache.put(entries[2])  # evicts k1
    assert cache.keys() == ["k0", "k2"] and cache.get("k1") is None and len(cache) == 2
    with pytest.raises(ValueError):
        ResultCache(0)
    # the byte bound: 3 entries of 100 bytes in a 250-byte cache keep the newest two
    small = ResultCache(10, max_bytes=250)
    for i in range(3):
        small.put(Entry(f"b{i}", Instances(np.zeros((1, 100), bool))))
    assert small.keys() == ["b1", "b2"] and small.nbytes == 200
    lone = ResultCache(10, max_bytes=10)
    lone.put(Entry("big", Instances(np.zeros((1, 100), bool))))
    assert lone.keys() == ["big"]  # the newest entry is kept even when alone over the bound


def test_scene_keys_are_content_addresses():
    a, b = _clouds(2)
    assert cloud_key(a) == cloud_key(Cloud(a.points.copy(), a.colors.copy()))
    assert cloud_key(a) != cloud_key(b)
    moved = Cloud(a.points + np.float32(0.001), a.colors)
    assert cloud_key(a) != cloud_key(moved)
    assert scene_key("s3://x/a") == scene_key("s3://x/a") != scene_key("s3://x/b")
    assert cloud_key(a).startswith("cloud-") and scene_key("u").startswith("scene-")


def test_config_validation_and_options():
    cfg = ServeConfig(checkpoint="c.pt", max_batch_size=8, max_ongoing_requests=32, num_gpus=0.5).validate()
    opts = cfg.deployment_options()
    assert opts["max_ongoing_requests"] == 32 and opts["ray_actor_options"]["num_gpus"] == 0.5
    assert opts["autoscaling_config"]["max_replicas"] == 1
    for bad in (
        {"checkpoint": ""},
        {"max_batch_size": 8, "max_ongoing_requests": 4},
        {"min_replicas": 3, "max_replicas": 2},
        {"route_prefix": "api"},
        {"max_points": 1},
        {"device": "cuda", "num_gpus": 0},
        {"max_batch_points": 1},
        {"body_timeout_s": 0},
        {"shutdown_timeout_s": -1},
        {"max_open_requests": 0},
        {"scene_prefixes": ["relative/scans"]},
        {"scene_prefixes": ["http://host/scans"]},
    ):
        with pytest.raises(ConfigError):
            ServeConfig(**{"checkpoint": "c.pt", **bad}).validate()
    assert ServeConfig.from_dict(cfg.to_dict()) == cfg


def test_token_from_environment(monkeypatch):
    monkeypatch.setenv("TRACKLIFT_SERVE_TOKEN", "from-env")
    assert ServeConfig(checkpoint="c").resolved_token() == "from-env"
    assert ServeConfig(checkpoint="c", token="given").resolved_token() == "given"
    monkeypatch.delenv("TRACKLIFT_SERVE_TOKEN")
    assert ServeConfig(checkpoint="c").resolved_token() is None


def test_builder_args():
    from tracklift.serving.app import build_app, config_from_args

    cfg = config_from_args(
        {"checkpoint": "s3://b/c.pt", "max_batch_size": "8", "clip": {"model": "ViT-B-32"}, "num_gpus": 1}
    )
    assert cfg.max_batch_size == 8 and cfg.clip.model == "ViT-B-32" and cfg.num_gpus == 1.0
    assert (
        config_from_args({"clip.frame_step": "2", "scene_prefixes": ["s3://a", "s3://b"]}).clip.frame_step
        == 2
    )
    with pytest.raises(ConfigError, match="unknown"):
        config_from_args({"batch": 3})
    with pytest.raises(ConfigError, match="port"):
        config_from_args({"port": "eighty"})
    # refused before Ray starts: Serve's proxy would retry a port it cannot bind forever
    with pytest.raises(ConfigError, match="port must be in 0..65535, got 70000"):
        config_from_args({"checkpoint": "c.pt", "port": 70000}).validate()
    # serve build calls the builder without args: a template app, deployment options applied
    app = build_app({"max_batch_size": 8, "max_ongoing_requests": 24, "max_open_requests": 99})
    ingress = app._bound_deployment  # the light HTTP ingress, bound to the model deployment
    dep = ingress.init_args[0]._bound_deployment
    assert dep.max_ongoing_requests == 24 and ingress.max_ongoing_requests == 99
    assert ingress.ray_actor_options["num_cpus"] == 0
    with pytest.raises(ConfigError):
        build_app({"checkpoint": "c.pt", "max_batch_size": 8, "max_ongoing_requests": 4})


def test_rayservice_manifest_is_a_valid_serve_config():
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    from tracklift.serving.app import config_from_args

    path = Path(__file__).resolve().parents[2] / "cluster" / "rayservice.yaml"
    manifest = yaml.safe_load(path.read_text())
    assert manifest["kind"] == "RayService" and manifest["apiVersion"] == "ray.io/v1"
    serve_cfg = ServeDeploySchema.model_validate(yaml.safe_load(manifest["spec"]["serveConfigV2"]))
    (app,) = serve_cfg.applications
    assert app.import_path == "tracklift.serving.app:build_app"
    cfg = config_from_args(app.args).validate()
    assert cfg.num_gpus == 1 and cfg.max_ongoing_requests >= cfg.max_batch_size > 1 and cfg.clip is not None
    assert cfg.token is None  # the token comes from a Secret, never from the Serve config
    assert manifest["spec"]["rayClusterConfig"]["rayVersion"] == __import__("ray").__version__
    # memory limits consistent with the limits in args: a replica's peak (+1 GiB for CLIP) fits its pod,
    # the ingress's bodies fit the head
    cluster = manifest["spec"]["rayClusterConfig"]
    (worker,) = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"]
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]

    def gib(container) -> float:
        limit = container["resources"]["limits"]["memory"]
        assert limit.endswith("Gi") and container["resources"]["requests"]["memory"] == limit
        return float(limit[:-2])

    assert cfg.replica_memory_bytes() / 2**30 + 1.0 <= gib(worker)
    assert cfg.max_open_requests * cfg.max_request_bytes / 2**30 <= gib(head) / 2


def test_serve_command_refuses_a_bad_checkpoint_before_starting(tmp_path, capsys):
    from tracklift.cli import main

    assert main(["serve", "--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert "missing.pt: file not found" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["serve", "--checkpoint", str(tmp_path / "junk.pt"), "--port", "0"]) == 1
    assert "port out of range" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tmp_path / "junk.pt")]) == 1
    assert "not a readable torch checkpoint" in capsys.readouterr().err


def test_batches_are_split_by_total_points(model):
    clouds = _clouds(4, seed=3)  # 1500, 1900, 2300, 2700 points
    engine = SegmentEngine(model, "mem://ckpt", max_batch_points=4000)
    assert [len(g) for g in engine.groups(clouds)] == [2, 1, 1]
    preds = engine.predict_many(clouds)
    assert [p.batch_size for p in preds] == [2, 2, 1, 1]
    for c, p in zip(clouds[2:], preds[2:]):  # alone in their pass: exactly predict's answer
        np.testing.assert_array_equal(p.instances.masks, model.predict(c.points, c.colors).masks)
    lone = SegmentEngine(model, max_batch_points=1000)  # a cloud over the bound still runs, alone
    assert [len(g) for g in lone.groups(clouds)] == [1, 1, 1, 1]
