"""The HTTP ingress: a light deployment in front of the model replicas.

It answers ``/healthz`` itself, checks the route, the method and the bearer token, and reads the request
body under a size limit and a deadline; only then does it hand the bytes to a model replica
(:class:`tracklift.serving.deployment.TrackliftServer`) through a deployment handle. So:

- liveness never waits behind segmentation: the ingress holds no model, reserves no CPU and runs in its own
  process, and a request waiting for a busy model replica waits in the handle's queue, not in a slot the
  probe would need;
- a slow or stalled upload holds an ingress connection for at most ``body_timeout_s``, a trickling one
  (below ``min_body_rate_kib_s``) only a few seconds (then 408), and never a model slot, so trickling
  bodies cannot starve the model.
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

from tracklift.serving.codec import MAX_QUERY_BYTES, RequestError
from tracklift.serving.config import ServeConfig

log = logging.getLogger("ray.serve")

# route → the one method it answers
ROUTES = {"/healthz": "GET", "/v1/model": "GET", "/v1/segment": "POST", "/v1/query": "POST"}


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(obj, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(e: RequestError) -> Response:
    """``{"error", "source", "status"}`` with the status (and the auth challenge on a 401)."""
    headers = {"WWW-Authenticate": 'Bearer realm="tracklift"'} if e.status == 401 else None
    return json_response({"error": e.problem, "source": e.url, "status": e.status}, e.status, headers)


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


@serve.deployment(name="ingress", ray_actor_options={"num_cpus": 0})
class TrackliftIngress:
    """Routes, auth, body limits and ``/healthz`` in front of the model deployment.

    Args:
        model: handle of the :class:`~tracklift.serving.deployment.TrackliftServer` deployment.
        config: the :class:`ServeConfig` as a dict.
    """

    def __init__(self, model, config: dict):
        self.cfg = ServeConfig.from_dict(config).validate()
        self.model = model
        self.token = self.cfg.resolved_token()
        self.started = time.time()

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = "/" + path.strip("/")
        try:
            if path == "/healthz":  # liveness: no token, no body, no model
                if request.method not in ("GET", "HEAD"):
                    return self._wrong_method("GET")
                if request.method == "HEAD":
                    return Response(status_code=200, media_type="application/json")
                return json_response({"status": "ok", "uptime_s": round(time.time() - self.started, 1)})
            self._authorize(request)
            if path not in ROUTES:
                raise RequestError("path", f"no route {path!r}; routes: {', '.join(ROUTES)}", 404)
            if request.method != ROUTES[path]:
                return self._wrong_method(ROUTES[path])
            t0 = time.perf_counter()
            body = b""
            if request.method == "POST":
                # a query is a key and a short text: never buffer a cloud-sized body for it
                limit = MAX_QUERY_BYTES if path == "/v1/query" else self.cfg.max_request_bytes
                body = await read_body(
                    request,
                    limit,
                    self.cfg.body_timeout_s,
                    self.cfg.min_body_rate_kib_s * 1024,
                )
            receive_ms = (time.perf_counter() - t0) * 1e3
            status, headers, content, media = await self.model.handle.remote(
                path,
                request.headers.get("content-type"),
                request.headers.get("accept"),
                body,
                receive_ms,
            )
            return Response(content, status_code=status, media_type=media, headers=headers)
        except RequestError as e:
            return error_response(e)
        except Exception:  # a model replica that died mid-request, or a bug: logged, never echoed
            log.exception("request %s %s failed in the ingress", request.method, path)
            return error_response(RequestError(path, "internal error (logged on the server)", 500))

    @staticmethod
    def _wrong_method(method: str) -> Response:
        return json_response(
            {"error": f"use {method}", "source": "method", "status": 405}, 405, {"Allow": method}
        )

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
