"""Retrying storage steps that fail for a moment (S3 unreachable, throttled, 5xx) with exponential backoff.

The one retry policy of storage, in two layers set once each: botocore retries and times out single S3
requests (:class:`tracklift.storage.S3Requests`: connect / read timeouts, ``max_attempts``, retry mode);
this module wraps a whole step (open a scene, label it while its frames stream in, write its outputs) so an
endpoint that is gone for longer, e.g. a restarting object store, costs a wait instead of a failed scene,
within one overall deadline per step (:attr:`RetryPolicy.deadline_s`). Errors that will not go away by
waiting (a missing or corrupt file, a permission problem, a bad config) are raised at once.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tracklift.errors import ConfigError, DataError, TrackliftError
from tracklift.labeling.outputs import OutputsMissing

T = TypeVar("T")

# OSError numbers that waiting does not fix (local disk full, read-only, missing, denied, ...)
_PERMANENT_ERRNOS = {
    errno.ENOENT,
    errno.EEXIST,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EINVAL,
    errno.ENOSPC,
    errno.EROFS,
    errno.ENAMETOOLONG,
}
# S3 error codes that mean "try again later"
_TRANSIENT_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
}


class StorageUnavailable(TrackliftError):
    """A storage step still failed after every retry.

    Args:
        what: the step, e.g. "write the outputs".
        attempts: how many times it was tried.
        last: the last error.
    """

    def __init__(self, what: str, attempts: int, last: BaseException, deadline_s: float | None = None):
        self.what, self.attempts, self.last, self.deadline_s = what, attempts, last, deadline_s
        within = f" (deadline {deadline_s:g} s reached)" if deadline_s is not None else ""
        super().__init__(
            f"storage unavailable: {what} failed {attempts} times{within}, "
            f"last error {type(last).__name__}: {last}"
        )

    def __reduce__(self):  # picklable across Ray workers
        return (type(self), (self.what, self.attempts, self.last, self.deadline_s))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: the k-th retry waits ``min(max_delay_s, base_delay_s * factor**k)`` seconds.

    Args:
        attempts: tries in all (1 = no retry).
        base_delay_s: wait before the first retry, seconds.
        factor: growth of the wait per retry.
        max_delay_s: cap on one wait, seconds.
        deadline_s: the step's overall deadline, seconds from its first try: no retry starts whose wait
            would end past it (None = attempts only). A try in flight is not cut short; single requests are
            bounded by :class:`tracklift.storage.S3Requests`.
    """

    attempts: int = 5
    base_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 30.0
    deadline_s: float | None = 600.0

    def delays(self) -> list[float]:
        """The waits between tries, seconds (``attempts - 1`` of them)."""
        return [min(self.max_delay_s, self.base_delay_s * self.factor**k) for k in range(self.attempts - 1)]


def is_transient(exc: BaseException) -> bool:
    """Whether waiting and trying again may help (connection, timeout, throttling, server-side errors)."""
    if isinstance(exc, (DataError, ConfigError, StorageUnavailable)):
        return False
    if isinstance(exc, OutputsMissing):  # the store lost what was just written (e.g. it restarted): rewrite
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        # s3fs turns unknown S3 errors (5xx, throttling) into OSError(EIO); local file errors carry errno
        return exc.errno not in _PERMANENT_ERRNOS and not isinstance(
            exc, (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)
        )
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # no S3 stack installed: nothing S3-shaped can be raised
        return False
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return err.get("Code") in _TRANSIENT_S3_CODES or status >= 500
    if isinstance(exc, BotoCoreError):  # endpoint unreachable, connect / read timeouts
        return True
    try:
        import aiohttp
    except ImportError:
        return False
    return isinstance(exc, aiohttp.ClientError)


def call_with_retry(
    fn: Callable[[], T],
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn()``; on a transient error wait and call again, up to ``policy.attempts`` times and while
    the wait ends before ``policy.deadline_s``.

    Args:
        fn: the step (no arguments).
        what: the step in words, for logs and the final error.
        policy: attempts, waits and deadline.
        log: told about every retry, or None.
        sleep: how to wait (tests pass a fake).
        clock: seconds, monotonic (tests pass a fake that ``sleep`` advances).

    Returns:
        What ``fn`` returned.

    Raises:
        StorageUnavailable: the step failed transiently on every attempt (its cause is the last error).
        Exception: a non-transient error, raised at once as it was.
    """
    delays = policy.delays()
    t0 = clock()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise
            if attempt == policy.attempts - 1:
                raise StorageUnavailable(what, policy.attempts, e) from e
            if policy.deadline_s is not None and clock() - t0 + delays[attempt] > policy.deadline_s:
                raise StorageUnavailable(what, attempt + 1, e, policy.deadline_s) from e
            if log is not None:
                log(
                    f"[retry] {what}: {type(e).__name__}: {e}; attempt {attempt + 1}/{policy.attempts}, "
                    f"next in {delays[attempt]:.1f} s"
                )
            sleep(delays[attempt])
    raise AssertionError("unreachable")  # the loop returns or raises
