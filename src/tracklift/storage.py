"""All file access goes through here: fsspec URLs (``file://``, ``s3://``, ``memory://``) or plain paths.

Writes are atomic at the object level, each storage in its own way, so a killed job never leaves a
half-written file under the final name:

- object stores (``s3://``, ``gs://``, ``az://``, ``memory://``): one direct write. A PUT is all-or-nothing
  (a multipart upload appears only when completed), so a temporary key and a server-side move would only add
  a COPY and a DELETE per file;
- file systems (local, NFS, ...): the data goes to a temporary file next to the target and is renamed into
  place, since a killed writer would otherwise leave a truncated file under the final name.

S3 endpoints and credentials come from the usual AWS environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ...) or from :func:`configure`. How long one S3 request may take and how often
botocore retries it is set once, here (:class:`S3Requests`); retrying a whole step beyond that is
:mod:`tracklift.actors.retry`'s job.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
from fsspec.core import url_to_fs

from tracklift.errors import DataError

_OPTIONS: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class S3Requests:
    """Timeouts and retries of single S3 requests, handed to botocore once (s3fs ``config_kwargs``).

    A request that cannot connect, or gets no answer, fails after at most
    ``attempts * (connect_timeout_s + read_timeout_s)`` seconds plus botocore's short backoff; a longer
    outage is the business of the step retries (:class:`tracklift.actors.retry.RetryPolicy`, whose
    ``deadline_s`` bounds the whole step).

    Args:
        connect_timeout_s: seconds to open a connection to the endpoint.
        read_timeout_s: seconds to wait for bytes of an answer.
        attempts: tries of one request in all, the first included (botocore ``total_max_attempts``;
            1 = no retry).
        retry_mode: botocore's retry mode: ``standard`` (retries throttling, 5xx and connection errors
            with jittered backoff) or ``adaptive`` (also rate-limits the client under throttling).
    """

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    attempts: int = 3
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"

    def config_kwargs(self) -> dict[str, Any]:
        """The ``botocore.config.Config`` arguments (s3fs ``config_kwargs``)."""
        return {
            "connect_timeout": self.connect_timeout_s,
            "read_timeout": self.read_timeout_s,
            "retries": {"mode": self.retry_mode, "total_max_attempts": self.attempts},
        }


_S3_REQUESTS = S3Requests()

# How files reach an object store: "direct" (one PUT) or "rename" (temporary key, then COPY and DELETE:
# what every storage did before; kept selectable so benchmarks/bench_s3_requests.py can measure both).
ObjectStoreWrites = Literal["direct", "rename"]
_OBJECT_STORE_WRITES: list[ObjectStoreWrites] = ["direct"]


def configure(protocol: str, **options: Any) -> None:
    """Set fsspec storage options for a protocol, e.g. ``configure("s3", client_kwargs={...})``.

    For S3, the request timeouts and retries of :func:`configure_s3_requests` fill in whatever
    ``config_kwargs`` these options leave unset.
    """
    _OPTIONS[protocol] = dict(options)


def configure_s3_requests(requests: S3Requests) -> None:
    """Set the timeouts and retries of every S3 request this process makes (see :class:`S3Requests`)."""
    global _S3_REQUESTS
    _S3_REQUESTS = requests


def configure_object_store_writes(mode: ObjectStoreWrites) -> None:
    """``direct`` (the default: one PUT per file) or ``rename`` (the old temporary-key-then-move path, for
    measurements only). File systems always write a temporary file and rename it."""
    if mode not in ("direct", "rename"):
        raise ValueError(f"object store writes must be direct or rename, got {mode!r}")
    _OBJECT_STORE_WRITES[0] = mode


def protocol_of(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def _options(protocol: str) -> dict[str, Any]:
    """The fsspec options of ``protocol``: what :func:`configure` set, S3 request settings filled in."""
    options = dict(_OPTIONS.get(protocol, {}))
    if protocol in ("s3", "s3a"):
        # the caller's own config_kwargs win key by key (e.g. a test's fast-failing single attempt)
        options["config_kwargs"] = {**_S3_REQUESTS.config_kwargs(), **options.get("config_kwargs", {})}
    return options


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return ``(fs, path)`` for a URL; ``path`` is what ``fs`` methods take."""
    return url_to_fs(str(url), **_options(protocol_of(str(url))))


def join(url: str, *parts: str) -> str:
    """Join path components onto a URL (always with ``/``)."""
    url = str(url)
    if "://" in url:
        proto, rest = url.split("://", 1)
        return proto + "://" + posixpath.join(rest, *parts)
    return posixpath.join(url, *parts)


def basename(url: str) -> str:
    return posixpath.basename(str(url).rstrip("/"))


def absolute(url: str) -> str:
    """``url`` with a plain relative path made absolute: Ray workers may run in another directory."""
    url = str(url)
    return url if "://" in url else os.path.abspath(url)


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def isdir(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.isdir(path)


def read_bytes(url: str) -> bytes:
    """Read a whole file; a missing file is a :class:`DataError` naming it."""
    fs, path = filesystem(url)
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(url, "file not found") from None


def read_text(url: str) -> str:
    data = read_bytes(url)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(url, f"not UTF-8 text ({e})") from None


def open_file(url: str, mode: str = "rb"):
    """Open a file for streaming reads (``.sens`` and other large files)."""
    fs, path = filesystem(url)
    if "r" in mode and not fs.exists(path):
        raise DataError(url, "file not found")
    return fs.open(path, mode)


def _s3_bucket(fs: fsspec.AbstractFileSystem, path: str) -> str | None:
    """The bucket ``path`` lies in when ``fs`` is S3, else None."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return path.split("/", 1)[0] if {"s3", "s3a"} & set(protocols) else None


def _require_bucket(fs: fsspec.AbstractFileSystem, bucket: str, url: str) -> None:
    """Raise :class:`DataError` naming ``bucket`` when it does not exist.

    s3fs's ``makedirs`` creates a missing bucket, so a typo in an output URL would make a stray bucket:
    buckets are the operator's to create. Only a definite "no such bucket" (404) refuses; a 403 means the
    bucket exists but these credentials may not HEAD it (the write itself will tell), and connection
    errors propagate unchanged so that retry policies still see a transient outage.
    """
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
    except FileNotFoundError:
        raise DataError(
            url,
            f"S3 bucket {bucket!r} does not exist (tracklift never creates buckets: create it, or fix the URL)",
        ) from None
    except PermissionError:
        pass


def _make_parents(fs: fsspec.AbstractFileSystem, path: str, url: str) -> None:
    """Make ``path``'s folder: local / memory folders are created, an S3 bucket must already exist."""
    bucket = _s3_bucket(fs, path)
    if bucket is not None:
        _require_bucket(fs, bucket, url)  # S3 has no folders: only the bucket matters
        return
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)


# protocols whose writes replace a whole object in one step (an interrupted PUT leaves nothing)
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}


def is_object_store(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether a write to ``fs`` is all-or-nothing by itself (object stores, fsspec's memory store)."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return bool(_OBJECT_STORES & set(protocols))


def _put(fs: fsspec.AbstractFileSystem, path: str, url: str, data: bytes) -> None:
    """One direct write to an object store: a single PUT on S3 (a multipart upload above 100 MB, which
    also appears only when complete). No bucket check first: a missing bucket is asked about only when
    the PUT fails, so a write costs one request."""
    bucket = _s3_bucket(fs, path)
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if "memory" in protocols:  # its folders are listings of keys, kept as the rename path made them
        parent = posixpath.dirname(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
    try:
        fs.pipe_file(path, data)
    except FileNotFoundError:  # s3fs's NoSuchBucket (a PUT never creates a bucket)
        if bucket is not None:
            _require_bucket(fs, bucket, url)
        raise


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` atomically: one direct write on object stores, a temporary file renamed
    into place on file systems (see the module doc).

    Raises:
        DataError: the URL's S3 bucket does not exist (buckets are never created here).
    """
    fs, path = filesystem(url)
    if is_object_store(fs) and _OBJECT_STORE_WRITES[0] == "direct":
        _put(fs, path, url, data)
        return
    _make_parents(fs, path, url)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    try:
        fs.mv(tmp, path)
    except Exception:
        fs.rm(tmp)
        raise


def write_text(url: str, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


def makedirs(url: str) -> None:
    """Create a folder (and its parents); on S3, where folders do not exist, check the bucket instead.

    Raises:
        DataError: the URL's S3 bucket does not exist (buckets are never created here).
    """
    fs, path = filesystem(url)
    bucket = _s3_bucket(fs, path)
    if bucket is not None:
        _require_bucket(fs, bucket, url)
        return
    fs.makedirs(path, exist_ok=True)


def listdir(url: str) -> list[str]:
    """Names (not paths) of the entries directly under ``url``; empty if it does not exist."""
    fs, path = filesystem(url)
    if not fs.exists(path):
        return []
    return sorted(basename(p) for p in fs.ls(path, detail=False))


def remove(url: str, recursive: bool = False) -> None:
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def configured_options() -> dict[str, dict[str, Any]]:
    """The options set with :func:`configure`, per protocol: hand them to another process (a Ray worker),
    which calls ``configure(protocol, **options)`` with them, so both see the same endpoints."""
    protocols = set(_OPTIONS) | ({"s3"} if _S3_REQUESTS != S3Requests() else set())
    # S3 request settings travel inside config_kwargs, so a worker's requests time out as the driver's do
    return {proto: _options(proto) for proto in sorted(protocols)}


_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{12}$")  # the names write_bytes gives its temporary keys


def remove_temporaries(url: str) -> list[str]:
    """Delete the temporary keys that writers killed mid-write left anywhere under ``url``.

    On object stores, where writes are direct, only an older tracklift (or the ``rename`` measurement
    mode) leaves such keys; the sweep is one listing of ``url``.

    Only call this when no writer is running under ``url`` (e.g. at the start and end of a job).

    Returns: the paths removed.
    """
    fs, path = filesystem(url)
    if not fs.exists(path):
        return []
    found = [p for p in fs.find(path) if _TEMPORARY.search(p)]
    for p in found:
        fs.rm(p)
    return found
