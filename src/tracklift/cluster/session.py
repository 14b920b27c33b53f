"""The Ray session: which runner a command uses, and the one place that connects to Ray.

Every command that can run on Ray (``label``, ``train``, ``serve``, ``run``) takes an optional cluster
address. The rule, the same everywhere:

- the address is the one given, else ``RAY_ADDRESS`` (set by Ray on a cluster's head node and in Ray Jobs),
  else none: a fresh local Ray (``address="local"``, never a stale ``/tmp/ray`` cluster of another run);
- ``runner="auto"`` runs on Ray when there is an address, else in this process; ``local`` and ``ray`` force
  one or the other.

Ray is imported only when :func:`connect` is called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

from tracklift.errors import ConfigError

RUNNERS = ("auto", "local", "ray")


def resolve_address(address: str | None) -> str | None:
    """The cluster address to use: ``address``, else ``$RAY_ADDRESS``, else None (a new local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def choose_runner(runner: str, address: str | None) -> Literal["local", "ray"]:
    """``local`` or ``ray`` for a command's ``--runner`` and ``--address`` (see the module docstring).

    Raises:
        ConfigError: ``runner`` is not one of auto, local, ray.
    """
    if runner not in RUNNERS:
        raise ConfigError(f"runner must be auto, local or ray, got {runner!r}")
    if runner == "auto":
        return "ray" if resolve_address(address) is not None else "local"
    return runner  # type: ignore[return-value]


def connect(address: str | None, log: Callable[[str], None] | None = None, **init_kwargs) -> bool:
    """Connect this process to Ray unless it already is (a test's cluster, the main job's session).

    Args:
        address: cluster address (``auto``, ``host:6379``, ``ray://host:10001``); None: ``$RAY_ADDRESS``,
            else a new local Ray.
        log: told which Ray was started or joined, or None.
        **init_kwargs: passed to ``ray.init`` (``include_dashboard``, ``logging_level``, ``runtime_env``,
            ``num_cpus`` ...).

    Returns:
        True when this call connected (the caller shuts Ray down when done), False when already connected.
    """
    import ray

    if ray.is_initialized():
        return False
    target = resolve_address(address)
    ray.init(address=target or "local", **init_kwargs)
    if log is not None:
        if target is None:
            log(f"started a local Ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
        else:
            log(f"connected to the Ray cluster at {target}")
    return True
