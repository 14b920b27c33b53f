"""The HTTP ingress: a FastAPI app in a light deployment in front of the model replicas.

It answers ``/healthz`` itself, checks the route, the method and the bearer token, and reads the request
body under a size limit and a deadline; only then does it hand the bytes to a model replica
(:class:`tracklift.serving.deployment.TrackliftServer`) through a deployment handle. FastAPI serves the
OpenAPI description at ``/openapi.json`` and its browser UI at ``/docs`` (both without a token: they
describe the API, they reach no model); the models are in :mod:`tracklift.serving.schema`. So:

- liveness never waits behind segmentation: the ingress holds no model, reserves no CPU and runs in its own
  process, and a request waiting for a busy model replica waits in the handle's queue, not in a slot the
  probe would need;
- a slow or stalled upload holds an ingress connection for at most ``body_timeout_s``, a trickling one
  (below ``min_body_rate_kib_s``) only a few seconds (then 408), and never a model slot, so trickling
  bodies cannot starve the model;
- overload is answered at once: when ``max_queued_requests`` requests already wait for a model replica,
  the next one gets 503 with the reason and ``Retry-After`` instead of an unbounded wait.

Bodies are read from the raw request, never parsed by FastAPI: the size limit applies while reading and
the codec's bounded decoders answer their own 4xx.
"""

# no `from __future__ import annotations`: FastAPI reads the route signatures Serve rewrites at run time

import asyncio
import hmac
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.security import HTTPBearer
from ray import serve
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tracklift.errors import ConfigError
from tracklift.serving import schema
from tracklift.serving.codec import MAX_QUERY_BYTES, RequestError
from tracklift.serving.config import ServeConfig

log = logging.getLogger("ray.serve")

# route → the one method it answers
ROUTES = {"/healthz": "GET", "/v1/model": "GET", "/v1/segment": "POST", "/v1/query": "POST"}
# answered without a token
PUBLIC = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
# seconds a shed request is told to wait before retrying (Retry-After)
RETRY_AFTER_S = 1


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(obj, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(e: RequestError, headers: dict | None = None) -> Response:
    """``{"error", "source", "status"}`` with the status (and the auth challenge on a 401)."""
    headers = dict(headers or {})
    if e.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tracklift"'
    return json_response({"error": e.problem, "source": e.url, "status": e.status}, e.status, headers or None)


# A body may start slowly (connection set-up, a client still encoding), so the minimum rate is enforced
# only after this many seconds.
RATE_GRACE_S = 5.0


async def read_body(request: Request, limit: int, timeout_s: float, min_rate: float = 0.0) -> bytes:
    """The whole request body, under a size limit, a deadline and a minimum average rate.

    Args:
        request: the HTTP request.
        limit: most bytes accepted.
        timeout_s: the whole body must have arrived this many seconds after reading starts.
        min_rate: bytes per second the upload must average once ``RATE_GRACE_S`` seconds have passed
            (0: no minimum), so a trickling client is cut long before the deadline.

    Raises:
        RequestError: 413 as soon as the body is known to exceed ``limit`` bytes (declared or read), 408
            when it is late or too slow.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError("Content-Length", f"not a number: {declared[:40]!r}") from None
        if size > limit:
            raise RequestError("request body", f"{size} bytes, the limit is {limit} bytes", 413)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    chunks: list[bytes] = []
    total = 0
    stream = request.stream().__aiter__()
    while True:
        # the moment this upload becomes late: the deadline, or when its average falls below min_rate
        late = t0 + timeout_s
        if min_rate > 0:
            late = min(late, t0 + RATE_GRACE_S + total / min_rate)
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(late - loop.time(), 0.0))
        except StopAsyncIteration:
            return b"".join(chunks)
        except (asyncio.TimeoutError, TimeoutError):
            slow = loop.time() - t0 < timeout_s
            why = f"slower than {min_rate:g} bytes/s" if slow else f"not received within {timeout_s:g} s"
            raise RequestError("request body", f"{why} (the server's body deadline)", 408) from None
        total += len(chunk)
        if total > limit:
            raise RequestError("request body", f"more than {limit} bytes (the limit)", 413)
        chunks.append(chunk)


class StripTrailingSlash:
    """ASGI middleware: ``/v1/segment/`` is ``/v1/segment`` (as before FastAPI), not a 307 redirect that
    would make a client upload its body twice."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


api = FastAPI(
    title="tracklift",
    summary="Class-agnostic 3D instance segmentation of point clouds, over HTTP",
    description=(
        "Send a point cloud (binary PLY, NPZ or JSON) to `POST /v1/segment` and get its instances; "
        "`POST /v1/query` ranks a stored scene's instances by a text query (CLIP). Every route but "
        "`/healthz`, `/docs` and `/openapi.json` needs `Authorization: Bearer <token>` when the server has "
        "a token. Every refusal is `{error, source, status}`; overload is a quick 503 with `Retry-After`."
    ),
    version="1",
    docs_url="/docs",
    redoc_url=None,
    openapi_url="/openapi.json",
)
api.add_middleware(StripTrailingSlash)
# documents the bearer scheme in OpenAPI; the check itself is authorize() below (missing and
# wrong tokens get our 401 body, not FastAPI's 403)
bearer = HTTPBearer(auto_error=False, description="the server's token ($TRACKLIFT_SERVE_TOKEN)")
AUTH = [Security(bearer)]


@api.exception_handler(RequestError)
async def _request_error(request: Request, e: RequestError) -> Response:
    return error_response(e)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, e: StarletteHTTPException) -> Response:
    """Unknown routes (404) and wrong methods (405) in our error format, behind the token check as before
    (without a token a client learns nothing about the routes)."""
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    if path not in PUBLIC:
        token = getattr(request.app.state, "token", None)
        try:
            authorize(request, token)
        except RequestError as err:
            return error_response(err)
    if e.status_code == 405:
        allow = ROUTES.get(path, (e.headers or {}).get("Allow", ""))
        return json_response(
            {"error": f"use {allow}", "source": "method", "status": 405}, 405, {"Allow": allow}
        )
    if e.status_code == 404:
        shown = path if len(path) <= 200 else path[:200] + "..."  # never echo a megabyte of URL
        err = RequestError("path", f"no route {shown!r}; routes: {', '.join(ROUTES)}", 404)
        return error_response(err)
    return json_response(
        {"error": str(e.detail), "source": "request", "status": e.status_code}, e.status_code
    )


def authorize(request: Request, token: str | None) -> None:
    """Raise a 401 :class:`RequestError` unless the request carries ``Authorization: Bearer <token>``
    (compared in constant time); no token configured: everything passes."""
    if not token:
        return
    scheme, _, cred = request.headers.get("authorization", "").partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(cred.strip().encode(), token.encode())
    if not ok:
        what = "wrong" if scheme else "missing"
        raise RequestError(
            "Authorization", f"{what} bearer token (send 'Authorization: Bearer <token>')", 401
        )


@serve.deployment(name="ingress", ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class TrackliftIngress:
    """Routes, auth, body limits, load shedding and ``/healthz`` in front of the model deployment.

    Args:
        model: handle of the :class:`~tracklift.serving.deployment.TrackliftServer` deployment.
        config: the :class:`ServeConfig` as a dict.
    """

    def __init__(self, model, config: dict):
        self.cfg = ServeConfig.from_dict(config).validate()
        self.model = model
        self.token = self.cfg.resolved_token()
        api.state.token = self.token  # for the 404 / 405 handler (one ingress per replica process)
        self.started = time.time()

    def reconfigure(self, user_config: dict) -> None:
        """Live tuning (Ray Serve ``user_config``): the ingress uses ``max_request_mb``; a bad value is
        logged and the previous limits stay (the model replicas report it in ``GET /v1/model``)."""
        try:
            self.cfg = self.cfg.retuned(user_config)
        except ConfigError as e:
            log.error("user_config refused by the ingress, keeping the previous limits: %s", e)

    @api.api_route(
        "/healthz",
        methods=["GET", "HEAD"],
        summary="Liveness (no token; answered by the ingress, never waits for the model)",
        response_model=schema.Health,
    )
    async def healthz(self, request: Request) -> Response:
        if request.method == "HEAD":
            return Response(status_code=200, media_type="application/json")
        return json_response({"status": "ok", "uptime_s": round(time.time() - self.started, 1)})

    @api.get(
        "/v1/model",
        summary="The served checkpoint, backend, model config, CLIP config, batching, limits and tuning",
        response_model=schema.ModelInfo,
        responses=schema.errors(401, 503),
        dependencies=AUTH,
    )
    async def model_info(self, request: Request) -> Response:
        authorize(request, self.token)
        return await self._forward(request, "/v1/model", b"", 0.0)

    @api.post(
        "/v1/segment",
        summary="Segment a point cloud (PLY, NPZ or JSON) or a stored scene into instances",
        response_model=schema.SegmentResponse,
        responses={
            200: {"content": schema.NPZ_RESULT, "description": "the instances (JSON, or NPZ on request)"},
            **schema.errors(400, 401, 403, 404, 408, 413, 415, 422, 503),
        },
        openapi_extra={"requestBody": schema.SEGMENT_BODY},
        dependencies=AUTH,
    )
    async def segment(self, request: Request) -> Response:
        authorize(request, self.token)
        t0 = time.perf_counter()
        body = await self._body(request, self.cfg.max_request_bytes)
        return await self._forward(request, "/v1/segment", body, (time.perf_counter() - t0) * 1e3)

    @api.post(
        "/v1/query",
        summary="Rank a segmented scene's instances by a text query (CLIP)",
        response_model=schema.QueryResponse,
        responses=schema.errors(400, 401, 403, 404, 408, 413, 422, 503),
        openapi_extra={"requestBody": schema.QUERY_BODY},
        dependencies=AUTH,
    )
    async def query(self, request: Request) -> Response:
        authorize(request, self.token)
        # a query is a key and a short text: never buffer a cloud-sized body for it
        body = await self._body(request, MAX_QUERY_BYTES)
        return await self._forward(request, "/v1/query", body, 0.0)

    async def _body(self, request: Request, limit: int) -> bytes:
        return await read_body(request, limit, self.cfg.body_timeout_s, self.cfg.min_body_rate_kib_s * 1024)

    async def _forward(self, request: Request, path: str, body: bytes, receive_ms: float) -> Response:
        """Hand an authorized request to a model replica; 503 at once when too many already wait."""
        try:
            status, headers, content, media = await self.model.handle.remote(
                path,
                request.headers.get("content-type"),
                request.headers.get("accept"),
                body,
                receive_ms,
            )
        except BackPressureError:
            cfg = self.cfg
            err = RequestError(
                "server",
                f"overloaded: {cfg.max_queued_requests} requests already wait for a model replica "
                f"(max_queued_requests); retry in {RETRY_AFTER_S} s",
                503,
            )
            return error_response(err, {"Retry-After": str(RETRY_AFTER_S)})
        except Exception:  # a model replica that died mid-request, or a bug: logged, never echoed
            log.exception("request %s %s failed in the ingress", request.method, path)
            return error_response(RequestError(path, "internal error (logged on the server)", 500))
        return Response(content, status_code=status, media_type=media, headers=headers)
