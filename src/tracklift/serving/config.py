"""Typed configuration of the Ray Serve deployment (``tracklift serve``, ``serve build``, RayService).

One dataclass, loadable from YAML / CLI flags through :mod:`tracklift.config` and passed to the
deployment as a plain dict (so it travels through ``serve build`` configs and RayService manifests).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from tracklift.config import from_dict
from tracklift.errors import ConfigError

TOKEN_ENV = "TRACKLIFT_SERVE_TOKEN"


@dataclass
class ClipOptions:
    """Open-vocabulary retrieval (``POST /v1/query``); disabled while ``model`` is empty.

    Args:
        model: CLIP architecture name given to ``tracklift.openvocab.ClipConfig`` (e.g. ``ViT-B-32``).
        checkpoint: CLIP weights URL; None = whatever the encoder does without weights.
        device: torch device of the encoder.
        model_config: optional open_clip model config JSON URL registered under ``model``.
        frames_per_instance: best views per instance used for its feature.
        frame_step: consider every n-th frame of a scene.
        on_segment: compute instance features when a ``scene_url`` is segmented (else on the first query).
    """

    model: str = field(default="", metadata={"help": "CLIP model name; empty disables /v1/query"})
    checkpoint: str | None = field(default=None, metadata={"help": "CLIP weights URL"})
    device: str = field(default="cpu", metadata={"help": "torch device of the CLIP encoder"})
    model_config: str | None = field(default=None, metadata={"help": "open_clip model config JSON URL"})
    frames_per_instance: int = field(default=5, metadata={"help": "views per instance"})
    frame_step: int = field(default=1, metadata={"help": "use every n-th frame"})
    on_segment: bool = field(
        default=True, metadata={"help": "compute CLIP features when a scene_url is segmented"}
    )

    @property
    def enabled(self) -> bool:
        return bool(self.model)


@dataclass
class ServeConfig:
    """``tracklift serve``: the segmenter behind HTTP on Ray Serve.

    Args:
        checkpoint: segmenter checkpoint URL (file path, ``file://``, ``s3://``, ``memory://``).
        host: HTTP bind address of Serve's proxy.
        port: HTTP port.
        token: bearer token clients must send (None: no auth; also read from ``TRACKLIFT_SERVE_TOKEN``).
        device: torch device of the model.
        backend: sparse backend override (default: the checkpoint's).
        max_batch_size: clouds fused into one forward pass (1 disables batching).
        batch_wait_timeout_s: how long a batch waits to fill, seconds.
        max_ongoing_requests: requests a replica accepts at once (must be >= max_batch_size, or batches
            never fill; Serve's default is 5).
        num_cpus: CPUs reserved per replica.
        num_gpus: GPUs per replica (0 on CPU-only machines; never ask for a GPU that is not there).
        torch_threads: intra-op threads of each replica (0: ``max(1, int(num_cpus))``).
        min_replicas: autoscaling lower bound.
        max_replicas: autoscaling upper bound.
        target_ongoing_requests: autoscaling target of in-flight requests per replica.
        max_request_mb: larger request bodies are refused with 413.
        max_points: clouds with more points are refused with 413.
        cache_size: segmentation results kept for ``/v1/query`` (LRU, per replica).
        cache_mb: the cache also drops old results while their masks exceed this many MiB.
        scene_prefixes: ``scene_url`` must start with one of these (empty: any URL the server can read).
        route_prefix: HTTP route of the application.
        app_name: Serve application name.
        clip: open-vocabulary retrieval options.
    """

    checkpoint: str = field(default="", metadata={"help": "segmenter checkpoint URL"})
    host: str = field(default="127.0.0.1", metadata={"help": "HTTP bind address"})
    port: int = field(default=8000, metadata={"help": "HTTP port"})
    token: str | None = field(
        default=None, metadata={"help": f"bearer token required from clients (or ${TOKEN_ENV})"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device of the model"})
    backend: str | None = field(default=None, metadata={"help": "sparse backend (default: checkpoint's)"})
    max_batch_size: int = field(default=4, metadata={"help": "clouds per forward pass (1 = no batching)"})
    batch_wait_timeout_s: float = field(default=0.05, metadata={"help": "batch fill wait, seconds"})
    max_ongoing_requests: int = field(default=16, metadata={"help": "in-flight requests per replica"})
    num_cpus: float = field(default=1.0, metadata={"help": "CPUs per replica"})
    num_gpus: float = field(default=0.0, metadata={"help": "GPUs per replica"})
    torch_threads: int = field(default=0, metadata={"help": "torch threads per replica (0: num_cpus)"})
    min_replicas: int = field(default=1, metadata={"help": "autoscaling: fewest replicas"})
    max_replicas: int = field(default=1, metadata={"help": "autoscaling: most replicas"})
    target_ongoing_requests: float = field(
        default=4.0, metadata={"help": "autoscaling: in-flight requests per replica"}
    )
    max_request_mb: float = field(default=64.0, metadata={"help": "largest request body, MiB"})
    max_points: int = field(default=1_000_000, metadata={"help": "largest cloud, points"})
    cache_size: int = field(default=16, metadata={"help": "results kept for /v1/query (LRU)"})
    cache_mb: float = field(default=1024.0, metadata={"help": "memory bound of the result cache, MiB"})
    scene_prefixes: list[str] = field(
        default_factory=list, metadata={"help": "allowed scene_url prefixes (empty: any)"}
    )
    route_prefix: str = field(default="/", metadata={"help": "HTTP route prefix"})
    app_name: str = field(default="tracklift", metadata={"help": "Serve application name"})
    clip: ClipOptions = field(default_factory=ClipOptions)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)

    def resolved_token(self) -> str | None:
        """The token to require: the config's, else ``$TRACKLIFT_SERVE_TOKEN``, else None (no auth)."""
        return self.token or os.environ.get(TOKEN_ENV) or None

    def validate(self) -> ServeConfig:
        """Raise :class:`ConfigError` on inconsistent values; returns self."""

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"serve config: {what}")

        need(bool(self.checkpoint), "checkpoint is required (--checkpoint URL)")
        need(self.max_batch_size >= 1, f"max_batch_size must be >= 1, got {self.max_batch_size}")
        need(self.batch_wait_timeout_s >= 0, "batch_wait_timeout_s must be >= 0")
        need(
            self.max_ongoing_requests >= self.max_batch_size,
            f"max_ongoing_requests ({self.max_ongoing_requests}) below max_batch_size "
            f"({self.max_batch_size}): batches could never fill",
        )
        need(1 <= self.min_replicas <= self.max_replicas, "need 1 <= min_replicas <= max_replicas")
        need(self.target_ongoing_requests > 0, "target_ongoing_requests must be > 0")
        need(self.num_cpus >= 0 and self.num_gpus >= 0, "num_cpus and num_gpus must be >= 0")
        need(self.max_request_mb > 0 and self.max_points >= 2, "max_request_mb > 0 and max_points >= 2")
        need(self.cache_size >= 1 and self.cache_mb > 0, "cache_size must be >= 1 and cache_mb > 0")
        need(
            not self.device.startswith("cuda") or self.num_gpus > 0,
            f"device {self.device!r} needs num_gpus > 0 (Ray hides GPUs from replicas that reserve none)",
        )
        need(self.route_prefix.startswith("/"), "route_prefix must start with '/'")
        need(0 < self.port < 65536, f"port out of range: {self.port}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ServeConfig:
        """From a (nested) dict such as :meth:`to_dict` or a ``serve build`` args mapping."""
        return from_dict(cls, dict(values), where="serve config")

    def deployment_options(self) -> dict:
        """Keyword arguments for ``Deployment.options``: resources, concurrency, autoscaling."""
        return {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            },
        }
