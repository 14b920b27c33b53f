"""Write tests/cluster/kuberay_v1_fields.yaml: the field names KubeRay's CRDs allow, from KubeRay's own files.

The manifests in cluster/ are checked against this tree (tests/cluster/test_manifests.py), so it must come
from KubeRay, not from memory. This script reads the generated CRD YAML of a tagged KubeRay release
(``ray-operator/config/crd/bases/ray.io_{rayclusters,rayjobs,rayservices}.yaml``, version ``v1``) out of a
git clone and keeps only what a field-name check needs::

    python tests/cluster/extract_kuberay_fields.py --kuberay /path/to/kuberay.git --ref v1.7.0

The tree: a mapping lists an object's fields; ``~`` is a scalar (or a list of scalars); ``"*"`` accepts any
keys (a map such as ``labels`` or ``rayStartParams``, int-or-string, or preserve-unknown-fields); a string
``"@name"`` refers to ``types[name]``, a subtree that occurs more than once (the pod template, the
container, ...), so the file stays small. Lists are transparent: a list's items use the node of the list.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import subprocess
from typing import Any

import yaml

CRD_FILES = {
    "RayCluster": "ray-operator/config/crd/bases/ray.io_rayclusters.yaml",
    "RayJob": "ray-operator/config/crd/bases/ray.io_rayjobs.yaml",
    "RayService": "ray-operator/config/crd/bases/ray.io_rayservices.yaml",
}
# A CRD declares the resource's own `metadata` as a bare object (the API server validates ObjectMeta
# itself), so its fields cannot come from the CRD. These are ObjectMeta's fields a manifest may set.
OBJECT_META = ["name", "generateName", "namespace", "labels", "annotations", "finalizers", "ownerReferences"]
# Subtrees smaller than this many fields are written inline even when they repeat.
MIN_SHARED_FIELDS = 8
OUT = pathlib.Path(__file__).with_name("kuberay_v1_fields.yaml")

Node = dict[str, Any] | str | None


def field_tree(schema: dict[str, Any]) -> Node:
    """One OpenAPI v3 schema node -> the field-name tree described in the module docstring."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string"):
        return "*"
    if schema.get("type") == "array":
        return field_tree(schema.get("items") or {})
    if "properties" in schema:
        return {name: field_tree(sub) for name, sub in sorted(schema["properties"].items())}
    if "additionalProperties" in schema:
        return "*"
    if schema.get("type") == "object":
        return {}  # an object with no declared fields: the API server prunes whatever is put there
    return None


def _size(node: Node) -> int:
    return sum(1 + _size(v) for v in node.values()) if isinstance(node, dict) else 0


def _key(node: Node) -> str:
    return json.dumps(node, sort_keys=True)


def share_repeated(kinds: dict[str, Node]) -> tuple[dict[str, Node], dict[str, Node]]:
    """Replace subtrees that occur more than once by ``"@name"`` references into a ``types`` table.

    A shared subtree is named after the field it sits under most often (the pod template is ``template``,
    a container ``containers``); when that name is taken, the next most frequent, else ``<name>_2``.
    """
    seen: dict[str, dict[str, int]] = {}  # subtree -> {field name: occurrences}
    order: dict[str, int] = {}  # subtree -> breadth-first index of its first occurrence (ties)
    queue: list[tuple[str, Node]] = list(kinds.items())
    while queue:
        name, node = queue.pop(0)
        if not isinstance(node, dict):
            continue
        key = _key(node)
        seen.setdefault(key, {})
        seen[key][name] = seen[key].get(name, 0) + 1
        order.setdefault(key, len(order))
        queue.extend(node.items())
    shared = [k for k, n in seen.items() if sum(n.values()) > 1 and _size(json.loads(k)) >= MIN_SHARED_FIELDS]
    shared.sort(key=lambda k: (-sum(seen[k].values()), order[k]))
    names: dict[str, str] = {}
    used: set[str] = set(kinds)
    for key in shared:
        candidates = sorted(seen[key], key=lambda n: -seen[key][n])  # stable: first met wins ties
        name = next((n for n in candidates if n not in used), None)
        i = 2
        while name is None or name in used:
            name, i = f"{candidates[0]}_{i}", i + 1
        used.add(name)
        names[key] = name

    def rewrite(node: Node, top: bool) -> Node:
        if not isinstance(node, dict):
            return node
        if not top and _key(node) in names:
            return "@" + names[_key(node)]
        return {k: rewrite(v, False) for k, v in node.items()}

    types = {names[key]: rewrite(json.loads(key), True) for key in sorted(names, key=names.get)}
    return {kind: rewrite(tree, True) for kind, tree in kinds.items()}, types


def read_crd(kuberay: pathlib.Path, ref: str, path: str) -> tuple[dict[str, Any], str]:
    """The CRD document at ``ref:path`` in the git repository ``kuberay`` and its sha256."""
    text = subprocess.run(
        ["git", "-C", str(kuberay), "show", f"{ref}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    return yaml.safe_load(text), hashlib.sha256(text.encode()).hexdigest()


def extract(kuberay: pathlib.Path, ref: str) -> dict[str, Any]:
    """The whole file's content: provenance, the three kinds' trees and the shared ``types``."""
    commit = subprocess.run(
        ["git", "-C", str(kuberay), "rev-parse", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    kinds: dict[str, Node] = {}
    sources = {}
    for kind, path in CRD_FILES.items():
        crd, digest = read_crd(kuberay, ref, path)
        assert crd["spec"]["names"]["kind"] == kind, f"{path} defines {crd['spec']['names']['kind']}"
        (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        root = v1["schema"]["openAPIV3Schema"]["properties"]
        kinds[kind] = {
            "apiVersion": None,
            "kind": None,
            "metadata": {name: ("*" if name in ("labels", "annotations") else None) for name in OBJECT_META},
            "spec": field_tree(root["spec"]),  # `status` is the operator's to write, never a manifest's
        }
        sources[kind] = {"path": path, "sha256": digest}
    kinds, types = share_repeated(kinds)
    return {"kuberay": {"ref": ref, "commit": commit, "crds": sources}, "kinds": kinds, "types": types}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kuberay", type=pathlib.Path, required=True, help="a git clone of ray-project/kuberay"
    )
    parser.add_argument("--ref", default="v1.7.0", help="the KubeRay release tag to read")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    data = extract(args.kuberay, args.ref)
    header = (
        f"# Generated by tests/cluster/extract_kuberay_fields.py from ray-project/kuberay {args.ref}: do not edit.\n"
        "# Field names of the ray.io/v1 CRDs (see the script's docstring for the notation).\n"
    )
    args.out.write_text(header + yaml.safe_dump(data, sort_keys=False, width=110))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(data['types'])} shared types)")


if __name__ == "__main__":
    main()
