"""The HTTP API's OpenAPI description: pydantic models of the JSON bodies and the binary body types.

These models document the API (``/openapi.json``, ``/docs``); they do not parse requests. Bodies are read
by the ingress under its size limit and deadline and decoded by :mod:`tracklift.serving.codec`, whose
bounded parsers and error texts stay the single source of truth (a schema-driven parser would buffer a body
of any size first and answer its own 422 format).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tracklift.serving.codec import JSON_TYPE, NPZ_TYPES, PLY_TYPES


class ErrorBody(BaseModel):
    """Every refusal and failure: what was wrong, where, and the status again."""

    error: str = Field(description="what was wrong, with the limit where one applies")
    source: str = Field(
        description="the part of the request at fault: 'request body (PLY)', 'Authorization', ..."
    )
    status: int = Field(description="the HTTP status")


class Health(BaseModel):
    status: str = Field(description="'ok'")
    uptime_s: float = Field(description="seconds since the ingress started")


class CloudJSON(BaseModel):
    """A point cloud as JSON (the binary PLY / NPZ bodies are smaller and faster to decode)."""

    points: list[list[float]] = Field(description="(N, 3) coordinates, metres")
    colors: list[list[float]] | None = Field(
        default=None, description="(N, 3) RGB, 0-255 integers or 0-1 floats; omitted: grey"
    )


class SceneRequest(BaseModel):
    """A stored scan folder to segment (its mesh vertices); must lie under the server's scene_prefixes."""

    scene_url: str = Field(description="absolute path, file:// or s3:// URL of a scene folder")


class InstanceOut(BaseModel):
    id: int = Field(description="instance id, 1-based, in order of decreasing score")
    score: float | None = Field(description="objectness x mask quality")
    num_points: int
    point_indices: list[int] = Field(description="indices of the instance's points in the request's cloud")


class SegmentResponse(BaseModel):
    scene_key: str = Field(description="key of this result in the replica's cache, for /v1/query")
    num_points: int
    num_instances: int
    instance_ids: list[int] = Field(description="(N,) instance id per point, 0 = none")
    instances: list[InstanceOut]
    timings_ms: dict[str, float] = Field(
        description="receive, decode, queue, voxelize, forward, postprocess, total (also the Server-Timing header)"
    )


class QueryRequest(BaseModel):
    """Exactly one of scene_key and scene_url."""

    scene_key: str | None = Field(default=None, description="a key returned by /v1/segment")
    scene_url: str | None = Field(
        default=None, description="a stored scene (segmented first when not cached)"
    )
    text: str = Field(description="what to look for, at most 1000 characters")
    top_k: int = Field(default=5, ge=1, description="instances returned")


class QueryResponse(BaseModel):
    scene_key: str
    text: str
    top_k: int
    num_instances: int
    instances: list[dict[str, Any]] = Field(
        description="the top_k instances, best first, with their similarity"
    )
    timings_ms: dict[str, float]


class ModelInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)  # pydantic's own settings; the field is network_config

    checkpoint: str
    backend: str
    device: str
    voxel_size_m: float
    network_config: dict[str, Any] | None = Field(default=None, alias="model_config")
    clip_config: dict[str, Any] | None = None
    serving: dict[str, Any] = Field(description="batching, limits and live-tuned values of this replica")


BINARY = {"type": "string", "format": "binary"}

SEGMENT_BODY = {
    "required": True,
    "description": (
        "A point cloud as binary PLY (mesh or bare vertices, ASCII or binary; faces ignored), as NPZ "
        "(`points` (N, 3) float32/float64, optional `colors` (N, 3) uint8 or float; no pickles), or as JSON "
        '(a cloud, or `{"scene_url": ...}`). Bodies over max_request_mb, or clouds over max_points, are 413.'
    ),
    "content": {
        **{t: {"schema": BINARY} for t in PLY_TYPES[:2]},
        **{t: {"schema": BINARY} for t in NPZ_TYPES[:1]},
        JSON_TYPE: {"schema": {"oneOf": [CloudJSON.model_json_schema(), SceneRequest.model_json_schema()]}},
    },
}

QUERY_BODY = {
    "required": True,
    "description": "At most 64 KiB.",
    "content": {JSON_TYPE: {"schema": QueryRequest.model_json_schema()}},
}

NPZ_RESULT = {
    NPZ_TYPES[0]: {
        "schema": BINARY,
        "description": "with `Accept: application/x-npz`: scene_key, instance_ids, scores, point_indices, "
        "point_offsets (CSR), timings_ms",
    }
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, each with the :class:`ErrorBody` model."""
    what = {
        400: "malformed body (truncated PLY, wrong dtype, NaN, empty cloud, bad JSON)",
        401: "missing or wrong bearer token",
        403: "scene_url outside the allowed prefixes",
        404: "unknown route, scene_key or scene",
        405: "wrong method (the Allow header names the right one)",
        408: "the body did not arrive in time",
        413: "body, cloud or voxel count over a limit (named in the error)",
        415: "unsupported Content-Type",
        422: "a query on an uploaded cloud, or a stored scene that cannot be read",
        503: "overloaded (max_queued_requests; see Retry-After), no CLIP configured, or storage unreachable",
    }
    return {s: {"model": ErrorBody, "description": what[s]} for s in statuses}
