"""The model deployment: decoding, limits, dynamic batching, the result cache, CLIP retrieval.

It sits behind :class:`tracklift.serving.ingress.TrackliftIngress`, which owns HTTP (routes, auth, body
limits and deadline, ``/healthz``) and calls :meth:`TrackliftServer.handle` with the body's bytes.

Routes (see :mod:`tracklift.serving.codec` for the payloads):
  ``GET  /healthz``      liveness, answered by the ingress (no token needed; ``HEAD`` too)
  ``GET  /v1/model``     checkpoint URL, backend, model config, CLIP config, batching settings
  ``POST /v1/segment``   a cloud (PLY / NPZ / JSON) or ``{"scene_url": ...}`` → instances + ``scene_key``
  ``POST /v1/query``     ``{"scene_key" | "scene_url", "text", "top_k"}`` → instances ranked by CLIP
  ``GET  /openapi.json``, ``GET /docs``: the API's description (the ingress; no token)

Every failure is answered with ``{"error", "source", "status"}`` and the replica keeps serving: bad input
is 400, a missing / wrong bearer token 401, a forbidden ``scene_url`` 403, an unknown key or scene 404, a
body that does not arrive in time 408, a too-large body or cloud 413, an unsupported media type 415, a
query on a cloud without images or a stored scene that cannot be read 422, no CLIP configured or scene
storage unreachable or too many requests already waiting (``max_queued_requests``, answered by the
ingress) 503, anything unexpected 500 (logged with its traceback; no exception text is sent).

Blocking work (decoding, the forward pass, CLIP) runs in worker threads so the replica's event loop keeps
accepting requests while a batch computes: that is what lets the next batch fill.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time

from ray import serve

from tracklift.errors import ConfigError, DataError
from tracklift.models.segmenter import TooManyVoxels
from tracklift.serving.access import check_scene_url
from tracklift.serving.codec import (
    Cloud,
    RequestError,
    SceneRef,
    check_cloud,
    decode_query_request,
    decode_segment_request,
    encode_result_json,
    encode_result_npz,
    server_timing,
    wants_npz,
)
from tracklift.serving.config import ServeConfig
from tracklift.serving.engine import Prediction, SegmentEngine
from tracklift.serving.store import ClipRetrieval, Entry, ResultCache, cloud_key, scene_key

log = logging.getLogger("ray.serve")

JSON = "application/json"
# What :meth:`TrackliftServer.handle` returns: status, headers, body, media type.
Reply = tuple[int, dict[str, str], bytes, str]


def _ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1e3


def _json_reply(obj: object, status: int = 200, headers: dict | None = None) -> Reply:
    return status, dict(headers or {}), json.dumps(obj, separators=(",", ":")).encode("utf-8"), JSON


def _error_reply(e: RequestError) -> Reply:
    return _json_reply({"error": e.problem, "source": e.url, "status": e.status}, e.status)


def _is_storage_outage(e: BaseException) -> bool:
    """A connection-level failure of the scene storage (S3 endpoint down, network error), not bad data."""
    module = type(e).__module__ or ""
    return isinstance(e, (OSError, TimeoutError)) or module.startswith(("botocore", "aiobotocore", "aiohttp"))


@serve.deployment(name="tracklift", max_ongoing_requests=16)
class TrackliftServer:
    """One model replica: a loaded segmenter, an optional CLIP encoder and a result cache.

    Args:
        config: a :class:`ServeConfig` as a dict (``ServeConfig.to_dict()``); it travels through
            ``serve build`` YAML and RayService manifests unchanged.
    """

    def __init__(self, config: dict):
        import torch

        self.cfg = ServeConfig.from_dict(config).validate()
        torch.set_num_threads(self.cfg.torch_threads or max(1, int(self.cfg.num_cpus)))
        self.engine = SegmentEngine.from_checkpoint(
            self.cfg.checkpoint, self.cfg.device, self.cfg.backend, self.cfg.max_batch_points
        )
        # the checkpoint's own thresholds: what a null score_threshold / nms_iou in user_config means
        self._checkpoint_inference = self.engine.model.inference
        self.clip = ClipRetrieval(self.cfg.clip) if self.cfg.clip is not None else None
        self.cache = ResultCache(self.cfg.cache_size, int(self.cfg.cache_mb * 1024 * 1024))
        self.user_config_error: str | None = None
        self._apply_tuning()

    def reconfigure(self, user_config: dict) -> None:
        """Ray Serve's live tuning: the ``TUNABLE`` fields of :class:`ServeConfig` (batch size, batch points,
        batch wait, ``max_points``, thresholds), applied to this running replica without a restart.

        A bad value never takes the replica down: it is logged, reported by ``GET /v1/model`` as
        ``serving.user_config_error``, and the replica keeps its previous settings.
        """
        try:
            cfg = self.cfg.retuned(user_config)
        except ConfigError as e:
            log.error("user_config refused, keeping the previous settings: %s", e)
            self.user_config_error = str(e)
            return
        self.user_config_error = None
        if cfg != self.cfg:  # Serve also calls this right after __init__, with what __init__ applied
            self.cfg = cfg
            self._apply_tuning()

    def _apply_tuning(self) -> None:
        cfg = self.cfg
        self._predict_batch.set_max_batch_size(cfg.max_batch_size)
        self._predict_batch.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
        self.engine.max_batch_points = cfg.max_batch_points
        base = self._checkpoint_inference
        self.engine.model.inference = dataclasses.replace(
            base,
            score_threshold=base.score_threshold if cfg.score_threshold is None else cfg.score_threshold,
            nms_iou=base.nms_iou if cfg.nms_iou is None else cfg.nms_iou,
        )
        log.info(
            "tracklift serving %s (batch %d clouds / %d points, wait %.3f s, max %d points, clip %s)",
            cfg.checkpoint,
            cfg.max_batch_size,
            cfg.max_batch_points,
            cfg.batch_wait_timeout_s,
            cfg.max_points,
            cfg.clip.model if cfg.clip is not None else "off",
        )

    def check_health(self) -> None:
        """Serve's replica health check: the model must be loaded."""
        if self.engine.model is None:
            raise RuntimeError("model not loaded")

    async def handle(
        self, path: str, content_type: str | None, accept: str | None, body: bytes, receive_ms: float = 0.0
    ) -> Reply:
        """One authorized request, routed and read by the ingress.

        Args:
            path: ``/v1/model``, ``/v1/segment`` or ``/v1/query``.
            content_type: the request's ``Content-Type`` header.
            accept: its ``Accept`` header.
            body: the whole body (within the size limit).
            receive_ms: how long the ingress took to receive the body, milliseconds.

        Returns:
            status, headers, body bytes, media type.
        """
        try:
            if path == "/v1/model":
                return _json_reply(self._model_info())
            if path == "/v1/segment":
                return await self._segment(body, content_type, accept, receive_ms)
            if path == "/v1/query":
                return await self._query(body)
            raise RequestError("path", f"no route {path!r}", 404)
        except RequestError as e:
            return _error_reply(e)
        except Exception:  # the replica must survive anything a request triggers; the text stays in the log
            log.exception("request %s failed", path)
            return _error_reply(RequestError(path, "internal error (logged on the server)", 500))

    # ------------------------------------------------------------------------------------------- routes

    def _model_info(self) -> dict:
        cfg = self.cfg
        return {
            **self.engine.info(),
            "clip_config": self.clip.info() if self.clip is not None else None,
            "serving": {
                "max_batch_size": cfg.max_batch_size,
                "max_batch_points": cfg.max_batch_points,
                "batch_wait_timeout_s": cfg.batch_wait_timeout_s,
                "max_ongoing_requests": cfg.max_ongoing_requests,
                "max_queued_requests": cfg.max_queued_requests,
                "max_points": cfg.max_points,
                "max_request_bytes": cfg.max_request_bytes,
                "body_timeout_s": cfg.body_timeout_s,
                "min_body_rate_kib_s": cfg.min_body_rate_kib_s,
                "cache_size": cfg.cache_size,
                "cache_mb": cfg.cache_mb,
                "scene_url": bool(cfg.scene_prefixes),
                "auth": bool(cfg.resolved_token()),
                "score_threshold": self.engine.model.inference.score_threshold,
                "nms_iou": self.engine.model.inference.nms_iou,
                "user_config_error": self.user_config_error,
            },
        }

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def _predict_batch(self, clouds: list[Cloud]) -> list[tuple[float, Prediction | Exception]]:
        """Dynamic batching: Serve collects concurrent calls into ``clouds`` (limits set in ``__init__``;
        the engine splits them further so no forward pass holds more than ``max_batch_points``)."""
        start = time.perf_counter()
        results = await asyncio.to_thread(self.engine.predict_many, clouds)
        return [(start, r) for r in results]

    def _open_scene(self, url: str):
        """Open a stored scene and check its mesh vertices as a cloud (runs in a worker thread).

        Client-facing errors name the scene_url and the kind of problem only: never a directory listing,
        a remote name or file content (those go to the server log).
        """
        from tracklift import storage
        from tracklift.datasets.formats import open_scene

        target = check_scene_url(url, self.cfg.scene_prefixes)
        try:
            if not storage.exists(target):
                raise RequestError("scene_url", "no scene at this scene_url", 404)
            scene = open_scene(target)
            points, colors = scene.vertices, scene.colors
        except RequestError:
            raise
        except DataError as e:
            log.warning("scene_url %s cannot be read: %s", target, e)
            # name the file inside the scene relative to the client's URL, never the resolved server path
            source = "scene_url" + (e.url[len(target) :] if e.url.startswith(target) else "")
            raise RequestError(source, "this scene cannot be read (details in the server log)", 422) from None
        except Exception as e:
            if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
                log.warning("scene_url %s cannot be read: %s: %s", target, type(e).__name__, e)
                raise RequestError(
                    "scene_url", "this scene cannot be read (details in the server log)", 422
                ) from None
            if _is_storage_outage(e):
                log.warning("scene storage unavailable for %s: %s: %s", target, type(e).__name__, e)
                raise RequestError(
                    "scene_url", "scene storage is unavailable; try again later", 503
                ) from None
            raise
        return scene, check_cloud(points, colors, "scene_url", self.cfg.max_points)

    async def _run_segmentation(self, cloud: Cloud, key: str, scene, timings: dict) -> Entry:
        try:
            # the model's own refusals (extent, max_voxels), per request so that one oversized cloud never
            # fails the batch it would have joined
            await asyncio.to_thread(self.engine.check, cloud, "cloud")
        except TooManyVoxels as e:
            raise RequestError("cloud", str(e), 413) from None
        submitted = time.perf_counter()
        started, pred = await self._predict_batch(cloud)
        if isinstance(pred, TooManyVoxels):
            raise RequestError("cloud", str(pred), 413)
        if isinstance(pred, ValueError):
            raise RequestError("cloud", str(pred), 400)
        if isinstance(pred, Exception):
            raise pred
        timings["queue"] = max(0.0, _ms(submitted, started))
        timings.update(pred.timings_ms)
        timings["batch_size"] = pred.batch_size
        entry = Entry(key, pred.instances, scene)
        self.cache.put(entry)
        if self.clip is not None and scene is not None and self.cfg.clip_on_segment:
            t0 = time.perf_counter()
            await asyncio.to_thread(self.clip.ensure_features, entry)
            timings["clip_features"] = _ms(t0, time.perf_counter())
        return entry

    async def _segment_scene(self, url: str, timings: dict) -> Entry:
        t0 = time.perf_counter()
        scene, cloud = await asyncio.to_thread(self._open_scene, url)
        timings["decode"] = _ms(t0, time.perf_counter())
        return await self._run_segmentation(cloud, scene_key(url), scene, timings)

    async def _segment(self, body: bytes, content_type: str | None, accept: str | None, receive_ms: float):
        t_start = time.perf_counter()
        timings: dict[str, float] = {"receive": receive_ms}
        req = await asyncio.to_thread(decode_segment_request, body, content_type, self.cfg.max_points)
        if isinstance(req, SceneRef):
            entry = await self._segment_scene(req.url, timings)
        else:
            key = await asyncio.to_thread(cloud_key, req)
            timings["decode"] = _ms(t_start, time.perf_counter())
            entry = await self._run_segmentation(req, key, None, timings)
        timings["total"] = receive_ms + _ms(t_start, time.perf_counter())
        t_enc = time.perf_counter()
        if wants_npz(accept):
            content = await asyncio.to_thread(encode_result_npz, entry.key, entry.instances, timings)
            media = "application/x-npz"
        else:
            content = await asyncio.to_thread(encode_result_json, entry.key, entry.instances, timings)
            media = JSON
        header_timings = {**timings, "encode": _ms(t_enc, time.perf_counter())}
        header_timings.pop("batch_size", None)
        headers = {"Server-Timing": server_timing(header_timings), "X-Scene-Key": entry.key}
        return 200, headers, content, media

    async def _query(self, body: bytes) -> Reply:
        t_start = time.perf_counter()
        req = decode_query_request(body)
        if req.scene_url is not None:  # the same access rules as segmenting it, before any cache lookup
            check_scene_url(req.scene_url, self.cfg.scene_prefixes)
        timings: dict[str, float] = {}
        entry = None
        if req.scene_key is not None:
            entry = self.cache.get(req.scene_key)
            if entry is None:
                raise RequestError(
                    "scene_key",
                    f"unknown scene_key {req.scene_key!r} (never segmented here, evicted from the "
                    f"{self.cfg.cache_size}-result cache, or held by another replica): query with scene_url",
                    404,
                )
            if entry.scene is None:
                # Answered before the CLIP check: it is a property of the input, not of the server.
                raise RequestError(
                    "scene_key",
                    "this result came from an uploaded point cloud without RGB frames and poses; "
                    "CLIP features need them: segment a stored scene with {'scene_url': ...} to query it",
                    422,
                )
        if self.clip is None:
            raise RequestError(
                "server",
                "no CLIP model configured: start the server with --clip.model (and --clip.checkpoint)",
                503,
            )
        if entry is None:
            entry = self.cache.get(scene_key(req.scene_url)) or await self._segment_scene(
                req.scene_url, timings
            )
        t0 = time.perf_counter()
        ranked = await asyncio.to_thread(self.clip.rank, entry, req.text, req.top_k)
        timings["rank"] = _ms(t0, time.perf_counter())
        timings["total"] = _ms(t_start, time.perf_counter())
        return _json_reply(
            {
                "scene_key": entry.key,
                "text": req.text,
                "top_k": req.top_k,
                "num_instances": len(entry.instances),
                "instances": ranked,
                "timings_ms": {k: round(float(v), 3) for k, v in timings.items()},
            }
        )
