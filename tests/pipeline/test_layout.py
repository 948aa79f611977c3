"""The house's rules, read from the code's own imports (docs/architecture.md): the steps never import the
wiring, no import circle, shared names import nothing, modules stay small, and the two top-level import names
are ours alone."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

PACKAGES = ("components", "pipeline", "benchmarks", "tools")
# What `pip install` puts in the environment (pyproject.toml); benchmarks/ and tools/ run from the checkout only.
INSTALLED = ("components", "pipeline")
# Modules over the line that each do one job, and why they stay whole.
LONG_MODULES = {
    "pipeline.tracking.mlflow_log": "everything a run writes to MLflow, one function per part of the run page",
    # To split next (reading helpers, one module per format), with the house's second step.
    "components.ingest.formats": "the annotation formats: detection, one reader per format, the side table",
}
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, module: str) -> set[str]:
    """The project modules `path` imports, anywhere in it (inside functions too), but not under TYPE_CHECKING."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    # `from a.b import c` imports the module a.b.c when there is one, else the name c of a.b.
    return {name if name in MODULES else name.rpartition(".")[0] for name in names} & MODULES.keys() - {module}


GRAPH = {module: _imports(path, module) for module, path in MODULES.items()}


def test_the_modules_are_found():
    assert {"components.names", "components.trainer.model", "pipeline.tracking.result", "pipeline.cli"} <= set(GRAPH)
    assert "components.trainer.model" in GRAPH["components.trainer.training"]  # The reading sees real imports.


def test_no_step_imports_the_wiring():
    upward = {
        (module, imported)
        for module, imports in GRAPH.items()
        if module.startswith("components")
        for imported in imports
        if imported.startswith(("pipeline", "benchmarks", "tools"))
    }
    assert not upward, f"components/ imports the floors above it: {sorted(upward)}"


def test_the_installed_packages_import_nothing_left_in_the_checkout():
    outside = {
        (module, imported)
        for module, imports in GRAPH.items()
        if module.startswith(INSTALLED)
        for imported in imports
        if not imported.startswith(INSTALLED)
    }
    assert not outside, f"installed modules import what is not installed: {sorted(outside)}"


def test_the_shared_names_import_nothing():
    tree = ast.parse(MODULES["components.names"].read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def test_there_is_no_import_circle():
    # Strongly connected components (Tarjan): any with two modules or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in GRAPH[module]:
            if imported not in index:
                connect(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == module:
                    break
            if len(members) > 1:
                circles.append(sorted(members))

    for module in GRAPH:
        if module not in index:
            connect(module)
    assert not circles, f"modules that import each other: {circles}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_stays_small_unless_it_is_one_job(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES or module in LONG_MODULES, f"{module}: {lines} lines; split it, or say why it is one job"


def test_the_long_module_list_names_only_long_modules():
    for module in LONG_MODULES:
        assert len(MODULES[module].read_text().splitlines()) > MAX_LINES, f"{module} is no longer long: drop it"


def test_no_other_installed_distribution_provides_our_top_level_names():
    """`pipeline` and `components` are generic names: another package installing either would shadow ours."""
    clashes = []
    for distribution in importlib.metadata.distributions():
        if distribution.metadata["Name"] == "xfer":
            continue
        top_level = (distribution.read_text("top_level.txt") or "").split()
        files = {str(file).split("/", 1)[0] for file in distribution.files or () if "/" in str(file)}
        for name in ("pipeline", "components"):
            if name in top_level or name in files:
                clashes.append((distribution.metadata["Name"], name))
    assert not clashes, f"installed distributions that also provide our top-level names: {clashes}"
