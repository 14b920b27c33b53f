"""Serving: the segmenter behind HTTP on Ray Serve, its payload codec and a Python client.

- :mod:`tracklift.serving.codec`       request / response bodies (pure functions, no Ray, no torch)
- :mod:`tracklift.serving.engine`      batched inference with a latency breakdown (no Ray)
- :mod:`tracklift.serving.store`       LRU result cache and CLIP retrieval over cached results
- :mod:`tracklift.serving.access`      which ``scene_url`` a client may name (deny by default, prefixes)
- :mod:`tracklift.serving.ingress`     HTTP in front of the model (FastAPI): routes, auth, body limits,
                                       load shedding, ``/healthz``, ``/openapi.json`` and ``/docs``
- :mod:`tracklift.serving.schema`      the OpenAPI models of the JSON bodies and the binary body types
- :mod:`tracklift.serving.deployment`  the model deployment (decoding, ``@serve.batch``, cache, CLIP)
- :mod:`tracklift.serving.app`         ``build_app`` for ``serve build``/RayService, ``tracklift serve``
- :mod:`tracklift.serving.client`      ``Client(url, token).segment(points, colors)`` and friends

Only the config is imported here, so ``import tracklift.serving`` loads neither Ray nor torch.
"""

from tracklift.serving.config import ServeConfig

__all__ = ["ServeConfig"]
