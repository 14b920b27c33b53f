"""The Ray Serve deployment: HTTP routes, auth, size limits, dynamic batching, the result cache.

Routes (see :mod:`tracklift.serving.codec` for the payloads):
  ``GET  /healthz``      liveness (no token needed, for load balancers and Kubernetes probes)
  ``GET  /v1/model``     checkpoint URL, backend, model config, CLIP config, batching settings
  ``POST /v1/segment``   a cloud (PLY / NPZ / JSON) or ``{"scene_url": ...}`` → instances + ``scene_key``
  ``POST /v1/query``     ``{"scene_key" | "scene_url", "text", "top_k"}`` → instances ranked by CLIP

Every failure is answered with ``{"error", "source", "status"}`` and the replica keeps serving: bad input
is 400, a missing / wrong bearer token 401, a forbidden ``scene_url`` 403, an unknown key or scene 404,
a too-large body or cloud 413, an unsupported media type 415, a query on a cloud without images or a
stored scene that cannot be read 422, no CLIP configured 503, anything unexpected 500 (logged with its
traceback).

Blocking work (decoding, the forward pass, CLIP) runs in worker threads so the replica's event loop keeps
accepting requests while a batch computes: that is what lets the next batch fill.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from tracklift import storage
from tracklift.errors import DataError
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


def _ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1e3


def _json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(obj, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(e: RequestError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="tracklift"'} if e.status == 401 else None
    return _json_response({"error": e.problem, "source": e.url, "status": e.status}, e.status, headers)


@serve.deployment(name="tracklift", max_ongoing_requests=16)
class TrackliftServer:
    """One replica: a loaded segmenter, an optional CLIP encoder and a result cache.

    Args:
        config: a :class:`ServeConfig` as a dict (``ServeConfig.to_dict()``); it travels through
            ``serve build`` YAML and RayService manifests unchanged.
    """

    def __init__(self, config: dict):
        import torch

        self.cfg = ServeConfig.from_dict(config).validate()
        torch.set_num_threads(self.cfg.torch_threads or max(1, int(self.cfg.num_cpus)))
        self.engine = SegmentEngine.from_checkpoint(self.cfg.checkpoint, self.cfg.device, self.cfg.backend)
        self.clip = ClipRetrieval(self.cfg.clip) if self.cfg.clip.enabled else None
        self.cache = ResultCache(self.cfg.cache_size, int(self.cfg.cache_mb * 1024 * 1024))
        self.token = self.cfg.resolved_token()
        self._predict_batch.set_max_batch_size(self.cfg.max_batch_size)
        self._predict_batch.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
        self.started = time.time()
        log.info(
            "tracklift serving %s (batch %d, wait %.3f s, auth %s, clip %s)",
            self.cfg.checkpoint,
            self.cfg.max_batch_size,
            self.cfg.batch_wait_timeout_s,
            "on" if self.token else "off",
            self.cfg.clip.model or "off",
        )

    def check_health(self) -> None:
        """Serve's replica health check: the model must be loaded."""
        if self.engine.model is None:
            raise RuntimeError("model not loaded")

    # ------------------------------------------------------------------------------------------ routing

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = "/" + path.strip("/")
        try:
            if path == "/healthz":
                return self._only(request, "GET") or self._health()
            self._authorize(request)
            if path == "/v1/model":
                return self._only(request, "GET") or _json_response(self._model_info())
            if path == "/v1/segment":
                return self._only(request, "POST") or await self._segment(request)
            if path == "/v1/query":
                return self._only(request, "POST") or await self._query(request)
            raise RequestError(
                "path", f"no route {path!r}; routes: /healthz, /v1/model, /v1/segment, /v1/query", 404
            )
        except RequestError as e:
            return error_response(e)
        except DataError as e:  # server-side data (a stored scene's frames) that cannot be used
            return error_response(RequestError(e.url, e.problem, 422))
        except Exception as e:  # the replica must survive anything a request triggers
            log.exception("request %s %s failed", request.method, path)
            return error_response(RequestError(path, f"internal error ({type(e).__name__}: {e})", 500))

    @staticmethod
    def _only(request: Request, method: str) -> Response | None:
        if request.method != method:
            return _json_response(
                {"error": f"use {method}", "source": "method", "status": 405}, 405, {"Allow": method}
            )
        return None

    def _authorize(self, request: Request) -> None:
        if not self.token:
            return
        scheme, _, cred = request.headers.get("authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(cred.strip().encode(), self.token.encode())
        if not ok:
            what = "wrong" if scheme else "missing"
            raise RequestError(
                "Authorization", f"{what} bearer token (send 'Authorization: Bearer <token>')", 401
            )

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to exceed the limit."""
        limit = self.cfg.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise RequestError("Content-Length", f"not a number: {declared!r}") from None
            if size > limit:
                raise RequestError("request body", f"{size} bytes, the limit is {limit} bytes", 413)
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise RequestError("request body", f"more than {limit} bytes (the limit)", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    # ------------------------------------------------------------------------------------------- routes

    def _health(self) -> Response:
        return _json_response(
            {
                "status": "ok",
                "uptime_s": round(time.time() - self.started, 1),
                "cached_results": len(self.cache),
            }
        )

    def _model_info(self) -> dict:
        cfg = self.cfg
        return {
            **self.engine.info(),
            "clip_config": self.clip.info() if self.clip is not None else None,
            "serving": {
                "max_batch_size": cfg.max_batch_size,
                "batch_wait_timeout_s": cfg.batch_wait_timeout_s,
                "max_ongoing_requests": cfg.max_ongoing_requests,
                "max_points": cfg.max_points,
                "max_request_bytes": cfg.max_request_bytes,
                "cache_size": cfg.cache_size,
                "cache_mb": cfg.cache_mb,
                "auth": bool(self.token),
            },
        }

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def _predict_batch(self, clouds: list[Cloud]) -> list[tuple[float, Prediction | Exception]]:
        """Dynamic batching: Serve collects concurrent calls into ``clouds`` (limits set in ``__init__``)."""
        start = time.perf_counter()
        results = await asyncio.to_thread(self.engine.predict_many, clouds)
        return [(start, r) for r in results]

    def _open_scene(self, url: str):
        """Open a stored scene and check its mesh vertices as a cloud (runs in a worker thread)."""
        from tracklift.datasets.formats import open_scene

        prefixes = self.cfg.scene_prefixes
        if prefixes and not any(url.startswith(p) for p in prefixes):
            raise RequestError("scene_url", f"{url!r} is outside the allowed prefixes {prefixes}", 403)
        if not storage.exists(url):
            raise RequestError("scene_url", f"no scene at {url!r}", 404)
        try:
            scene = open_scene(url)
            points, colors = scene.vertices, scene.colors
        except DataError as e:
            raise RequestError(f"scene_url {e.url}", e.problem, 422) from None
        return scene, check_cloud(points, colors, f"scene_url {url}", self.cfg.max_points)

    async def _run_segmentation(self, cloud: Cloud, key: str, scene, timings: dict) -> Entry:
        self.engine.check_extent(cloud, "cloud")
        submitted = time.perf_counter()
        started, pred = await self._predict_batch(cloud)
        if isinstance(pred, ValueError):
            raise RequestError("cloud", str(pred), 400)
        if isinstance(pred, Exception):
            raise pred
        timings["queue"] = max(0.0, _ms(submitted, started))
        timings.update(pred.timings_ms)
        timings["batch_size"] = pred.batch_size
        entry = Entry(key, pred.instances, scene)
        self.cache.put(entry)
        if self.clip is not None and scene is not None and self.cfg.clip.on_segment:
            t0 = time.perf_counter()
            await asyncio.to_thread(self.clip.ensure_features, entry)
            timings["clip_features"] = _ms(t0, time.perf_counter())
        return entry

    async def _segment_scene(self, url: str, timings: dict) -> Entry:
        t0 = time.perf_counter()
        scene, cloud = await asyncio.to_thread(self._open_scene, url)
        timings["decode"] = _ms(t0, time.perf_counter())
        return await self._run_segmentation(cloud, scene_key(url), scene, timings)

    async def _segment(self, request: Request) -> Response:
        t_start = time.perf_counter()
        body = await self._read_body(request)
        timings: dict[str, float] = {"receive": _ms(t_start, time.perf_counter())}
        t0 = time.perf_counter()
        req = await asyncio.to_thread(
            decode_segment_request, body, request.headers.get("content-type"), self.cfg.max_points
        )
        if isinstance(req, SceneRef):
            entry = await self._segment_scene(req.url, timings)
        else:
            key = await asyncio.to_thread(cloud_key, req)
            timings["decode"] = _ms(t0, time.perf_counter())
            entry = await self._run_segmentation(req, key, None, timings)
        timings["total"] = _ms(t_start, time.perf_counter())
        t_enc = time.perf_counter()
        if wants_npz(request.headers.get("accept")):
            content = await asyncio.to_thread(encode_result_npz, entry.key, entry.instances, timings)
            media = "application/x-npz"
        else:
            content = await asyncio.to_thread(encode_result_json, entry.key, entry.instances, timings)
            media = "application/json"
        header_timings = {**timings, "encode": _ms(t_enc, time.perf_counter())}
        header_timings.pop("batch_size", None)
        headers = {"Server-Timing": server_timing(header_timings), "X-Scene-Key": entry.key}
        return Response(content, media_type=media, headers=headers)

    async def _query(self, request: Request) -> Response:
        t_start = time.perf_counter()
        req = decode_query_request(await self._read_body(request))
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
        return _json_response(
            {
                "scene_key": entry.key,
                "text": req.text,
                "top_k": req.top_k,
                "num_instances": len(entry.instances),
                "instances": ranked,
                "timings_ms": {k: round(float(v), 3) for k, v in timings.items()},
            }
        )
