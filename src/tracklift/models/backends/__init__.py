"""Sparse-convolution backends: ``torch`` (always available, the reference), ``minkowski``
(MinkowskiEngine 0.5.4) and ``spconv`` (spconv 2.x), looked up by name in :mod:`.registry`. The optional
ones load on first ``get_backend(name)``; without their package that call raises ``ConfigError`` naming
the pip command."""
