"""Submitting tracklift commands to a Ray cluster as Ray Jobs (the Python side of ``ray job submit``).

The Jobs API lives on the head node's dashboard (``http://<head>:8265``). From Ray 2.59 clusters use token
authentication by default: the token goes in an ``Authorization: Bearer`` header; it is read from the
``token`` argument, ``RAY_AUTH_TOKEN``, or the file named by ``RAY_AUTH_TOKEN_PATH``.

The job's driver runs on the head node, where Ray sets ``RAY_ADDRESS``: a tracklift command in the
entrypoint finds the cluster with ``--address auto`` (or no flag at all, ``--runner auto`` reads
``RAY_ADDRESS``).
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracklift.errors import TrackliftError

_FINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def auth_token(token: str | None = None) -> str | None:
    """The cluster token: ``token``, else ``RAY_AUTH_TOKEN``, else the file at ``RAY_AUTH_TOKEN_PATH``."""
    if token:
        return token
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"]
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path and os.path.exists(path):
        with open(path) as f:
            return f.read().strip() or None
    return None


def job_client(address: str, token: str | None = None):
    """A ``JobSubmissionClient`` for the dashboard at ``address`` (``http://host:8265``), with the token."""
    from ray.job_submission import JobSubmissionClient

    tok = auth_token(token)
    headers = {"Authorization": f"Bearer {tok}"} if tok else None
    return JobSubmissionClient(address, headers=headers)


def tracklift_entrypoint(command: str, args: Sequence[str] = (), python: str = "python") -> str:
    """Shell entrypoint running ``tracklift <command> <args>`` with the cluster's ``python``.

    Args:
        command: ``label``, ``train``, ...
        args: flags, e.g. ``["--scenes", "s3://bucket/scans", "--address", "auto"]`` (quoted here).
        python: interpreter on the head node that has tracklift installed.
    """
    return " ".join([shlex.quote(python), "-m", "tracklift.cli", command, *(shlex.quote(a) for a in args)])


@dataclass
class JobResult:
    """A finished job: id, final status (``SUCCEEDED`` / ``FAILED`` / ``STOPPED``), its driver's log."""

    job_id: str
    status: str
    logs: str
    seconds: float


def run_job(
    address: str,
    entrypoint: str,
    runtime_env: dict | None = None,
    token: str | None = None,
    timeout_s: float = 3600.0,
    poll_s: float = 2.0,
    log: Callable[[str], None] = print,
) -> JobResult:
    """Submit ``entrypoint`` to the cluster at ``address`` and wait until it finishes.

    Args:
        address: dashboard URL, e.g. ``http://127.0.0.1:8265``.
        entrypoint: shell command (see :func:`tracklift_entrypoint`).
        runtime_env: Ray runtime env (``working_dir``, ``env_vars``, ``pip``), or None.
        token: cluster auth token (default ``RAY_AUTH_TOKEN``).
        timeout_s: give up (and stop the job) after this long, seconds.
        poll_s: status polling interval, seconds.
        log: status changes go here.

    Raises:
        TrackliftError: the job did not finish within ``timeout_s`` (it is stopped first).
    """
    client = job_client(address, token)
    t0 = time.perf_counter()
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    log(f"[job] submitted {job_id}: {entrypoint}")
    last = None
    while True:
        status = str(client.get_job_status(job_id)).rsplit(".", 1)[-1]
        if status != last:
            log(f"[job] {job_id}: {status} ({time.perf_counter() - t0:.0f} s)")
            last = status
        if status in _FINAL:
            break
        if time.perf_counter() - t0 > timeout_s:
            client.stop_job(job_id)
            raise TrackliftError(f"Ray job {job_id} still {status} after {timeout_s:.0f} s: stopped")
        time.sleep(poll_s)
    return JobResult(job_id, status, client.get_job_logs(job_id), time.perf_counter() - t0)
