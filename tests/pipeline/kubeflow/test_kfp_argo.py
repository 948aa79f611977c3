"""The emulator's Argo layer (tests/helpers/kfp_argo.py) against KFP 2.17.0's own compiler output, and what it
says of the compiled package: the Workflow KFP builds for it, the pod names Argo derives, and Argo's retries.

Golden pairs: KFP 2.17.0 ships, for its compiler's tests, pipeline specs
(`test_data/sdk_compiled_pipelines/valid/**.yaml`) and the Workflows its backend compiles them into
(`test_data/compiled-workflows/*.yaml`; backend/test/compiler/argo_ginkgo_test.go). They are KFP's files under
its Apache-2.0 licence, vendored unchanged in tests/data/kfp_golden/2.17.0/ (`specs/<name>.yaml`,
`workflows/<name>.yaml`, `LICENSE`; its README names each file's source).
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import REPO_ROOT, SAMPLE_CONFIG, k8s_names, kfp_argo

GOLDEN_NAMES = (
    "pipeline_with_retry",
    "pipeline_with_caching",
    "pipeline_with_env",
    "pipeline_with_secret_as_env",
    "hello_world",
    "two_step_pipeline",
)


GOLDEN_DIR = REPO_ROOT / "tests" / "data" / "kfp_golden" / "2.17.0"


def load_golden(name: str) -> tuple[dict, dict | None, dict]:
    folder = GOLDEN_DIR
    documents = [doc for doc in yaml.safe_load_all((folder / "specs" / f"{name}.yaml").read_text()) if doc]
    platform = next((doc for doc in documents[1:] if "platforms" in doc), None)
    workflow = yaml.safe_load((folder / "workflows" / f"{name}.yaml").read_text())
    return documents[0], platform, workflow


def runtime_config_of(golden: dict) -> dict:
    """The runtime config the golden compile had: the root driver's argument (defaults filled in by Compile)."""
    entrypoint = kfp_argo.template(golden, "entrypoint")
    (root_driver,) = [task for task in entrypoint["dag"]["tasks"] if task["name"] == "root-driver"]
    (value,) = [p["value"] for p in root_driver["arguments"]["parameters"] if p["name"] == "runtime-config"]
    config = json.loads(value)
    config.pop("parameterValues", None)  # compile_workflow fills the root's defaults itself.
    return config


def comparable_value(workflow: dict, value: str):
    """An argument's value with workflow parameters resolved, and JSON parsed, so that the Go hash in a
    parameter's name and encoding/json's escapes do not count, while what the reference points at does."""
    resolved = kfp_argo.resolve(workflow, value)
    try:
        return json.loads(resolved)
    except (json.JSONDecodeError, TypeError):
        return resolved


def comparable(workflow: dict) -> dict:
    """What is compared, per template: its name and order; inputs and outputs; the DAG's tasks (name, template,
    dependencies as a set, `when`, arguments resolved); the retry strategy; the pod spec patch; the launcher's
    volumes, mounts and env; the runtime role. Not compared: the drivers' command-line flags and the images
    (the API server's environment: server addresses, log level, proxies, V2_DRIVER_IMAGE), resources and
    security contexts (cluster policy, not the DAG or any name), and the names of the `components-<hash>`
    parameters (a hash of Go's encoding of a struct; every reference is compared by what it resolves to)."""
    templates = []
    for item in workflow["spec"]["templates"]:
        entry = {
            "name": item["name"],
            "inputs": item.get("inputs", {}).get("parameters", []),
            "outputs": item.get("outputs", {}).get("parameters", []),
            "retryStrategy": item.get("retryStrategy"),
            "podSpecPatch": item.get("podSpecPatch"),
            "role": item.get("metadata", {}).get("annotations", {}).get("pipelines.kubeflow.org/runtime-role"),
        }
        if "dag" in item:
            entry["tasks"] = [
                {
                    "name": task["name"],
                    "template": task["template"],
                    "depends": set(filter(None, task.get("depends", "").split(" && "))),
                    "when": task.get("when"),
                    "arguments": [
                        {**p, "value": comparable_value(workflow, p.get("value", ""))}
                        for p in task.get("arguments", {}).get("parameters", [])
                    ],
                }
                for task in item["dag"]["tasks"]
            ]
        if "container" in item and item.get("podSpecPatch"):
            container = item["container"]
            entry["launcher"] = {
                "env": container.get("env"),
                "envFrom": container.get("envFrom"),
                "volumeMounts": container.get("volumeMounts"),
                "volumes": item.get("volumes"),
                "init": [(c["name"], c["command"], c["args"]) for c in item.get("initContainers", [])],
            }
        templates.append(entry)
    return {"generateName": workflow["metadata"]["generateName"], "templates": templates}


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_the_workflow_builder_matches_kfp_2_17s_compiler_on_its_golden_files(name):
    spec, platform, golden = load_golden(name)
    built = kfp_argo.compile_workflow(spec, platform, runtime_config_of(golden))
    expected, got = comparable(golden), comparable(built)
    assert [t["name"] for t in got["templates"]] == [t["name"] for t in expected["templates"]]
    for want, have in zip(expected["templates"], got["templates"], strict=True):
        assert have == want, want["name"]
    assert got == expected


def test_the_golden_files_come_with_kfps_license():
    assert "Apache License" in (GOLDEN_DIR / "LICENSE").read_text()[:200]
    assert sorted(path.stem for path in (GOLDEN_DIR / "specs").glob("*.yaml")) == sorted(GOLDEN_NAMES)


# -- the compiled package on KFP 2.17.0 and on 2.5.0 --------------------------------------------------------


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from pipeline import config as config_lib
    from pipeline.kubeflow import runner

    config = config_lib.load_config(SAMPLE_CONFIG)
    result = runner.compile_pipeline(config, tmp_path_factory.mktemp("kfp") / "pipeline.yaml")
    return result["pipeline_spec"], result["platform_spec"]


def executor_pods(workflow: dict, workflow_name: str) -> dict[str, str]:
    """Task -> the name Argo gives its first executor pod (node `<wf>.root.<task>.executor(0)` when retried)."""
    pods = {}
    for task in kfp_argo.template(workflow, "root")["dag"]["tasks"]:
        if task["template"].endswith("system-container-executor"):
            executor = kfp_argo.template(workflow, task["template"])
            impl = executor["dag"]["tasks"][0]["template"]
            node = f"{workflow_name}.root.{task['name']}.executor"
            if "retryStrategy" in kfp_argo.template(workflow, impl):
                node += "(0)"
            pods[task["name"]] = kfp_argo.pod_name(workflow_name, node, impl)
    return pods


def test_on_kfp_2_17_every_pod_of_the_package_has_a_name_kubernetes_accepts(package):
    workflow = kfp_argo.compile_workflow(*package, {"gcsOutputDirectory": "s3://xfer/pipeline_root"})
    name = workflow["metadata"]["generateName"] + "a1b2c"
    kfp_argo.check_workflow(workflow, name)
    pods = executor_pods(workflow, name)
    assert set(pods) == set(package[0]["root"]["dag"]["tasks"])
    for task, pod in pods.items():
        assert pod.startswith(f"{name}-retry-system-container-impl-"), task
        kfp_argo.check_pod(pod, {kfp_argo.WORKFLOW_LABEL: name}, ["main", "kfp-launcher"], ["s3-scratch"], [])


def test_on_kfp_2_5_the_same_package_gets_pod_names_kubernetes_refuses(package):
    """KFP 2.5.0 named a retried task's executor template after the task (container.go
    addContainerExecutorTemplate: `name + "-system-container-impl"`) and Argo names the pod after the template
    without lowercasing it: every executor pod of this package is refused."""
    workflow = kfp_argo.compile_workflow(*package, {}, kfp_version="2.5.0")
    name = workflow["metadata"]["generateName"] + "a1b2c"
    kfp_argo.check_workflow(workflow, name)  # Argo itself accepts capitals in template names ...
    pods = executor_pods(workflow, name)
    assert pods["Trainer"].startswith(f"{name}-Trainer-system-container-impl-")
    for pod in pods.values():
        with pytest.raises(k8s_names.InvalidName, match="a lowercase RFC 1123 subdomain"):  # ... Kubernetes not.
            kfp_argo.check_pod(pod, {}, ["main"], [], [])


def test_the_package_compiles_to_one_dag_with_kfps_dependencies_and_retries(package):
    spec, platform = package
    workflow = kfp_argo.compile_workflow(spec, platform, {})
    tasks = {task["name"]: task for task in kfp_argo.template(workflow, "root")["dag"]["tasks"]}
    assert set(tasks) == {f"{name}{suffix}" for name in spec["root"]["dag"]["tasks"] for suffix in ("", "-driver")}
    # Ingest waits for the fingerprint (a parameter), the Evaluator for the Champion (an artifact).
    assert kfp_argo.parse_depends(tasks["ImageExampleGen-driver"]["depends"]) == ["DataFingerprint"]
    assert "Champion" in kfp_argo.parse_depends(tasks["Evaluator-driver"]["depends"])
    assert "depends" not in tasks["Champion-driver"]  # A root: Argo starts it at once, beside the others.
    retry = {p["name"]: p["value"] for p in tasks["Trainer"]["arguments"]["parameters"] if "retry" in p["name"]}
    assert retry == {
        "retry-max-count": "2",
        "retry-backoff-duration": "60",
        "retry-backoff-factor": "2",
        "retry-backoff-max-duration": "3600",
    }
    strategy = kfp_argo.template(workflow, "retry-system-container-impl")["retryStrategy"]
    assert "retryPolicy" not in strategy  # Argo's default: OnFailure, so an Error node is not retried.


def test_a_pipeline_name_the_config_accepts_gives_names_argo_and_kubernetes_accept(package):
    from pipeline import config as config_lib

    spec = json.loads(json.dumps(package[0]))
    longest = "x" * config_lib.MAX_PIPELINE_NAME
    config_lib.check_pipeline_name(longest)
    spec["pipelineInfo"]["name"] = longest
    workflow = kfp_argo.compile_workflow(spec, package[1], {})
    name = workflow["metadata"]["generateName"] + "a1b2c"
    kfp_argo.check_workflow(workflow, name)
    with pytest.raises(k8s_names.InvalidName, match="63 characters"):
        kfp_argo.check_workflow(workflow, "x" + name)


# -- Argo's retries -----------------------------------------------------------------------------------------

STRATEGY = kfp_argo.RetryStrategy(limit=2, duration=60, factor=2, max_duration=3600)


def test_a_failed_attempt_is_retried_after_the_backoff_with_the_first_attempts_deadline():
    decision = kfp_argo.retry_decision(STRATEGY, [kfp_argo.Attempt("Failed", 0, 100)], now=100)
    assert (decision.action, decision.wait, decision.deadline) == ("retry", 60, 3600)
    second = kfp_argo.retry_decision(
        STRATEGY, [kfp_argo.Attempt("Failed", 0, 100), kfp_argo.Attempt("Failed", 160, 200)], now=200
    )
    assert (second.action, second.wait) == ("retry", 120)  # duration x factor^1


def test_an_error_node_is_not_retried_by_argos_default_policy():
    decision = kfp_argo.retry_decision(STRATEGY, [kfp_argo.Attempt("Error", 0, 10)], now=10)
    assert decision.action == "fail" and "Error" in decision.message


def test_no_retry_once_the_backoff_would_pass_max_duration_from_the_first_start():
    late = [kfp_argo.Attempt("Failed", 0, 3590)]
    assert kfp_argo.retry_decision(STRATEGY, late, now=3590).message == "Backoff would exceed max duration limit"
    assert kfp_argo.retry_decision(STRATEGY, late, now=3601).message == "Max duration limit exceeded"


def test_the_limit_counts_retries_not_attempts():
    attempts = [kfp_argo.Attempt("Failed", t, t + 1) for t in (0, 100, 300)]
    assert kfp_argo.retry_decision(STRATEGY, attempts, now=400).message == "No more retries left"


def test_the_strategy_is_read_as_argo_reads_the_compiled_strings():
    strategy = kfp_argo.RetryStrategy.from_template(
        {"limit": "2", "backoff": {"duration": "60", "factor": "2", "maxDuration": "3600"}}
    )
    assert strategy == STRATEGY
    # KFP's default when a task sets no maximum: "0", a deadline at the first start, so no retry at all.
    no_max = kfp_argo.RetryStrategy.from_template(
        {"limit": "2", "backoff": {"duration": "0", "factor": "2", "maxDuration": "0"}}
    )
    assert kfp_argo.retry_decision(no_max, [kfp_argo.Attempt("Failed", 0, 1)], now=1).action == "fail"
    with pytest.raises(ValueError, match="intstr.Int32"):
        kfp_argo.RetryStrategy.from_template({"limit": "2", "backoff": {"duration": "1", "factor": "1.5"}})
