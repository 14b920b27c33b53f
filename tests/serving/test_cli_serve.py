"""``tracklift serve`` as a user runs it: a subprocess that answers over HTTP and stops promptly on SIGINT
(Ctrl-C) and on SIGTERM (Kubernetes, systemd).

Written not to depend on an idle machine: readiness is polled, every wait is generous but bounded, and
the server's output goes to a file rather than a pipe (a pipe nobody reads fills up and blocks the
server's logging, which once kept it from exiting)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.serving.conftest import _free_port
from tracklift.serving.client import Client, ServeError

UP_WITHIN_S = 300  # starting Ray, Serve and two deployments on a loaded 2-core machine
SHUTDOWN_DEADLINE_S = 20  # --shutdown-timeout-s given to the server
EXIT_WITHIN_S = 120  # the test's bound: the deadline plus Python's and Ray's own exit


def _start(tmp_path):
    """Start ``tracklift serve`` (token from the environment); returns (process, log path, port, model)."""
    from tracklift.models import ModelConfig, Segmenter, save_checkpoint

    torch.manual_seed(0)
    model = Segmenter.from_config(ModelConfig.preset("tiny"))
    ckpt = str(tmp_path / "model.pt")
    save_checkpoint(model, ckpt)
    port = _free_port()
    env = {**os.environ, "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "TRACKLIFT_SERVE_TOKEN": "envtok"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "tracklift.cli", "serve", "--checkpoint", ckpt, "--port", str(port)]
    cmd += ["--shutdown-timeout-s", str(SHUTDOWN_DEADLINE_S)]
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    return proc, log_path, port, model


def _wait_until_up(proc, log_path, port) -> Client:
    client = Client(f"http://127.0.0.1:{port}", token="envtok", timeout_s=60)
    deadline = time.monotonic() + UP_WITHIN_S
    while True:
        assert proc.poll() is None, log_path.read_text()
        try:
            if client.health()["status"] == "ok" and client.model()["checkpoint"]:
                return client
        except (OSError, ServeError, ValueError):
            pass
        assert time.monotonic() < deadline, f"server did not come up in {UP_WITHIN_S} s"
        time.sleep(1.0)


def _stop(proc, log_path, sig) -> str:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within {EXIT_WITHIN_S} s of {sig.name}:\n{log_path.read_text()[-3000:]}")
    out = log_path.read_text()
    assert proc.returncode == 0, out
    assert "stopping" in out, out
    return out


@pytest.mark.slow
def test_serve_command_serves_until_interrupted(tmp_path):
    proc, log_path, port, model = _start(tmp_path)
    try:
        client = _wait_until_up(proc, log_path, port)
        rng = np.random.default_rng(0)
        pts = rng.uniform(0, 2, (800, 3)).astype(np.float32)
        res = client.segment(pts, None)
        ref = model.eval().predict(pts, np.full((800, 3), 128, np.uint8))
        np.testing.assert_array_equal(res.instances.masks, ref.masks)
        with pytest.raises(ServeError) as e:  # the token came from $TRACKLIFT_SERVE_TOKEN
            Client(f"http://127.0.0.1:{port}").model()
        assert e.value.status == 401
        _stop(proc, log_path, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_serve_command_stops_on_sigterm(tmp_path):
    proc, log_path, port, _ = _start(tmp_path)
    try:
        _wait_until_up(proc, log_path, port)
        _stop(proc, log_path, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_help_shows_the_token_variable():
    from tracklift.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["serve"]
    text = sub.format_help()
    assert "$TRACKLIFT_SERVE_TOKEN" in text and "ps" in text
    for flag in ("--body-timeout-s", "--max-batch-points", "--shutdown-timeout-s", "--clip.crop-scales"):
        assert flag in text, flag
