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
import os

log = logging.getLogger(__name__)

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a broken install usable
    numba = None
    log.warning("numba is not installed: compiled loops run as plain Python (slow)")

__all__ = ["jit", "prange", "thread_budget"]

if numba is not None:
    prange = numba.prange
else:  # pragma: no cover
    prange = range


def _threading_layer() -> None:
    """OpenMP first for parallel loops (thread-safe, and on Linux present wherever numba's wheel runs),
    then TBB, then numba's own workqueue; an old TBB found first would only print a warning."""
    if numba is not None and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


def thread_budget() -> int:
    """Threads this process's parallel loops should use: ``NUMBA_NUM_THREADS`` when set, else
    ``OMP_NUM_THREADS`` (Ray sets it to a worker's CPUs), else every core."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        try:
            n = int(os.environ.get(var, "0"))
        except ValueError:
            n = 0
        if n > 0:
            return n
    return os.cpu_count() or 1


def _thread_budget() -> None:
    if numba is not None and "NUMBA_NUM_THREADS" not in os.environ:
        numba.set_num_threads(max(1, min(thread_budget(), numba.config.NUMBA_NUM_THREADS)))


_threading_layer()
_thread_budget()


def jit(fn=None, *, parallel: bool = False):
    """numba-compile ``fn`` (nopython, no GIL), caching the machine code on disk where a cache folder is
    writable; plain Python when numba is missing. ``parallel=True`` runs its ``prange`` loops on the
    process's threads (per-pixel kernels whose iterations are independent). Use as ``@jit`` or
    ``@jit(parallel=True)``."""
    if fn is None:
        return lambda f: jit(f, parallel=parallel)
    if numba is None:  # pragma: no cover
        return fn
    try:
        return numba.njit(cache=True, nogil=True, parallel=parallel)(fn)
    except RuntimeError:  # no writable cache location (read-only install and home): compile per process
        return numba.njit(nogil=True, parallel=parallel)(fn)
