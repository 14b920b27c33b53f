"""Which stored scenes a client may name with ``scene_url``: deny by default, then an allow-list of prefixes.

The rules (SECURITY.md states them for operators):

- no ``scene_prefixes`` configured: every ``scene_url`` is refused (403);
- only local paths, ``file://`` and ``s3://`` URLs; any other scheme, fsspec ``::`` chains (``zip://...``
  over another file system) and ``..`` path segments are refused (400) before any storage is touched;
- a local path is resolved (``os.path.realpath``: symlinks and ``.``) and must lie under a resolved
  prefix; an ``s3://`` URL must lie under an ``s3://`` prefix; both compare whole path segments (a prefix
  ``/data/scans`` admits ``/data/scans/a`` but not ``/data/scans_evil/a``).

The checks look at the URL only, so a client outside the prefixes learns nothing about what exists there:
every refusal is the same 403 whether or not the path exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from tracklift.serving.codec import RequestError

ALLOWED_SCHEMES = ("file", "s3")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def _scheme(url: str) -> str:
    m = _SCHEME.match(url)
    return m.group(1).lower() if m else "file"


def _local_path(url: str) -> str:
    """``file:///a/b`` or ``/a/b`` → the resolved absolute path ``/a/b``."""
    path = url[len("file://") :] if url.lower().startswith("file://") else url
    return os.path.realpath(os.path.expanduser(path))


def _under(path: str, prefix: str, sep: str) -> bool:
    """True when ``path`` is ``prefix`` or inside it, comparing whole segments."""
    root = prefix.rstrip(sep)
    return path == root or path.startswith(root + sep)


def _has_dotdot(url: str) -> bool:
    body = url.split("://", 1)[-1]
    return any(seg == ".." for seg in re.split(r"[/\\]", body))


def check_scene_url(url: str, prefixes: Sequence[str]) -> str:
    """Check a client's ``scene_url`` against the server's allowed prefixes.

    Args:
        url: as the client sent it.
        prefixes: ``ServeConfig.scene_prefixes`` (local paths, ``file://`` or ``s3://`` URLs).

    Returns:
        the URL to open: the resolved absolute path for local scenes, the URL itself for ``s3://``.

    Raises:
        RequestError: 403 when no prefix is configured or the URL lies outside every prefix, 400 for a
            scheme other than file / s3, an fsspec ``::`` chain or a ``..`` segment.
    """
    source = "scene_url"
    if not prefixes:
        raise RequestError(
            source, "scene_url is disabled on this server (the operator configured no --scene-prefixes)", 403
        )
    if any(ord(c) < 32 for c in url):  # a NUL byte would make realpath raise (a 500 otherwise)
        raise RequestError(source, "control characters are not accepted in scene_url")
    if "::" in url:
        raise RequestError(source, "chained URLs ('::') are not accepted; give a file path or an s3:// URL")
    scheme = _scheme(url)
    if scheme not in ALLOWED_SCHEMES:
        raise RequestError(
            source, f"scheme {scheme!r} is not accepted; give a file path, a file:// or an s3:// URL"
        )
    if _has_dotdot(url):
        raise RequestError(source, "'..' path segments are not accepted")
    outside = RequestError(source, "scene_url is outside the allowed prefixes of this server", 403)
    if scheme == "s3":
        target = "s3://" + url[len("s3://") :]
        for p in prefixes:
            if _scheme(p) == "s3" and _under(target, "s3://" + p[len("s3://") :], "/"):
                return target
        raise outside
    path = _local_path(url)
    for p in prefixes:
        if _scheme(p) == "file" and _under(path, _local_path(p), os.sep):
            return path
    raise outside


def check_prefixes(prefixes: Sequence[str]) -> list[str]:
    """Problems with configured prefixes (empty list: fine): schemes, chains, ``..``, relative paths."""
    problems = []
    for p in prefixes:
        scheme = _scheme(p)
        if scheme not in ALLOWED_SCHEMES or "::" in p or _has_dotdot(p):
            problems.append(
                f"{p!r}: a scene prefix must be an absolute path, file:// or s3:// URL without '..'"
            )
        elif scheme == "s3" and len(p.rstrip("/")) <= len("s3://"):
            problems.append(f"{p!r}: an s3 prefix needs a bucket")
        elif scheme == "file" and not os.path.isabs(p[len("file://") :] if p.startswith("file://") else p):
            problems.append(f"{p!r}: a local scene prefix must be absolute")
    return problems
