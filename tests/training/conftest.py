"""Fixtures of the training tests: a local Ray, and a tiny synthetic corpus labelled by ``label_corpus``."""

from __future__ import annotations

import pytest

from tracklift import storage
from tracklift.datasets.corpus import SynthCommandConfig, gt_url, synthesize_corpus
from tracklift.datasets.synthetic import SynthConfig
from tracklift.datasets.tracklift_format import read_int_lines
from tracklift.labeling import LabelConfig, label_corpus
from tracklift.lifting import LiftConfig, SampleConfig, VisibilityConfig


@pytest.fixture(scope="module")
def ray_local(s3_server):
    """A local two-CPU Ray for one test module. Started after the moto server so that its workers inherit
    the server's AWS environment."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def labelled_corpus(tmp_path_factory):
    """Two synthetic scans labelled in one process (weightless generator, geometric tracker).

    Returns:
        ``(labels URL, {scene id: per-vertex GT ids})``; shards: stage 1 has 4 single-view samples
        (keyframes 0 and 5 of each scan; frames 6-9 are tracked from 5), stage 2 4 five-frame windows, stage 3
        the 2 full scenes.
    """
    root = str(tmp_path_factory.mktemp("corpus"))
    labels = str(tmp_path_factory.mktemp("labels"))
    small = SynthConfig.classic(width=160, height=120, n_frames=10, n_groups=3)
    synthesize_corpus(SynthCommandConfig(out=root, scenes=2, seed=40), log=lambda s: None, synth=small)
    cfg = LabelConfig(
        scenes=root,
        out=labels,
        lift=LiftConfig(visibility=VisibilityConfig(depth_abs_tol=0.02, depth_rel_tol=0.01)),
        samples=SampleConfig(window=5, stride=5),
        pictures=False,
        runner="local",
    )
    manifest = label_corpus(cfg, log=lambda s: None)
    assert all(e["status"] == "complete" for e in manifest["scenes"].values())
    gt = {sid: read_int_lines(gt_url(root, sid)) for sid in manifest["scenes"]}
    assert storage.isdir(storage.join(labels, "shards", "stage3"))
    return labels, gt
