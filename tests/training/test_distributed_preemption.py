"""Streamed epochs and the checkpoint on preemption notice, without a Ray cluster: the window loop against
the one-process epoch, real SIGTERMs to real subprocesses (main-thread and Ray-like worker-thread loops),
and resuming from the preemption checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from tests.training.samples import config, write_shards
from tracklift import storage
from tracklift.training import StageConfig, load_stage_samples
from tracklift.training.distributed import stream_epoch
from tracklift.training.epochs import run_epoch
from tracklift.training.preemption import (
    Preempted,
    PreemptionNotice,
    preemption_url,
    resume_after_preemption,
    save_preemption_checkpoint,
)
from tracklift.training.ray_shards import ShardLoader, npz_rows, window_size
from tracklift.training.state import StageProgress, build_stage_model

STAGE = StageConfig(stage=1, epochs=2, lr=1e-3, batch_size=2, max_points=150)


@pytest.fixture
def rows(tmp_path):
    write_shards(str(tmp_path / "labels"), stages=(1,))
    url = storage.join(str(tmp_path / "labels"), "shards", "stage1", "s0.npz")
    return npz_rows([url])


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_one_window_is_the_one_process_epoch_bit_for_bit(tmp_path, rows, one_thread):
    cfg = config(tmp_path)
    model_a, opt_a = build_stage_model(cfg, STAGE, "cpu")
    samples = load_stage_samples(cfg.labels, 1)
    mean_a, steps_a = run_epoch(model_a, opt_a, samples, STAGE, 0)

    model_b, opt_b = build_stage_model(cfg, STAGE, "cpu")
    # the rows arrive in another order, as Ray Data may deliver them: the loader sorts them back
    windows = [list(reversed(rows))]
    done = stream_epoch(model_b, opt_b, windows, ShardLoader("npz"), STAGE, 0, 0, 0, 1, 2)
    assert (done.steps, done.samples, done.windows) == (steps_a, len(samples), 1)
    assert done.loss_sum / done.steps == mean_a
    a, b = _params(model_a), _params(model_b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_windows_are_whole_batches_and_skipped_steps_pass_over_rows(tmp_path, rows, one_thread):
    assert window_size(3, 2) == 4 and window_size(4, 2) == 4 and window_size(1, 3) == 3
    cfg = config(tmp_path)
    model, opt = build_stage_model(cfg, STAGE, "cpu")
    seen = []
    windows = [rows[:2], rows[2:]]
    done = stream_epoch(
        model, opt, windows, ShardLoader("npz"), STAGE, 0, 0, 0, 1, 2, seen.append, skip_steps=1
    )
    # the first window (one batch) was done before the preemption: one step left, numbered 2
    assert (done.steps, done.samples, done.windows, seen) == (1, 2, 1, [2])


def test_resume_loads_the_preemption_checkpoint_of_the_running_epoch_only(tmp_path, one_thread):
    cfg = config(tmp_path)
    model, opt = build_stage_model(cfg, STAGE, "cpu")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # weights that differ from a fresh model's
    progress = StageProgress(done=1, history=[{"epoch": 1, "steps": 2}])
    url = save_preemption_checkpoint(model, opt, progress, cfg.out, 1, epoch=1, steps=1)
    assert url == preemption_url(cfg.out, 1)

    fresh, fresh_opt = build_stage_model(cfg, STAGE, "cpu")
    got, skip, found = resume_after_preemption(fresh, fresh_opt, StageProgress(done=1), cfg.out, 1)
    assert (got.done, skip, found) == (1, 1, True) and got.history == progress.history
    assert "preempted" not in got.extra
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))

    # a restart whose own checkpoint is older (reports lost with the stopped worker) uses it too
    older, older_opt = build_stage_model(cfg, STAGE, "cpu")
    got, skip, found = resume_after_preemption(older, older_opt, StageProgress(done=0), cfg.out, 1)
    assert (got.done, skip, found) == (1, 1, True)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), older.parameters()))

    # a restart that is past that epoch (its checkpoint reported epoch 2) ignores it
    other, other_opt = build_stage_model(cfg, STAGE, "cpu")
    before = _params(other)
    got, skip, found = resume_after_preemption(other, other_opt, StageProgress(done=2), cfg.out, 1)
    assert (got.done, skip, found) == (2, 0, True)
    assert all(torch.equal(before[k], v) for k, v in _params(other).items())
    assert resume_after_preemption(other, other_opt, StageProgress(), str(tmp_path / "none"), 1)[1:] == (
        0,
        False,
    )


# A training loop as in a plain process: the loop is the main thread, SIGTERM goes to our handler.
_MAIN_THREAD = """
import sys, time
from tracklift.training.preemption import PreemptionNotice, Preempted
out = sys.argv[1]
notice = PreemptionNotice(grace_s=30)
print(notice.install(), flush=True)
step = 0
try:
    while True:
        step += 1
        time.sleep(0.01)  # one optimisation step
        notice.check(lambda: (open(out, "w").write(f"saved after step {step}"), out)[1])
except Preempted as e:
    print("preempted:", e, flush=True)
    sys.exit(3)
"""

# A training loop as in a Ray Train worker: the loop runs in a daemon thread, the main thread belongs to the
# framework, whose SIGTERM handler raises SystemExit (what Ray's worker main loop installs).
_WORKER_THREAD = """
import signal, sys, threading, time
from tracklift.training.preemption import PreemptionNotice, Preempted
out = sys.argv[1]

def framework_handler(signum, frame):
    raise SystemExit(1)

signal.signal(signal.SIGTERM, framework_handler)

def train():
    notice = PreemptionNotice(grace_s=30)
    print(notice.install(), flush=True)
    step = 0
    try:
        while True:
            step += 1
            time.sleep(0.01)
            notice.check(lambda: (open(out, "w").write(f"saved after step {step}"), out)[1])
    except Preempted:
        pass

threading.Thread(target=train, daemon=True).start()
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("script, how, code", [(_MAIN_THREAD, "signal", 3), (_WORKER_THREAD, "exit hook", 1)])
def test_sigterm_saves_a_checkpoint_before_the_process_ends(tmp_path, script, how, code):
    out = str(tmp_path / "saved.txt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), out], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == how  # listening; the loop is running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == code
    finally:
        proc.kill()
    with open(out) as f:
        text = f.read()
    assert text.startswith("saved after step ")
    assert int(text.split()[-1]) >= 1


# The Ray Train deadlock: the training thread is parked in a report that waits for the main thread (the
# controller polls through it), and the main thread, told to stop, waits for the training thread's save.
_PARKED_WORKER_THREAD = """
import queue, signal, sys, threading, time
from tracklift.training.preemption import PreemptionNotice, Preempted
out = sys.argv[1]

def framework_handler(signum, frame):
    raise SystemExit(1)

signal.signal(signal.SIGTERM, framework_handler)
reports = queue.Queue(maxsize=1)  # taken by the main thread, which never gets to it

def train():
    notice = PreemptionNotice(grace_s=30)
    notice.install()
    for epoch in range(1, 3):
        notice.check(lambda: (open(out, "w").write("saved at a step"), out)[1])
        with notice.waiting(lambda: (open(out, "w").write(f"saved while reporting epoch {epoch}"), out)[1]):
            if epoch == 2:
                print("parked", flush=True)
            reports.put(epoch)  # the second report waits for the first to be taken: forever

threading.Thread(target=train, daemon=True).start()
while True:
    time.sleep(0.05)
"""


def test_sigterm_saves_while_the_training_thread_waits_in_a_report(tmp_path):
    out = str(tmp_path / "saved.txt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_PARKED_WORKER_THREAD), out],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "parked"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 1
        # saved by the notified thread, not after the 30 s grace ran out
        assert time.monotonic() - started < 25
    finally:
        proc.kill()
    with open(out) as f:
        assert f.read() == "saved while reporting epoch 2"


def test_notice_check_saves_once_and_stops():
    notice = PreemptionNotice()
    saves = []
    notice.check(lambda: saves.append(1) or "x")  # no notice: nothing
    assert saves == [] and not notice.received
    notice.notify(signal.SIGTERM, None)
    with pytest.raises(Preempted, match="after saving x"):
        notice.check(lambda: saves.append(1) or "x")
    assert saves == [1]


def _ray_train_worker_pids() -> list[int]:
    """Processes of Ray Train workers on this machine (Ray titles them ``ray::RayTrainWorker...``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"RayTrainWorker" in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the Ray worker process through /proc")
def test_a_ray_train_worker_told_to_stop_saves_and_the_restart_continues_its_epoch(ray_local, tmp_path):
    import threading

    from tracklift.models import read_checkpoint
    from tracklift.training.distributed import RayTrainOptions, train_stage_ray

    write_shards(str(tmp_path / "labels"), stages=(1,))
    # 4 steps per epoch. A report waits for the controller's poll (every 2 s), so the worker is at most an
    # epoch or two past the first checkpoint when the stop lands: 30 epochs leave it mid-stage, and the
    # stage (30 polls at least) still ends within the join below on a machine loaded several times over
    epochs = 30
    stage = StageConfig(stage=1, epochs=epochs, lr=1e-3, batch_size=1, max_points=150)
    cfg = config(tmp_path)
    result: dict = {}
    run = threading.Thread(
        target=lambda: result.update(
            url=train_stage_ray(cfg, stage, None, RayTrainOptions(num_workers=1, max_failures=1))
        ),
        daemon=True,
    )
    run.start()
    runs = storage.join(cfg.out, "ray_runs", "tracklift-train-stage1")
    deadline = time.time() + 900

    def reported() -> bool:
        return any(n.startswith("checkpoint_") for n in storage.listdir(runs))

    while time.time() < deadline and not reported():
        time.sleep(0.2)
    assert reported(), "no epoch was reported within 15 minutes"  # the worker is inside epoch 2 or later
    (pid,) = _ray_train_worker_pids()
    os.kill(pid, signal.SIGTERM)  # what a pod eviction or a spot reclaim sends
    run.join(timeout=1200)
    assert "url" in result, "the stage did not finish"
    extra = read_checkpoint(result["url"])[0]["extra"]
    resumed = [h for h in extra["history"] if h.get("resumed_after_step")]
    # a stop inside an epoch is resumed after its saved step; one landing on an epoch boundary saves
    # after step 0 of the next epoch, which then runs whole (no record says "resumed"): both are right
    assert len(resumed) <= 1, extra["history"]
    for epoch in resumed:
        # the restarted worker continued the interrupted epoch: it trained only the steps that were left
        assert epoch["steps"] == 4 - epoch["resumed_after_step"]
    assert all(h["steps"] == 4 for h in extra["history"] if h not in resumed)
    assert [h["epoch"] for h in extra["history"]] == list(range(1, epochs + 1))
    assert len(extra["attempt_starts"]) == 2
    assert not storage.exists(preemption_url(cfg.out, 1))  # used, then removed
