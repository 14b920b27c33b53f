"""Packaging: the HTTP client installs without torch or Ray, package metadata holds ranges (the exact pins
live in constraints.txt, which `make install` uses for every pip call)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "torchvision", "ray", "scipy", "numba", "pyarrow", "open3d-cpu"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def resolve(tmp_path: Path, extras: str) -> list[str]:
    """Names of the distributions ``pip install '.[extras]'`` would install into a fresh, empty venv
    (``pip install --dry-run --report``; nothing is installed). Skips when the package index is unreachable."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    project = tmp_path / "project"  # a copy: building metadata must not write into the checkout
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copy(ROOT / "README.md", project)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--dry-run"]
    cmd += [
        "--quiet",
        "--disable-pip-version-check",
        "--report",
        str(report),
        f".[{extras}]" if extras else ".",
    ]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        unreachable = ("NewConnectionError", "Max retries exceeded", "No matching distribution", "network")
        if any(s in proc.stderr for s in unreachable):
            pytest.skip(f"the package index is unreachable: {proc.stderr.strip().splitlines()[-1]}")
        raise AssertionError(proc.stderr)
    return sorted(item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"])


def test_base_dependencies_and_client_extra_are_light():
    meta = _pyproject()["project"]
    base = {_name(r) for r in meta["dependencies"]}
    client = {_name(r) for r in meta["optional-dependencies"]["client"]}
    assert not (base | client) & HEAVY, base | client
    assert {"torch", "ray"} <= {_name(r) for r in meta["optional-dependencies"]["full"]}
    assert "synth" in meta["optional-dependencies"]


def test_metadata_has_ranges_and_constraints_pin_every_requirement():
    meta = _pyproject()["project"]
    requirements = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        requirements += extra
    exact = [r for r in requirements if "==" in r]
    assert not exact, f"exact pins belong in constraints.txt: {exact}"
    pins = _constraints()
    unpinned = sorted({_name(r) for r in requirements} - set(pins))
    assert not unpinned, f"constraints.txt lacks {unpinned}"
    # the Makefile passes the constraints to every pip install of packages, and pins nothing itself
    installs = [ln for ln in (ROOT / "Makefile").read_text().splitlines() if "$(PIP) install" in ln]
    assert installs and all("-c $(CONSTRAINTS)" in ln or "--upgrade pip" in ln for ln in installs), installs
    assert not any("==" in ln for ln in installs), installs


@pytest.mark.slow  # builds the package's metadata and asks the index: ~15 s
def test_pip_install_client_pulls_neither_torch_nor_ray(tmp_path):
    names = resolve(tmp_path, "client")
    assert "tracklift" in names and "numpy" in names and "requests" in names
    assert not set(names) & HEAVY, names
    assert not [n for n in names if n.startswith("nvidia-")], names


def test_the_client_imports_in_a_process_without_torch_or_ray():
    """What the [client] install holds is enough to import and build the client: torch and Ray are
    blocked in a subprocess (a finder that refuses them), and the client still works offline."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "ray", "scipy", "numba"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
import numpy as np
import tracklift
from tracklift.serving.client import Client
from tracklift.serving.codec import encode_cloud
body, ctype = encode_cloud(np.zeros((4, 3), np.float32), None)
assert callable(tracklift.read_point_cloud)  # the own-data readers need no torch either
print(type(tracklift.Client(\"http://127.0.0.1:9\")).__name__, ctype)
from tracklift import _console_script  # what the `tracklift` command runs
print(_console_script())
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
        check=True,
    )
    # the commands need the full install, and say so instead of a traceback
    assert out.stdout.split() == ["Client", "application/x-npz", "1"]
    assert "pip install 'tracklift[full]'" in out.stderr and "Traceback" not in out.stderr
