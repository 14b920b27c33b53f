"""numba compilation for the few loops that cannot be written as whole-array numpy.

Pixel region growing, connected components and the Felzenszwalb-Huttenlocher union-find visit elements
one by one, each step depending on the ones before. numba compiles such loops from plain Python: it
installs from PyPI wheels (numba + llvmlite) on every platform CPython runs on, with no compiler at
install time, and ``cache=True`` keeps the machine code between processes (first use in a fresh
environment compiles for a few seconds). Without numba the same functions run as plain Python: correct,
about 100x slower, with a warning.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a broken install usable
    numba = None
    log.warning("numba is not installed: compiled loops run as plain Python (slow)")

__all__ = ["jit"]


def jit(fn):
    """numba-compile ``fn`` (nopython, no GIL), caching the machine code on disk where a cache folder is
    writable; plain Python when numba is missing."""
    if numba is None:  # pragma: no cover
        return fn
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location (read-only install and home): compile per process
        return numba.njit(nogil=True)(fn)
