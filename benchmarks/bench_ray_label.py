"""Ray labeling throughput: scenes per minute with 1 and 2 labeling actors, and Ray's overhead over the
one-process job on the same scenes.

One synthetic corpus (``--scenes`` scenes, seeds 7000.., ``--frames`` frames at 160x120, weightless masks
+ geometric tracker, pictures off) is labeled three times into fresh output folders:

1. ``--runner local``: the one-process job (models built once, scenes in a row);
2. Ray, 1 actor (1 CPU); 3. Ray, 2 actors (1 CPU each), on one local Ray started once (``ray.init`` is
   timed apart: ``ray_init_s``).

scenes/min = labeled scenes / job seconds, where job seconds run from the start of ``label_corpus*`` to the
manifest (the Ray jobs include starting their actors). ``label_scaling_efficiency`` = rate(2) / (2 *
rate(1)); ``ray_overhead_ratio`` = Ray 1-actor seconds / one-process seconds (1.0 = no overhead). On a
2-core machine, 2 actors leave no core for the driver, and other work on the machine distorts all three:
the load average before and after is recorded. Writes the keys ``label_scenes_per_min``,
``label_scaling_efficiency``, ``ray_overhead_ratio`` (and ``label_benchmark`` details) into
``benchmarks/results/ray_scaling.json``, keeping the keys other benchmarks wrote there.

    .venv/bin/python benchmarks/bench_ray_label.py [--scenes 6] [--frames 12] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus
from tracklift.datasets.synthetic import SynthConfig
from tracklift.labeling import LabelConfig, label_corpus

RESULTS = Path(__file__).resolve().parent / "results" / "ray_scaling.json"


def _labeled(manifest: dict) -> int:
    return sum(
        1 for e in manifest["scenes"].values() if e["status"] == "complete" and not e.get("skipped_rerun")
    )


def run_local(corpus: str, out: str) -> dict:
    t0 = time.perf_counter()
    manifest = label_corpus(
        LabelConfig(scenes=corpus, out=out, pictures=False, runner="local"), log=lambda s: None
    )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "scenes": _labeled(manifest),
        "scenes_per_min": _labeled(manifest) / seconds * 60,
    }


def run_ray(corpus: str, out: str, actors: int) -> dict:
    from tracklift.actors.pipeline import label_corpus_ray

    cfg = LabelConfig(scenes=corpus, out=out, pictures=False, runner="ray", num_actors=actors, num_cpus=1)
    t0 = time.perf_counter()
    manifest = label_corpus_ray(cfg, log=lambda s: None)
    seconds = time.perf_counter() - t0
    per_scene = [e["seconds"] for e in manifest["scenes"].values()]
    workers = {e["worker"]["pid"] for e in manifest["scenes"].values() if "worker" in e}
    return {
        "seconds": seconds,
        "scenes": _labeled(manifest),
        "scenes_per_min": _labeled(manifest) / seconds * 60,
        "mean_scene_s": sum(per_scene) / len(per_scene),
        "actors_used": len(workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    import ray

    work = tempfile.mkdtemp(prefix="bench_ray_label_")
    corpus = os.path.join(work, "corpus")
    synth = SynthConfig.classic(width=160, height=120, n_frames=args.frames, n_groups=3)
    synthesize_corpus(
        SynthCommandConfig(out=corpus, scenes=args.scenes, seed=7000), log=lambda s: None, synth=synth
    )
    load_before = os.getloadavg()

    local = run_local(corpus, os.path.join(work, "local"))
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    try:
        one = run_ray(corpus, os.path.join(work, "ray1"), 1)
        two = run_ray(corpus, os.path.join(work, "ray2"), 2)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    rates = {"1": one["scenes_per_min"], "2": two["scenes_per_min"]}
    efficiency = rates["2"] / (2 * rates["1"])
    overhead = one["seconds"] / local["seconds"]
    print(f"{args.scenes} scenes x {args.frames} frames at 160x120, weightless + geometric")
    print(f"{'run':<16}{'seconds':>9}{'scenes/min':>12}")
    print(f"{'one process':<16}{local['seconds']:>9.1f}{local['scenes_per_min']:>12.2f}")
    print(f"{'ray, 1 actor':<16}{one['seconds']:>9.1f}{one['scenes_per_min']:>12.2f}")
    print(f"{'ray, 2 actors':<16}{two['seconds']:>9.1f}{two['scenes_per_min']:>12.2f}")
    print(
        f"scaling efficiency 1 -> 2 actors: {efficiency:.2f}; Ray overhead (1 actor / one process): {overhead:.2f}"
    )
    print(f"ray.init: {ray_init_s:.1f} s (not in the job times); load average {load_before} -> {load_after}")

    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(
        label_scenes_per_min=rates,
        label_scaling_efficiency=efficiency,
        ray_overhead_ratio=overhead,
        label_benchmark={
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "scenes": args.scenes,
            "frames": args.frames,
            "size": [160, 120],
            "one_process": local,
            "ray_1_actor": one,
            "ray_2_actors": two,
            "ray_init_s": ray_init_s,
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "machine": platform.platform(),
            "note": "2-core machine shared with other jobs: timings are noisy upper bounds",
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)  # another benchmark writes to the same file: never leave it half-written
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
