"""The one logging setup of the command line."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from tracklift.logs import setup_logging


@pytest.fixture
def restore_logging():
    root, ours = logging.getLogger(), logging.getLogger("tracklift")
    saved = (list(root.handlers), root.level, ours.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    ours.setLevel(saved[2])


def test_levels_apply_to_tracklift_only_and_setup_is_idempotent(restore_logging):
    buf = io.StringIO()
    setup_logging("info", stream=buf)
    setup_logging("info", stream=buf)  # a second call replaces the handler, never doubles lines
    logging.getLogger("tracklift.x").info("progress")
    logging.getLogger("tracklift.x").debug("detail")
    logging.getLogger("somelib").info("chatter")  # third-party INFO stays quiet
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO tracklift.x: progress")
    setup_logging("warning", stream=buf)
    logging.getLogger("tracklift.x").info("hidden")
    assert "hidden" not in buf.getvalue()
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging("loud")


def test_default_stream_follows_sys_stderr(restore_logging, monkeypatch):
    setup_logging("info")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("tracklift.x").info("one")
    first.close()  # e.g. a finished test's captured stream
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("tracklift.x").info("two")
    assert second.getvalue().rstrip().endswith("two")
