"""The layering of chromata's modules, read from the source (every import, including those inside functions).

* No import cycle among chromata's modules: a lazy import inside a function still ties the two modules
  together (each needs the other to be understood, tested or moved), so it counts.
* The domain core (``chromata/`` outside ``chromata/review`` and ``chromata/cli``) never imports the review
  app: the queue and web app build on the core, not the other way round.
* The rooms: ``chromata/`` holds packages, one per job, and a handful of modules (the version, errors, the
  configs). ``ALLOWED`` below says which rooms each room may import; an arrow not in it fails, and so does a new
  room nobody placed. The rules themselves form no cycle, so the rooms stack.
* A nightly run (the flows and the colorizer actors, with every package their imports open) imports no study,
  no training and no CLI code.
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
    assert "chromata.judgement.calibration_map" in graph["chromata.judgement.confidence"]


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


# Which rooms each room may import (direct imports, lazy ones included). A room is a package under chromata/
# (or flows/, actors/), or one of the top-level modules. Reading down the table is reading up the stack.
TOP_LEVEL_MODULES = {"errors", "config", "collections_config"}  # and chromata/__init__.py: the version
# fmt: off
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "colormath": {"errors"},  # colour maths: Lab, the fused merge kernels, the torch twins
    "archive": {"errors"},  # storage backends, inventory
    "media": {"errors"},  # decode/encode, formats, labels: never judgement, models or the record
    "record": {"errors", "archive", "media"},  # manifest, index, decisions, runs, provenance chain, IIIF
    "judgement": {"errors", "colormath", "archive", "record"},  # record: its reading side only (below)
    "models": {"errors", "colormath", "archive", "judgement"},
    "config": {"errors", "judgement", "media", "models", "record"},
    "collections_config": {"errors", "config"},
    "pipeline": {"chromata", "errors", "config", "colormath", "archive", "media", "record", "judgement", "models"},
    "monitoring": {"archive", "judgement", "pipeline", "record"},
    "training": {"errors", "colormath", "archive", "models"},
    "studies": {"errors", "colormath", "archive", "media", "judgement", "models", "training"},  # training: cross-fit
    "review": {"chromata", "errors", "colormath", "archive", "judgement", "monitoring", "record"},
    "actors": {"chromata", "errors", "config", "models", "monitoring", "pipeline", "training"},
    "flows": {"archive", "collections_config", "config", "judgement", "monitoring", "pipeline", "record", "review",
              "actors"},
    "cli": {"chromata", "errors", "config", "collections_config", "colormath", "archive", "media", "record",
            "judgement", "models", "pipeline", "monitoring", "studies", "training", "review", "flows", "actors"},
}
# fmt: on
# Judgement learns from curators' decisions by reading the manifest index; it never writes the record.
JUDGEMENT_READS_FROM_RECORD = {"chromata.record.manifest_index"}
NIGHTLY_ROOTS = ("chromata.flows.nightly", "chromata.flows.colorize_collection", "chromata.actors.colorizer")
NEVER_NIGHTLY = ("chromata.studies", "chromata.training", "chromata.cli")


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "chromata"


def _arrows(graph: dict[str, set[str]]) -> dict[tuple[str, str], list[str]]:
    """Room -> room arrows, each with the module imports that make it."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for name, targets in graph.items():
        for target in targets:
            if _room(name) != _room(target):
                arrows.setdefault((_room(name), _room(target)), []).append(f"{name} -> {target}")
    return arrows


def _disallowed(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} may not import {b}: {', '.join(sorted(why)[:3])}"
        for (a, b), why in _arrows(graph).items()
        if a != "chromata" and b not in allowed.get(a, set())
    )


def test_the_top_level_holds_packages_and_a_handful_of_modules():
    modules = {p.stem for p in (ROOT / "chromata").glob("*.py")} - {"__init__"}
    assert modules <= TOP_LEVEL_MODULES, f"modules outside a room: {sorted(modules - TOP_LEVEL_MODULES)}"
    rooms = {p.parent.name for p in (ROOT / "chromata").glob("*/__init__.py")} | {"flows", "actors"}
    assert rooms | TOP_LEVEL_MODULES == set(ALLOWED), "every room is placed in ALLOWED, and only rooms are"


def test_every_room_says_what_it_owns_and_may_import():
    for init in sorted((ROOT / "chromata").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc) > 200 and "May import" in doc, f"{init.relative_to(ROOT)}: say what it owns and may import"


def test_the_rules_stack_without_a_cycle():
    assert _cycles(ALLOWED) == []


def test_the_rules_catch_a_planted_arrow():
    planted = {"chromata.media.imageio": {"chromata.judgement.confidence"}, "chromata.judgement.confidence": set()}
    assert _disallowed(planted, ALLOWED) == [
        "media may not import judgement: chromata.media.imageio -> chromata.judgement.confidence"
    ]
    assert _disallowed({"chromata.newroom.x": {"chromata.errors"}}, ALLOWED) == [
        "newroom may not import errors: chromata.newroom.x -> chromata.errors"
    ]


def test_every_import_between_rooms_is_allowed():
    offenders = _disallowed(_graph(), ALLOWED)
    assert not offenders, "imports against the rooms' rules (tests/test_layers.py ALLOWED):\n" + "\n".join(offenders)


def test_judgement_reads_the_record_and_never_writes_it():
    reads = {t for (a, b), why in _arrows(_graph()).items() if (a, b) == ("judgement", "record") for t in why}
    assert reads, "the rule is about a real arrow: routing_fit reads the manifest index"
    targets = {r.split(" -> ")[1] for r in reads}
    assert targets <= JUDGEMENT_READS_FROM_RECORD, f"judgement imports more of the record: {sorted(reads)}"


def test_a_nightly_run_imports_no_study_training_or_cli_code():
    """Module by module from the nightly flow and the colorizer actor, counting lazy imports and the package
    ``__init__`` every import runs, so the closure over-approximates what a nightly run loads."""
    graph = _graph()
    seen: set[str] = set()
    todo = list(NIGHTLY_ROOTS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(graph[name])
        todo.extend(p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in graph)
    assert len(seen) > 40 and "chromata.pipeline.scheduler" in seen and "chromata.record.manifest" in seen
    loaded = sorted(m for m in seen if m.startswith(NEVER_NIGHTLY))
    assert not loaded, f"a nightly run would import {loaded}"


def test_the_wheel_lists_every_room():
    """pyproject lists its packages one by one: a room missing there works in an editable install and is absent
    from the wheel a cluster's workers install."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(("chromata", *init.parent.relative_to(ROOT / "chromata").parts)).rstrip(".")
        for init in (ROOT / "chromata").rglob("__init__.py")
    }
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
