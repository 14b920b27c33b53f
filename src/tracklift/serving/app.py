"""Building and running the Serve application.

- :func:`build_app` is the application builder for Serve's own tooling (``import_path`` + ``args``)::

      serve run tracklift.serving.app:build_app checkpoint=s3://bucket/ckpt.pt max_batch_size=8
      serve build tracklift.serving.app:app -o serve_config.yaml

  ``args`` are :class:`ServeConfig` fields (``clip.model=...`` for nested ones); values may be strings.
  ``serve build`` wants an application object, not a builder: ``app`` is the default-config template it
  reads the deployment options from. In the written YAML, set ``import_path:
  tracklift.serving.app:build_app`` and ``args: {checkpoint: ...}`` (cluster/rayservice.yaml does).
- :func:`serve_forever` is ``tracklift serve``: start Ray and Serve on this machine, deploy, block until
  Ctrl-C, shut down.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

from ray import serve
from ray.serve import Application

from tracklift import config as config_lib
from tracklift.cluster.session import connect
from tracklift.errors import ConfigError
from tracklift.serving.config import ServeConfig

# Measured on loaded 2-core machines: Serve's proxy is killed when its ready check takes longer than
# the default, which it does while replicas load torch.
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"


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
    argv = []
    for key, value in _flatten(dict(args or {})).items():
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


def application(cfg: ServeConfig) -> Application:
    """The bound application of a config: deployment options (resources, concurrency, autoscaling) and
    the config itself as the replicas' constructor argument."""
    from tracklift.serving.deployment import TrackliftServer

    return TrackliftServer.options(**cfg.deployment_options()).bind(cfg.to_dict())


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


def start(cfg: ServeConfig, ray_address: str | None = None, wait_s: float = 0.0):
    """Start Ray (a new local cluster unless ``ray_address`` / ``$RAY_ADDRESS`` names one), Serve's HTTP
    proxy on ``cfg.host:cfg.port``, and the application. Returns the ingress deployment handle."""
    os.environ.setdefault(PROXY_READY_ENV, "60")
    connect(ray_address, include_dashboard=False, logging_level="WARNING")
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    return serve.run(application(cfg.validate()), name=cfg.app_name, route_prefix=cfg.route_prefix)


def serve_forever(cfg: ServeConfig) -> None:
    """``tracklift serve``: deploy and block until interrupted (Ctrl-C), then shut Serve and Ray down."""
    import ray

    from tracklift.models.checkpoint import read_checkpoint

    # A replica that cannot load its checkpoint makes Serve retry and then fail with a traceback;
    # reading it here first turns a wrong URL into one clear message before anything starts.
    read_checkpoint(cfg.checkpoint)
    try:
        # Inside the try: Ctrl-C may come while serve.run still waits for the proxies (HTTP can already
        # answer by then), and must shut down as cleanly as Ctrl-C later.
        start(cfg)
        base = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
        print(f"tracklift serving {cfg.checkpoint} at {base}  (GET {base}/healthz; Ctrl-C stops)", flush=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        if ray.is_initialized():  # serve.shutdown() would start a Ray of its own otherwise
            serve.shutdown()
            ray.shutdown()


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access so importing this module stays free of side effects.
    if name == "app":
        return build_app({})
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
