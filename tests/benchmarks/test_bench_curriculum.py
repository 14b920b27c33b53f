"""benchmarks/bench_curriculum.py: the curriculum.json layout of issue 13 (mean ± std, per_seed rows)."""

import pytest

from . import load_benchmark


def test_rows_hold_means_stds_and_per_seed_figures():
    bench = load_benchmark("bench_curriculum")
    per_seed = [
        {
            "seed": 0,
            "AP": 0.1,
            "AP50": 0.2,
            "AP25": 0.4,
            "all_vertices": {"AP": 0.0, "AP50": 0.1, "AP25": 0.2},
        },
        {
            "seed": 1,
            "AP": 0.3,
            "AP50": 0.4,
            "AP25": 0.6,
            "all_vertices": {"AP": 0.2, "AP50": 0.3, "AP25": 0.4},
        },
    ]
    row = bench.mean_std(per_seed)
    assert row["AP"] == pytest.approx(0.2) and row["AP_std"] == pytest.approx(0.1)
    assert row["AP50"] == pytest.approx(0.3) and row["AP50_std"] == pytest.approx(0.1)
    assert row["AP25"] == pytest.approx(0.5)
    assert row["per_seed"] == [
        {"seed": 0, "AP": 0.1, "AP50": 0.2, "AP25": 0.4},
        {"seed": 1, "AP": 0.3, "AP50": 0.4, "AP25": 0.6},
    ]
    assert row["all_vertices"]["AP50"] == pytest.approx(0.2)


def test_arguments_and_rows():
    bench = load_benchmark("bench_curriculum")
    args = bench.parse_args(["--priors", "weightless,controlled-high", "--seeds", "3,4", "--scans", "fused"])
    assert args.priors == ["weightless", "controlled-high"] and args.seeds == [3, 4] and args.scans == "fused"
    assert bench.ROWS == (
        "pseudo_labels",
        "stage1",
        "stage2",
        "stage3",
        "no_curriculum",
        "independent_single_stage",
        "point_decoder",
    )
    with pytest.raises(SystemExit):
        bench.parse_args(["--priors", "sam3"])


def test_single_stage_rows_train_as_many_steps_as_the_curriculum():
    bench = load_benchmark("bench_curriculum")
    args = bench.parse_args(["--epochs1", "4", "--epochs2", "4", "--epochs3", "24", "--batch", "2"])
    samples = {1: 72, 2: 55, 3: 8}  # 36, 28 (last batch short) and 4 steps per epoch
    curriculum_steps = 4 * 36 + 4 * 28 + 24 * 4
    assert bench.ablation_epochs(samples, 3, args) == curriculum_steps // 4 == 88
    assert bench.ablation_epochs(samples, 1, args) == round(curriculum_steps / 36) == 10
    by_epochs = bench.parse_args(
        ["--epochs1", "4", "--epochs2", "4", "--epochs3", "24", "--ablation-budget", "epochs"]
    )
    assert bench.ablation_epochs(samples, 1, by_epochs) == bench.ablation_epochs(samples, 3, by_epochs) == 32
