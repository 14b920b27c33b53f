"""``tracklift label`` end to end in one process: outputs, resumability, a failing scene, eval."""

import json

import numpy as np
import pytest

from tracklift import storage
from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus
from tracklift.datasets.synthetic import SynthConfig
from tracklift.evaluation import evaluate_dirs
from tracklift.labeling import LabelConfig, label_corpus
from tracklift.lifting import LiftConfig, VisibilityConfig, read_pseudo_labels, read_samples


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("corpus"))
    small = SynthConfig.classic(width=160, height=120, n_frames=10, n_groups=3)
    synthesize_corpus(SynthCommandConfig(out=root, scenes=3, seed=40), log=lambda s: None, synth=small)
    # break one scene: a depth image that is not an image
    storage.write_bytes(storage.join(root, "synth0042_00", "depth", "3.png"), b"not a png")
    return root


def test_label_corpus_writes_everything_and_survives_a_bad_scene(corpus, tmp_path):
    out = str(tmp_path / "labels")
    vis = VisibilityConfig(depth_abs_tol=0.02, depth_rel_tol=0.01)
    cfg = LabelConfig(scenes=corpus, out=out, lift=LiftConfig(visibility=vis))
    logs = []
    manifest = label_corpus(cfg, log=logs.append)
    status = {k: v["status"] for k, v in manifest["scenes"].items()}
    assert status == {"synth0040_00": "complete", "synth0041_00": "complete", "synth0042_00": "failed"}
    bad = manifest["scenes"]["synth0042_00"]
    assert "depth/3.png" in bad["error"] and "corrupt" in bad["error"]
    on_disk = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    assert on_disk["scenes"]["synth0042_00"]["status"] == "failed"
    # products of a complete scene
    labels, meta = read_pseudo_labels(storage.join(out, "scenes", "synth0040_00", "pseudo_labels.npz"))
    assert meta["method"] == "tracked" and (labels.ids > 0).sum() > 1000
    for name in ("tracks.png", "pseudo_labels.png"):
        png = storage.read_bytes(storage.join(out, "scenes", "synth0040_00", name))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    for stage in (1, 2, 3):
        samples = read_samples(storage.join(out, "shards", f"stage{stage}", "synth0040_00.parquet"))
        assert samples and all(s.stage == stage and len(s.points) == len(s.instance) for s in samples)
    # the pseudo-labels are scored like any prediction (quality is measured in benchmarks/, not here:
    # 10 frames at 160x120 see little of a room)
    result = evaluate_dirs(storage.join(out, "pred"), storage.join(corpus, "gt"), scenes=["synth0040_00"])
    assert result["num_pred"] > 0 and result["AP25"] > 0.0
    # a rerun skips complete scenes and retries the failed one
    logs.clear()
    again = label_corpus(cfg, log=logs.append)
    assert again["scenes"]["synth0040_00"].get("skipped_rerun") is True
    assert again["scenes"]["synth0042_00"]["status"] == "failed"
    assert any("complete, skipped" in line for line in logs)


def test_independent_baseline_runs_through_the_same_code(corpus, tmp_path):
    out = str(tmp_path / "ind")
    cfg = LabelConfig(scenes=corpus, out=out, method="independent", independent_step=3, limit=1)
    manifest = label_corpus(cfg, log=lambda s: None)
    assert manifest["scenes"]["synth0040_00"]["status"] == "complete"
    labels, meta = read_pseudo_labels(storage.join(out, "scenes", "synth0040_00", "pseudo_labels.npz"))
    assert meta["method"] == "independent" and len(np.unique(labels.ids)) > 3
    assert not storage.exists(storage.join(out, "shards", "stage2", "synth0040_00.parquet"))  # no tracked ids


def test_frames_without_depth_and_a_pose_jump_do_not_stop_a_scene():
    from tracklift.datasets.synthetic import generate_scene
    from tracklift.labeling import build_generator, build_tracker, label_scene

    data = generate_scene(44, SynthConfig.classic(width=160, height=120, n_frames=9, n_groups=2))
    data.frames[3].depth[:] = 0.0  # a frame with no valid depth
    jump = np.eye(4)
    jump[:3, 3] = [3.0, 0.0, 0.0]
    for f in data.frames[6:]:
        f.pose = jump @ f.pose  # the trajectory jumps by 3 m
    cfg = LabelConfig(write_shards=False)
    result = label_scene(data.as_scene(), cfg, build_generator(cfg), build_tracker(cfg))
    assert result.stats["frames"] == 9 and result.tracked_maps[3].shape == (120, 160)
    assert (result.labels.ids > 0).any()


def test_scene_without_frames_is_a_clear_error():
    from tracklift.datasets.synthetic import generate_scene
    from tracklift.errors import DataError
    from tracklift.labeling import label_scene

    data = generate_scene(45, SynthConfig.classic(width=32, height=24, n_frames=1, n_groups=1))
    data.frames = []
    with pytest.raises(DataError, match="no usable frames"):
        label_scene(data.as_scene(), LabelConfig(), None, None)
