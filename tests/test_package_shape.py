"""The package keeps its shape: its layers, no import cycle between its modules, no module over
500 lines.

Imports are read from the whole source: module level, inside functions and under
`if TYPE_CHECKING:` alike (an import inside a function is still a dependency, only a later one).
An import of a name from a package counts as an import of that package's __init__, or of the
submodule when the name is one.

The layers, lowest first: a module may import its own layer and the layers below it, never one
above. A folder name tells the layer: `cluster/` (the model probes read) sits below `probes/`,
`runtime/` (what runs them) above; `report/` (findings) below, `render/` (the report built from
the probes' results, as text and JSON) above.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path

import etcd_inspector

PACKAGE = Path(etcd_inspector.__file__).parent
MAX_LINES = 500

# Top-level package or module of etcd_inspector -> its layer, lowest first. A new package or
# top-level module must be placed here.
LAYERS: dict[str, int] = {
    # leaves: they import nothing of the package above them
    "__init__": 0,  # etcd_inspector itself (the version)
    "errors": 0,
    "exitcodes": 0,
    "logsetup": 0,
    "ports": 0,
    "sharding": 0,  # which clusters a replica watches (pure; names only)
    # renders the jsonnet mixin and reads its values; findings' thresholds come from it
    "mixin": 0,
    # the etcd adapter and pure keyspace helpers
    "etcd": 1,
    "keyspace": 1,
    # the configuration
    "config": 2,
    # what probes build on: the cluster model, the backup model, findings and text helpers
    "cluster": 3,
    "backup": 3,
    "report": 3,
    "probes": 4,
    # what runs the probes: clients, scheduler, supervisor wiring, the preflight check
    "runtime": 5,
    # the report built from the probes' results, and its renderings
    "render": 6,
    # the faces: the web app, the one-shot commands, the flags that read the probe table
    "web": 7,
    "inspect": 7,
    "snapshot": 7,
    "drill": 7,  # game-day drills: polls Prometheus/Alertmanager, renders its report
    "flags": 7,
    # entry points: the CLI and the demo that starts everything
    "demo": 8,
    "cli": 8,
    "__main__": 8,
}

# Import edges that break the rules above, each with its reason (none today: the one known cycle,
# config/webconfig.py <-> web/tls.py, went when the web config moved into web/).
ALLOWED_EDGES: frozenset[tuple[str, str]] = frozenset()

Graph = Mapping[str, Sequence[str]]


def module_name(path: Path) -> str:
    parts = ["etcd_inspector", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_key(module: str) -> str:
    """The LAYERS key of a module: its top-level package or module under etcd_inspector."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _absolute(name: str, node: ast.ImportFrom) -> str | None:
    """The module an ImportFrom names, relative imports resolved against `name`."""
    if node.level == 0:
        return node.module
    is_package = MODULES[name].name == "__init__.py"
    base = name.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def _known(dotted: str) -> str | None:
    """`dotted` or its nearest parent that is a module of the package."""
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def imports_of(name: str) -> set[str]:
    """Every module of the package that `name` imports, wherever the import statement sits."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(name, node)
            if module is None:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    resolved = {_known(m) for m in found}
    return {m for m in resolved if m is not None and m != name}


def import_graph() -> dict[str, list[str]]:
    return {m: sorted(imports_of(m)) for m in MODULES}


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: Graph, layers: Mapping[str, int]) -> list[str]:
    """Every edge from a lower layer to a higher one, as one readable line each."""
    out = []
    for source, targets in graph.items():
        for target in targets:
            a, b = layer_key(source), layer_key(target)
            if layers[a] < layers[b]:
                out.append(f"{source} (layer {layers[a]}) imports {target} (layer {layers[b]})")
    return sorted(out)


def _without_allowed(graph: Graph) -> dict[str, list[str]]:
    return {m: [t for t in ts if (m, t) not in ALLOWED_EDGES] for m, ts in graph.items()}


def test_the_walk_sees_every_import() -> None:
    assert len(MODULES) > 40  # the walk found the package
    assert "etcd_inspector.probes.base" in imports_of("etcd_inspector.probes.status")
    # inside a function (cli imports each command's module when it runs)
    assert "etcd_inspector.snapshot" in imports_of("etcd_inspector.cli")
    # under `if TYPE_CHECKING:`
    assert "etcd_inspector.runtime.runtime" in imports_of("etcd_inspector.render.inspection")


def test_the_checks_catch_what_they_are_for() -> None:
    graph = {
        "etcd_inspector.errors": ["etcd_inspector.probes.base"],
        "etcd_inspector.probes.base": ["etcd_inspector.errors"],
        "etcd_inspector.cli": ["etcd_inspector.errors"],
    }
    assert cycles(graph) == [["etcd_inspector.errors", "etcd_inspector.probes.base"]]
    assert upward_imports(graph, LAYERS) == [
        "etcd_inspector.errors (layer 0) imports etcd_inspector.probes.base (layer 4)"
    ]


def test_every_package_has_a_layer() -> None:
    assert {layer_key(m) for m in MODULES} == set(LAYERS)


def test_no_lower_layer_imports_a_higher_one() -> None:
    assert upward_imports(_without_allowed(import_graph()), LAYERS) == []


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(_without_allowed(import_graph())) == []


def test_every_allowed_edge_is_still_there() -> None:
    """An exception outlives its reason only until this fails."""
    graph = import_graph()
    assert {(a, b) for a, b in ALLOWED_EDGES if b not in graph.get(a, [])} == set()


def test_no_module_is_over_500_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_the_configuration_package_stays_under_1220_lines() -> None:
    """One pydantic style (issue 18): config/ shrank from 1,702 lines in three schema styles.
    What is not configuration (sharding, the web config's TLS) lives where it is used. (1200
    until the YAML reader became its own module, loaded only with a file: issue 21.)"""
    config = Path(etcd_inspector.__file__).parent / "config"
    assert sum(len(p.read_text().splitlines()) for p in config.glob("*.py")) < 1220
