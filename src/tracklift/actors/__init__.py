"""Ray labeling: the labeling actor, the Ray Data job that drives a pool of them, storage retries.

Modules: ``labeler`` (:class:`~tracklift.actors.labeler.LabelActor`, one scene per call, models built
once), ``pipeline`` (:func:`~tracklift.actors.pipeline.label_corpus_ray`), ``retry`` (exponential backoff
of transient storage errors). Ray is imported only when a job runs.
"""
