"""The backend name table: lazy import by name, clear errors for missing packages and unknown names."""

from __future__ import annotations

import sys

import pytest

from tracklift.errors import ConfigError
from tracklift.models.backends import registry
from tracklift.models.backends.registry import get_backend

OTHERS = ["minkowski", "spconv"]

PACKAGES = {"minkowski": "MinkowskiEngine", "spconv": "spconv"}
PIP = {
    "minkowski": "pip install --no-build-isolation MinkowskiEngine==0.5.4",
    "spconv": "pip install spconv==2.3.8",
}


@pytest.mark.parametrize("name", OTHERS)
def test_missing_package_is_a_config_error_naming_pip(monkeypatch, name):
    module = f"tracklift.models.backends.{name}_backend"
    # As if the package were not installed: None entries in sys.modules make its imports fail.
    pkg = PACKAGES[name]
    for mod in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")] + [pkg]:
        monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.delitem(registry._LOADED, name, raising=False)
    with pytest.raises(ConfigError, match=rf"sparse backend '{name}' needs .*{PIP[name]}"):
        get_backend(name)
    assert name not in registry._LOADED


def test_installed_backends_and_unknown_name():
    names = registry.installed_backends()
    assert names[0] == "torch" and set(names) <= {"torch", *OTHERS}
    with pytest.raises(ValueError, match="unknown sparse backend 'nope'; known: .*minkowski.*spconv"):
        get_backend("nope")


def test_every_row_names_its_own_class():
    """The table is the registry: each installed backend's class carries the name it is listed under, and
    importing a backend module registers nothing by itself."""
    for name in registry.installed_backends():
        cls = registry.backend_class(name)
        assert cls.name == name and type(get_backend(name)) is cls
    assert get_backend(get_backend("torch")).name == "torch"  # an instance passes through
    assert registry.available_backends() == sorted(registry.BACKENDS)
