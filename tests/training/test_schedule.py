"""Learning-rate schedules and the augmentation hook of the training epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.samples import make_sample
from tracklift.models import ModelConfig, Segmenter
from tracklift.training import StageConfig, TrainConfig
from tracklift.training.augment import AugmentConfig
from tracklift.training.config import span_curriculum
from tracklift.training.epochs import augmented, learning_rate, run_epoch

torch.set_num_threads(1)


def test_constant_schedule_is_the_configured_rate():
    st = StageConfig(stage=1, epochs=2, lr=1e-3)
    assert {learning_rate(st, k, 20) for k in range(20)} == {1e-3}


def test_cosine_warms_up_then_decays_to_the_final_share():
    st = StageConfig(stage=1, epochs=2, lr=1e-3, lr_schedule="cosine", warmup=0.1, final_lr_ratio=0.01)
    lrs = [learning_rate(st, k, 100) for k in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))  # rising during warm-up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then never rising
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)


def test_onecycle_starts_low_peaks_and_ends_near_zero():
    st = StageConfig(stage=1, epochs=2, lr=1e-3, lr_schedule="onecycle")
    lrs = [learning_rate(st, k, 100) for k in range(100)]
    assert lrs[0] < 1e-4 and max(lrs) == pytest.approx(1e-3) and int(np.argmax(lrs)) == 29
    assert lrs[-1] < 1e-6


def test_bad_schedule_or_handoff_is_refused():
    with pytest.raises(ValueError, match="lr_schedule"):
        StageConfig(stage=1, epochs=1, lr_schedule="step")
    with pytest.raises(ValueError, match="handoff"):
        StageConfig(stage=1, epochs=1, handoff="decoder")


def test_epoch_follows_the_schedule_across_epochs():
    """The optimizer's rate after each epoch is the schedule's at that epoch's last step (so a resumed
    stage, which starts at a later epoch, continues the same curve)."""
    torch.manual_seed(0)
    model = Segmenter.from_config(ModelConfig.preset("tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    st = StageConfig(stage=1, epochs=2, lr=1e-3, batch_size=2, lr_schedule="cosine", warmup=0.25)
    samples = [make_sample(1, seed) for seed in range(4)]
    for epoch in range(2):
        run_epoch(model, opt, samples, st, epoch)
        assert opt.param_groups[0]["lr"] == pytest.approx(learning_rate(st, 2 * epoch + 1, 4))


def test_augmented_sample_keeps_ids_and_changes_points():
    s = make_sample(3, 0)
    st = StageConfig(stage=3, epochs=1, augment=AugmentConfig(enabled=True))
    a = augmented(s, st, np.random.default_rng(0))
    assert np.array_equal(a.instance, s.instance) and a.scene_id == s.scene_id
    assert not np.allclose(a.points, s.points)
    assert augmented(s, StageConfig(stage=3, epochs=1), np.random.default_rng(0)) is s


def test_augment_section_from_a_mapping():
    st = StageConfig(stage=1, epochs=1, augment={"enabled": True, "crop": True})
    assert isinstance(st.augment, AugmentConfig) and st.augment.crop


def _rates(stages, steps_per_stage: int) -> list[float]:
    """The learning rates of every step of the trained stages, one after the other."""
    return [
        learning_rate(st, k, steps_per_stage) for st in stages if st.epochs for k in range(steps_per_stage)
    ]


def test_curriculum_span_warms_up_once_holds_then_decays():
    """lr_span=curriculum: one warm-up in stage 1, the peak held through stage 2, one decay in stage 3;
    per stage, the rate drops to near zero twice before stage 3 and warms up again three times."""
    common = dict(lr=1e-3, lr_schedule="cosine", warmup=0.1, epochs=[1, 1, 1])
    spanned = TrainConfig(**common, lr_span="curriculum").stages
    lrs = _rates(spanned, 50)
    assert lrs[0] == pytest.approx(2e-4) and lrs[4] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:4], lrs[1:5]))  # warming up in stage 1
    assert lrs[5:101] == pytest.approx([1e-3] * 96)  # held to the first step of stage 3
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:])) and lrs[-1] < 2e-5
    per_stage = _rates(TrainConfig(**common).stages, 50)
    assert per_stage[49] < 2e-5 and per_stage[50] == pytest.approx(2e-4)


def test_curriculum_span_uses_the_stages_that_train():
    cfg = TrainConfig(lr=1e-3, lr_schedule="cosine", warmup=0.2, epochs=[0, 2, 3], lr_span="curriculum")
    s1, s2, s3 = cfg.stages
    assert s1 == TrainConfig(lr=1e-3, lr_schedule="cosine", warmup=0.2, epochs=[0, 2, 3]).stages[0]
    assert (s2.lr_schedule, s2.warmup, s2.final_lr_ratio) == ("cosine", 0.2, 1.0)
    assert (s3.lr_schedule, s3.warmup) == ("cosine", 0.0)
    alone = TrainConfig(lr_schedule="cosine", warmup=0.2, epochs=[0, 0, 3], lr_span="curriculum").stages[2]
    assert (alone.warmup, alone.final_lr_ratio) == (0.2, 0.01)  # one stage keeps its own schedule
    constant = TrainConfig(epochs=[1, 1, 1], lr_span="curriculum").stages
    assert constant == TrainConfig(epochs=[1, 1, 1]).stages


def test_curriculum_span_refuses_onecycle_and_unknown_spans():
    with pytest.raises(ValueError, match="lr_span=curriculum needs the cosine"):
        TrainConfig(lr_schedule="onecycle", lr_span="curriculum")
    with pytest.raises(ValueError, match="lr_span must be one of stage, curriculum"):
        TrainConfig(lr_span="run")
    stages = span_curriculum([StageConfig(stage=s, epochs=1, lr_schedule="cosine") for s in (1, 2, 3)])
    assert [s.lr_schedule for s in stages] == ["cosine", "constant", "cosine"]
