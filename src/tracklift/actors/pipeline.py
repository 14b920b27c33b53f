"""The Ray labeling job: scene URIs → a Ray Data actor pool of :class:`LabelActor` → outputs + run manifest.

::

    list_scenes(cfg.scenes)                        on the driver: URIs only, scans stay in storage
      → ray.data.from_items([{"url": ...}])        one block per scene
      → map_batches(LabelActor, batch_size=1,      each actor builds its models once, streams its scene
            compute=ActorPoolStrategy(...),        from storage and writes its outputs back (atomic keys)
            num_cpus=, num_gpus=)                  named parameters only (no deprecated **ray_remote_args)
      → iter_rows() on the driver                  progress lines as scenes finish
      → <out>/manifest.json                        the same per-scene entries as the one-process job

Faults: a scene that raises is marked failed with its reason by the actor (the job goes on). An actor that
dies mid-scene is restarted by Ray Data (its defaults: actors always come back, their tasks are retried)
and the scene redone (its outputs are overwritten key by key and ``status.json`` comes last, so each scene
is in the output once). A poison scene, one that kills its actor every time, is bounded by the job itself:
a small counter actor numbers every try of every scene, and the try after ``cfg.scene_retries`` redos is
answered by the labeling actor with a failed entry instead of being labelled. Temporary keys left by
killed writers are swept before and after the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

from tracklift import storage
from tracklift.actors.labeler import LabelActor, died_entry
from tracklift.cluster.session import connect, resolve_address
from tracklift.errors import ConfigError
from tracklift.labeling import LabelConfig, OutputLayout, Progress, corpus_urls, write_manifest


def _check_resources(cfg: LabelConfig, address: str | None, log: Callable[[str], None]) -> None:
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if cfg.num_gpus > 0 and gpus == 0:
        if address is None:
            raise ConfigError(
                f"--num-gpus {cfg.num_gpus} but this machine's Ray has no GPU; use --num-gpus 0 on CPU"
            )
        log("[label-ray] the cluster has no GPU yet: the actors wait for the autoscaler to add GPU nodes")
    if cfg.num_gpus > 0 and cfg.device == "cpu":
        log("[label-ray] warning: actors reserve GPUs but --device is cpu: the 2D models run on the CPU")
    if address is not None and storage.protocol_of(cfg.out) == "file":
        log(f"[label-ray] note: output {cfg.out} is a local path: every node must mount the same filesystem")


class SceneAttempts:
    """The job's count of the tries of each scene, kept by a Ray actor that no scene runs in.

    Args:
        handle: the counter actor (:func:`start_attempt_counter`).

    Calling it with a scene URL counts one more try and returns the count (from 1). Picklable: the
    labeling actors get it as a constructor argument.
    """

    def __init__(self, handle):
        self.handle = handle

    def __call__(self, url: str) -> int:
        import ray

        return int(ray.get(self.handle.begin.remote(url)))

    def counts(self) -> dict[str, int]:
        """``{scene URL: tries}`` so far."""
        import ray

        return dict(ray.get(self.handle.counts.remote()))


def start_attempt_counter() -> SceneAttempts:
    """Start the counter actor on the connected Ray (no CPU reserved: it only adds numbers)."""
    import ray

    @ray.remote(num_cpus=0)
    class _Counter:
        def __init__(self):
            self._tries: dict[str, int] = {}

        def begin(self, url: str) -> int:
            self._tries[url] = self._tries.get(url, 0) + 1
            return self._tries[url]

        def counts(self) -> dict[str, int]:
            return self._tries

    return SceneAttempts(_Counter.remote())


def label_corpus_ray(
    cfg: LabelConfig,
    address: str | None = None,
    num_actors: int | None = None,
    log: Callable[[str], None] = print,
    actor_class: type[LabelActor] = LabelActor,
    **init_kwargs,
) -> dict:
    """Label every scene of ``cfg.scenes`` with a pool of Ray actors; same outputs as the one-process job.

    Args:
        cfg: labeling config; its ``num_cpus`` / ``num_gpus`` are per actor, ``scene_retries`` bounds the
            redos of a scene whose actor died, ``storage_retries`` the attempts of a storage step.
        address: Ray cluster address (``auto``, ``host:6379``, ``ray://host:10001``); default
            ``cfg.address``, then ``RAY_ADDRESS``; None starts a local Ray for this call. When this process
            is already connected to Ray, that connection is used.
        num_actors: actor pool size (default ``cfg.num_actors``), capped at the number of scenes.
        log: progress sink (scenes done / total, rate, ETA, failures).
        actor_class: the labeling actor (tests pass a subclass that crashes on chosen scenes).
        **init_kwargs: passed to ``ray.init`` when this call connects (e.g. ``num_cpus=2``).

    Returns:
        The manifest (also at ``<out>/manifest.json``): ``config``, ``run`` (runner, actors, resources,
        seconds, scenes per minute) and ``scenes`` (per scene: status, frames, instances, timings,
        samples, worker, or error and traceback).
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    address = resolve_address(address if address is not None else cfg.address)
    n_actors = num_actors or cfg.num_actors
    cfg = replace(
        cfg, out=storage.absolute(cfg.out), scenes=storage.absolute(cfg.scenes), address=address, runner="ray"
    )
    urls = corpus_urls(cfg)
    swept = storage.remove_temporaries(cfg.out)  # a killed run's leftovers; nothing writes here now
    if swept:
        log(f"[label-ray] removed {len(swept)} temporary file(s) left by an interrupted run")
    if address is None:  # a local Ray for this job: no dashboard to start
        init_kwargs.setdefault("include_dashboard", False)
    started = connect(address, lambda msg: log(f"[label-ray] {msg}"), **init_kwargs)
    ctx = DataContext.get_current()
    saved = (ctx.max_errored_blocks, ctx.enable_progress_bars)
    try:
        _check_resources(cfg, address, log)
        n_actors = max(1, min(n_actors, len(urls)))
        # a scene whose actor dies on every try is one errored block, reported below, not a failed job
        ctx.max_errored_blocks = len(urls)
        ctx.enable_progress_bars = False  # the progress lines below say more
        gpu_args = {"num_gpus": cfg.num_gpus} if cfg.num_gpus > 0 else {}
        items = ray.data.from_items([{"url": u} for u in urls], override_num_blocks=len(urls))
        attempts = start_attempt_counter()
        # Ray Data restarts a dead actor and retries its task without bound; the counter bounds the tries
        ds = items.map_batches(
            actor_class,
            fn_constructor_kwargs={
                "cfg": cfg,
                "storage_options": storage.configured_options(),
                "attempts": attempts,
            },
            # one scene at a time per actor: a free actor takes the next scene, none waits in a queue
            compute=ActorPoolStrategy(min_size=n_actors, max_size=n_actors, max_tasks_in_flight_per_actor=1),
            batch_size=1,
            batch_format="numpy",
            num_cpus=cfg.num_cpus,
            **gpu_args,
        )
        log(
            f"[label-ray] {len(urls)} scenes, {n_actors} actor(s) x {cfg.num_cpus:g} CPU"
            f"{f' + {cfg.num_gpus:g} GPU' if cfg.num_gpus else ''} -> {cfg.out}"
        )
        progress = Progress(len(urls), log, prefix="[label-ray]")
        scenes: dict[str, dict] = {}
        done_urls: set[str] = set()
        for row in ds.iter_rows():
            sid, entry = str(row["scene_id"]), json.loads(row["entry"])
            if sid in scenes and scenes[sid]["url"] != entry["url"]:
                log(f"[label-ray] warning: scene id {sid} at both {scenes[sid]['url']} and {entry['url']}")
            scenes[sid] = entry
            done_urls.add(str(row["url"]))
            progress.update(sid, entry)
        tries = attempts.counts()
        for url in urls:
            if url not in done_urls:  # its block errored in Ray Data without the actor's answer
                sid = storage.basename(url)
                entry = died_entry(url, max(tries.get(url, 0), 1))
                scenes[sid] = entry
                progress.update(sid, entry)
        seconds = time.perf_counter() - progress.t0
        labeled = sum(1 for e in scenes.values() if e["status"] == "complete" and not e.get("skipped_rerun"))
        run = {
            "runner": "ray",
            "address": address or "local",
            "num_actors": n_actors,
            "num_cpus_per_actor": cfg.num_cpus,
            "num_gpus_per_actor": cfg.num_gpus,
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cluster_resources": {k: v for k, v in ray.cluster_resources().items() if "node:" not in k},
            "seconds": seconds,
            "scenes_per_min": labeled / seconds * 60 if seconds > 0 else 0.0,
        }
    finally:
        ctx.max_errored_blocks, ctx.enable_progress_bars = saved
        if started:
            ray.shutdown()
    storage.remove_temporaries(cfg.out)
    manifest = write_manifest(cfg, scenes, run)
    n_ok = sum(1 for e in scenes.values() if e["status"] == "complete")
    log(
        f"[label-ray] {n_ok}/{len(urls)} scenes complete in {seconds:.0f} s "
        f"({run['scenes_per_min']:.2f} scenes/min); manifest: {OutputLayout(cfg.out).manifest}"
    )
    return manifest
