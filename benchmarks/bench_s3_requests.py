"""S3 requests per labelled scene, counted by the S3 server itself (moto's request recorder).

A tiny synthetic corpus (``--scenes`` scans of ``--frames`` frames at 96x72, on local disk, so only the output
side touches S3) is labelled by the one-process job into a moto S3 server on 127.0.0.1 twice, into fresh
prefixes of one bucket:

1. ``before``: every file written to a temporary key, then moved into place (s3fs ``mv``: a CopyObject and
   a DeleteObject), after a HeadBucket: the write path of every storage before issue 15, kept selectable
   in :func:`tracklift.storage.configure_object_store_writes` (``rename``) for this measurement;
2. ``after``: the default, one PutObject per file.

moto records every request it serves (``/moto-api/recorder``); each is named by its S3 operation from the
method, the query and the copy-source header (:func:`s3_operation`). Requests per scene = all requests of
the labelling job (scene outputs, completeness checks, temporary-key sweeps, manifest) / scenes. Counts
do not depend on machine load. Writes ``benchmarks/results/s3_requests.json``.

    .venv/bin/python benchmarks/bench_s3_requests.py [--scenes 2] [--frames 6] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

RESULTS = Path(__file__).resolve().parent / "results" / "s3_requests.json"

_KEY_QUERIES = {  # sub-resources that name the operation on an object or bucket
    "uploads": "CreateMultipartUpload",
    "uploadId": "MultipartPart",
    "delete": "DeleteObjects",
    "tagging": "Tagging",
    "acl": "Acl",
}


def s3_operation(method: str, url: str, headers: dict[str, str]) -> str:
    """The S3 operation of one recorded request, e.g. ``PutObject``, ``CopyObject``, ``HeadBucket``.

    Path-style URLs (``http://host/bucket/key?query``), as s3fs sends them to a custom endpoint.
    """
    parts = urlsplit(url)
    path = parts.path.lstrip("/")
    on_key = "/" in path and path.split("/", 1)[1] != ""
    query = parse_qs(parts.query, keep_blank_values=True)
    for q, name in _KEY_QUERIES.items():
        if q in query:
            return name
    lower = {k.lower(): v for k, v in headers.items()}
    if method == "PUT":
        if not on_key:
            return "CreateBucket"
        return "CopyObject" if "x-amz-copy-source" in lower else "PutObject"
    if method == "GET":
        if not on_key:
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject" if on_key else "HeadBucket"
    if method == "DELETE":
        return "DeleteObject" if on_key else "DeleteBucket"
    return f"{method} {'key' if on_key else 'bucket'}"


class MotoRequestLog:
    """moto's request recorder around a block: ``with MotoRequestLog(endpoint, file) as log: ...``.

    moto keeps one recorder per process (a threaded moto server in this process records into it); it
    appends every request it serves to ``file`` as JSON lines. After the block, :meth:`operations` counts
    them by S3 operation and :meth:`keys` lists the object keys they touched.
    """

    def __init__(self, endpoint: str, file: str):
        self.endpoint, self.file = endpoint.rstrip("/"), file

    def _control(self, action: str) -> None:
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{action}", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def __enter__(self) -> MotoRequestLog:
        from moto.moto_api import recorder

        # the recorder's file is read from MOTO_RECORDER_FILEPATH when moto is imported (default: a file in
        # the working directory); this process's server may have been started long before, so set it here
        recorder._location = self.file
        self._control("reset-recording")
        self._control("start-recording")
        return self

    def __exit__(self, *exc) -> None:
        self._control("stop-recording")

    def entries(self) -> list[dict]:
        """The recorded requests: ``method``, ``url``, ``headers`` (bodies dropped)."""
        if not os.path.exists(self.file):
            return []
        with open(self.file) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [{k: r[k] for k in ("method", "url", "headers")} for r in rows]

    def operations(self) -> Counter:
        """``{S3 operation: requests}``."""
        return Counter(s3_operation(e["method"], e["url"], e["headers"]) for e in self.entries())

    def keys(self, operation: str) -> list[str]:
        """The object paths (``bucket/key``) of the requests of one operation."""
        return [
            urlsplit(e["url"]).path.lstrip("/")
            for e in self.entries()
            if s3_operation(e["method"], e["url"], e["headers"]) == operation
        ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def label_and_count(corpus: str, out: str, endpoint: str, log_file: str, mode: str) -> dict:
    """Label ``corpus`` into ``out`` (``s3://``) with object-store writes ``mode``; the requests it made."""
    from tracklift import storage
    from tracklift.labeling import LabelConfig, label_corpus

    storage.configure_object_store_writes(mode)
    try:
        with MotoRequestLog(endpoint, log_file) as requests:
            t0 = time.perf_counter()
            manifest = label_corpus(LabelConfig(scenes=corpus, out=out, runner="local"), log=lambda s: None)
            seconds = time.perf_counter() - t0
    finally:
        storage.configure_object_store_writes("direct")
    scenes = [e for e in manifest["scenes"].values() if e["status"] == "complete"]
    ops = requests.operations()
    total = sum(ops.values())
    files = sum(
        len(json.loads(storage.read_text(storage.join(out, "scenes", sid, "status.json")))["outputs"])
        for sid in manifest["scenes"]
    )
    return {
        "scenes": len(scenes),
        "files_per_scene": files / max(len(scenes), 1),
        "requests": total,
        "requests_per_scene": total / max(len(scenes), 1),
        "by_operation": dict(sorted(ops.items())),
        "by_operation_per_scene": {k: v / max(len(scenes), 1) for k, v in sorted(ops.items())},
        "seconds": seconds,
    }


def run(scenes: int, frames: int) -> dict:
    """Both write paths on one corpus against a fresh moto server; returns the results document."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tracklift.datasets.corpus import SynthCommandConfig, synthesize_corpus
    from tracklift.datasets.synthetic import SynthConfig

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
            corpus = os.path.join(tmp, "corpus")
            small = SynthConfig.classic(width=96, height=72, n_frames=frames, n_groups=2)
            synthesize_corpus(
                SynthCommandConfig(out=corpus, scenes=scenes, seed=9100), log=lambda s: None, synth=small
            )
            log_file = os.path.join(tmp, "moto_requests.jsonl")
            before = label_and_count(corpus, "s3://bench/before", endpoint, log_file, "rename")
            after = label_and_count(corpus, "s3://bench/after", endpoint, log_file, "direct")
    finally:
        server.stop()
    return {
        "what": "S3 requests of `tracklift label --runner local` per labelled scene, counted by moto's "
        "request recorder; before = temporary key + move (the pre-issue-15 write path, selected with "
        "storage.configure_object_store_writes('rename')), after = one direct PUT per file",
        "corpus": {"scenes": scenes, "frames": frames, "width": 96, "height": 72},
        "before": before,
        "after": after,
        "requests_per_scene_ratio": after["requests_per_scene"] / before["requests_per_scene"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    result = run(args.scenes, args.frames)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'':8} {'requests/scene':>15} {'files/scene':>12}  by operation per scene")
    for name in ("before", "after"):
        r = result[name]
        ops = ", ".join(f"{k} {v:.1f}" for k, v in r["by_operation_per_scene"].items())
        print(f"{name:8} {r['requests_per_scene']:15.1f} {r['files_per_scene']:12.1f}  {ops}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
