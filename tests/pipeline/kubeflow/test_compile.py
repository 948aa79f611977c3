"""`xfer compile` without a cluster: the package parses with kfp's own loaders and carries the Kubernetes
settings the config asks for; no secret value gets into it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from kfp import components as kfp_components
from kfp.client import client as kfp_client

from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib
from pipeline.kubeflow import runner as kubeflow_runner
from tests.helpers import REPO_ROOT, SAMPLE_CONFIG

ROOT = REPO_ROOT
SECRET_VALUES = ("sk-test-AWS-secret-9f8e7d", "mlflow-password-4c3b2a", "https://user:pw-77@mlflow.example")


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> config_lib.Config:
    return config_lib.load_config(SAMPLE_CONFIG)


@pytest.fixture(scope="module")
def package(config, tmp_path_factory) -> Path:
    # The credentials a user has in their shell while compiling: none may leak into the package.
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_VALUES[0])
    patch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET_VALUES[1])
    patch.setenv("MLFLOW_TRACKING_URI", SECRET_VALUES[2])
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    try:
        kubeflow_runner.compile_pipeline(config, out)
    finally:
        patch.undo()
    return out


@pytest.fixture(scope="module")
def documents(package):
    return list(yaml.safe_load_all(package.read_text()))


def executor(documents, node_id: str) -> tuple[dict, dict]:
    pipeline_spec, platform_spec = documents
    label = kubeflow_runner.executor_labels(pipeline_spec)[node_id]
    container = pipeline_spec["deploymentSpec"]["executors"][label]["container"]
    platform = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]
    return container, platform


def test_package_parses_with_kfp_loaders(package):
    # What kfp.Client reads before sending (PipelineSpec and PlatformSpec protos, unknown fields rejected) ...
    loaded = kfp_client._extract_pipeline_yaml(str(package))
    assert loaded.pipeline_spec.schema_version == "2.1.0"
    assert len(loaded.platform_spec.platforms["kubernetes"].deployment_spec.executors) == 11
    # ... and kfp's component loader, which accepts the same file as a reusable pipeline.
    assert kfp_components.load_component_from_file(str(package)).name == "xfer-sample"


def test_every_node_of_the_local_dag_is_a_task(documents, config, tmp_path):
    local = pipeline_lib.create_pipeline(config, str(tmp_path / "root"), str(tmp_path / "serving"))
    local_ids = {node.id for node in local.components}
    assert len(local_ids) == 10
    # Plus the Kubeflow-only step that makes KFP's cache see new data.
    assert set(documents[0]["root"]["dag"]["tasks"]) == local_ids | {"DataFingerprint"}


def test_ingest_is_in_kfps_cache_key_through_an_uncached_fingerprint_of_the_data(documents, config):
    """KFP's cache key holds a task's input values and upstream artifact ids (cacheutils/cache.go
    GenerateCacheKey), never TFX's input fingerprint: ImageExampleGen must take the data's fingerprint as an
    input, from a step that runs in every run."""
    tasks = documents[0]["root"]["dag"]["tasks"]
    fingerprint = tasks["DataFingerprint"]
    assert fingerprint["cachingOptions"] == {"enableCache": False}
    assert fingerprint["inputs"]["parameters"]["data"]["runtimeValue"]["constant"] == config.kubeflow.data
    ingest = tasks["ImageExampleGen"]
    assert ingest["inputs"]["parameters"]["data_fingerprint"] == {
        "taskOutputParameter": {"producerTask": "DataFingerprint", "outputParameterKey": "fingerprint"}
    }
    assert "DataFingerprint" in ingest["dependentTasks"]
    container, platform = executor(documents, "DataFingerprint")
    assert container["command"] == [
        "python",
        "-m",
        "pipeline.kubeflow.entrypoint",
        "--node",
        "DataFingerprint",
        "pipeline.kubeflow.fingerprint",
    ]
    assert platform["secretAsEnv"]  # It lists the bucket.
    args = executor(documents, "ImageExampleGen")[0]["args"]
    spec = json.loads(args[args.index("--json_serialized_inputs_spec_args") + 1])
    assert spec["parameters"]["data_fingerprint"] == {"parameterType": "STRING"}


def test_the_champion_is_looked_up_when_each_run_runs_not_when_compiled(documents):
    tasks = documents[0]["root"]["dag"]["tasks"]
    champion = tasks["Champion"]
    # One compiled pipeline serves many scheduled runs: a cached lookup would be some earlier run's champion.
    assert champion["cachingOptions"] == {"enableCache": False}
    uncached = ("Champion", "DataFingerprint")
    assert {name: tasks[name]["cachingOptions"]["enableCache"] for name in tasks if name not in uncached} == {
        name: True for name in tasks if name not in uncached
    }
    parameters = {name: value["runtimeValue"]["constant"] for name, value in champion["inputs"]["parameters"].items()}
    # No version pinned at compile time, and the registry's address comes from the pod's Secret, not the package.
    assert parameters["version"] == "" and parameters["tracking_uri"] == ""
    assert parameters["registered_model"] == "xfer-sample"
    baseline = tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert baseline == {"producerTask": "Champion", "outputArtifactKey": "champion"}


def test_trainer_requests_the_gpu_on_the_gpu_pool(documents, config):
    container, platform = executor(documents, "Trainer")
    kubeflow = config.kubeflow
    assert container["resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": str(kubeflow.gpu_count)}
    assert container["resources"]["cpuLimit"] == kubeflow.trainer_resources.cpu_limit
    assert container["resources"]["memoryLimit"] == kubeflow.trainer_resources.memory_limit_gb
    assert container["image"] == kubeflow.gpu_image
    assert platform["nodeSelector"] == {"labels": {"nvidia.com/gpu.present": "true"}}
    assert platform["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_other_steps_stay_off_the_gpu_pool(documents, config):
    for node_id in kubeflow_runner.executor_labels(documents[0]):
        if node_id == "Trainer":
            continue
        container, platform = executor(documents, node_id)
        assert "accelerator" not in container["resources"], node_id
        assert "tolerations" not in platform and "nodeSelector" not in platform, node_id
        assert container["image"] == config.kubeflow.image, node_id
        assert container["resources"]["cpuLimit"] == config.kubeflow.resources.cpu_limit, node_id


def test_every_step_has_retries_secret_env_and_the_entrypoint(documents, config):
    pipeline_spec = documents[0]
    for node_id in kubeflow_runner.executor_labels(pipeline_spec):
        task = pipeline_spec["root"]["dag"]["tasks"][node_id]
        assert task["retryPolicy"]["maxRetryCount"] == config.kubeflow.retries, node_id
        container, platform = executor(documents, node_id)
        assert container["command"][:5] == ["python", "-m", "pipeline.kubeflow.entrypoint", "--node", node_id]
        (secret,) = platform["secretAsEnv"]
        assert secret["secretName"] == "xfer-pipeline"
        assert {item["envVar"] for item in secret["keyToEnv"]} == set(config.kubeflow.secret_env)
        # Secret-backed names never also appear as plain values in the container's env.
        assert not {item["name"] for item in container.get("env", [])} & set(config.kubeflow.secret_env)


def test_every_step_gets_the_config_as_plain_env_so_whichever_pod_creates_the_mlflow_run_logs_params(documents, config):
    # The MLflow run is created by whichever pod starts first, a root step (no upstream task); each step may
    # also be the first after a retry of the run. Trainer: params; Evaluator: gate table; Pusher: model name.
    tasks = documents[0]["root"]["dag"]["tasks"]
    roots = {node_id for node_id, task in tasks.items() if not task.get("dependentTasks")}
    assert roots == {"DataFingerprint", "ImportSchemaGen", "Champion"}
    for node_id in kubeflow_runner.executor_labels(documents[0]):
        container, _ = executor(documents, node_id)
        env = {item["name"]: item["value"] for item in container["env"]}
        assert config_lib.config_from_dict(json.loads(env["XFER_MLFLOW_PARAMS"])) == config, node_id
        assert env["XFER_KFP_RETRIES"] == str(config.kubeflow.retries), node_id


def test_no_secret_value_in_the_package(package):
    text = package.read_text()
    for value in SECRET_VALUES:
        assert value not in text


def test_pipeline_root_images_and_schema_come_from_the_config(documents, config):
    pipeline_spec = documents[0]
    assert pipeline_spec["schemaVersion"] == "2.1.0"
    assert pipeline_spec["defaultPipelineRoot"] == config.kubeflow.pipeline_root
    schema = pipeline_spec["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"]["parameters"]["schema_file"]
    assert schema["runtimeValue"]["constant"] == "/app/schemas/schema.pbtxt"


def test_no_resolver_or_importer_node(documents):
    # Self-hosted KFP has no executor for TFX's Resolver; the one DAG must not need one.
    for label, executor_spec in documents[0]["deploymentSpec"]["executors"].items():
        assert set(executor_spec) == {"container"}, label


def test_beam_args_per_component(config, tmp_path):
    flink = ("--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--environment_type=EXTERNAL")
    kubeflow = dataclasses.replace(config.kubeflow, component_beam_args={"Transform": flink})
    result = kubeflow_runner.compile_pipeline(config.replace(kubeflow=kubeflow), tmp_path / "p.yaml")
    documents = [result["pipeline_spec"], result["platform_spec"]]
    transform_args = executor(documents, "Transform")[0]["args"]
    statistics_args = executor(documents, "StatisticsGen")[0]["args"]
    assert transform_args[-3:] == list(flink) and "--direct_running_mode=multi_processing" not in transform_args
    assert "--runner=FlinkRunner" not in statistics_args
    assert "--direct_running_mode=multi_processing" in statistics_args


def test_beam_args_for_an_unknown_node_are_refused(config, tmp_path):
    kubeflow = dataclasses.replace(config.kubeflow, component_beam_args={"Transfrom": ("--runner=FlinkRunner",)})
    with pytest.raises(config_lib.ConfigError, match="Transfrom: no such node"):
        kubeflow_runner.compile_pipeline(config.replace(kubeflow=kubeflow), tmp_path / "p.yaml")


def test_out_must_be_yaml(config, tmp_path):
    with pytest.raises(ValueError, match=r"\.yaml"):
        kubeflow_runner.compile_pipeline(config, tmp_path / "pipeline.json")


def features_used(documents) -> set[str]:
    """The KFP features the compiled package relies on, read from the package itself."""
    pipeline_spec, platform_spec = documents
    used = set()
    for task in pipeline_spec["root"]["dag"]["tasks"].values():
        used |= {key for key in ("retryPolicy", "cachingOptions") if key in task}
        for parameter in task.get("inputs", {}).get("parameters", {}).values():
            used |= {key for key in ("taskOutputParameter",) if key in parameter}
    for executor_spec in pipeline_spec["deploymentSpec"]["executors"].values():
        if "accelerator" in executor_spec["container"].get("resources", {}):
            used.add("resources.accelerator")
    for executor_spec in platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        used |= set(executor_spec)
    return used


def feature_table() -> dict[str, tuple[int, ...]]:
    text = (ROOT / "docs" / "kubeflow.md").read_text()
    table = text[text.index("<!-- kfp-features -->") : text.index("<!-- /kfp-features -->")]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| `")]
    return {cells[0].strip().strip("`"): version(cells[2].strip()) for cells in rows}


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def pinned_kfp() -> set[tuple[int, ...]]:
    import re

    text = (ROOT / "infra" / "k8s" / "kfp" / "kustomization.yaml").read_text()
    return {version(ref) for ref in re.findall(r"github\.com/kubeflow/pipelines/\S+\?ref=(\d+\.\d+\.\d+)", text)}


def test_every_kfp_feature_the_package_uses_is_in_the_docs_table_and_the_pinned_kfp_has_it(documents):
    table = feature_table()
    used = features_used(documents)
    assert used and not used - set(table), f"not in docs/kubeflow.md's feature table: {sorted(used - set(table))}"
    (pinned,) = pinned_kfp()  # One KFP version for every upstream manifest.
    too_new = {feature: minimum for feature, minimum in table.items() if feature in used and minimum > pinned}
    assert not too_new, f"the pinned KFP {pinned} lacks {too_new}"
    docs = (ROOT / "docs" / "kubeflow.md").read_text()
    assert f"?ref={'.'.join(map(str, pinned))}" in docs
