"""One logging setup for every command: ``tracklift --log-level LEVEL <command>``.

Progress and diagnostics go through :mod:`logging` to stderr; machine-readable results (tables, ``--json``
files, checkpoint URLs) stay on stdout. Only tracklift's own loggers get the chosen level: third-party
libraries (Ray, botocore, numba) stay at WARNING unless ``debug`` is asked for.
"""

from __future__ import annotations

import logging
import sys

LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "info"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME = "tracklift-cli"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when the handler was made: a
    redirected or captured stderr (pytest's capsys, an embedding application) never leaves the handler
    writing to a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property decides
        pass


def setup_logging(level: str = DEFAULT_LEVEL, stream=None) -> None:
    """Send log records to ``stream`` (default stderr) with one format; idempotent.

    Args:
        level: one of :data:`LEVELS`, for the ``tracklift`` loggers (``debug`` also for the others).
        stream: where records go (default: ``sys.stderr`` as it is at each record).

    Raises:
        ValueError: an unknown level.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; choose from {', '.join(LEVELS)}")
    root = logging.getLogger()
    for h in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(h)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.getLogger("tracklift").setLevel(level.upper())
