"""The Ray session rule: one address rule and one runner rule for every command, one ``ray.init``."""

import re
from pathlib import Path

import pytest

from tracklift.cluster.session import choose_runner, connect, resolve_address
from tracklift.errors import ConfigError

SRC = Path(__file__).resolve().parents[2] / "src"


def test_address_and_runner_rule(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None) is None and resolve_address("auto") == "auto"
    assert choose_runner("auto", None) == "local" and choose_runner("auto", "host:6379") == "ray"
    assert choose_runner("ray", None) == "ray" and choose_runner("local", "host:6379") == "local"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert resolve_address(None) == "10.0.0.1:6379" and resolve_address("auto") == "auto"
    assert choose_runner("auto", None) == "ray"
    with pytest.raises(ConfigError, match="auto, local or ray"):
        choose_runner("cluster", None)


def test_only_the_session_module_starts_ray():
    callers = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if re.search(r"\bray\.init\(", p.read_text()) or 'environ.get("RAY_ADDRESS")' in p.read_text()
    ]
    assert callers == ["tracklift/cluster/session.py"]


def test_connect_starts_a_local_ray_once_and_reuses_it(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    logs = []
    try:
        assert connect(None, logs.append, num_cpus=1, include_dashboard=False) is True
        assert ray.is_initialized() and logs and "local Ray" in logs[0]
        assert connect(None) is False  # already connected: nothing started
    finally:
        ray.shutdown()
