"""The layering of chromata's modules, read from the source (every import, including those inside functions).

* No import cycle among chromata's modules: a lazy import inside a function still ties the two modules
  together (each needs the other to be understood, tested or moved), so it counts.
* The domain core (``chromata/`` outside ``chromata/review`` and ``chromata/cli``) never imports the review
  app: the queue and web app build on the core, not the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# installed package -> folder in the repository (pyproject's package-dir)
PACKAGES = {"chromata": ROOT / "chromata", "chromata.flows": ROOT / "flows", "chromata.actors": ROOT / "actors"}
ALLOWED_REVIEW_IMPORTERS = ("chromata.review", "chromata.cli")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            if "migrations" in path.parts:  # Alembic revision scripts are loaded by Alembic, not imported
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The chromata modules ``name`` imports (the module itself, not the packages above it)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from chromata import calibration` imports the submodule; `from chromata.x import f` the module x
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import chromata.models.builtin.x` -> the deepest module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_and_relative_imports():
    graph = _graph()
    assert len(graph) > 40
    assert "chromata.models.builtin" in graph["chromata.models"]  # imported inside load_colorizer
    assert "chromata.flows.colorize_collection" in graph["chromata.cli.run"]  # inside the run command
    assert "chromata.calibration_map" in graph["chromata.confidence"]


def test_cycle_detection_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_chromata_modules():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (lazy imports count): " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_core_does_not_import_the_review_app():
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in _graph().items()
        if name.startswith("chromata.")
        and not name.startswith(("chromata.flows", "chromata.actors", *ALLOWED_REVIEW_IMPORTERS))
        for target in targets
        if target == "chromata.review" or target.startswith("chromata.review.")
    )
    assert not offenders, "core modules importing chromata.review: " + "; ".join(offenders)
