"""The curriculum shards as Ray Datasets for Ray Train, and the worker side that turns rows into samples.

Two shard formats live side by side in ``<labels>/shards/stage{N}/``:

- Parquet (``*.parquet``, one row per :class:`Sample`, schema in :mod:`tracklift.lifting.shards`) is read
  with ``ray.data.read_parquet``: rows carry the points, Ray Data streams them to the workers, and
  :func:`tracklift.lifting.shards.sample_from_row` decodes them there.
- NumPy (``*.npz``, :mod:`tracklift.lifting.shards`) is a Dataset of small ``{"url", "index"}`` rows, one
  per sample; the driver learns the sample counts from each archive's ``offsets`` member and its member
  headers (range reads on S3), and each worker reads the shards its rows point to (scans are not pushed
  through the object store).

Before any worker starts, the driver checks every shard as the one-process reader would
(:func:`tracklift.lifting.shards.sample_shard_sizes`: readable, kind, version, members or columns, lengths),
so a truncated or foreign file stops the run with a :class:`DataError` naming it instead of failing
inside Ray Data or being dropped. Parquet rows carry their file's path (``include_paths``), so a row that
fails to decode in a worker names its file too.

Ray Train splits the Dataset between workers with ``streaming_split(equal=True)``: every worker gets the
same number of rows per epoch, so every worker takes the same number of optimisation steps (DDP needs
that); with R rows and W workers, ``R mod W`` rows sit out each epoch. A worker never holds its whole
epoch: it streams its shard with ``iter_batches`` in windows of a fixed number of rows
(:func:`stream_windows`), and trains on each window before the next is read. Which rows a worker gets is
decided by Ray Data's splitter from the order in which blocks reach it; with ``preserve_order`` (the
default, :func:`ingest_config`) that order is the shards' own, so a run gives every worker the same rows
as the run before. :class:`ShardLoader` sorts a window's rows by a stable key before the trainer's own
seeded shuffle, so one worker whose epoch fits in one window reproduces the one-process trainer exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from tracklift import storage
from tracklift.errors import ConfigError, DataError
from tracklift.lifting import Sample, read_samples
from tracklift.lifting.shards import sample_from_row, sample_shard_sizes
from tracklift.training.data import stage_dir, stage_shards

log = logging.getLogger(__name__)


def pyarrow_filesystem(url: str):
    """``(path, filesystem)`` to hand to Ray (Train storage, Data readers) for a URL.

    Local paths and ``file://`` give ``(absolute path, None)``. Anything else goes through the same fsspec
    filesystem (and options, e.g. a custom S3 endpoint) as :mod:`tracklift.storage`, wrapped by
    ``pyarrow.fs.PyFileSystem(FSSpecHandler(fs))``, with the protocol stripped from the path as Ray expects.

    Raises:
        ConfigError: ``memory://`` (process-local: Ray workers are other processes).
    """
    import os

    proto = storage.protocol_of(url)
    if proto == "memory":
        raise ConfigError(f"{url}: memory:// is private to one process; Ray workers cannot see it")
    if proto in ("file", "local"):
        return os.path.abspath(url.split("://", 1)[1] if "://" in url else url), None
    import pyarrow.fs

    fs, path = storage.filesystem(url)
    return path, pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))


def npz_rows(urls: Iterable[str]) -> list[dict[str, Any]]:
    """One ``{"url", "index"}`` row per sample with at least 2 points, shards and samples in order.

    Raises:
        DataError: a shard that :func:`~tracklift.lifting.shards.sample_shard_sizes` refuses.
    """
    return [
        {"url": url, "index": int(i)} for url in urls for i, m in enumerate(sample_shard_sizes(url)) if m >= 2
    ]


def stage_dataset(labels: str, stage: int, materialize: bool = False, preserve_order: bool = True):
    """A Ray Dataset of one stage's samples and its row count.

    Args:
        labels: the labelling output URL.
        stage: curriculum stage.
        materialize: read Parquet shards into the object store now instead of streaming them during
            training (needed when no CPU is left beside the training workers for Ray Data's read tasks).
        preserve_order: keep the shards' row order while reading and materialising (Ray Data's
            ``preserve_order``); without it the blocks come in the order the read tasks finish, so the
            materialised order, and with it which worker trains on which sample, changes from run to run.

    Returns:
        ``(dataset, kind, rows)``: ``kind`` is ``"npz"`` (rows ``{"url", "index"}``) or ``"parquet"``
        (rows as in the module doc); ``rows`` counts samples with at least 2 points.

    Raises:
        DataError: no shards, a shard the one-process reader would refuse (naming it), no usable sample,
            or ``.npz`` and ``.parquet`` shards mixed in one stage.
    """
    import ray.data

    urls = stage_shards(labels, stage)
    parquet = [u for u in urls if u.endswith(".parquet")]
    if parquet and len(parquet) != len(urls):
        raise DataError(
            stage_dir(labels, stage),
            "holds both .npz and .parquet shards; keep one format per stage for Ray training",
        )
    if parquet:
        for url in parquet:
            sample_shard_sizes(url)  # on the driver: refuse what the local reader refuses, naming the file
        paths, fs = zip(*(pyarrow_filesystem(u) for u in parquet))
        from ray.data.expressions import col

        ds = ray.data.read_parquet(list(paths), filesystem=fs[0], include_paths=True)
        ds.context.execution_options.preserve_order = preserve_order
        ds = ds.filter(expr=col("num_points") >= 2)
        if materialize:
            ds = ds.materialize()
        kind = "parquet"
    else:
        rows = npz_rows(urls)
        ds = ray.data.from_items(rows) if rows else None
        kind = "npz"
    count = ds.count() if ds is not None else 0
    if count == 0:
        raise DataError(
            stage_dir(labels, stage), f"the stage-{stage} shards hold no sample with at least 2 points"
        )
    return ds, kind, count


def ingest_config(preserve_order: bool = True):
    """Ray Train's ``DataConfig`` for the stage datasets: Ray Data's ingest defaults (carried over from the
    current ``DataContext``, as Ray Train does) with ``preserve_order`` set.

    ``streaming_split(equal=True)`` hands each block to the worker that has the fewest rows so far, so the
    split is fixed by the order in which blocks reach it. With ``preserve_order`` that is the shards'
    order and a run repeats; without it Parquet read tasks finishing in a different order give the
    workers different samples (measured: the main job's stage-3 AP50 moved by up to 8 points between two
    runs of the same command).
    """
    import ray.train

    options = ray.train.DataConfig.default_ingest_options()
    options.preserve_order = preserve_order
    return ray.train.DataConfig(execution_options=options)


def row_key(row: Mapping[str, Any]) -> tuple:
    """A stable sort key: (url, index) for ``.npz`` rows, (scene, stage, frames) for Parquet rows."""
    if "url" in row:
        return (str(row["url"]), int(row["index"]))
    frames = row.get("frames")
    return (
        str(row["scene_id"]),
        int(row["stage"]),
        tuple(int(k) for k in (frames if frames is not None else ())),
    )


class ShardLoader:
    """Worker side: one epoch's rows of a dataset shard → samples in a stable order.

    Args:
        kind: ``"npz"`` or ``"parquet"`` (see :func:`stage_dataset`).
        relabel: optional function ``Sample -> (Sample, instances added)`` applied once per sample and
            cached (stage-3 self-training); its counts are summed in :attr:`last_added`.
    """

    def __init__(self, kind: str, relabel=None):
        if kind not in ("npz", "parquet"):
            raise ValueError(f"unknown shard kind {kind!r}")
        self.kind = kind
        self.relabel = relabel
        self._shards: dict[str, list[Sample]] = {}
        self._relabelled: dict[tuple, tuple[np.ndarray, int]] = {}
        self.last_added = 0

    def samples(self, rows: Iterable[Mapping[str, Any]]) -> list[Sample]:
        """The samples of ``rows`` sorted by :func:`row_key`; ``.npz`` shards are read once each and kept
        only while rows still point to them."""
        rows = sorted(rows, key=row_key)
        if self.kind == "npz":
            wanted = {r["url"] for r in rows}
            self._shards = {u: s for u, s in self._shards.items() if u in wanted}
            for u in sorted(wanted - set(self._shards)):
                self._shards[u] = read_samples(u)
            out = []
            for r in rows:
                shard = self._shards[r["url"]]
                if not 0 <= int(r["index"]) < len(shard):
                    raise DataError(r["url"], f"has {len(shard)} samples, a row asks for sample {r['index']}")
                out.append(shard[int(r["index"])])
        else:
            out = [
                sample_from_row(r, str(r.get("path") or f"parquet row of {r.get('scene_id')!r}"))
                for r in rows
            ]
        self.last_added = 0
        if self.relabel is not None:
            out = [self._relabel(row_key(r), s) for r, s in zip(rows, out)]
        return out

    def _relabel(self, key: tuple, sample: Sample) -> Sample:
        if key not in self._relabelled:
            new, added = self.relabel(sample)
            self._relabelled[key] = (new.instance, added)
        ids, added = self._relabelled[key]
        self.last_added += added
        return Sample(sample.points, sample.colors, ids, sample.scene_id, sample.stage, sample.frames)


def window_size(window_samples: int, batch_size: int) -> int:
    """``window_samples`` rounded up to whole batches of ``batch_size`` (so that only an epoch's last
    window ends in a short batch, as the one-process epoch does)."""
    if window_samples < 1 or batch_size < 1:
        raise ConfigError(f"window and batch sizes must be >= 1, got {window_samples} and {batch_size}")
    return -(-window_samples // batch_size) * batch_size


def stream_windows(shard, window: int) -> Iterator[list[dict[str, Any]]]:
    """One epoch of a Ray Train dataset shard (``ray.train.get_dataset_shard``) as lists of ``window``
    rows (the last one shorter), read with ``iter_batches`` while the previous window trains.

    Rows are dicts of the dataset's columns (Parquet binary columns as ``bytes``), as
    :meth:`ShardLoader.samples` takes them.
    """
    for batch in shard.iter_batches(batch_size=window, batch_format="pyarrow", prefetch_batches=1):
        yield batch.to_pylist()


def check_enough_rows(rows: int, num_workers: int, stage: int) -> None:
    """Every worker needs at least one sample per epoch."""
    if rows < num_workers:
        raise ConfigError(
            f"stage {stage} has {rows} usable samples, fewer than the {num_workers} workers; "
            "use fewer workers or more scenes"
        )
