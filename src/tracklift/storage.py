"""All file access goes through here: fsspec URLs (``file://``, ``s3://``, ``memory://``) or plain paths.

Writes are atomic at the object level: data goes to a temporary key next to the target and is moved into
place, so a killed job never leaves a half-written file under the final name.

S3 endpoints and credentials come from the usual AWS environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ...) or from :func:`configure`.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from tracklift.errors import DataError

_OPTIONS: dict[str, dict[str, Any]] = {}


def configure(protocol: str, **options: Any) -> None:
    """Set fsspec storage options for a protocol, e.g. ``configure("s3", client_kwargs={...})``."""
    _OPTIONS[protocol] = dict(options)


def protocol_of(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return ``(fs, path)`` for a URL; ``path`` is what ``fs`` methods take."""
    return url_to_fs(str(url), **_OPTIONS.get(protocol_of(str(url)), {}))


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


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` atomically: temporary key, then move into place.

    Raises:
        DataError: the URL's S3 bucket does not exist (buckets are never created here).
    """
    fs, path = filesystem(url)
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
    return {proto: dict(opts) for proto, opts in _OPTIONS.items()}


_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{12}$")  # the names write_bytes gives its temporary keys


def remove_temporaries(url: str) -> list[str]:
    """Delete the temporary keys that writers killed mid-write left anywhere under ``url``.

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
