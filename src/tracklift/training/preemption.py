"""A checkpoint on preemption notice: a training worker told to stop (SIGTERM) saves its state first.

Kubernetes evicting a pod, a cloud reclaiming a spot node and ``ray stop`` all send SIGTERM and allow a
grace period (Kubernetes: 30 s by default) before SIGKILL. Without a notice a restarted worker group goes
back to the last epoch's checkpoint; with one, the worker saves at its next optimisation step and the
restart continues from there (:mod:`tracklift.training.distributed`).

The notice reaches a training loop in one of two ways, picked by :meth:`PreemptionNotice.install`:

- the loop runs in the main thread (one process, a plain subprocess): a SIGTERM handler records the notice
  and returns; the loop saves at its next step and raises :class:`Preempted`;
- the loop runs in another thread, as in a Ray Train worker: a handler can only be set from the main
  thread, which is Ray's. Ray's own SIGTERM handler (set by its worker main loop) ends the process through
  ``ray._private.worker.raise_sys_exit_with_custom_error_message``, and the core worker then exits without
  running Python's exit hooks; so in a Ray worker that function is wrapped (a private Ray name, checked when
  installing: without it there is no save on SIGTERM, and a warning says so): on SIGTERM the wrapper records
  the notice and waits (at most ``grace_s``) until the training thread has saved, then lets Ray exit.
  Elsewhere (a plain thread whose main thread turns SIGTERM into ``SystemExit``) an exit hook does the same.
  The training thread may be parked where it cannot reach a step: ``ray.train.report`` waits until the
  controller has taken the previous report, and the controller asks through the main thread, which is the
  one now waiting for the save. The loop marks such places with :meth:`PreemptionNotice.waiting` and a
  save of its consistent state there; a notice that finds the training thread parked saves that itself.

The checkpoint (:func:`save_preemption_checkpoint`) is ``<out>/stage{N}/preempted.pt`` in the tracklift
format, with the completed epochs and the steps done in the current one; a restarted worker group loads
it (:func:`resume_after_preemption`) and skips that many batches of its stream in that epoch. Which samples
those batches held is Ray Data's order of the moment, so the resumed epoch is close to the uninterrupted
one, not identical to it (epoch checkpoints are exact).
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from tracklift import storage
from tracklift.errors import TrackliftError
from tracklift.models import read_checkpoint, save_checkpoint
from tracklift.training.state import StageProgress, progress_extra, restore_progress

log = logging.getLogger(__name__)


# what Ray's worker SIGTERM handler calls to end the process (ray/_private/worker.py, Ray 2.60)
_RAY_EXIT = "raise_sys_exit_with_custom_error_message"


def _in_ray_worker() -> bool:
    """Whether this process is a Ray worker (not a driver, not a plain process)."""
    import sys

    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray._private.worker.global_worker.mode == ray.WORKER_MODE


class Preempted(TrackliftError):
    """The training loop stopped after saving, because the process was told to stop."""


class PreemptionNotice:
    """Whether this process has been told to stop, and the save that must happen before it does.

    Args:
        grace_s: how long the exit hook waits for the training thread's save, seconds (keep it below the
            platform's grace period, e.g. Kubernetes' ``terminationGracePeriodSeconds``).
    """

    def __init__(self, grace_s: float = 20.0):
        self.grace_s = grace_s
        self.how: str | None = None
        self._notice = threading.Event()
        self._saved = threading.Event()
        self._previous = None
        # the save to run if the notice finds the training thread parked (see waiting), under this lock
        self._parked_save: Callable[[], str] | None = None
        self._parked = threading.Lock()

    @property
    def received(self) -> bool:
        return self._notice.is_set()

    def notify(self, *_: object) -> None:
        """Record the notice (what the SIGTERM handler does; signal handler arguments ignored)."""
        if not self._notice.is_set():
            log.warning("preemption notice received: saving a checkpoint at the next step")
        self._notice.set()

    def install(self) -> str:
        """Listen for SIGTERM: a signal handler in the main thread, Ray's SIGTERM exit wrapped in a Ray
        worker, else an exit hook (see the module doc).

        Returns: ``"signal"``, ``"ray worker"`` or ``"exit hook"``.
        """
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self.notify)
            self.how = "signal"
        elif _in_ray_worker():
            import ray._private.worker as ray_worker

            original = getattr(ray_worker, _RAY_EXIT, None)
            if original is None:
                log.warning("this Ray has no %s: no checkpoint on SIGTERM", _RAY_EXIT)
                self.how = "none"
                return self.how

            def exit_after_saving(*args, **kwargs):
                if args and "SIGTERM" in str(args[0]):
                    self._on_exit()
                return original(*args, **kwargs)

            setattr(ray_worker, _RAY_EXIT, exit_after_saving)
            self._previous = original
            self.how = "ray worker"
        else:
            atexit.register(self._on_exit)
            self.how = "exit hook"
        return self.how

    def uninstall(self) -> None:
        """Stop listening (the loop ended); what handled SIGTERM before is back."""
        if self.how == "signal":
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
        elif self.how == "ray worker":
            import ray._private.worker as ray_worker

            setattr(ray_worker, _RAY_EXIT, self._previous)
        elif self.how == "exit hook":
            atexit.unregister(self._on_exit)
        self.how = None

    @contextmanager
    def waiting(self, save: Callable[[], str]) -> Iterator[None]:
        """Mark a place where the training thread waits without touching the model (``ray.train.report``):
        a notice arriving meanwhile runs ``save()`` from the notified thread instead of waiting for a step
        that may never come. The training thread cannot leave the place while that save runs."""
        with self._parked:
            self._parked_save = save
        try:
            yield
        finally:
            with self._parked:
                self._parked_save = None

    def _on_exit(self) -> None:
        """Exit hook: the process is ending while the loop runs, so tell it and wait for its save (or save
        for it, if it is parked in :meth:`waiting`)."""
        self.notify()
        deadline = time.monotonic() + self.grace_s
        while not self._saved.wait(0.05):
            with self._parked:
                if self._parked_save is not None and not self._saved.is_set():
                    try:
                        where = self._parked_save()
                        log.warning("preemption: saved %s while the training loop waited", where)
                    finally:
                        self._saved.set()
                    return
            if time.monotonic() > deadline:
                log.error("preemption: no checkpoint saved within %.0f s", self.grace_s)
                return

    def check(self, save: Callable[[], str]) -> None:
        """Call at a step boundary: after a notice, ``save()`` (returns where it saved) and stop.

        Raises:
            Preempted: after saving.
        """
        if not self._notice.is_set():
            return
        if self._saved.is_set():  # saved by the notified thread while this one waited
            raise Preempted("stopped on a preemption notice after the save made while waiting")
        try:
            where = save()
        finally:
            self._saved.set()  # whatever happened, the exit hook need not wait any longer
        raise Preempted(f"stopped on a preemption notice after saving {where}")


# ---------------------------------------------------------------- the stage's preemption checkpoint


def preemption_url(out: str, stage: int) -> str:
    """URL of a stage's preemption checkpoint, beside ``last.pt``."""
    return storage.join(out, f"stage{stage}", "preempted.pt")


def save_preemption_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: StageProgress,
    out: str,
    stage: int,
    epoch: int,
    steps: int,
) -> str:
    """Save the state after ``steps`` optimisation steps of ``epoch`` (0-based); the tracklift checkpoint
    format with ``extra["preempted"] = {"epoch", "steps"}`` beside the completed-epoch progress.

    Returns: its URL.
    """
    url = preemption_url(out, stage)
    extra = progress_extra(stage, progress, optimizer)
    extra["preempted"] = {"epoch": epoch, "steps": steps}
    save_checkpoint(model, url, extra=extra)
    return url


def resume_after_preemption(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: StageProgress,
    out: str,
    stage: int,
) -> tuple[StageProgress, int, bool]:
    """Continue from the stage's preemption checkpoint unless ``progress`` is already past it.

    The preemption checkpoint was saved during the epoch after its ``extra["epoch"]`` completed ones, so
    it is used when that is at least ``progress.done``: the restart's own checkpoint is then the same
    epoch's start or older (Ray Train may not have registered the last reports of a worker that was
    stopped). One from an earlier epoch than ``progress`` is ignored.

    Returns:
        ``(progress, steps of that epoch already done, whether a preemption checkpoint was found)``:
        the weights and optimizer state are loaded into ``model`` / ``optimizer`` when it is used.
    """
    url = preemption_url(out, stage)
    if not storage.exists(url):
        return progress, 0, False
    extra = read_checkpoint(url)[0].get("extra", {})
    mark = extra.get("preempted") or {}
    if extra.get("stage") != stage or int(extra.get("epoch", -1)) < progress.done or "steps" not in mark:
        log.info("stage %d: ignoring %s (saved in another epoch)", stage, url)
        return progress, 0, True
    resumed = restore_progress(model, optimizer, url, stage)
    resumed.extra.pop("preempted", None)
    log.info("stage %d: resuming epoch %d after step %d from %s", stage, resumed.done + 1, mark["steps"], url)
    return resumed, int(mark["steps"]), True
