"""A node's code version: a hash of the project modules its executor imports, found by reading the imports.

TFX's cache key holds a node's inputs, properties and executor class path, but not the code behind them:
editing a module the Trainer imports would otherwise serve the old model from the cache. So each node carries
this hash as a property. It is derived from the import statements (the module's own and, transitively, those of
every project module it imports, including imports inside functions), never from a hand-kept list of files,
which drifted before (a list without components/trainer/augment.py served a stale Trainer).

Only modules of this project count: those that resolve to a file under the project root. TensorFlow, TFX and
the other pinned libraries change only with the lock file, which changes the images and the venv anyway.
This module imports nothing heavy, so computing versions costs milliseconds.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The custom property / execution parameter that carries it.
CODE_VERSION = "code_version"


def module_file(module: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The file of a project module (`components.trainer.model` -> components/trainer/model.py), or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every module an import statement in `path` can load: `from a import b` may load `a.b` as well as `a`."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # Relative: resolved against this module's package.
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    # Importing `a.b.c` runs the __init__ of `a` and `a.b` too.
    return {".".join(name.split(".")[:i]) for name in names if name for i in range(1, name.count(".") + 2)}


def module_closure(modules: Iterable[str], root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """`modules` and every project module they import, directly or not: {module name: file}."""
    found: dict[str, Path] = {}
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in found:
            continue
        path = module_file(module, root)
        if path is None:
            continue
        found[module] = path
        pending.extend(_imported_modules(path, module) - found.keys())
    return found


def code_version(modules: Iterable[str], root: Path = PROJECT_ROOT, extra_files: Iterable[Path] = ()) -> str:
    """A short hash of the source of `modules`' closure (names and bytes), plus any `extra_files` the node
    reads (the curated schema for ImportSchemaGen)."""
    modules = tuple(modules)
    missing = [module for module in modules if module_file(module, root) is None]
    if missing:
        raise ValueError(f"not modules of this project: {', '.join(missing)}")
    return _hash(tuple(sorted(module_closure(modules, root).items())), tuple(Path(f) for f in extra_files))


def _hash(files: tuple[tuple[str, Path], ...], extra_files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    # Module names and contents, not paths: the same code gives the same version in any checkout.
    for name, path in files:
        digest.update(name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for path in extra_files:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def module_of(dotted_function: str) -> str:
    """`components.trainer.module.run_fn` -> `components.trainer.module`."""
    return dotted_function.rpartition(".")[0]


def add_to_component(component, version: str):
    """Gives a TFX component with a class executor (Evaluator, Pusher, ImportSchemaGen) `code_version` as one
    more execution parameter, so it becomes part of the node's cache key; the executors read their own keys
    and ignore it. Returns the component.

    TFX builds these components' specs inside their constructors, from a fixed spec class, so the property is
    added by rebuilding the spec from a subclass that declares it, with the same inputs, outputs and values.
    """
    from tfx.types import component_spec

    spec = component.spec
    versioned = _versioned_spec_class(type(spec), component_spec.ExecutionParameter)
    component.spec = versioned(**spec.exec_properties, **spec.inputs, **spec.outputs, **{CODE_VERSION: version})
    return component


_VERSIONED_SPECS: dict[type, type] = {}


def _versioned_spec_class(spec_class: type, parameter: type) -> type:
    if spec_class not in _VERSIONED_SPECS:
        _VERSIONED_SPECS[spec_class] = type(
            f"CodeVersioned{spec_class.__name__}",
            (spec_class,),
            {"PARAMETERS": {**spec_class.PARAMETERS, CODE_VERSION: parameter(type=str, optional=True)}},
        )
    return _VERSIONED_SPECS[spec_class]
