"""A small Python client of the serving API (needs neither Ray nor torch).

    from tracklift.serving.client import Client
    c = Client("http://127.0.0.1:8000", token="...")
    c.health()                                   # {"status": "ok", ...}
    res = c.segment(points, colors)              # SegmentResult: .instances, .instance_ids, .scene_key
    res = c.segment_scene("s3://bucket/scans/scene0000_00")
    hits = c.query("a chair", scene_key=res.scene_key, top_k=3)

Uses ``requests`` (one keep-alive session) when it is installed, else ``urllib``. A non-2xx answer
raises :class:`ServeError` with the server's status and reason.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from tracklift.errors import TrackliftError
from tracklift.serving.codec import JSON_TYPE, NPZ_TYPES, SegmentResult, decode_result, encode_cloud

try:  # optional: connection reuse matters for the benchmark's many small requests
    import requests
except ImportError:  # pragma: no cover - requests ships with most environments
    requests = None


class ServeError(TrackliftError):
    """The server refused or failed a request.

    Args:
        status: HTTP status code.
        reason: the server's ``error`` text (or the raw body).
        source: what the server said was wrong (``request body (PLY)``, ``Authorization``, ...).
    """

    def __init__(self, status: int, reason: str, source: str = ""):
        self.status, self.reason, self.source = int(status), reason, source
        super().__init__(f"HTTP {status}: {source + ': ' if source else ''}{reason}")


class Client:
    """Talks to a tracklift server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000`` (plus the route prefix, if any).
        token: bearer token, when the server requires one.
        timeout_s: per-request timeout, seconds.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 300.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._session = requests.Session() if requests is not None else None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ transport

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange, without raising on error statuses: ``(status, headers, body)``."""
        hdrs = dict(headers or {})
        if self.token:
            hdrs.setdefault("Authorization", f"Bearer {self.token}")
        url = self.base_url + path
        if self._session is not None:
            r = self._session.request(method, url, data=body, headers=hdrs, timeout=self.timeout_s)
            return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content
        req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def _call(self, method: str, path: str, body: bytes | None = None, headers=None) -> tuple[dict, bytes]:
        status, hdrs, content = self.request(method, path, body, headers)
        if not 200 <= status < 300:
            try:
                err = json.loads(content.decode("utf-8"))
                raise ServeError(status, str(err.get("error")), str(err.get("source", "")))
            except (ValueError, AttributeError):
                raise ServeError(status, content[:500].decode("utf-8", "replace")) from None
        return hdrs, content

    def _json(self, method: str, path: str, obj: Any | None = None) -> dict:
        body = None if obj is None else json.dumps(obj).encode("utf-8")
        headers = {"Content-Type": JSON_TYPE} if body is not None else {}
        _, content = self._call(method, path, body, headers)
        return json.loads(content.decode("utf-8"))

    # --------------------------------------------------------------------------------------------- API

    def health(self) -> dict:
        """``GET /healthz``."""
        return self._json("GET", "/healthz")

    def model(self) -> dict:
        """``GET /v1/model``: checkpoint, backend, model and CLIP configs, serving limits."""
        return self._json("GET", "/v1/model")

    def segment(
        self, points: np.ndarray, colors: np.ndarray | None = None, fmt: str = "npz", accept: str = "npz"
    ) -> SegmentResult:
        """Segment a point cloud.

        Args:
            points: (N, 3) float coordinates, metres.
            colors: optional (N, 3) uint8 RGB or floats in [0, 1] (``fmt="ply"`` sends them as uint8).
            fmt: request encoding: ``npz`` (exact), ``ply`` (float32, uint8 colours) or ``json``.
            accept: response encoding: ``npz`` or ``json``.

        Returns:
            :class:`~tracklift.serving.codec.SegmentResult` (instances as ``Segmenter.predict`` returns them).
        """
        body, ctype = encode_cloud(points, colors, fmt)
        return self._segment_body(body, ctype, accept)

    def segment_scene(self, scene_url: str, accept: str = "npz") -> SegmentResult:
        """Segment the mesh vertices of a scene stored where the server can read it."""
        return self._segment_body(json.dumps({"scene_url": scene_url}).encode("utf-8"), JSON_TYPE, accept)

    def _segment_body(self, body: bytes, ctype: str, accept: str) -> SegmentResult:
        acc = NPZ_TYPES[0] if accept == "npz" else JSON_TYPE
        hdrs, content = self._call("POST", "/v1/segment", body, {"Content-Type": ctype, "Accept": acc})
        return decode_result(content, hdrs.get("content-type"))

    def query(
        self, text: str, scene_key: str | None = None, scene_url: str | None = None, top_k: int = 5
    ) -> dict:
        """Rank a segmented scene's instances by CLIP similarity to ``text`` (``POST /v1/query``).

        Returns:
            the response: ``instances`` (``id``, ``similarity``, ``score``, ``num_points``,
            ``point_indices``), most similar first, and ``scene_key``.
        """
        obj: dict[str, Any] = {"text": text, "top_k": top_k}
        if scene_key is not None:
            obj["scene_key"] = scene_key
        if scene_url is not None:
            obj["scene_url"] = scene_url
        return self._json("POST", "/v1/query", obj)
