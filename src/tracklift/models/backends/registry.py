"""Sparse backends by name: an explicit table of which module and class implement each name.

A backend module is imported the first time its name is asked for (``get_backend("minkowski")``), so an
optional package (MinkowskiEngine, spconv: pyproject extras of the same name) loads only when used and a
missing one is a :class:`~tracklift.errors.ConfigError` naming the pip command (raised by the module's
import). Nothing registers itself by being imported: adding a backend means adding a row to
:data:`BACKENDS`.
"""

from __future__ import annotations

import importlib

from tracklift.errors import ConfigError
from tracklift.models.sparse import SparseBackend

# name → (module, class). "torch" is always available; the others need their optional package.
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("tracklift.models.backends.torch_backend", "TorchBackend"),
    "minkowski": ("tracklift.models.backends.minkowski_backend", "MinkowskiBackend"),
    "spconv": ("tracklift.models.backends.spconv_backend", "SpconvBackend"),
}
OPTIONAL_BACKENDS = ("minkowski", "spconv")

# Classes already imported, by name (a failed import leaves no entry, so a later call retries).
_LOADED: dict[str, type[SparseBackend]] = {}


def available_backends() -> list[str]:
    """Every backend name tracklift knows (installed or not; see :func:`installed_backends`)."""
    return sorted(BACKENDS)


def backend_class(name: str) -> type[SparseBackend]:
    """The class implementing backend ``name``, importing its module on first use.

    Raises:
        ConfigError: an optional backend whose package is not installed (the message names the pip
            command).
        ValueError: no such backend, or a dependency of the backend module is missing.
    """
    if name in _LOADED:
        return _LOADED[name]
    if name not in BACKENDS:
        raise ValueError(f"unknown sparse backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(
            f"sparse backend {name!r} needs the {e.name!r} package, which is not installed"
        ) from e
    cls = getattr(module, class_name)
    _LOADED[name] = cls
    return cls


def get_backend(name: str | SparseBackend = "torch") -> SparseBackend:
    """A backend instance by name (``"torch"`` is always available; see :data:`OPTIONAL_BACKENDS`); an
    instance is returned as it is.

    Raises:
        ConfigError: an optional backend whose package is not installed.
        ValueError: no such backend.
    """
    if isinstance(name, SparseBackend):
        return name
    return backend_class(name)()


def installed_backends() -> list[str]:
    """Names of the backends that load here: ``"torch"`` plus the :data:`OPTIONAL_BACKENDS` installed."""
    names = ["torch"]
    for name in OPTIONAL_BACKENDS:
        try:
            backend_class(name)
        except (ConfigError, ValueError):
            continue
        names.append(name)
    return names
