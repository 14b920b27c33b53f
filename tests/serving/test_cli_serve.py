"""``tracklift serve`` as a user runs it: a subprocess that answers over HTTP and stops cleanly on Ctrl-C."""

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


@pytest.mark.slow
def test_serve_command_serves_until_interrupted(tmp_path):
    from tracklift.models import ModelConfig, Segmenter, save_checkpoint

    torch.manual_seed(0)
    model = Segmenter.from_config(ModelConfig.preset("tiny"))
    ckpt = str(tmp_path / "model.pt")
    save_checkpoint(model, ckpt)
    port = _free_port()
    env = {**os.environ, "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "TRACKLIFT_SERVE_TOKEN": "envtok"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "tracklift.cli", "serve", "--checkpoint", ckpt, "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = Client(f"http://127.0.0.1:{port}", token="envtok", timeout_s=60)
        deadline = time.time() + 150
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if client.health()["status"] == "ok":
                    break
            except (OSError, ServeError, ValueError):
                pass
            assert time.time() < deadline, "server did not come up in 150 s"
            time.sleep(1.0)
        rng = np.random.default_rng(0)
        pts = rng.uniform(0, 2, (800, 3)).astype(np.float32)
        res = client.segment(pts, None)
        ref = model.eval().predict(pts, np.full((800, 3), 128, np.uint8))
        np.testing.assert_array_equal(res.instances.masks, ref.masks)
        with pytest.raises(ServeError) as e:  # the token came from $TRACKLIFT_SERVE_TOKEN
            Client(f"http://127.0.0.1:{port}").model()
        assert e.value.status == 401
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out
        assert "stopping" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
