"""Building and running the Serve application.

- :func:`build_app` is the application builder for Serve's own tooling (``import_path`` + ``args``)::

      serve run tracklift.serving.app:build_app checkpoint=s3://bucket/ckpt.pt max_batch_size=8
      serve build tracklift.serving.app:app -o serve_config.yaml

  ``args`` are :class:`ServeConfig` fields (``clip.model=...`` for nested ones); values may be strings.
  ``serve build`` wants an application object, not a builder: ``app`` is the default-config template it
  reads the deployment options from. In the written YAML, set ``import_path:
  tracklift.serving.app:build_app`` and ``args: {checkpoint: ...}`` (cluster/rayservice.yaml does).
- :func:`serve_forever` is ``tracklift serve``: start Ray and Serve on this machine, deploy, block until
  SIGINT (Ctrl-C) or SIGTERM, shut down within ``shutdown_timeout_s`` (then exit anyway).

An application is two deployments: the light HTTP ingress (:mod:`tracklift.serving.ingress`: routes,
auth, body limits, ``/healthz``) and the model replicas (:mod:`tracklift.serving.deployment`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from tracklift import config as config_lib
from tracklift.cluster.session import connect
from tracklift.errors import ConfigError
from tracklift.serving.config import ServeConfig, proxy_ready_env


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def config_from_args(args: dict[str, Any] | None) -> ServeConfig:
    """A :class:`ServeConfig` from builder args: nested dicts or dotted keys, typed values or strings
    (``serve run ... max_batch_size=8`` passes strings); typed through the same flags as the CLI."""
    parser = argparse.ArgumentParser(
        prog="tracklift.serving.app:build_app", add_help=False, exit_on_error=False, allow_abbrev=False
    )
    config_lib.add_arguments(parser, ServeConfig)
    values = dict(args or {})
    if values.get("clip", {}) is None:  # "clip: null" = the default, no CLIP
        del values["clip"]
    argv = []
    for key, value in _flatten(values).items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif value is None:
            value = "none"
        argv += ["--" + key.replace("_", "-"), str(value)]
    try:
        ns, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise ConfigError(f"serve args: {e}") from None
    if unknown:
        fields = sorted(f.name for f in dataclasses.fields(ServeConfig))
        raise ConfigError(f"serve args: unknown {' '.join(unknown[::2])}; fields: {', '.join(fields)}")
    return config_lib.from_args(ServeConfig, ns)


def deployment_version(cfg: ServeConfig) -> str:
    """The version both deployments are deployed under: a hash of everything that needs a replica restart
    (the non-tunable config fields and the serving code). Deploying again with only ``TUNABLE`` fields
    changed keeps the version, so Serve calls each replica's ``reconfigure`` with the new ``user_config``
    instead of replacing it. (``serve run``/``serve deploy`` configs and RayService get the same in-place
    update from Serve's own code versions.)"""
    import tracklift

    digest = hashlib.sha256(json.dumps(cfg.static_dict(), sort_keys=True, default=str).encode())
    digest.update(getattr(tracklift, "__version__", "").encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def application(cfg: ServeConfig) -> Application:
    """The bound application of a config: the ingress in front of the model deployment, each with its
    options (resources, concurrency, load shedding, autoscaling), the ``TUNABLE`` fields as Serve
    ``user_config`` and the config as its constructor argument.

    Raises:
        ConfigError: for inconsistent values (nothing is deployed).
    """
    from tracklift.serving.deployment import TrackliftServer
    from tracklift.serving.ingress import TrackliftIngress

    # a template without a checkpoint (serve build) is checked otherwise complete
    dataclasses.replace(cfg, checkpoint=cfg.checkpoint or "unset").validate()
    values = cfg.to_dict()
    # Serve removed the public `version` option; `_internal` is how its own builders pass one.
    pinned = {"version": deployment_version(cfg), "_internal": True}
    model = TrackliftServer.options(**cfg.deployment_options(), **pinned).bind(values)
    return TrackliftIngress.options(**cfg.ingress_options(), **pinned).bind(model, values)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Application builder for ``serve build`` / ``serve run`` / RayService (``import_path`` + ``args``).

    ``serve build`` calls it without args to write a config template: the checkpoint may then be empty
    (replicas refuse to start until ``args.checkpoint`` is set); every other value is checked here.
    """
    cfg = config_from_args(args)
    if cfg.checkpoint:
        cfg.validate()
    else:
        dataclasses.replace(cfg, checkpoint="unset").validate()
    return application(cfg)


def start(
    cfg: ServeConfig,
    ray_address: str | None = None,
    wait_s: float = 0.0,
    after_init: Callable[[], None] | None = None,
):
    """Start Ray (a new local cluster unless ``ray_address`` / ``$RAY_ADDRESS`` names one), Serve's HTTP
    proxy on ``cfg.host:cfg.port``, and the application. Returns the ingress deployment handle.
    ``after_init`` is called once Ray is up, before Serve starts (``tracklift serve`` takes its signals
    back there: ``ray.init`` installs a SIGTERM handler that aborts the process)."""
    cfg.validate()  # before anything starts
    os.environ.update(proxy_ready_env())
    connect(ray_address, include_dashboard=False, logging_level="WARNING")
    if after_init is not None:
        after_init()
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    return serve.run(application(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix)


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM both raise KeyboardInterrupt once, so that both shut Serve and Ray down (Ray's
    own SIGTERM handler dumps a stack and aborts); a second signal exits at once."""

    def handler(signum, frame):
        signal.signal(signal.SIGINT, lambda *_: os._exit(128 + signal.SIGINT))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _shutdown(timeout_s: float) -> bool:
    """Shut Serve and Ray down in a helper thread; True when done within ``timeout_s`` seconds."""
    import ray

    def stop() -> None:
        if ray.is_initialized():  # serve.shutdown() would start a Ray of its own otherwise
            try:
                serve.shutdown()
            finally:
                ray.shutdown()

    worker = threading.Thread(target=stop, name="tracklift-shutdown", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return not worker.is_alive()


def _kill_local_ray() -> None:
    """Last resort after a stuck shutdown: end the Ray processes this command started (best effort)."""
    try:
        from ray._private import worker as ray_worker

        node = getattr(ray_worker, "_global_node", None)
        if node is not None and node.head:
            node.kill_all_processes(check_alive=False, allow_graceful=False)
    except Exception as e:  # private API: never let the fallback itself block the exit
        print(f"could not end Ray's processes: {type(e).__name__}: {e}", flush=True)


def serve_forever(cfg: ServeConfig) -> None:
    """``tracklift serve``: deploy and block until SIGINT (Ctrl-C) or SIGTERM, then shut Serve and Ray down;
    a shutdown that takes longer than ``cfg.shutdown_timeout_s`` is abandoned and the process exits anyway."""
    from tracklift.models.checkpoint import read_checkpoint

    # A replica that cannot load its checkpoint makes Serve retry and then fail with a traceback;
    # reading it here first turns a wrong URL into one clear message before anything starts.
    read_checkpoint(cfg.checkpoint)
    _stop_on_signals()
    try:
        # Inside the try: a signal may come while serve.run still waits for the proxies (HTTP can already
        # answer by then), and must shut down as cleanly as one later.
        start(cfg, after_init=_stop_on_signals)  # again once Ray is up: ray.init replaces SIGTERM's handler
        base = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
        print(f"tracklift serving {cfg.checkpoint} at {base}  (GET {base}/healthz; Ctrl-C stops)", flush=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        if not _shutdown(cfg.shutdown_timeout_s):
            print(f"shutdown did not finish within {cfg.shutdown_timeout_s:g} s; exiting anyway", flush=True)
            _kill_local_ray()
            os._exit(0)


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access so importing this module stays free of side effects.
    if name == "app":
        return build_app({})
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
