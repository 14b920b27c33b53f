"""The cluster configs in cluster/: valid YAML of the right kind, entrypoints the CLI accepts, only fields
their schema has (KubeRay's CRDs, Ray's launcher schema), and the image the Makefile builds."""

import copy
import functools
import os
import pathlib
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tracklift import config as config_lib
from tracklift.cli import _commands, build_parser
from tracklift.cluster.jobs import tracklift_entrypoint

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
# Field names of KubeRay's ray.io/v1 CRDs, generated from KubeRay's CRD files by extract_kuberay_fields.py
FIELDS = pathlib.Path(__file__).with_name("kuberay_v1_fields.yaml")
KUBERAY_MANIFESTS = ("rayjob-label.yaml", "rayjob-train.yaml", "rayservice.yaml")
ALL_MANIFESTS = (*KUBERAY_MANIFESTS, "aws-gpu.yaml")


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
    # every pod that talks to the cluster, the submitter included, gets the auth token (Ray >= 2.59) from
    # KubeRay's authOptions, not from env written into each pod (test_token_auth_through_authoptions)
    assert spec["rayClusterSpec"]["authOptions"]["mode"] == "token"


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


# ---- every manifest names only fields its KubeRay CRD has ----------------------------------------------


def _load(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d is not None]
    assert len(docs) == 1 and isinstance(docs[0], dict), f"{name}: expected one YAML document"
    return docs[0]


@functools.cache
def _fields() -> dict:
    return yaml.safe_load(FIELDS.read_text())


def _where(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def unknown_fields(value: Any, node: Any, path: tuple = ()) -> list[str]:
    """The paths in ``value`` (a parsed manifest or part of it) that the field tree ``node`` does not allow.

    Notation of kuberay_v1_fields.yaml: a mapping lists an object's fields, ``None`` is a scalar, ``"*"``
    takes any keys, ``"@name"`` refers to ``types[name]``; a list's items are checked against the list's node.
    """
    if isinstance(node, str) and node.startswith("@"):
        node = _fields()["types"][node[1:]]
    if node == "*":
        return []
    if isinstance(value, list):
        return [bad for i, item in enumerate(value) for bad in unknown_fields(item, node, (*path, i))]
    if node is None:
        return [f"{_where(path)} (an object where the CRD has a scalar)"] if isinstance(value, dict) else []
    if not isinstance(value, dict):
        return [f"{_where(path)} (a {type(value).__name__} where the CRD has an object)"]
    bad = [_where((*path, key)) for key in value if key not in node]
    for key, sub in value.items():
        if key in node:
            bad += unknown_fields(sub, node[key], (*path, key))
    return bad


def _check_kuberay(doc: dict) -> list[str]:
    assert doc["apiVersion"] == "ray.io/v1"
    return unknown_fields(doc, _fields()["kinds"][doc["kind"]])


@pytest.mark.parametrize("name", ALL_MANIFESTS)
def test_every_manifest_is_one_yaml_document(name):
    assert _load(name)


@pytest.mark.parametrize("name", KUBERAY_MANIFESTS)
def test_kuberay_manifests_name_only_fields_of_their_crd(name):
    doc = _load(name)
    assert doc["kind"] in ("RayCluster", "RayJob", "RayService")
    assert _check_kuberay(doc) == []


def test_the_field_tree_is_kuberays_and_has_teeth():
    fields = _fields()
    assert fields["kuberay"]["ref"] == "v1.7.0" and len(fields["kuberay"]["commit"]) == 40
    cluster = fields["types"]["rayClusterSpec"]
    assert set(cluster["authOptions"]) == {"mode", "secretName", "enableK8sTokenAuth"}
    for kind, path in [("RayJob", "rayClusterSpec"), ("RayService", "rayClusterConfig")]:
        assert fields["kinds"][kind]["spec"][path] == "@rayClusterSpec"
    pod_spec = fields["types"][fields["types"]["template"]["spec"][1:]]
    container = fields["types"][pod_spec["containers"][1:]]
    assert {"containers", "volumes", "tolerations", "nodeSelector"} <= set(pod_spec)
    assert {"image", "env", "envFrom", "resources", "ports", "volumeMounts"} <= set(container)
    # the notation cannot silently accept everything: "*" only stands for maps and free-form fields
    assert unknown_fields({"image": "x", "imagePullPolcy": "Always"}, "@containers") == ["imagePullPolcy"]
    assert unknown_fields({"rayStartParams": {"any-flag": "1"}}, "@headGroupSpec") == []


def _rename(doc: dict, where: tuple, good: str, bad: str) -> dict:
    doc = copy.deepcopy(doc)
    parent = doc
    for step in where:
        parent = parent[step]
    parent[bad] = parent.pop(good)
    return doc


RAY_CLUSTER_SPEC = ("spec", "rayClusterSpec")
WORKER_POD = (*RAY_CLUSTER_SPEC, "workerGroupSpecs", 0, "template", "spec")


@pytest.mark.parametrize(
    ("name", "where", "good", "bad"),
    [
        ("rayjob-label.yaml", ("spec",), "shutdownAfterJobFinishes", "shutdownAfterJobFinish"),
        ("rayjob-label.yaml", RAY_CLUSTER_SPEC, "authOptions", "authOption"),
        ("rayjob-label.yaml", (*RAY_CLUSTER_SPEC, "authOptions"), "secretName", "secretname"),
        ("rayjob-label.yaml", ("spec", "submitterPodTemplate", "spec", "containers", 0), "image", "imag"),
        ("rayjob-train.yaml", (*RAY_CLUSTER_SPEC, "workerGroupSpecs", 0), "rayStartParams", "rayStartParms"),
        ("rayjob-train.yaml", WORKER_POD, "tolerations", "toleration"),
        ("rayjob-train.yaml", (*WORKER_POD, "containers", 0), "volumeMounts", "volumeMount"),
        ("rayservice.yaml", ("metadata",), "name", "nmae"),
        ("rayservice.yaml", ("spec",), "serveConfigV2", "serveConfigv2"),
        (
            "rayservice.yaml",
            (
                "spec",
                "rayClusterConfig",
                "workerGroupSpecs",
                0,
                "template",
                "spec",
                "containers",
                0,
                "env",
                0,
            ),
            "valueFrom",
            "valuefrom",
        ),
    ],
)
def test_a_misspelt_field_is_named_with_its_path(name, where, good, bad):
    doc = _rename(_load(name), where, good, bad)
    assert _check_kuberay(doc) == [_where((*where, bad))]


def _launcher_errors(cfg: dict) -> None:
    # Ray's own check at `ray up`: defaults merged, then Ray's launcher JSON schema. The AWS provider fills
    # each node type's `resources` from its instance type before that check; offline, an empty one stands in.
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(copy.deepcopy(cfg))
    for node_type in cfg["available_node_types"].values():
        node_type.setdefault("resources", {})
    validate_config(cfg)


def test_launcher_config_fits_rays_launcher_schema():
    import jsonschema

    cfg = _load("aws-gpu.yaml")
    _launcher_errors(cfg)
    with pytest.raises(jsonschema.ValidationError, match="'run_option' was unexpected"):
        _launcher_errors(_rename(cfg, ("docker",), "run_options", "run_option"))


# ---- the image: one tag, derived in the Makefile, used by every manifest ------------------------------


def _make(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("needs GNU make")
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "IMAGE_CUDA", "REGISTRY", "MAKEFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@functools.cache
def _image_names() -> dict[str, str]:
    return dict(line.split("=", 1) for line in _make("-s", "image-names").split())


def _images(doc: dict) -> list[str]:
    """Every container image a manifest names (pod templates of KubeRay kinds; the launcher's docker)."""
    if "docker" in doc:
        docker = doc["docker"]
        return [docker[k] for k in ("image", "head_image", "worker_image") if k in docker]
    spec = doc["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    if "submitterPodTemplate" in spec:
        pods.append(spec["submitterPodTemplate"])
    return [
        c["image"]
        for pod in pods
        for key in ("initContainers", "containers")
        for c in pod["spec"].get(key, [])
    ]


def test_image_tag_comes_from_the_package_version():
    # the [project] table's version (tomllib is Python 3.11+; the project supports 3.10)
    version = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    names = _image_names()
    assert names["IMAGE"].endswith(f":{version}")
    assert names["IMAGE_CUDA"].startswith(names["IMAGE"])


@pytest.mark.parametrize("name", ALL_MANIFESTS)
def test_every_manifest_runs_the_makefiles_cuda_image(name):
    images = _images(_load(name))
    assert images and set(images) == {_image_names()["IMAGE_CUDA"]}


def _dockerfile_variants() -> tuple[str, set[str]]:
    """The Dockerfile's default TORCH_VARIANT and the variants its install step accepts."""
    text = (ROOT / "Dockerfile").read_text()
    default = re.search(r"^ARG TORCH_VARIANT=(\S+)$", text, re.M).group(1)
    case = re.search(r'case "\$\{TORCH_VARIANT\}" in(.*?)esac', text, re.S).group(1)
    arms = re.findall(r"^\s*([\w|]+)\)", case, re.M)
    return default, {v for arm in arms for v in arm.split("|")}


@pytest.mark.parametrize(
    ("target", "tag", "variant"), [("image", "IMAGE", "cpu"), ("image-cuda", "IMAGE_CUDA", None)]
)
def test_make_image_builds_the_dockerfile_under_that_tag(target, tag, variant):
    names = _image_names()
    variant = variant or names["TORCH_VARIANT_CUDA"]
    argv = shlex.split(_make("-n", target).replace("\\\n", " "))
    assert argv[:2] == ["docker", "build"]
    assert argv[argv.index("-t") + 1] == names[tag] and argv[argv.index("-f") + 1] == "Dockerfile"
    assert f"TORCH_VARIANT={variant}" in argv
    default, accepted = _dockerfile_variants()
    assert variant in accepted and default in accepted
    # one source of truth: the image installs through the Makefile's own install target
    assert re.search(r"^\s*&& make install\b", (ROOT / "Dockerfile").read_text(), re.M)


def test_cluster_manifests_target_puts_the_image_under_a_registry(tmp_path):
    registry = "123456789012.dkr.ecr.us-west-2.amazonaws.com/team"
    _make("-s", "cluster-manifests", f"REGISTRY={registry}", f"CLUSTER_OUT={tmp_path}")
    image = _image_names()["IMAGE_CUDA"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ALL_MANIFESTS)
    for name in ALL_MANIFESTS:
        out = (tmp_path / name).read_text()
        assert set(_images(yaml.safe_load(out))) == {f"{registry}/{image}"}
        # nothing but the image lines changed
        assert out.replace(f"{registry}/{image}", image) == (CLUSTER / name).read_text()


# ---- Ray token authentication through KubeRay's authOptions ------------------------------------------


@pytest.mark.parametrize("name", KUBERAY_MANIFESTS)
def test_token_auth_through_authoptions(name):
    doc = _load(name)
    cluster = doc["spec"].get("rayClusterSpec") or doc["spec"]["rayClusterConfig"]
    # KubeRay (>= 1.6.0 for secretName) sets RAY_AUTH_MODE / RAY_AUTH_TOKEN from this Secret's `auth_token`
    # on every Ray container and the submitter; it needs rayVersion >= 2.52
    assert cluster["authOptions"] == {"mode": "token", "secretName": "tracklift-ray-token"}
    assert tuple(int(x) for x in cluster["rayVersion"].split(".")) >= (2, 52, 0)
    # and no pod wires the token by hand (KubeRay leaves an existing variable alone: two sources of truth)
    spec = doc["spec"]
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    pods += [spec["submitterPodTemplate"]] if "submitterPodTemplate" in spec else []
    env = {e["name"] for pod in pods for c in pod["spec"]["containers"] for e in c.get("env", [])}
    assert not env & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}
