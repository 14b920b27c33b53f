"""Peak replica memory of hostile request bodies (issue 10): each input is sent over HTTP to a real
``tracklift serve`` (a subprocess, as an operator starts it, with its default limits unless flags say
otherwise) and measured on the Serve replica processes themselves (the light ingress and the model replica).

Inputs: PLY face bombs (a ~200-byte header declaring 2e8 and 1e9 faces), a PLY ``element junk 10^12``, an
NPZ whose ``points.npy`` header claims 10^12 x 3, a 60 MiB JSON of points, a 5000-digit JSON integer, JSON
nested 100,000 deep, and one legitimate cloud of ``--legit-points`` points (1M by default: accepted when the
server's ``--max-points`` allows it, else its 413).

For each: HTTP status, client-side seconds, the replica's peak RSS increase over its RSS just before the
request (the kernel's high-water mark ``VmHWM`` after resetting it through ``/proc/<pid>/clear_refs``,
and RSS sampled every 10 ms as a fallback), and whether ``GET /healthz`` kept answering (polled every
0.25 s, 10 s timeout) while the request ran. The replica is found in the process table: the descendant
of the ``tracklift serve`` process whose titles are Ray's ``ray::ServeReplica:...``. Linux only (``/proc``).

One small legitimate request warms the replicas up first (not recorded). A random-init ``tiny`` checkpoint
is written to a temporary folder. Prints a table and writes
``benchmarks/results/hostile_memory.json``.

    .venv/bin/python benchmarks/bench_hostile_memory.py [--legit-points 1000000] [--serve-args "..."]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests

RESULTS = Path(__file__).resolve().parent / "results" / "hostile_memory.json"
MB = 1 << 20

PLY_HEAD = (
    b"ply\nformat binary_little_endian 1.0\ncomment tracklift hostile input\nelement vertex 3\n"
    b"property float x\nproperty float y\nproperty float z\n"
)
XYZ = np.arange(9, dtype="<f4").tobytes()


# --------------------------------------------------------------------------------------------- inputs


def ply_face_bomb(count: int) -> bytes:
    """Three vertices, one triangle, and a header declaring ``count`` faces (about 210 bytes)."""
    head = PLY_HEAD + f"element face {count}\nproperty list uchar int vertex_indices\nend_header\n".encode()
    return head + XYZ + bytes([3, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0])


def ply_junk_element(count: int = 10**12) -> bytes:
    return PLY_HEAD + f"element junk {count}\nproperty int a\nend_header\n".encode() + XYZ + b"\0" * 8


def npz_claiming(shape: tuple[int, ...]) -> bytes:
    """An NPZ whose ``points.npy`` header claims ``shape`` (float32) while holding 36 bytes."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("points.npy", head.getvalue() + b"\0" * 36)
    return buf.getvalue()


def json_points(n_bytes: int) -> bytes:
    """``{"points": [[x, y, z], ...]}`` of about ``n_bytes`` (short numbers: many points per byte)."""
    row = b"[0.1,0.2,0.3],"
    n = max(2, (n_bytes - 16) // len(row))
    return b'{"points": [' + row * (n - 1) + row[:-1] + b"]}"


def json_long_integer(digits: int = 5000) -> bytes:
    return b'{"points": [[' + b"7" * digits + b", 0, 0], [1, 1, 1]]}"


def json_nested(depth: int = 100_000) -> bytes:
    return b'{"points": ' + b"[" * depth + b"]" * depth + b"}"


def legit_cloud(n: int) -> bytes:
    from tracklift.serving.codec import encode_cloud

    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 6, (n, 3)).astype(np.float32)
    return encode_cloud(pts, rng.integers(0, 256, (n, 3), dtype=np.uint8), "npz")[0]


def cases(legit_points: int) -> list[tuple[str, str, Callable[[], bytes]]]:
    return [
        ("PLY face bomb 2e8", "application/x-ply", lambda: ply_face_bomb(200_000_000)),
        ("PLY face bomb 1e9", "application/x-ply", lambda: ply_face_bomb(1_000_000_000)),
        ("PLY element junk 1e12", "application/x-ply", ply_junk_element),
        ("NPZ header 1e12 x 3", "application/x-npz", lambda: npz_claiming((10**12, 3))),
        ("JSON of points, 60 MiB", "application/json", lambda: json_points(60 * MB)),
        ("JSON 5000-digit integer", "application/json", json_long_integer),
        ("JSON nested 100,000 deep", "application/json", json_nested),
        (f"legit cloud {legit_points} points (NPZ)", "application/x-npz", lambda: legit_cloud(legit_points)),
    ]


# ----------------------------------------------------------------------------------- process watching


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, stack = _children(), [], [pid]
    while stack:
        for k in kids.get(stack.pop(), []):
            out.append(k)
            stack.append(k)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def find_replicas(server_pid: int, timeout_s: float, expected: int = 2) -> dict[str, int]:
    """The Serve replicas started by ``server_pid``, by deployment name (Ray titles each process
    ``ray::ServeReplica:<app>:<deployment>``): the light ingress and the model replica."""
    deadline = time.time() + timeout_s
    found: dict[str, int] = {}
    while time.time() < deadline:
        found = {}
        for p in descendants(server_pid):
            title = cmdline(p)
            if "ServeReplica:" in title:  # e.g. ray::ServeReplica:tracklift:ingress, ...:TrackliftServer
                found["ingress" if "ingress" in title.lower() else "model"] = p
        if len(found) >= expected:
            return found
        time.sleep(0.5)
    if found:
        return found
    raise RuntimeError(f"no ServeReplica process under pid {server_pid} after {timeout_s} s")


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


class PeakRss:
    """Peak RSS of ``pid`` while the ``with`` block runs: sampled every ``interval_s`` and, where the kernel
    lets us reset it, the exact high-water mark ``VmHWM``."""

    def __init__(self, pid: int, interval_s: float = 0.01):
        self.pid, self.interval_s = pid, interval_s
        self.peak_mb = self.before_mb = 0.0
        self.exact = False
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.exact = True
        except OSError:
            self.exact = False
        self.before_mb = self.peak_mb = rss_mb(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
            except (OSError, KeyError):
                return
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.exact:
            self.peak_mb = max(self.peak_mb, _status_kb(self.pid, "VmHWM") / 1024)

    @property
    def increase_mb(self) -> float:
        return self.peak_mb - self.before_mb


class HealthPoller:
    """Polls ``GET /healthz`` while the ``with`` block runs; records failures and the slowest answer."""

    def __init__(self, url: str, interval_s: float = 0.25, timeout_s: float = 10.0):
        self.url, self.interval_s, self.timeout_s = url, interval_s, timeout_s
        self.ok = self.failed = 0
        self.max_s = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> HealthPoller:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        with requests.Session() as s:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    good = s.get(self.url + "/healthz", timeout=self.timeout_s).status_code == 200
                except requests.RequestException:
                    good = False
                self.max_s = max(self.max_s, time.perf_counter() - t0)
                self.ok += good
                self.failed += not good
                self._stop.wait(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------------------ main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: str, port: int, extra: list[str], log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60"}
    env.pop("TRACKLIFT_SERVE_TOKEN", None)  # the operator's default: no token
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "tracklift.cli", "serve", "--checkpoint", ckpt, "--port", str(port), *extra]
    log = open(log_path, "w")  # noqa: SIM115 (kept open for the server's lifetime)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"tracklift serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"tracklift serve not healthy after {timeout_s} s")


def stop_server(proc: subprocess.Popen, extra_pids: list[int]) -> None:
    """SIGINT (what an operator's Ctrl-C sends), then SIGKILL for whatever of ours is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in extra_pids:  # Ray processes the server started, by pid
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def measure(url: str, pids: dict[str, int], name: str, ctype: str, body: bytes, timeout_s: float) -> dict:
    with HealthPoller(url) as health, contextlib.ExitStack() as stack:
        mems = {dep: stack.enter_context(PeakRss(pid)) for dep, pid in pids.items()}
        t0 = time.perf_counter()
        try:
            r = requests.post(
                url + "/v1/segment", data=body, headers={"Content-Type": ctype}, timeout=timeout_s
            )
            status, reason = r.status_code, (r.json().get("error", "") if r.status_code != 200 else "")
        except (requests.RequestException, ValueError) as e:
            status, reason = None, f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - t0
    per = {dep: round(m.increase_mb, 1) for dep, m in mems.items()}
    return {
        "input": name,
        "body_bytes": len(body),
        "status": status,
        "reason": reason[:160],
        "seconds": round(seconds, 3),
        "rss_before_mb": {dep: round(m.before_mb, 1) for dep, m in mems.items()},
        "peak_rss_increase_mb_by_replica": per,
        "peak_rss_increase_mb": max(per.values()),
        "peak_exact": all(m.exact for m in mems.values()),
        "healthz_ok": health.failed == 0 and health.ok > 0,
        "healthz_polls": health.ok + health.failed,
        "healthz_max_s": round(health.max_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--legit-points", type=int, default=1_000_000, help="points of the legitimate cloud")
    ap.add_argument("--serve-args", default="", help="extra `tracklift serve` flags (default: its defaults)")
    ap.add_argument("--startup-timeout", type=float, default=300.0, help="seconds for the server to come up")
    ap.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    import torch

    from tracklift.models import ModelConfig, Segmenter, save_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    torch.manual_seed(0)
    ckpt = str(tmp / "tiny.pt")
    save_checkpoint(Segmenter.from_config(ModelConfig.preset("tiny")), ckpt)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp / "serve.log"
    extra = shlex.split(args.serve_args)
    proc = start_server(ckpt, port, extra, log_path)
    rows: list[dict] = []
    ours: list[int] = []
    try:
        wait_healthy(url, proc, args.startup_timeout, log_path)
        replicas = find_replicas(proc.pid, 60)
        ours = descendants(proc.pid)
        shown = ", ".join(f"{dep} pid {pid} ({rss_mb(pid):.0f} MB RSS)" for dep, pid in replicas.items())
        print(f"server pid {proc.pid}; replicas: {shown}", flush=True)
        # One small legitimate request first, not recorded: the first request of a replica loads code and
        # allocates buffers, which would otherwise be charged to whichever input came first.
        warm = requests.post(
            url + "/v1/segment",
            data=legit_cloud(5000),
            headers={"Content-Type": "application/x-npz"},
            timeout=args.request_timeout,
        )
        print(f"warm-up request: {warm.status_code}", flush=True)
        for name, ctype, make in cases(args.legit_points):
            body = make()
            row = measure(url, replicas, name, ctype, body, args.request_timeout)
            del body
            rows.append(row)
            print(
                f"{row['input']:38s} status={row['status']} {row['seconds']:7.2f} s "
                f"+{row['peak_rss_increase_mb']:7.1f} MB healthz_ok={row['healthz_ok']} "
                f"(max {row['healthz_max_s']:.2f} s)  {row['reason'][:60]}",
                flush=True,
            )
        alive = requests.get(url + "/healthz", timeout=30).status_code == 200
    finally:
        ours = sorted(set(ours) | set(descendants(proc.pid)))
        stop_server(proc, ours)

    out = {
        "rows": rows,
        "server_alive_after_all": alive,
        "setup": {
            "serve_args": extra,
            "legit_points": args.legit_points,
            "model": "tiny (random init)",
            "rss_method": "VmHWM after clear_refs reset + 10 ms VmRSS sampling of each ServeReplica process "
            "(ingress and model); peak_rss_increase_mb is the larger of the two",
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
    print(f"{'input':38s} {'bytes':>10s} {'status':>6s} {'seconds':>8s} {'+RSS MB':>8s} {'healthz':>8s}")
    print("-" * 84)
    for r in rows:
        health = "ok" if r["healthz_ok"] else "FAILED"
        print(
            f"{r['input']:38s} {r['body_bytes']:10d} {r['status']!s:>6s} {r['seconds']:8.2f} "
            f"{r['peak_rss_increase_mb']:8.1f} {health:>8s}"
        )
    print(f"server alive after all inputs: {alive}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
