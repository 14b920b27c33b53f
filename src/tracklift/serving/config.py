"""Typed configuration of the Ray Serve deployment (``tracklift serve``, ``serve build``, RayService).

One dataclass, loadable from YAML / CLI flags through :mod:`tracklift.config` and passed to the
deployment as a plain dict (so it travels through ``serve build`` configs and RayService manifests).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from tracklift.config import from_dict
from tracklift.errors import ConfigError
from tracklift.openvocab.config import ClipConfig

# Measured on loaded 2-core machines: Serve's proxy is killed when its ready check takes longer than
# the default 5 s, which it does while replicas load torch. Serve's controller reads it when it starts,
# so it must be in the environment of the processes Ray starts (tracklift sets 60 s unless it is set).
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"


def proxy_ready_env() -> dict[str, str]:
    """The proxy readiness timeout to start Ray with: the environment's own, else 60 s."""
    return {PROXY_READY_ENV: os.environ.get(PROXY_READY_ENV, "60")}


TOKEN_ENV = "TRACKLIFT_SERVE_TOKEN"
# Host memory of a forward pass per point of the batch, bytes: one 1M-point cloud took a CPU replica from
# 1.3 to 6.8 GB (issue 10). With the replica's idle size, the budget that max_batch_points bounds.
BYTES_PER_POINT = 5_500
REPLICA_BASE_BYTES = 1_300_000_000

# The fields a running application takes through Ray Serve's ``user_config`` (each replica's
# ``reconfigure``): changing only these never restarts a replica. Each maps to the type it must have.
TUNABLE: dict[str, type] = {
    "max_batch_size": int,
    "max_batch_points": int,
    "batch_wait_timeout_s": float,
    "max_points": int,
    "max_request_mb": float,
    "score_threshold": float,
    "nms_iou": float,
}
# of those, the ones that may be null (None: the checkpoint's own value)
NULLABLE = {"score_threshold", "nms_iou"}


@dataclass
class ServeConfig:
    """``tracklift serve``: the segmenter behind HTTP on Ray Serve.

    Args:
        checkpoint: segmenter checkpoint URL (file path, ``file://``, ``s3://``, ``memory://``).
        host: HTTP bind address of Serve's proxy.
        port: HTTP port.
        token: bearer token clients must send (None: no auth). Prefer ``$TRACKLIFT_SERVE_TOKEN``: a
            ``--token`` flag is visible to every local user in ``ps``.
        device: torch device of the model.
        backend: sparse backend override (default: the checkpoint's).
        max_batch_size: clouds fused into one forward pass (1 disables batching).
        max_batch_points: points fused into one forward pass: a batch over it runs as several passes, a
            single larger cloud alone. A replica's peak memory grows with the points of one pass (about
            5.5 KB per point measured for one 1M-point cloud on CPU), so this, with ``max_points``, bounds it.
        batch_wait_timeout_s: how long a batch waits to fill, seconds.
        max_ongoing_requests: requests a model replica works on at once (must be >= max_batch_size, or
            batches never fill; Serve's default is 5). Requests beyond it wait in the ingress.
        max_queued_requests: load shedding: requests that may wait for a busy model replica (beyond
            ``max_ongoing_requests`` per replica). One more is answered 503 at once, with the reason and a
            ``Retry-After`` header, instead of queueing without bound (-1: no bound, Serve's default).
            Serve's proxy, in front of the ingress, queues at most ``max(max_queued_requests,
            max_open_requests)`` (its own plain-text 503 beyond).
        max_open_requests: requests the HTTP ingress holds at once (receiving bodies, waiting for a model
            replica); ``/healthz`` is answered by the ingress and never waits for the model. The ingress
            holds at most ``max_open_requests * max_request_mb`` MiB of bodies.
        body_timeout_s: a request body must have fully arrived this many seconds after the request
            started, else 408 (a slow or stalled upload never holds a model slot).
        min_body_rate_kib_s: after its first 5 s, an upload averaging less than this many KiB/s is cut
            with 408 (0: no minimum), so trickling connections do not hold the ingress until the deadline.
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
        scene_prefixes: ``scene_url`` must lie under one of these absolute paths / ``file://`` / ``s3://``
            prefixes (whole path segments, local paths resolved); empty (the default): ``scene_url`` is
            refused. See SECURITY.md.
        shutdown_timeout_s: ``tracklift serve`` exits this many seconds after SIGINT / SIGTERM even when
            Serve and Ray have not finished shutting down.
        route_prefix: HTTP route of the application.
        app_name: Serve application name.
        clip: open-vocabulary retrieval (``POST /v1/query``); None (the default) disables it, any
            ``--clip.*`` flag enables it.
        clip_on_segment: compute CLIP features when a ``scene_url`` is segmented (else on the first query).
        score_threshold: instances scoring below this are dropped (None: the checkpoint's
            ``inference.score_threshold``).
        nms_iou: of two instances overlapping above this IoU the lower-scoring one is dropped (None: the
            checkpoint's ``inference.nms_iou``; 1.0 keeps duplicates).

    The fields in ``TUNABLE`` (batch size, batch points, batch wait, max_points, max_request_mb and the two
    thresholds) travel as Ray Serve ``user_config`` too: deploying the same application with only those
    changed reconfigures the running replicas in place (no restart, no lost cache).
    """

    checkpoint: str = field(default="", metadata={"help": "segmenter checkpoint URL"})
    host: str = field(default="127.0.0.1", metadata={"help": "HTTP bind address"})
    port: int = field(default=8000, metadata={"help": "HTTP port"})
    token: str | None = field(
        default=None,
        metadata={
            "help": f"bearer token required from clients; prefer setting ${TOKEN_ENV} (a flag is visible "
            "to every local user in ps)"
        },
    )
    device: str = field(default="cpu", metadata={"help": "torch device of the model"})
    backend: str | None = field(default=None, metadata={"help": "sparse backend (default: checkpoint's)"})
    max_batch_size: int = field(default=4, metadata={"help": "clouds per forward pass (1 = no batching)"})
    max_batch_points: int = field(
        default=1_000_000, metadata={"help": "points per forward pass (bounds a replica's memory)"}
    )
    batch_wait_timeout_s: float = field(default=0.05, metadata={"help": "batch fill wait, seconds"})
    max_ongoing_requests: int = field(default=16, metadata={"help": "in-flight requests per model replica"})
    max_open_requests: int = field(
        default=64, metadata={"help": "requests the HTTP ingress holds at once (uploads, waiting)"}
    )
    max_queued_requests: int = field(
        default=32,
        metadata={
            "help": "requests waiting for a busy replica before new ones get 503 at once (-1: no bound)"
        },
    )
    body_timeout_s: float = field(default=60.0, metadata={"help": "deadline for a request body, seconds"})
    min_body_rate_kib_s: float = field(
        default=16.0, metadata={"help": "slowest accepted upload after its first 5 s, KiB/s (0: any)"}
    )
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
        default_factory=list, metadata={"help": "allowed scene_url prefixes (empty: scene_url refused)"}
    )
    shutdown_timeout_s: float = field(
        default=30.0, metadata={"help": "exit this long after SIGINT/SIGTERM even if shutdown hangs, s"}
    )
    route_prefix: str = field(default="/", metadata={"help": "HTTP route prefix"})
    app_name: str = field(default="tracklift", metadata={"help": "Serve application name"})
    clip: ClipConfig | None = field(default=None, metadata={"help": "CLIP retrieval (off unless set)"})
    clip_on_segment: bool = field(
        default=True, metadata={"help": "compute CLIP features when a scene_url is segmented"}
    )
    score_threshold: float | None = field(
        default=None, metadata={"help": "drop instances scoring below this (default: the checkpoint's)"}
    )
    nms_iou: float | None = field(
        default=None, metadata={"help": "duplicate-removal IoU, 1.0 keeps all (default: the checkpoint's)"}
    )

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
        # a port Serve's proxy cannot bind is not an error there: the controller restarts the proxy forever
        need(0 <= self.port <= 65535, f"port must be in 0..65535, got {self.port}")
        need(self.max_batch_size >= 1, f"max_batch_size must be >= 1, got {self.max_batch_size}")
        need(self.max_batch_points >= 2, f"max_batch_points must be >= 2, got {self.max_batch_points}")
        need(self.max_open_requests >= 1, "max_open_requests must be >= 1")
        need(
            self.max_queued_requests == -1 or self.max_queued_requests >= 1,
            f"max_queued_requests must be -1 (no bound) or >= 1, got {self.max_queued_requests}",
        )
        for name in ("score_threshold", "nms_iou"):
            value = getattr(self, name)
            need(value is None or 0.0 <= value <= 1.0, f"{name} must be in [0, 1] or null, got {value}")
        need(self.body_timeout_s > 0 and self.shutdown_timeout_s > 0, "timeouts must be > 0")
        need(self.min_body_rate_kib_s >= 0, "min_body_rate_kib_s must be >= 0")
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
        from tracklift.serving.access import check_prefixes

        problems = check_prefixes(self.scene_prefixes)
        need(not problems, "scene_prefixes: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # a nested ClipConfig becomes a dict; from_dict rebuilds it

    def user_config(self) -> dict[str, Any]:
        """The ``TUNABLE`` fields: the deployments' Ray Serve ``user_config``."""
        return {name: getattr(self, name) for name in TUNABLE}

    def static_dict(self) -> dict:
        """:meth:`to_dict` without the ``TUNABLE`` fields: what a change needs a replica restart for."""
        return {k: v for k, v in self.to_dict().items() if k not in TUNABLE}

    def retuned(self, values: Any) -> ServeConfig:
        """This config with a ``user_config`` applied, validated as a whole.

        Args:
            values: a mapping of ``TUNABLE`` names to values (a subset is fine: the rest stay).

        Raises:
            ConfigError: naming an unknown key, a value of the wrong type (booleans are not numbers, NaN and
                infinities are refused) or an inconsistent result (e.g. ``max_batch_size`` above
                ``max_ongoing_requests``).
        """
        if not isinstance(values, dict):
            raise ConfigError(
                f"user_config must be a mapping of {', '.join(TUNABLE)}, got {type(values).__name__}"
            )
        unknown = sorted(str(k) for k in values if k not in TUNABLE)
        if unknown:
            raise ConfigError(
                f"user_config: unknown key(s) {', '.join(unknown)}; tunable: {', '.join(TUNABLE)}"
            )
        typed = {}
        for name, value in values.items():
            want = TUNABLE[name]
            if value is None and name in NULLABLE:
                typed[name] = None
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if want is int:
                ok = ok and float(value).is_integer()
            if not ok or not math.isfinite(value):
                raise ConfigError(f"user_config: {name} must be a finite {want.__name__}, got {value!r}")
            typed[name] = want(value)
        return dataclasses.replace(self, **typed).validate()

    @classmethod
    def from_dict(cls, values: dict) -> ServeConfig:
        """From a (nested) dict such as :meth:`to_dict` or a ``serve build`` args mapping."""
        return from_dict(cls, dict(values), where="serve config")

    def replica_memory_bytes(self) -> int:
        """Upper estimate of one model replica's peak host memory under these limits, bytes: its idle
        size, the largest forward pass (``max(max_batch_points, max_points)`` points), the request bodies
        it may hold (``max_ongoing_requests * max_request_mb``) and the result cache (``cache_mb``).
        CLIP, when configured, comes on top. Used to size the manifests' memory limits."""
        points = max(self.max_batch_points, self.max_points)
        bodies = self.max_ongoing_requests * self.max_request_bytes
        return int(REPLICA_BASE_BYTES + points * BYTES_PER_POINT + bodies + self.cache_mb * 1024 * 1024)

    def ingress_options(self) -> dict:
        """Keyword arguments for the ingress's ``Deployment.options``: no CPU reserved (it only moves
        bytes), one replica, ``max_open_requests`` at once."""
        return {
            "ray_actor_options": {"num_cpus": 0},
            "num_replicas": 1,
            "max_ongoing_requests": self.max_open_requests,
            # Serve's proxy counts a request as queued until it is assigned, which for a burst of
            # simultaneous arrivals takes a moment even while the ingress has free slots: a small bound
            # here would shed requests the ingress could take. Shedding proper happens in front of the
            # model (deployment_options); this only keeps the proxy's own queue finite.
            "max_queued_requests": (
                -1
                if self.max_queued_requests == -1
                else max(self.max_queued_requests, self.max_open_requests)
            ),
            "user_config": self.user_config(),
        }

    def deployment_options(self) -> dict:
        """Keyword arguments for the model's ``Deployment.options``: resources, concurrency, autoscaling."""
        return {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "user_config": self.user_config(),
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            },
        }
