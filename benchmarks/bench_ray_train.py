"""Training throughput on Ray Train with 1 and 2 workers against the one-process trainer, same work.

The work: curriculum stage 1 (single-view clouds, the stage with the most samples) of a small synthetic
corpus labelled by ``tracklift label`` (weightless generator + geometric tracker, Parquet shards), model
preset ``tiny``, global batch 2, samples subsampled to ``--max-points``, ``--epochs`` epochs, same seed.

Measured per run:

- ``samples/s``: training samples per second over the epochs after the first (the first epoch pays for
  worker warm-up: imports, allocator, the dataset's first pass), from the per-epoch ``seconds`` and
  ``samples`` every trainer records in its checkpoint history; with 2 workers each sample is seen by one
  worker, so this is the throughput of the whole group;
- ``data_s``: per epoch, the part a Ray worker spent getting its rows from Ray Data (the one-process
  trainer reads every shard once before its first epoch);
- ``wall_s``: the whole call (``train_stage`` / ``train_stage_ray``: worker group start, dataset, every
  epoch, checkpoints), with Ray itself already running.

``train_ray_overhead_ratio`` = wall time of the 1-worker Ray run / wall time of the one-process run on one
thread (the same compute as one worker): what Ray's machinery costs on this work. ``--all-threads`` also
times the one-process run on every core (``torch`` default threads); on a busy machine its spinning
threads can stall for minutes (measured here: 300 s epochs beside another job), so it is off by default.
The machine is shared and CPU-only: numbers are noisy; the load average is recorded.

Writes the ``train_*`` keys of ``benchmarks/results/ray_scaling.json`` (read-modify-write: the labeling
benchmark writes other keys into the same file).

    .venv/bin/python benchmarks/bench_ray_train.py [--epochs 4] [--scenes 4] [--work DIR] [--all-threads]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from tracklift import storage
from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus
from tracklift.datasets.synthetic import SynthConfig
from tracklift.labeling import LabelConfig, label_corpus
from tracklift.lifting import LiftConfig, VisibilityConfig
from tracklift.models import read_checkpoint
from tracklift.training import StageConfig, TrainConfig, load_stage_samples, train_stage
from tracklift.training.distributed import RayTrainOptions, train_stage_ray

RESULTS = Path(__file__).resolve().parent / "results" / "ray_scaling.json"


def labelled_corpus(work: str, scenes: int) -> str:
    """Synthesise and label ``scenes`` scans under ``work`` (both steps skip what is already done)."""
    root, labels = os.path.join(work, "corpus"), os.path.join(work, "labels")
    synth = SynthConfig.classic(width=160, height=120, n_frames=12, n_groups=3)
    synthesize_corpus(SynthCommandConfig(out=root, scenes=scenes, seed=70), log=lambda s: None, synth=synth)
    label_corpus(
        LabelConfig(
            scenes=root,
            out=labels,
            pictures=False,
            runner="local",
            lift=LiftConfig(visibility=VisibilityConfig(depth_abs_tol=0.02)),
        ),
        log=lambda s: None,
    )
    return labels


def throughput(url: str) -> tuple[float, list[dict]]:
    """Samples per second over the epochs after the first, and the history."""
    history = read_checkpoint(url)[0]["extra"]["history"]
    steady = history[1:] or history
    return sum(h["samples"] for h in steady) / sum(h["seconds"] for h in steady), history


def run(name: str, fn) -> dict:
    t0 = time.perf_counter()
    url = fn()
    wall = time.perf_counter() - t0
    rate, history = throughput(url)
    row = {
        "samples_per_s": rate,
        "wall_s": wall,
        "epoch_s": [round(h["seconds"], 2) for h in history],
        # Ray workers: the part of each epoch spent getting the epoch's rows (Ray Data) and decoding them
        "data_s": [round(h["data_seconds"], 2) for h in history if "data_seconds" in h],
        "loss": [round(h["loss"], 3) for h in history],
    }
    print(f"{name:<26} {rate:8.2f} samples/s   wall {wall:6.1f} s   epochs {row['epoch_s']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--max-points", type=int, default=8000)
    parser.add_argument(
        "--all-threads", action="store_true", help="also time the one-process trainer on every core"
    )
    parser.add_argument("--work", default=None, help="work folder (kept; default: a temporary one)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    import ray

    work = args.work or tempfile.mkdtemp(prefix="tracklift-bench-ray-train-")
    labels = labelled_corpus(work, args.scenes)
    n_samples = len(load_stage_samples(labels, 1))
    stage = StageConfig(stage=1, epochs=args.epochs, lr=1e-3, batch_size=2, max_points=args.max_points)

    def cfg(folder: str) -> TrainConfig:
        return TrainConfig(labels=labels, out=os.path.join(work, "runs", folder), model="tiny")

    for folder in ("one_t1", "one_all", "ray1", "ray2"):
        storage.remove(os.path.join(work, "runs", folder), recursive=True)
    print(f"stage 1: {n_samples} samples, {args.epochs} epochs, tiny preset, max {args.max_points} points")
    rows = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows["one_process_1_thread"] = run("one process, 1 thread", lambda: train_stage(cfg("one_t1"), stage))
    torch.set_num_threads(threads)
    if args.all_threads:  # on a shared machine torch's spinning threads can stall for minutes
        rows["one_process_all_threads"] = run(
            f"one process, {threads} threads", lambda: train_stage(cfg("one_all"), stage)
        )
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for w in (1, 2):
            rows[f"ray_{w}"] = run(
                f"Ray Train, {w} worker(s)",
                lambda w=w: train_stage_ray(cfg(f"ray{w}"), stage, None, RayTrainOptions(num_workers=w)),
            )
    finally:
        ray.shutdown()

    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update(
        {
            "train_samples_per_s": {"1": rows["ray_1"]["samples_per_s"], "2": rows["ray_2"]["samples_per_s"]},
            "train_one_process_samples_per_s": rows["one_process_1_thread"]["samples_per_s"],
            "train_ray_overhead_ratio": rows["ray_1"]["wall_s"] / rows["one_process_1_thread"]["wall_s"],
            "train_bench": {
                "runs": rows,
                "work": {
                    "stage": 1,
                    "samples": n_samples,
                    "epochs": args.epochs,
                    "model": "tiny",
                    "global_batch": 2,
                    "max_points": args.max_points,
                },
                "definitions": {
                    "samples_per_s": "samples / seconds over epochs 2..E (checkpoint history)",
                    "train_one_process_samples_per_s": "one-process trainer on 1 torch thread",
                    "train_ray_overhead_ratio": "wall(Ray 1 worker) / wall(one process, 1 thread)",
                },
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_average_after": os.getloadavg(),
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "ray": ray.__version__,
                    "note": "shared 2-core CPU machine, other jobs running: noisy",
                },
            },
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
