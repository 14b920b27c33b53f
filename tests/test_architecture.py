"""The architecture of src/tracklift, checked on its import graph (docs/architecture.md explains it).

Every module under src/tracklift is parsed with ``ast`` (nothing is imported). An edge ``a → b`` means module
``a`` imports module ``b`` anywhere: at module level or inside a function, ``import x.y``, ``from x import y``
(``y`` a submodule counts as importing ``x.y``), relative imports resolved, and importing ``x.y.z`` also
runs the ``__init__`` of ``x.y`` and ``x`` (unless they are ``a``'s own packages, which are running
already). Imports under ``if TYPE_CHECKING:`` never run, so they count for the layering but not for
cycles. ``importlib.import_module`` is followed where its module names are string constants in the same
module (``datasets/formats.py``, ``openvocab/__init__.py``); a module name built at run time is not.

Print the graph, the cycles and the rule violations for a report:

    PYTHONPATH=src python -m tests.test_architecture
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "tracklift"

# -- the rules ------------------------------------------------------------------------------------------
# A "package" is a folder under tracklift/ or a top-level module (cli, errors, ...). Each may import
# itself and the packages listed here, nothing else: the floors of DESIGN.md, lowest first.
# geometry ← datasets ← tracking, lifting ← labeling ← actors; models ← training, serving.
FOUNDATION = {"errors", "storage", "structures", "config"}  # small shared modules every floor may use
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "storage": {"errors"},
    "structures": {"errors"},
    "config": {"errors", "storage"},  # reads YAML from any URL
    # the package's own __init__: the public names it re-exports, imported lazily on first access, and
    # the console script's guard around cli (a light install has no torch for the commands)
    "tracklift": {"errors", "api", "datasets", "structures", "models", "evaluation", "serving", "cli"},
    # `tracklift.segment` and friends: read a cloud, run the model, write its outputs
    "api": {"datasets", "models", "evaluation"} | FOUNDATION,
    "logs": set(),  # the CLI's logging setup
    "geometry": {"errors"},
    "datasets": {"geometry"} | FOUNDATION,
    "tracking": {"datasets", "geometry"} | FOUNDATION,
    "lifting": {"datasets", "geometry", "tracking"} | FOUNDATION,
    "evaluation": {"datasets", "geometry"} | FOUNDATION,
    "models": {"datasets", "geometry"} | FOUNDATION,
    "openvocab": {"datasets", "geometry", "lifting", "models", "evaluation"} | FOUNDATION,
    # labeling's config validates --runner with the one runner rule (cluster.session; Ray is imported
    # there only inside connect(), and ray_imports below checks that labeling never imports it).
    "labeling": {"datasets", "geometry", "tracking", "lifting", "evaluation", "cluster"} | FOUNDATION,
    "cluster": FOUNDATION,
    "actors": {"labeling", "datasets", "geometry", "tracking", "lifting", "evaluation", "cluster"}
    | FOUNDATION,
    "training": {"labeling", "datasets", "geometry", "lifting", "models", "evaluation", "cluster"}
    | FOUNDATION,
    "serving": {"models", "openvocab", "datasets", "geometry", "evaluation", "cluster"} | FOUNDATION,
}
TOP = {"cli", "main_job", "pipeline"}  # the commands: may import every package; only cli and the
# console script (tracklift/__init__.py) import them
# Only the Ray layer imports ray; every algorithm runs in one process without it.
RAY_PACKAGES = {"actors", "training", "serving", "cluster"} | TOP


# -- the graph ------------------------------------------------------------------------------------------


@dataclass
class Graph:
    """Modules of the source tree and their imports.

    Attributes:
        modules: dotted module name → path.
        edges: module → imported tracklift modules that run at import or call time.
        type_edges: module → tracklift modules imported only under ``TYPE_CHECKING``.
        external: module → top-level names of the other packages it imports (``ray``, ``torch``, ...).
    """

    modules: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    type_edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    external: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """``tracklift.datasets.synthetic.raycast`` → ``datasets``; ``tracklift.cli`` → ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, str, bool]]:
    """``(imported dotted name, alias or '', under TYPE_CHECKING)`` for every import statement, with
    relative imports resolved; ``from x import y`` gives ``("x", "y", ...)``."""
    out: list[tuple[str, str, bool]] = []
    here = module.split(".") if is_package else module.split(".")[:-1]

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            out.extend((a.name, "", typing_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = here[: len(here) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            out.extend((base, a.name, typing_only) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(tree, False)
    return out


def _dynamic_imports(tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """Module names given as string constants in a module that calls ``importlib.import_module``."""
    calls = any(isinstance(n, ast.Attribute) and n.attr == "import_module" for n in ast.walk(tree))
    if not calls:
        return set()
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in modules}


def build_graph(src: Path = SRC) -> Graph:
    """Parse every module under ``src/tracklift`` and collect its imports (see the module docstring)."""
    paths = sorted((src / ROOT).rglob("*.py"))
    g = Graph({module_name(p, src): p for p in paths})
    for mod, path in g.modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        own = mod.split(".")
        own_packages = {".".join(own[:i]) for i in range(1, len(own) + 1)}
        targets: list[tuple[str, bool]] = []
        for base, alias, typing_only in _imports(tree, mod, path.name == "__init__.py"):
            if base.split(".")[0] != ROOT:
                g.external[mod].add(base.split(".")[0])
                continue
            sub = f"{base}.{alias}" if alias else ""
            targets.append((sub if sub in g.modules else base, typing_only))
        targets += [(m, False) for m in _dynamic_imports(tree, g.modules)]
        for target, typing_only in targets:
            parts = target.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ first, except the importer's own packages
            chain = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
            for t in chain:
                if t in g.modules and t not in own_packages and t != mod:
                    (g.type_edges if typing_only else g.edges)[mod].add(t)
    return g


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one module (import circles), each sorted, by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            connect(v)
    return sorted(out)


def cycle_path(edges: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete circle ``[a, b, ..., a]`` through the first module of a strongly connected component."""
    inside = set(component)
    start = component[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the shortest circle back to start
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ()) & inside):
                if w == start:
                    path = [v]  # back from v to start through the breadth-first parents
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def package_edges(g: Graph, with_types: bool = True) -> dict[str, dict[str, int]]:
    """package → {imported package: number of module edges}, own package left out."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for kind in (g.edges, g.type_edges) if with_types else (g.edges,):
        for a, targets in kind.items():
            for b in targets:
                pa, pb = package_of(a), package_of(b)
                if pa != pb:
                    out[pa][pb] += 1
    return out


def layering_violations(g: Graph) -> list[str]:
    """``a imports b`` lines for every import a package's row of :data:`MAY_IMPORT` does not allow."""
    bad = []
    for kind in (g.edges, g.type_edges):
        for a, targets in sorted(kind.items()):
            pa = package_of(a)
            for b in sorted(targets):
                pb = package_of(b)
                if pa == pb or pa in TOP and (pb not in TOP or pa == "cli"):
                    continue
                if pb not in MAY_IMPORT.get(pa, set()):
                    bad.append(
                        f"{a} imports {b} ({pa} may import: {', '.join(sorted(MAY_IMPORT.get(pa, ())))})"
                    )
    return bad


def ray_imports(g: Graph) -> list[str]:
    return sorted(m for m, ext in g.external.items() if "ray" in ext and package_of(m) not in RAY_PACKAGES)


# -- the tests ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph()


def test_the_graph_sees_module_level_function_level_relative_and_submodule_imports(graph):
    assert len(graph.modules) > 50 and "tracklift.geometry.camera" in graph.modules
    # module level, and the package __init__ that importing a submodule runs
    assert "tracklift.geometry.compiled" in graph.edges["tracklift.lifting.project"]
    assert "tracklift.geometry" in graph.edges["tracklift.lifting.project"]
    # function level: cli imports the render command inside a function
    assert "tracklift.evaluation.render" in graph.edges["tracklift.cli"]
    # `from tracklift.datasets.synthetic import appearance` names a submodule
    assert "tracklift.datasets.synthetic.appearance" in graph.edges["tracklift.datasets.synthetic.meshing"]
    # importlib.import_module with the names in a table
    assert "tracklift.datasets.scannet" in graph.edges["tracklift.datasets.formats"]
    # TYPE_CHECKING-only imports are kept apart
    assert "tracklift.openvocab.encoder" in graph.type_edges["tracklift.openvocab"]


def test_relative_imports_are_resolved(tmp_path):
    pkg = tmp_path / ROOT / "a"
    pkg.mkdir(parents=True)
    (tmp_path / ROOT / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import x\n    from ..d import y\n")
    (pkg / "c.py").write_text("x = 1\n")
    (tmp_path / ROOT / "d.py").write_text("from tracklift.a.b import f\ny = 2\n")
    g = build_graph(tmp_path)
    assert g.edges["tracklift.a"] == {"tracklift.a.b"}
    assert g.edges["tracklift.a.b"] == {"tracklift.a.c", "tracklift.d"}
    assert g.edges["tracklift.d"] == {"tracklift.a", "tracklift.a.b"}
    cycles = strongly_connected(g.edges)
    assert cycles == [["tracklift.a", "tracklift.a.b", "tracklift.d"]]
    assert cycle_path(g.edges, cycles[0]) == ["tracklift.a", "tracklift.a.b", "tracklift.d", "tracklift.a"]


def test_no_import_cycles(graph):
    cycles = strongly_connected(graph.edges)
    paths = [" → ".join(cycle_path(graph.edges, c)) for c in cycles]
    assert not cycles, "import circles:\n" + "\n".join(paths)


def test_every_package_has_a_row_in_the_rules(graph):
    packages = {package_of(m) for m in graph.modules}
    assert packages - set(MAY_IMPORT) - TOP == set()


def test_imports_go_down_the_floors(graph):
    bad = layering_violations(graph)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_geometry_imports_nothing_of_tracklift_but_errors(graph):
    for mod in graph.modules:
        if package_of(mod) == "geometry":
            targets = graph.edges[mod] | graph.type_edges[mod]
            assert {package_of(t) for t in targets} <= {"geometry", "errors"}, mod
            allowed = {"__future__", "dataclasses", "math", "typing", "numpy", "torch"}
            if mod == "tracklift.geometry.compiled":
                # the jit helper: numba, logging to warn when it is missing, os for the thread budget
                allowed |= {"numba", "logging", "os"}
            assert graph.external[mod] <= allowed, mod


def test_only_the_ray_layer_imports_ray(graph):
    assert ray_imports(graph) == []


# -- the report -----------------------------------------------------------------------------------------


def report(g: Graph) -> str:
    lines = [f"{len(g.modules)} modules, {sum(len(t) for t in g.edges.values())} import edges", ""]
    lines.append("package edges (module edges; t = only under TYPE_CHECKING):")
    runtime = package_edges(g, with_types=False)
    for pa, targets in sorted(package_edges(g).items()):
        parts = [
            f"{pb} ({n}{'' if pb in runtime.get(pa, {}) else ' t'})" for pb, n in sorted(targets.items())
        ]
        lines.append(f"  {pa:<11} → {', '.join(parts)}")
    cycles = strongly_connected(g.edges)
    lines += ["", f"import circles: {len(cycles)}"]
    for comp in cycles:
        lines.append(f"  {' → '.join(cycle_path(g.edges, comp))}")
        if len(comp) > 2:
            lines.append(f"      component: {', '.join(comp)}")
    bad = layering_violations(g)
    lines += ["", f"layering violations: {len(bad)}", *(f"  {b}" for b in bad)]
    ray = ray_imports(g)
    lines += ["", f"ray imported outside the Ray layer: {len(ray)}", *(f"  {m}" for m in ray)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(build_graph()))
