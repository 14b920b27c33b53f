"""Load benchmark of the Ray Serve deployment: latency percentiles and throughput for 1, 4 and 16
concurrent clients, with dynamic batching and without, on 50k-point clouds from the synthetic generator,
plus the server-side latency breakdown (decode, queue, voxelize, forward, post-process).

Everything runs on 127.0.0.1 (a local Ray started here, Serve's proxy on a free port). The run is bounded:
each (mode, clients) cell sends at most ``max(--min-requests, clients * --per-client)`` requests and stops
sending after ``--max-seconds``. Clients are threads with one keep-alive HTTP session each, sending NPZ and
asking for NPZ. Without ``--checkpoint`` a random-init model of ``--model`` is served (speed does not
depend on the weights). Prints a table and writes ``benchmarks/results/serve_latency.json``, whose
``summary.requests_per_s_16_clients`` is the better mode's throughput at 16 clients.

    .venv/bin/python benchmarks/bench_serve.py [--model small] [--points 50000] [--clients 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "serve_latency.json"
STAGES = ("receive", "decode", "queue", "voxelize", "forward", "postprocess", "total", "outside_replica")


def make_clouds(n_scenes: int, n_points: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_scenes`` synthetic rooms (mesh vertices and colours), each subsampled to ``n_points``."""
    from tracklift.datasets.synthetic.generator import build_scene_mesh

    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_scenes):
        _, mesh = build_scene_mesh(1000 + s)
        idx = rng.choice(len(mesh.vertices), size=min(n_points, len(mesh.vertices)), replace=False)
        out.append((mesh.vertices[idx].astype(np.float32), mesh.colors[idx].astype(np.uint8)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_load(url: str, bodies: list[bytes], clients: int, n_requests: int, max_seconds: float) -> dict:
    """``clients`` threads send requests (round-robin over ``bodies``) until ``n_requests`` are done or
    ``max_seconds`` passed. Returns client-side latencies (ms), server timings and the wall time."""
    from tracklift.serving.client import Client
    from tracklift.serving.codec import decode_result

    lock = threading.Lock()
    state = {"sent": 0}
    latencies: list[float] = []
    timings: list[dict] = []
    errors: list[str] = []
    t_start = time.perf_counter()

    def worker() -> None:
        with Client(url, timeout_s=600) as c:
            while True:
                with lock:
                    if state["sent"] >= n_requests or time.perf_counter() - t_start > max_seconds:
                        return
                    i = state["sent"]
                    state["sent"] += 1
                t0 = time.perf_counter()
                status, hdrs, content = c.request(
                    "POST",
                    "/v1/segment",
                    bodies[i % len(bodies)],
                    {"Content-Type": "application/x-npz", "Accept": "application/x-npz"},
                )
                dt = (time.perf_counter() - t0) * 1e3
                with lock:
                    if status != 200:
                        errors.append(f"{status}: {content[:200]!r}")
                        continue
                    latencies.append(dt)
                    server = dict(decode_result(content, hdrs.get("content-type")).timings_ms)
                    # what the request spent outside the model replica's own clock: Serve's proxy, the
                    # ingress hop, the response's way back and the client (per-request serving overhead)
                    server["outside_replica"] = dt - server.get("total", dt) + server.get("receive", 0.0)
                    timings.append(server)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "latencies": latencies,
        "timings": timings,
        "errors": errors,
        "wall_s": time.perf_counter() - t_start,
    }


def summarise(run: dict) -> dict:
    lat = np.asarray(run["latencies"])
    batch = [t.get("batch_size", 1) for t in run["timings"]]
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p95_ms": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "requests_per_s": round(len(lat) / run["wall_s"], 3),
        "requests": int(lat.size),
        "errors": len(run["errors"]),
        "mean_batch_size": round(float(np.mean(batch)), 2) if batch else None,
        "breakdown_ms": {
            k: round(float(np.median([t[k] for t in run["timings"] if k in t])), 1)
            for k in STAGES
            if any(k in t for t in run["timings"])
        },
    }


def summary_of(results: dict) -> dict:
    """``requests_per_s_16_clients``: the better of the two modes at 16 clients (None when 16 was not
    measured), and which mode that was."""
    cells = {mode: cells["16"]["requests_per_s"] for mode, cells in results.items() if "16" in cells}
    if not cells:
        return {"requests_per_s_16_clients": None, "mode": None}
    best = max(cells, key=cells.get)
    return {"requests_per_s_16_clients": cells[best], "mode": best}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="model to serve (default: a random-init --model preset)")
    ap.add_argument("--model", default="small", help="preset of the random-init model: tiny | small | base")
    ap.add_argument("--points", type=int, default=50_000, help="points per cloud")
    ap.add_argument("--scenes", type=int, default=4, help="distinct synthetic clouds sent round-robin")
    ap.add_argument("--clients", default="1,4,16", help="concurrency levels")
    ap.add_argument("--per-client", type=int, default=2, help="requests per client in a cell")
    ap.add_argument("--min-requests", type=int, default=6, help="at least this many requests per cell")
    ap.add_argument("--max-seconds", type=float, default=150.0, help="stop sending after this, per cell")
    ap.add_argument("--batch", type=int, default=8, help="max_batch_size of the batching mode")
    ap.add_argument("--wait", type=float, default=0.05, help="batch_wait_timeout_s of the batching mode")
    ap.add_argument("--cpus", type=float, default=2.0, help="CPUs (and torch threads) of the one replica")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    import ray
    import torch
    from ray import serve

    from tracklift.models import ModelConfig, Segmenter, save_checkpoint
    from tracklift.serving.app import application
    from tracklift.serving.codec import encode_cloud
    from tracklift.serving.config import ServeConfig, proxy_ready_env

    levels = [int(x) for x in args.clients.split(",")]
    t0 = time.perf_counter()
    clouds = make_clouds(args.scenes, args.points)
    bodies = [encode_cloud(p, c, "npz")[0] for p, c in clouds]
    print(f"{len(clouds)} clouds of {args.points} points ({time.perf_counter() - t0:.1f} s)", flush=True)

    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    ckpt = args.checkpoint
    if ckpt is None:
        torch.manual_seed(0)
        ckpt = os.path.join(tmp, f"{args.model}.pt")
        save_checkpoint(Segmenter.from_config(ModelConfig.preset(args.model)), ckpt)

    os.environ.update(proxy_ready_env())
    ray.init(address="local", num_cpus=max(2, int(args.cpus)), include_dashboard=False, logging_level="ERROR")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    results: dict = {}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"log_level": "WARNING"})
        modes = {
            "batching": {"max_batch_size": args.batch, "batch_wait_timeout_s": args.wait},
            "no_batching": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0},
        }
        for mode, batching in modes.items():
            cfg = ServeConfig(
                checkpoint=ckpt,
                port=port,
                num_cpus=args.cpus,
                max_ongoing_requests=max(16, max(levels), args.batch),
                max_queued_requests=max(levels),  # measures throughput: no client is ever shed
                max_points=max(args.points, 1_000_000),
                **batching,
            )
            serve.run(application(cfg), name="bench", route_prefix="/")
            run_load(url, bodies, 1, 2, 600.0)  # warm-up: first forward passes allocate
            results[mode] = {}
            for c in levels:
                n = max(args.min_requests, c * args.per_client)
                cell = summarise(run_load(url, bodies, c, n, args.max_seconds))
                results[mode][str(c)] = cell
                print(
                    f"{mode:12s} clients={c:3d} requests={cell['requests']:3d} p50={cell['p50_ms']} "
                    f"p95={cell['p95_ms']} p99={cell['p99_ms']} req/s={cell['requests_per_s']} "
                    f"batch={cell['mean_batch_size']} errors={cell['errors']}",
                    flush=True,
                )
            serve.delete("bench")
    finally:
        serve.shutdown()
        ray.shutdown()

    breakdown = results["no_batching"][str(levels[0])]["breakdown_ms"]
    out = {
        "batching": {
            c: {k: v for k, v in cell.items() if k != "breakdown_ms"}
            for c, cell in results["batching"].items()
        },
        "no_batching": {
            c: {k: v for k, v in cell.items() if k != "breakdown_ms"}
            for c, cell in results["no_batching"].items()
        },
        "breakdown_ms": breakdown,
        "summary": summary_of(results),
        "breakdown_ms_by_cell": {
            mode: {c: cell["breakdown_ms"] for c, cell in cells.items()} for mode, cells in results.items()
        },
        "setup": {
            "model": args.model if args.checkpoint is None else args.checkpoint,
            "points": args.points,
            "scenes": args.scenes,
            "batching": {"max_batch_size": args.batch, "batch_wait_timeout_s": args.wait},
            "replica_cpus": args.cpus,
            "requests_per_cell": {str(c): max(args.min_requests, c * args.per_client) for c in levels},
            "max_seconds_per_cell": args.max_seconds,
        },
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_end": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")

    print()
    print(
        f"{'mode':12s} {'clients':>7s} {'p50 ms':>9s} {'p95 ms':>9s} {'p99 ms':>9s} {'req/s':>7s} {'batch':>6s}"
    )
    print("-" * 64)
    for mode in ("batching", "no_batching"):
        for c, cell in out[mode].items():
            print(
                f"{mode:12s} {c:>7s} {cell['p50_ms']:9.1f} {cell['p95_ms']:9.1f} {cell['p99_ms']:9.1f} "
                f"{cell['requests_per_s']:7.2f} {cell['mean_batch_size']:6.2f}"
            )
    print("\nserver-side breakdown, 1 client, no batching (median ms): " + json.dumps(breakdown))
    print("summary: " + json.dumps(out["summary"]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
