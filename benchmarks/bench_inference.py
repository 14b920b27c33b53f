"""Inference latency, per-phase breakdown, memory and training throughput: superpoint vs point decoding.

For each scene size (50k and 200k points), backend (torch, minkowski, spconv) and model preset
(``default``: superpoint decoding; ``small``: the point-level decoder of before), in a fresh subprocess:

- ``latency_ms_p50``: median wall time of ``Segmenter.predict(points, colors)`` (random weights, eval mode;
  superpoints computed inside the call by the model's segmentator, as a user's cloud gets them) over
  ``--repeats`` calls after one warm-up call; ``cpu_ms_p50`` the process's CPU time per call (all threads);
- ``phases_ms_p50``: the same work phase by phase through the Segmenter's public phases (median over
  ``--repeats`` runs): ``input`` (arrays to a checked batch, the voxel-count check), ``voxelize``,
  ``superpoints`` (segmentator, superpoint level only), ``backbone``, ``pooling`` (superpoint level only),
  ``decoder``, ``postprocess``;
- ``peak_mb``: peak resident memory increase during the predict calls (warm-up included) over the resident
  memory just before them, from a thread sampling ``/proc/self/statm`` every 2 ms; ``ru_maxrss_mb`` is the
  subprocess's whole-life peak (model, scene and imports included) for reference;

and per backend and preset, also in a fresh subprocess, training ``samples_per_s``: AdamW steps (forward +
backward + step, batch of 2, like ``StageConfig``'s defaults) on stage-3-like samples (whole rooms
subsampled to 100k points, the stage-3 ``max_points`` default, with the rooms' instance ids as labels and
superpoints from the segmentator computed before timing, as training data caches them), after one warm-up
step. spconv gets ``null`` with the reason (its CPU wheel has no backward).

``summary`` compares the presets measured in this one run (torch backend, 50k points):
``p50_ms_50k_default``, ``p50_ms_50k_point_small``, ``speedup_50k``. Configurations take turns at each size
so that the ones compared run close together in time (the load of a shared machine drifts over minutes).

Scenes are dense samples of the synthetic generator's room meshes (floor, walls, furniture, small things;
area-weighted points on the triangles, colours interpolated from the vertices), not uniform noise.
torch runs with ``--threads`` intra-op threads (default 2, this machine's cores); MinkowskiEngine's
coordinate manager uses the same count; spconv runs its CPU kernels on one thread (see
``tracklift.models.backends.spconv_backend``).

Usage: ``python benchmarks/bench_inference.py [--backends torch minkowski spconv] [--points 50000 200000]
[--presets default small]``. Prints a table and writes ``benchmarks/results/inference.json``. Other
processes on the machine change the numbers: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "inference.json"
TRAIN_POINTS = 100_000  # StageConfig.max_points default: stage-3 samples are subsampled to this
TRAIN_BATCH = 2  # StageConfig.batch_size default
SPCONV_NO_TRAIN = "spconv's CPU wheel has no backward pass (training needs CUDA with spconv)"


def room_points(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points sampled on the synthetic room mesh of ``seed``.

    Returns:
        (points (n, 3) float32 metres, colors (n, 3) uint8, instance (n,) int64 GT id of the nearest
        corner vertex, ScanNet encoding).
    """
    from tracklift.datasets.synthetic import build_scene_mesh

    _, mesh = build_scene_mesh(seed)
    v, f = mesh.vertices, mesh.faces
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    face = rng.choice(len(f), n, p=area / area.sum())
    # Uniform barycentric coordinates on each triangle (fold the unit square's upper half back).
    r = rng.random((n, 2))
    flip = r.sum(1) > 1
    r[flip] = 1 - r[flip]
    bary = np.column_stack([1 - r.sum(1), r])
    pts = np.einsum("nk,nkd->nd", bary, tri[face])
    cols = np.einsum("nk,nkd->nd", bary, mesh.colors[f[face]].astype(np.float64))
    corner = f[face, bary.argmax(1)]
    return pts.astype(np.float32), np.clip(cols, 0, 255).astype(np.uint8), mesh.vertex_instance[corner]


class RssPeak:
    """Peak resident set size (bytes) seen by a thread sampling ``/proc/self/statm``."""

    def __init__(self, period_s: float = 0.002):
        self.period_s = period_s
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.base = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _model(backend: str, preset: str):
    import torch

    from tracklift.models import ModelConfig, Segmenter

    torch.manual_seed(0)
    return Segmenter.from_config(ModelConfig.preset(preset), backend=backend)


PHASES = ("input", "voxelize", "superpoints", "backbone", "pooling", "decoder", "postprocess")


def phase_times(model, pts: np.ndarray, cols: np.ndarray) -> tuple[dict, dict]:
    """One prediction run phase by phase through the Segmenter's public phases.

    Returns:
        (milliseconds per phase (absent phases omitted), sizes: voxels, superpoints, instances).
    """
    import torch

    from tracklift.models import PointBatch, SegmenterOutput

    clock = time.perf_counter
    out, sizes = {}, {}
    with torch.inference_mode():
        t = clock()
        batch = PointBatch.from_arrays(pts, cols)
        model.check_size(batch)
        out["input"], t = clock() - t, clock()
        feats = model.input_features(batch)  # once, for the voxels and the superpoints, as voxelize does
        vox = model.voxelize_points(batch, feats)
        out["voxelize"], t = clock() - t, clock()
        if model.superpoint_level:
            model.attach_superpoints(vox, batch, feats)
            out["superpoints"], t = clock() - t, clock()
            sizes["superpoints"] = vox.superpoints.num_superpoints
        levels = model.backbone(vox.tensor)
        out["backbone"], t = clock() - t, clock()
        if model.superpoint_level:
            pooled = model.pool(levels, vox)
            out["pooling"], t = clock() - t, clock()
            decoded = model.decoder(pooled, vox.superpoints, False)
        else:
            decoded = model.decoder(levels, False)
        out["decoder"], t = clock() - t, clock()
        inst = model.postprocess(SegmenterOutput(decoded, vox), batch)[0]
        out["postprocess"] = clock() - t
    sizes.update(voxels=vox.tensor.num_voxels, instances=len(inst))
    return {k: 1000 * v for k, v in out.items()}, sizes


def worker_infer(backend: str, preset: str, n: int, repeats: int, seed: int) -> dict:
    """One inference configuration (run in its own process)."""
    import torch

    pts, cols, _ = room_points(seed, n)
    model = _model(backend, preset).eval()
    times, cpu = [], []
    with RssPeak() as mem:
        for i in range(repeats + 1):
            t, c = time.perf_counter(), time.process_time()
            inst = model.predict(pts, cols)
            if i:  # the first call is the warm-up
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
    phases = [phase_times(model, pts, cols) for _ in range(max(repeats, 1))]
    return {
        "backend": backend,
        "preset": preset,
        "decoder_level": model.config.decoder_level,
        "points": n,
        **phases[-1][1],
        "latency_ms_p50": 1000 * statistics.median(times),
        "latency_ms_all": [round(1000 * t, 1) for t in times],
        # CPU time of all the process's threads per call: less sensitive than wall time to other
        # processes competing for the cores (not to cache or memory-bandwidth contention).
        "cpu_ms_p50": 1000 * statistics.median(cpu),
        "peak_mb": (mem.peak - mem.base) / 2**20,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "instances_predict": len(inst),
        "phases_ms_p50": {k: statistics.median(p[0][k] for p in phases) for k in PHASES if k in phases[0][0]},
        "threads": torch.get_num_threads(),
    }


def worker_train(backend: str, preset: str, steps: int, seed: int, points: int = TRAIN_POINTS) -> dict:
    """Training throughput on stage-3-like samples (run in its own process)."""
    import torch

    from tracklift.lifting.samples import Sample
    from tracklift.models import PointBatch
    from tracklift.training.data import with_superpoints

    samples = []
    for k in range(TRAIN_BATCH):
        pts, cols, ids = room_points(seed + k, points)
        samples.append(with_superpoints(Sample(pts, cols, ids, f"room{seed + k}", 3)))
    batch = PointBatch.collate(samples)
    model = _model(backend, preset).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        sum(model(batch).values()).backward()
        opt.step()

    step()  # warm-up
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return {
        "backend": backend,
        "preset": preset,
        "points_per_sample": points,
        "batch_size": TRAIN_BATCH,
        "steps": steps,
        "step_s": dt / steps,
        "step_cpu_s": dc / steps,
        "samples_per_s": steps * TRAIN_BATCH / dt,
    }


def _run_worker(args: list[str], threads: int, timeout: float = 1800) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args, "--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode:
        return {
            "error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        }
    return json.loads(res.stdout.strip().splitlines()[-1])


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "MinkowskiEngine", "spconv"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["torch", "minkowski", "spconv"])
    ap.add_argument("--points", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--presets", nargs="+", default=["default", "small"], help="model presets compared")
    ap.add_argument("--repeats", type=int, default=3, help="timed predict calls after the warm-up")
    ap.add_argument("--train-steps", type=int, default=2, help="timed training steps after the warm-up")
    ap.add_argument("--train-points", type=int, default=TRAIN_POINTS, help="points per training sample")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--seed", type=int, default=0, help="synthetic room seed")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--worker", choices=["infer", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--preset", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if args.worker == "infer":
            row = worker_infer(args.backend, args.preset, args.n, args.repeats, args.seed)
        else:
            row = worker_train(args.backend, args.preset, args.train_steps, args.seed, args.train_points)
        print(json.dumps(row))
        return

    t0, load_start = time.perf_counter(), os.getloadavg()[0]
    infer, train = [], []
    # Configurations take turns at each size, so that the ones compared run close together in time (the
    # load of a shared machine drifts over minutes).
    for n in args.points:
        for backend in args.backends:
            for preset in args.presets:
                cmd = ["infer", "--backend", backend, "--preset", preset, "--n", str(n)]
                cmd += ["--repeats", str(args.repeats), "--seed", str(args.seed)]
                row = {"backend": backend, "preset": preset, "points": n, **_run_worker(cmd, args.threads)}
                infer.append(row)
                print(json.dumps(row), flush=True)
    for backend in args.backends:
        for preset in args.presets:
            if backend == "spconv":
                row = {"backend": backend, "preset": preset, "samples_per_s": None, "reason": SPCONV_NO_TRAIN}
            elif args.train_steps <= 0:
                continue
            else:
                cmd = [
                    "train",
                    "--backend",
                    backend,
                    "--preset",
                    preset,
                    "--train-steps",
                    str(args.train_steps),
                ]
                cmd += ["--seed", str(args.seed), "--train-points", str(args.train_points)]
                row = {"backend": backend, "preset": preset, **_run_worker(cmd, args.threads)}
            train.append(row)
            print(json.dumps(row), flush=True)

    result = {
        "summary": summary(infer),
        "presets": args.presets,
        "threads": args.threads,
        "repeats": args.repeats,
        "peak_mb_method": "sampling thread on /proc/self/statm every 2 ms: peak RSS during the warm-up and "
        "timed predict calls minus RSS just before them; one fresh subprocess per configuration",
        "scene": f"synthetic room mesh seed {args.seed}, area-weighted surface samples",
        "versions": _versions(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": load_start,
        "load_average_1min_at_end": os.getloadavg()[0],
        "wall_s": time.perf_counter() - t0,
        "inference": infer,
        "training": train,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(result))


def summary(infer: list[dict]) -> dict:
    """The issue's comparison from this run: torch backend, 50k points, ``default`` vs ``small``."""

    def p50(preset):
        row = next(
            (r for r in infer if r["backend"] == "torch" and r["preset"] == preset and r["points"] == 50_000),
            {},
        )
        return row.get("latency_ms_p50")

    a, b = p50("default"), p50("small")
    return {
        "p50_ms_50k_default": a,
        "p50_ms_50k_point_small": b,
        "speedup_50k": (b / a) if a and b else None,
        "backend": "torch",
    }


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(result: dict) -> str:
    """Markdown table: one row per (preset, backend, size): latency, CPU, memory, phases; then training."""
    head = ["preset", "backend", "points", "p50 ms", "CPU ms", "peak MB", *PHASES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["inference"]:
        cells = [r["preset"], r["backend"], str(r["points"])]
        if "error" in r:
            cells += ["error"] * (len(head) - 3)
        else:
            cells += [_fmt(r.get(k), ".0f") for k in ("latency_ms_p50", "cpu_ms_p50", "peak_mb")]
            cells += [_fmt(r["phases_ms_p50"].get(k), ".1f") for k in PHASES]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| preset | backend | train samples/s |", "|---|---|---|"]
    for tr in result["training"]:
        s = tr.get("samples_per_s")
        val = "error" if "error" in tr else (f"null ({tr['reason']})" if s is None else f"{s:.3f}")
        lines.append(f"| {tr['preset']} | {tr['backend']} | {val} |")
    lines.append("")
    lines.append(f"summary: {json.dumps(result['summary'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
