"""The curriculum on Ray Train: each stage is a ``TorchTrainer`` run of the one-process trainer's epochs.

Per stage N (stages chained exactly as in :func:`tracklift.training.train_curriculum`):

1. the driver builds the stage's Ray Dataset (:func:`tracklift.training.ray_shards.stage_dataset`; Parquet
   shards up to ``materialize_mb`` are read once into the object store, larger ones stream every epoch) and
   starts ``TorchTrainer`` with ``num_workers`` workers (DDP: gloo on CPU, NCCL with ``use_gpu``); Ray
   Data keeps the shards' order (``preserve_order``, :func:`~tracklift.training.ray_shards.ingest_config`),
   so every run gives each worker the same samples and a run with the same seed repeats bit for bit;
2. every worker builds the stage model (:func:`~tracklift.training.state.build_stage_model`), then resumes
   from ``ray.train.get_checkpoint()`` after a failure, else from an unfinished ``<out>/stage{N}/last.pt``,
   else initialises from stage N-1's checkpoint (:func:`~tracklift.training.state.init_from`, query-count
   changes allowed);
3. every epoch each worker streams its ``ray.train.get_dataset_shard("train")`` rows in windows of
   ``window_samples`` (:func:`~tracklift.training.ray_shards.stream_windows`) and trains
   :func:`~tracklift.training.epochs.run_epoch` on each window as it arrives (DDP averages gradients, so
   weights stay identical); then all call ``ray.train.report``; rank 0 attaches a checkpoint in tracklift's
   own format (weights, optimizer, history), kept under ``RunConfig(storage_path=...)`` (a local path or
   ``s3://``);
4. a worker failure restarts the worker group from the last reported checkpoint
   (``FailureConfig(max_failures)``), so the partial epoch is redone and the history has each epoch once;
   a worker told to stop (SIGTERM: pod eviction, spot reclaim) first saves ``<out>/stage{N}/preempted.pt``
   at its next step (:mod:`tracklift.training.preemption`), and the restarted group continues that epoch
   from there instead of redoing it;
5. the driver copies the final checkpoint to ``<out>/stage{N}/last.pt`` (what ``tracklift predict`` and
   :meth:`Segmenter.from_checkpoint` load) and stage N+1 starts from it.

Batch size: ``StageConfig.batch_size`` is the *global* batch, split over the workers
(``max(1, batch_size // num_workers)`` each), so both trainers take the same number of optimisation steps
per epoch on the same data.

Windows: a worker holds one window of samples at a time (plus the one Ray Data prefetches), never its
whole epoch. Window ``k`` of worker ``r`` is shuffled and subsampled with the epoch stream of rank
``r + k * num_workers`` (:func:`~tracklift.training.epochs.epoch_rng`): window 0 of rank 0 has the
one-process trainer's stream, so one worker whose epoch fits in one window repeats the one-process trainer
bit for bit, and no two windows or workers share a stream. Reruns with the same ``out`` (and run name) resume Ray's own run state;
a stage whose ``<out>/stage{N}/last.pt`` has all its epochs is skipped, as in the one-process trainer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tracklift import storage
from tracklift.cluster.session import connect, resolve_address
from tracklift.errors import ConfigError, TrackliftError
from tracklift.models import read_checkpoint, save_checkpoint
from tracklift.training.config import StageConfig, TrainConfig, check_epochs, trained_stages
from tracklift.training.data import stage_shards
from tracklift.training.epochs import epoch_record, run_epoch
from tracklift.training.preemption import (
    PreemptionNotice,
    preemption_url,
    resume_after_preemption,
    save_preemption_checkpoint,
)
from tracklift.training.ray_shards import (
    ShardLoader,
    check_enough_rows,
    ingest_config,
    pyarrow_filesystem,
    stage_dataset,
    stream_windows,
    window_size,
)
from tracklift.training.self_training import load_teacher, relabel
from tracklift.training.state import (
    build_stage_model,
    check_stage,
    checkpoint_url,
    initial_progress,
    progress_extra,
    restore_progress,
)

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "segmenter.pt"


@dataclass
class FailOnce:
    """Test hook: a real exception in a real worker, once (a marker file records that it happened).

    Args:
        stage: the stage to fail in.
        step: the stage's optimisation step (from 1, counted across epochs) after which to fail.
        marker: URL written just before failing; when it exists nothing fails.
    """

    stage: int
    step: int
    marker: str


@dataclass
class RayTrainOptions:
    """How the curriculum runs on Ray.

    Args:
        num_workers: training workers (DDP processes).
        use_gpu: one GPU per worker and NCCL (gloo on CPU otherwise).
        address: Ray cluster address; None = ``RAY_ADDRESS`` if set, else a new local Ray.
        storage_path: where Ray Train keeps run state and checkpoints (local path or ``s3://``; must be
            shared storage on a multi-node cluster); None = ``<out>/ray_runs``.
        run_name: Ray Train run name prefix; stage N runs as ``<run_name>-stage<N>``.
        max_failures: worker-group restarts allowed per stage.
        cpus_per_worker: CPUs reserved per worker (sets each worker's torch thread count).
        keep_checkpoints: reported checkpoints Ray keeps per stage.
        materialize_mb: Parquet shards of a stage up to this size (MB) are read into the object store once
            before training instead of being streamed from storage every epoch.
        window_samples: samples a worker holds at once: each epoch streams in windows of this many
            (rounded up to whole batches), each shuffled on its own (see the module doc).
        check_weights: debug: after every epoch gather every parameter and float buffer of every worker
            and record the largest difference (``weight_spread``, ``buffer_spread`` in the history). It
            moves the whole model between workers once per epoch, so it is off by default.
        preemption_grace_s: a worker told to stop (SIGTERM) saves a checkpoint at its next step, waiting
            at most this long (seconds; keep it under the platform's grace period); 0 = no such save.
        preserve_order: Ray Data keeps the shards' row order when reading and splitting them between
            workers, so a run with the same seed repeats (:func:`~tracklift.training.ray_shards.ingest_config`);
            off, blocks go out as read tasks finish and the workers' samples change from run to run.
    """

    num_workers: int = field(default=2, metadata={"help": "training workers (DDP processes)"})
    use_gpu: bool = field(default=False, metadata={"help": "one GPU per worker, NCCL (else gloo, CPU)"})
    address: str | None = field(
        default=None, metadata={"help": "Ray cluster address (auto, host:port); default RAY_ADDRESS"}
    )
    storage_path: str | None = field(
        default=None,
        metadata={
            "help": "Ray Train run storage (path or s3://, shared on a cluster); default <out>/ray_runs"
        },
    )
    run_name: str = field(
        default="tracklift-train",
        metadata={"help": "run name prefix (stage N: <name>-stage<N>; same = resume)"},
    )
    max_failures: int = field(
        default=3, metadata={"help": "worker-group restarts per stage (-1 = unlimited)"}
    )
    cpus_per_worker: float = field(default=1.0, metadata={"help": "CPUs reserved per worker"})
    keep_checkpoints: int = field(default=2, metadata={"help": "reported checkpoints kept per stage"})
    materialize_mb: float = field(
        default=1024.0, metadata={"help": "Parquet shards up to this many MB are read once, not streamed"}
    )
    window_samples: int = field(
        default=256, metadata={"help": "samples a worker holds at once (epochs stream in such windows)"}
    )
    check_weights: bool = field(
        default=False,
        metadata={"help": "debug: gather all parameters every epoch and record the workers' spread"},
    )
    preemption_grace_s: float = field(
        default=20.0,
        metadata={
            "help": "on SIGTERM save a checkpoint at the next step, waiting at most this long (0 = off)"
        },
    )
    preserve_order: bool = field(
        default=True,
        metadata={"help": "keep the shards' row order in Ray Data, so runs repeat (off: read order)"},
    )

    def __post_init__(self):
        if self.num_workers < 1:
            raise ConfigError(f"num_workers must be >= 1, got {self.num_workers}")
        if self.window_samples < 1:
            raise ConfigError(f"window_samples must be >= 1, got {self.window_samples}")
        if self.max_failures < -1:
            raise ConfigError(f"max_failures must be >= -1 (-1 = unlimited), got {self.max_failures}")


def ray_address(address: str | None) -> str:
    """The address to connect to: the given one, else ``RAY_ADDRESS``, else ``"local"`` (a new local Ray,
    never a stale ``/tmp/ray`` cluster)."""
    return resolve_address(address) or "local"


def ensure_ray(address: str | None) -> bool:
    """Connect to Ray unless already connected; True when this call started the connection."""
    return connect(address)


# ---------------------------------------------------------------- worker side


def _gather(values: list[float], device) -> torch.Tensor:
    """(world, len(values)) float64: every worker's ``values``, in rank order."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t[None]
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return torch.stack(out)


def _spread(tensors: list[torch.Tensor]) -> float:
    """Largest absolute difference of the flattened ``tensors`` between this worker and any other."""
    import torch.distributed as dist

    if not tensors or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return 0.0
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    out = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(out, flat)
    return float(max((o - flat).abs().max() for o in out))


def weight_spread(model: torch.nn.Module) -> tuple[float, float]:
    """``(parameters, float buffers)``: the largest difference between workers of each (0 in one process).

    DDP keeps parameters identical (same initial weights, averaged gradients). Batch-norm running
    statistics are buffers: DDP copies rank 0's into every worker before each forward, and each worker
    then updates them with its own batch, so they differ by one step's update; rank 0's are saved.
    """
    return (
        _spread(list(model.parameters())),
        _spread([b for b in model.buffers() if b.is_floating_point()]),
    )


def _teacher(cfg: TrainConfig, init: str | None, device):
    """Stage-3 self-training relabel function for :class:`ShardLoader` (None when off)."""
    teacher = load_teacher(cfg, init, device)
    if teacher is None:
        return None

    def relabel_one(sample):
        (new,), added = relabel(cfg, teacher, [sample])
        return new, added

    return relabel_one


def _fail_hook(fail: FailOnce | None, stage: int, rank: int, world: int, progress):
    if fail is None or fail.stage != stage or rank != world - 1:
        return None

    def on_step(step: int) -> None:
        done = sum(h["steps"] for h in progress.history)
        if done + step == fail.step and not storage.exists(fail.marker):
            storage.write_text(fail.marker, f"stage {stage} step {fail.step} rank {rank}\n")
            raise RuntimeError(f"injected failure at stage {stage} step {fail.step} on rank {rank}")

    return on_step


def train_loop(config: dict[str, Any]) -> None:
    """The per-worker loop of one stage (runs inside a Ray Train worker; see the module doc).

    Args:
        config: ``cfg`` (:class:`TrainConfig`), ``stage_cfg`` (:class:`StageConfig`), ``init`` (previous
            stage checkpoint URL or None), ``resume_url`` (unfinished tracklift checkpoint of this stage or
            None), ``kind`` (shard kind), ``storage_options`` (:func:`tracklift.storage.configured_options`),
            ``use_gpu``, ``fail_once`` (:class:`FailOnce` or None), ``window_samples``, ``check_weights``
            and ``preemption_grace_s`` (:class:`RayTrainOptions`).
    """
    import ray.train
    import ray.train.torch

    for proto, opts in config["storage_options"].items():
        storage.configure(proto, **opts)
    cfg: TrainConfig = config["cfg"]
    stage_cfg: StageConfig = config["stage_cfg"]
    n = stage_cfg.stage
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if config["use_gpu"] else torch.device("cpu")

    model, optimizer = build_stage_model(cfg, stage_cfg, device)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            progress = restore_progress(model, optimizer, os.path.join(d, CHECKPOINT_FILE), n)
        log.info("stage %d rank %d: resuming from Ray checkpoint after epoch %d", n, rank, progress.done)
    elif config["resume_url"] is not None:
        progress = restore_progress(model, optimizer, config["resume_url"], n)
    else:
        progress = initial_progress(model, config["init"], stage_cfg.handoff)
    progress, skip_steps, preempted_file = resume_after_preemption(model, optimizer, progress, cfg.out, n)
    progress.extra["attempt_starts"] = [*progress.extra.get("attempt_starts", []), progress.done]
    progress.extra["world_size"] = world

    ddp = ray.train.torch.prepare_model(model, move_to_device=device) if world > 1 else model
    loader = ShardLoader(config["kind"], _teacher(cfg, progress.init, device) if n == 3 else None)
    shard = ray.train.get_dataset_shard("train")
    per_worker = max(1, stage_cfg.batch_size // world)
    window = window_size(config["window_samples"], per_worker)
    fail_hook = _fail_hook(config["fail_once"], n, rank, world, progress)
    notice = PreemptionNotice(config["preemption_grace_s"]) if config["preemption_grace_s"] > 0 else None
    now = {"epoch": progress.done, "step": skip_steps}  # where the loop is: epoch, steps done in it

    def save_here() -> str:
        return save_preemption_checkpoint(model, optimizer, progress, cfg.out, n, now["epoch"], now["step"])

    def on_step(step: int) -> None:  # step: counted over the epoch
        now["step"] = step
        if fail_hook is not None:
            fail_hook(step)
        if notice is not None:
            notice.check(save_here)

    def parked() -> contextlib.AbstractContextManager:
        """A wait that touches no weights: a preemption notice saves for the loop meanwhile
        (:meth:`PreemptionNotice.waiting`)."""
        return notice.waiting(save_here) if notice is not None else contextlib.nullcontext()

    def windows() -> Iterator[list[dict[str, Any]]]:
        """The epoch's windows, each waited for :func:`parked` (Ray Data may be slow to deliver)."""
        stream = iter(stream_windows(shard, window))
        while True:
            with parked():
                rows = next(stream, None)
            if rows is None:
                return
            yield rows

    if progress.done >= stage_cfg.epochs:  # a finished run restarted: hand its final state back
        _report(model, optimizer, progress, n, rank, {"stage": n, "epoch": progress.done})
        return
    if notice is not None:
        notice.install()
    try:
        for epoch in range(progress.done, stage_cfg.epochs):
            t0 = time.perf_counter()
            now["epoch"], now["step"] = epoch, skip_steps
            done = stream_epoch(
                ddp,
                optimizer,
                windows(),
                loader,
                stage_cfg,
                epoch,
                cfg.log_every,
                rank,
                world,
                per_worker,
                on_step,
                skip_steps,
            )
            per = _gather([done.samples, done.steps, done.loss_sum, done.added], device).cpu()
            total_steps = float(per[:, 1].sum())
            more: dict[str, Any] = {"resumed_after_step": skip_steps} if skip_steps else {}
            if config["check_weights"]:
                spread = weight_spread(model)
                more.update(weight_spread=spread[0], buffer_spread=spread[1])
            record = epoch_record(
                epoch,
                float(per[:, 2].sum()) / max(total_steps, 1.0),
                done.steps,
                int(per[:, 0].sum()),
                time.perf_counter() - t0,
                int(per[:, 3].sum()),
                workers=world,
                samples_per_worker=[int(v) for v in per[:, 0]],
                windows=done.windows,
                data_seconds=done.data_seconds,
                **more,
            )
            progress.history.append(record)
            progress.done = epoch + 1
            if rank == 0:
                log.info(
                    "stage %d epoch %d/%d: mean loss %.4f", n, epoch + 1, stage_cfg.epochs, record["loss"]
                )
            # report may wait for the controller, which a notice blocks: the notice saves the finished epoch
            now["epoch"], now["step"] = progress.done, 0
            with parked():
                _report(
                    model,
                    optimizer,
                    progress,
                    n,
                    rank,
                    {k: v for k, v in record.items() if k != "samples_per_worker"},
                )
            if preempted_file and rank == 0:  # used (or stale): the reported checkpoint is newer now
                storage.remove(preemption_url(cfg.out, n))
            skip_steps, preempted_file = 0, False
    finally:
        if notice is not None:
            notice.uninstall()


@dataclass
class StreamedEpoch:
    """What one worker did in one streamed epoch.

    Args:
        samples: samples trained on.
        steps: optimisation steps.
        loss_sum: sum of the step losses.
        added: stage-3 self-training instances added.
        windows: windows streamed.
        data_seconds: seconds spent waiting for and decoding windows (not training).
    """

    samples: int = 0
    steps: int = 0
    loss_sum: float = 0.0
    added: int = 0
    windows: int = 0
    data_seconds: float = 0.0


def stream_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    windows: Iterable[list[dict[str, Any]]],
    loader: ShardLoader,
    stage_cfg: StageConfig,
    epoch: int,
    log_every: int,
    rank: int,
    world: int,
    batch_size: int,
    on_step: Callable[[int], None] | None = None,
    skip_steps: int = 0,
) -> StreamedEpoch:
    """Train one epoch window by window: each window's rows become samples (:class:`ShardLoader`) and go
    through :func:`~tracklift.training.epochs.run_epoch` with the stream of rank ``rank + k * world`` for
    window ``k`` (see the module doc); ``on_step`` gets the step number counted over the whole epoch.

    ``skip_steps``: steps of this epoch done before a preemption; the first ``skip_steps * batch_size``
    rows of the stream are passed over and the steps are numbered on from there (the returned counts are
    of this call's steps only).
    """
    done = StreamedEpoch()
    skip_rows = skip_steps * batch_size
    t = time.perf_counter()
    for k, rows in enumerate(windows):
        if skip_rows:
            rows, skip_rows = rows[skip_rows:], max(0, skip_rows - len(rows))
            if not rows:
                continue
        samples = loader.samples(rows)
        done.data_seconds += time.perf_counter() - t
        offset = skip_steps + done.steps
        hook = None if on_step is None else (lambda step, offset=offset: on_step(offset + step))
        mean, steps = run_epoch(
            model, optimizer, samples, stage_cfg, epoch, log_every, rank + k * world, batch_size, hook
        )
        done.samples += len(samples)
        done.steps += steps
        done.loss_sum += mean * steps
        done.added += loader.last_added
        done.windows += 1
        t = time.perf_counter()
    return done


def _report(model, optimizer, progress, stage: int, rank: int, metrics: dict) -> None:
    """Every worker reports (a barrier); rank 0 attaches the tracklift-format checkpoint."""
    import ray.train

    metrics = {**metrics, "stage": stage}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="tracklift-ckpt-") as d:
        save_checkpoint(
            model, os.path.join(d, CHECKPOINT_FILE), extra=progress_extra(stage, progress, optimizer)
        )
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


# ---------------------------------------------------------------- driver side


def _stage_resume_url(cfg: TrainConfig, stage_cfg: StageConfig) -> tuple[str | None, bool]:
    """``(unfinished checkpoint of this stage or None, finished?)`` from ``<out>/stage{N}/last.pt``."""
    url = checkpoint_url(cfg.out, stage_cfg.stage)
    if not storage.exists(url):
        return None, False
    extra = read_checkpoint(url)[0].get("extra", {})
    check_stage(url, extra, stage_cfg.stage)
    return url, int(extra.get("epoch", 0)) >= stage_cfg.epochs


def _materialize(labels: str, stage: int, options: RayTrainOptions) -> bool:
    """Whether to read the stage's Parquet shards before training rather than stream them every epoch.

    Yes when they are small (``options.materialize_mb``): one read instead of one per epoch. Yes also when
    the training workers would hold every CPU of the cluster: streaming reads need CPUs beside the
    workers', and Ray Data would wait for them forever (e.g. 2 workers on a 2-CPU machine).
    """
    import ray

    if ray.cluster_resources().get("CPU", 0.0) - options.num_workers * options.cpus_per_worker < 1:
        return True
    size = 0
    for url in stage_shards(labels, stage):
        fs, path = storage.filesystem(url)
        size += fs.size(path) or 0
    return size <= options.materialize_mb * 2**20


def train_stage_ray(
    cfg: TrainConfig,
    stage_cfg: StageConfig,
    init_checkpoint: str | None = None,
    options: RayTrainOptions | None = None,
    fail_once: FailOnce | None = None,
) -> str:
    """Train (or resume, or skip) one curriculum stage with Ray Train.

    Args:
        cfg: the curriculum config (``cfg.device`` is ignored: ``options.use_gpu`` picks the device).
        stage_cfg: this stage.
        init_checkpoint: the previous stage's checkpoint URL (None = fresh initialisation); the workers
            read it, so on a multi-node cluster it must be on shared storage.
        options: workers, cluster, storage, failure handling.
        fail_once: test-only failure injection (:class:`FailOnce`).

    Returns:
        URL of the stage's final checkpoint ``<out>/stage{N}/last.pt`` (tracklift format).

    Raises:
        DataError: missing or bad shards, a checkpoint of another stage.
        ConfigError: fewer usable samples than workers, ``memory://`` URLs, a stage of 0 epochs
            (:func:`train_curriculum_ray` skips such a stage).
        TrackliftError: the Ray Train run failed beyond ``max_failures`` restarts.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    options = options or RayTrainOptions()
    n = stage_cfg.stage
    check_epochs(stage_cfg)
    url = checkpoint_url(cfg.out, n)
    resume_url, finished = _stage_resume_url(cfg, stage_cfg)
    if finished:
        log.info("stage %d: %s already has its %d epochs, skipping", n, url, stage_cfg.epochs)
        return url
    for where in (cfg.labels, cfg.out):
        pyarrow_filesystem(where)  # refuses memory:// before any worker starts
    started = ensure_ray(options.address)
    try:
        ds, kind, rows = stage_dataset(
            cfg.labels,
            n,
            materialize=_materialize(cfg.labels, n, options),
            preserve_order=options.preserve_order,
        )
        check_enough_rows(rows, options.num_workers, n)
        path, fs = pyarrow_filesystem(options.storage_path or storage.join(cfg.out, "ray_runs"))
        name = f"{options.run_name}-stage{n}"
        log.info(
            "stage %d: %d samples (%s shards) on %d workers, run %s", n, rows, kind, options.num_workers, name
        )
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={
                "cfg": cfg,
                "stage_cfg": stage_cfg,
                "init": init_checkpoint,
                "resume_url": resume_url,
                "kind": kind,
                "storage_options": storage.configured_options(),
                "use_gpu": options.use_gpu,
                "fail_once": fail_once,
                "window_samples": options.window_samples,
                "check_weights": options.check_weights,
                "preemption_grace_s": options.preemption_grace_s,
            },
            torch_config=TorchConfig(backend="nccl" if options.use_gpu else "gloo"),
            scaling_config=ScalingConfig(
                num_workers=options.num_workers,
                use_gpu=options.use_gpu,
                resources_per_worker={"CPU": options.cpus_per_worker},
            ),
            run_config=RunConfig(
                name=name,
                storage_path=path,
                storage_filesystem=fs,
                checkpoint_config=CheckpointConfig(num_to_keep=options.keep_checkpoints),
                failure_config=FailureConfig(max_failures=options.max_failures),
            ),
            datasets={"train": ds},
            dataset_config=ingest_config(options.preserve_order),
        )
        t0 = time.perf_counter()
        try:
            result = trainer.fit()
        except Exception as e:  # TrainingFailedError and friends: name the stage and the run
            raise TrackliftError(f"stage {n}: Ray Train run {name!r} failed: {e}") from e
        log.info("stage %d: Ray Train run %s finished in %.1f s", n, name, time.perf_counter() - t0)
        if result.checkpoint is None:
            raise TrackliftError(f"stage {n}: Ray Train run {name!r} reported no checkpoint")
        with result.checkpoint.as_directory() as d:
            with open(os.path.join(d, CHECKPOINT_FILE), "rb") as f:
                storage.write_bytes(url, f.read())
    finally:
        if started:
            import ray

            ray.shutdown()
    read_checkpoint(url)  # the copy must load as a tracklift checkpoint
    return url


def train_curriculum_ray(
    cfg: TrainConfig,
    options: RayTrainOptions | None = None,
    stages: Sequence[StageConfig] | None = None,
    fail_once: FailOnce | None = None,
) -> dict[int, str]:
    """Run the curriculum stages in order on Ray Train, each initialised from the previous one's checkpoint
    (a stage of 0 epochs is skipped, as by :func:`~tracklift.training.trainer.train_curriculum`).

    Args:
        cfg: the curriculum (the same config the one-process :func:`train_curriculum` takes).
        options: workers, cluster, storage, failure handling (default :class:`RayTrainOptions`). With
            ``options.address`` None: ``RAY_ADDRESS`` if set, else a new local Ray (shut down at the end);
            an already connected Ray (``ray.init`` earlier in the process) is used as it is.
        stages: the stages to run (default ``cfg.stages``).
        fail_once: test-only failure injection (:class:`FailOnce`).

    Returns:
        ``{stage: checkpoint URL}`` of the stages trained (``<out>/stage{N}/last.pt``, tracklift format).
    """
    options = options or RayTrainOptions()
    started = ensure_ray(options.address)
    try:
        urls: dict[int, str] = {}
        previous = None
        for stage_cfg in trained_stages(cfg.stages if stages is None else stages):
            previous = train_stage_ray(cfg, stage_cfg, previous, options, fail_once)
            urls[stage_cfg.stage] = previous
        return urls
    finally:
        if started:
            import ray

            ray.shutdown()
