"""A real Ray head started with ``ray start --head`` in a subprocess, on 127.0.0.1, with token auth."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop(proc: subprocess.Popen, temp_dir: str) -> None:
    """Stop this cluster only (never `ray stop`, which would stop every Ray on the machine)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Ray processes that left our process group still name our temp dir on their command line
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if temp_dir in args and int(pid) != os.getpid():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def ray_head():
    """Yields ``(dashboard_url, token)`` of a fresh head node; stops exactly that cluster afterwards."""
    temp_dir = tempfile.mkdtemp(prefix="tlray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    gcs, dash, client, agent_grpc, agent_http, metrics, rt_env = _free_ports(7)
    token = secrets.token_hex(24)
    bindir = os.path.dirname(sys.executable)
    env = dict(
        os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, PATH=bindir + os.pathsep + os.environ["PATH"]
    )
    env.pop("RAY_ADDRESS", None)
    cmd = [
        os.path.join(bindir, "ray"),
        "start",
        "--head",
        "--block",
        f"--temp-dir={temp_dir}",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--dashboard-agent-listen-port={agent_http}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={rt_env}",
        "--num-cpus=2",
        "--disable-usage-stats",
    ]
    log = open(os.path.join(temp_dir, "ray-start.log"), "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                log.flush()
                raise RuntimeError(f"ray start exited: {open(log.name).read()[-3000:]}")
            try:
                req = urllib.request.Request(
                    url + "/api/version", headers={"Authorization": f"Bearer {token}"}
                )
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError(
                    f"the Ray head's dashboard did not come up: {open(log.name).read()[-3000:]}"
                )
            time.sleep(1)
        yield url, token
    finally:
        _stop(proc, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
