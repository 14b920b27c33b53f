"""The cluster configs in cluster/: valid YAML of the right kind, and entrypoints the CLI accepts."""

import pathlib
import shlex

import pytest
import yaml

from tracklift import config as config_lib
from tracklift.cli import _commands, build_parser
from tracklift.cluster.jobs import tracklift_entrypoint

CLUSTER = pathlib.Path(__file__).resolve().parents[2] / "cluster"


def _parse(entrypoint: str):
    argv = shlex.split(entrypoint)
    assert argv[0] == "tracklift"
    args = build_parser().parse_args(argv[1:])
    _, cls, _ = _commands()[args.command]
    return args.command, config_lib.from_args(cls, args)


@pytest.mark.parametrize(
    ("name", "command"), [("rayjob-label.yaml", "label"), ("rayjob-train.yaml", "train")]
)
def test_rayjob_entrypoints_parse_with_the_cli(name, command):
    job = yaml.safe_load((CLUSTER / name).read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["rayClusterSpec"]["rayVersion"] == "2.60.0"
    got, cfg = _parse(spec["entrypoint"])
    assert got == command
    if command == "train":  # nested: --train.<field> (TrainConfig), --ray.<field> (RayTrainOptions)
        assert cfg.ray.address == "auto" and cfg.ray.use_gpu
        assert all(
            str(v).startswith("s3://") for v in (cfg.train.labels, cfg.train.out, cfg.ray.storage_path)
        )
    else:
        assert cfg.address == "auto"
        assert all(
            str(v).startswith("s3://") for k, v in vars(cfg).items() if k in ("scenes", "out", "labels")
        )
    if command == "label":
        assert cfg.uses_ray() and cfg.num_gpus == 1 and cfg.shard_format == "parquet"
    # every pod that talks to the cluster carries the auth token (Ray >= 2.59)
    pods = [spec["rayClusterSpec"]["headGroupSpec"]["template"]]
    pods += [g["template"] for g in spec["rayClusterSpec"]["workerGroupSpecs"]]
    pods.append(spec["submitterPodTemplate"])
    for pod in pods:
        env = {e["name"] for c in pod["spec"]["containers"] for e in c.get("env", [])}
        assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= env


def test_aws_launcher_config():
    cfg = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    assert cfg["provider"]["type"] == "aws" and cfg["head_node_type"] in cfg["available_node_types"]
    gpu = cfg["available_node_types"]["gpu_worker"]
    assert gpu["node_config"]["InstanceType"].startswith(("g5", "g6", "p4", "p5"))
    assert cfg["max_workers"] >= gpu["max_workers"] > 0
    assert any("RAY_AUTH_MODE=token" in c for c in cfg["head_start_ray_commands"])
    # the `ray job submit` example in the header is a label command the CLI accepts
    header = (CLUSTER / "aws-gpu.yaml").read_text().split("cluster_name:")[0]
    lines = [ln.lstrip("# ").rstrip(" \\") for ln in header.splitlines()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("tracklift label"))
    entry = " ".join(lines[start : start + 3])
    command, label_cfg = _parse(entry)
    assert command == "label" and label_cfg.num_gpus == 1 and label_cfg.generator == "sam2"


def test_entrypoint_quotes_its_arguments():
    entry = tracklift_entrypoint(
        "label", ["--scenes", "s3://b/my scans", "--num-actors", "2"], python="/opt/py"
    )
    assert shlex.split(entry) == [
        "/opt/py",
        "-m",
        "tracklift.cli",
        "label",
        "--scenes",
        "s3://b/my scans",
        "--num-actors",
        "2",
    ]
