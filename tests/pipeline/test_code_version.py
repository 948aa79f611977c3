"""Code versions come from the imports: every module a node runs counts, and no other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline import code_version
from tests.helpers import REPO_ROOT, SAMPLE_CONFIG

ROOT = REPO_ROOT


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    # Each way of importing a module the project uses: plain, from-package, inside a function, relative,
    # and a third-party import that must not count.
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/main.py": "import json\nfrom app import helper as helper_lib\n\n\ndef run():\n"
            "    from app.lazy import thing\n    return thing\n",
            "app/helper.py": "from . import deep\n",
            "app/deep.py": "import app.leaf\n",
            "app/leaf.py": "X = 1\n",
            "app/lazy.py": "thing = 2\n",
            "app/unused.py": "import app.main\n",
        },
    )
    return tmp_path


def test_closure_follows_every_kind_of_import(tiny_project: Path):
    closure = code_version.module_closure(["app.main"], tiny_project)
    assert sorted(closure) == ["app", "app.deep", "app.helper", "app.lazy", "app.leaf", "app.main"]


def test_editing_a_module_in_the_closure_changes_the_version_and_others_do_not(tiny_project: Path):
    before = code_version.code_version(["app.main"], tiny_project)
    assert code_version.code_version(["app.main"], tiny_project) == before  # Deterministic.
    with (tiny_project / "app/unused.py").open("a") as handle:
        handle.write("\n\ndef more():\n    return 3\n")
    assert code_version.code_version(["app.main"], tiny_project) == before
    for name in ("app/main.py", "app/helper.py", "app/deep.py", "app/leaf.py", "app/lazy.py", "app/__init__.py"):
        path = tiny_project / name
        original = path.read_text()
        path.write_text(original + "\n\ndef appended():\n    return 0\n")
        assert code_version.code_version(["app.main"], tiny_project) != before, name
        path.write_text(original)
        assert code_version.code_version(["app.main"], tiny_project) == before, name


def test_the_version_does_not_depend_on_where_the_checkout_is(tiny_project: Path, tmp_path_factory):
    moved = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(tiny_project / "app", moved / "app")
    assert code_version.code_version(["app.main"], moved) == code_version.code_version(["app.main"], tiny_project)


def test_a_root_that_is_not_a_project_module_is_an_error(tiny_project: Path):
    with pytest.raises(ValueError, match="app.missing"):
        code_version.code_version(["app.missing"], tiny_project)


def test_extra_files_count_by_content(tmp_path: Path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature {}\n")
    before = code_version.code_version((), tmp_path, extra_files=[schema])
    schema.write_text("feature { name: 'x' }\n")
    assert code_version.code_version((), tmp_path, extra_files=[schema]) != before


@pytest.fixture(scope="module")
def node_modules() -> dict[str, list[str]]:
    from pipeline import config as config_lib
    from pipeline import pipeline as pipeline_lib

    config = config_lib.load_config(SAMPLE_CONFIG)
    return pipeline_lib.node_code_modules(pipeline_lib.eval_config(config))


def test_every_module_a_node_runs_is_in_its_version_and_no_other(node_modules, tmp_path: Path):
    """On a copy of this checkout: appending a function to any module in a node's closure changes that node's
    version; appending one to a project module outside it leaves the version alone."""
    for package in ("components", "pipeline"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    every_module = {
        ".".join(path.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__")
        for path in tmp_path.rglob("*.py")
    }
    for node, roots in node_modules.items():
        closure = code_version.module_closure(roots, tmp_path)
        before = code_version.code_version(roots, tmp_path)
        outside = sorted(every_module - closure.keys())
        assert outside, node
        for module in [*sorted(closure), outside[0], outside[-1]]:
            path = code_version.module_file(module, tmp_path)
            original = path.read_bytes()
            path.write_bytes(original + b"\n\ndef appended_by_the_test():\n    return 0\n")
            changed = code_version.code_version(roots, tmp_path) != before
            path.write_bytes(original)
            assert changed == (module in closure), f"{node}: editing {module}"


def test_the_trainer_counts_the_augmentation_it_imports(node_modules):
    # The case that served a stale model: components/trainer/augment.py was missing from a hand-kept list.
    closure = code_version.module_closure(node_modules["Trainer"])
    assert {
        "components.trainer.augment",
        "components.trainer.model",
        "components.trainer.training",
        "components.trainer.export",
    } <= closure.keys()
    assert "pipeline.tracking.report.plots" not in closure


def test_the_pipeline_carries_each_nodes_version(tmp_path: Path):
    from pipeline import config as config_lib
    from pipeline import pipeline as pipeline_lib

    config = config_lib.load_config(SAMPLE_CONFIG)
    pipeline = pipeline_lib.create_pipeline(config, str(tmp_path / "root"), str(tmp_path / "serving"))
    versions = pipeline_lib.node_code_versions(pipeline_lib.eval_config(config))
    nodes = {node.id: node for node in pipeline.components}
    for node in ("Trainer", "Transform"):
        assert json.loads(nodes[node].exec_properties["custom_config"])["code_version"] == versions[node], node
    for node in ("AnomaliesGate", "Champion", "Evaluator", "Pusher"):
        assert nodes[node].exec_properties["code_version"] == versions[node], node
    assert (
        '"code_version": "' + versions["ImageExampleGen"] in nodes["ImageExampleGen"].exec_properties["custom_config"]
    )
    assert len(nodes["ImportSchemaGen"].exec_properties["code_version"]) == 16
