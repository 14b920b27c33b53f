"""The main job end to end on a tiny corpus: Ray labeling, Ray Train, evaluation, Ray Serve, report."""

import json

import pytest

from tracklift import storage
from tracklift.main_job import RunConfig, _serve_step, run


@pytest.mark.slow
def test_main_job_on_a_tiny_corpus(tmp_path, capsys):
    out = str(tmp_path / "demo")
    cfg = RunConfig(
        out=out,
        scenes=1,
        held_out=1,
        frames=8,
        width=160,
        height=120,
        model="tiny",
        epochs="1,1,1",
        num_actors=1,
        num_workers=1,  # one training scene: 1 sample in stages 2 and 3 (tests/training run 2 workers)
    )
    summary = run(cfg)
    results = summary["results"]
    assert set(results) == {"whole_mesh", "seen_vertices"}
    methods = {
        "gt_as_prediction",
        "mesh_connected_components",
        "pseudo_labels_tracked",
        "pseudo_labels_independent",
        "network_stage1",
        "network_stage2",
        "network_stage3",
    }
    for part in results.values():
        assert set(part) == methods
        assert part["gt_as_prediction"]["AP"] == 1.0
    seen, whole = results["seen_vertices"], results["whole_mesh"]
    assert seen["pseudo_labels_tracked"]["num_gt"] < whole["pseudo_labels_tracked"]["num_gt"]
    assert sorted(summary["checkpoints"]) == [1, 2, 3]
    # every scan's facts are reported: 8 kept frames spread over a whole-room route
    assert [(f["split"], f["frames"]) for f in summary["scans"]] == [("train", 8), ("held_out", 8)]
    assert all(0.0 < f["coverage"] <= 1.0 and f["route_length_m"] > 5.0 for f in summary["scans"])
    # the served model answers over HTTP exactly like the same checkpoint in this process
    served = summary["serve"]
    assert served["matches_in_process_prediction"] is True and served["health"]
    assert served["points"] > 1000 and set(served["server_timings_ms"]) >= {"forward"}
    printed = capsys.readouterr().out
    for step in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
        assert step in printed
    assert "network_stage3" in printed
    on_disk = json.loads(storage.read_text(storage.join(out, "results.json")))
    assert on_disk["results"]["whole_mesh"]["gt_as_prediction"]["AP50"] == 1.0
    report = storage.read_text(storage.join(out, "report.md"))
    assert "tracks.png" in report and "## Serving" in report
    assert "| kept frames | coverage |" in report and "spread over a whole-room walk" in report
    for name in ("ground_truth", "pseudo-labels", "network_after_stage_3"):
        assert f"pictures/{name}/" in report
        assert storage.listdir(storage.join(out, "pictures", name))


def test_run_offers_exactly_the_learning_rate_schedules_and_handoffs_training_knows():
    """``RunConfig.lr_schedule`` and ``RunConfig.handoff`` are ``Literal``s (so ``tracklift run --help``
    lists them without importing torch); their values must be the training stage's own lists."""
    import typing

    from tracklift.training.config import HANDOFFS, LR_SCHEDULES, LR_SPANS

    hints = typing.get_type_hints(RunConfig)
    assert typing.get_args(hints["lr_schedule"]) == LR_SCHEDULES
    assert typing.get_args(hints["lr_span"]) == LR_SPANS
    assert set(typing.get_args(hints["handoff"])) == set(HANDOFFS)
    assert RunConfig().handoff in HANDOFFS


@pytest.mark.slow
def test_a_failed_serve_step_becomes_an_error_entry(tmp_path):
    """The Serve step deploys a real checkpoint and then cannot read its scene: the step returns the error
    instead of raising, so run() writes the evaluation, results.json and the report before it raises."""
    import ray
    import torch

    from tracklift.models import ModelConfig, Segmenter, save_checkpoint

    torch.manual_seed(0)
    checkpoint = str(tmp_path / "model.pt")
    save_checkpoint(Segmenter.from_config(ModelConfig.preset("tiny")), checkpoint)
    try:
        served = _serve_step(RunConfig(out=str(tmp_path)), checkpoint, str(tmp_path / "no_such_scene"))
    finally:
        ray.shutdown()
    assert set(served) == {"error"}
    assert served["error"].startswith("DataError") and "no_such_scene" in served["error"]
