"""Compiles `create_pipeline()` for Kubeflow Pipelines: TFX's KubeflowV2DagRunner, then Kubernetes settings.

The DAG is the local one. What only the cluster needs is applied here, by node id, to the compiled spec:
images, resources (a GPU for the Trainer), retries, and the KFP platform spec (node selector and toleration
for the GPU pool, the Secret as environment variables). The result is a two-document YAML, PipelineSpec then
PlatformSpec, which is the package format `kfp.Client` uploads and self-hosted KFP runs.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml
from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner, pipeline_builder

from components import names
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib
from pipeline.kubeflow import fingerprint as kubeflow_fingerprint
from pipeline.kubeflow import platform as kubeflow_platform
from pipeline.kubeflow import s3 as kubeflow_s3

GPU_NODE = names.TRAINER
# The ImageExampleGen input that carries the data's fingerprint: a property its executor ignores, there only
# to be in KFP's cache key.
FINGERPRINT_INPUT = "data_fingerprint"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT_MODULE = "pipeline.kubeflow.entrypoint"
# Argo labels every pod of a run with the workflow's name, which is unique per run: the pods use it to find
# the run's one MLflow run (pipeline/kubeflow/entrypoint.py).
RUN_NAME_FIELD = "metadata.labels['workflows.argoproj.io/workflow']"


def cluster_config(config: config_lib.Config) -> config_lib.Config:
    """The config as the pods see it: the dataset in the object store."""
    return config.replace(data=config.kubeflow.data)


def image_schema_path(config: config_lib.Config) -> str:
    """Where the schema is inside the image. The compiling machine reads it at `config.schema` (the DAG takes
    column types from it); the ImportSchemaGen pod reads the copy the Dockerfile put under its WORKDIR."""
    if "://" in config.schema:
        return config.schema
    relative = Path(config.schema).resolve().relative_to(PROJECT_ROOT)
    return f"{config.kubeflow.image_workdir.rstrip('/')}/{relative.as_posix()}"


def build_pipeline(config: config_lib.Config) -> tfx.dsl.Pipeline:
    kubeflow = config.kubeflow
    pipeline = pipeline_lib.create_pipeline(
        cluster_config(config),
        pipeline_root=kubeflow.pipeline_root,
        serving_dir=kubeflow.serving_dir,
        beam_pipeline_args=pod_beam_args(kubeflow.beam_args),
    )
    nodes = {node.id: node for node in pipeline.components}
    nodes[names.SCHEMA].exec_properties["schema_file"] = image_schema_path(config)
    for node_id, args in kubeflow.component_beam_args.items():
        if node_id not in nodes:
            raise config_lib.ConfigError(
                f"kubeflow.component_beam_args.{node_id}: no such node (nodes: {', '.join(nodes)})"
            )
        if not hasattr(nodes[node_id].executor_spec, "beam_pipeline_args"):
            raise config_lib.ConfigError(f"kubeflow.component_beam_args.{node_id}: not a Beam-powered node")
        # Replaces the pipeline-level args that the Pipeline constructor already copied into this node.
        nodes[node_id].executor_spec.beam_pipeline_args = pod_beam_args(args)
    return pipeline


def pod_beam_args(args: tuple[str, ...] | list[str]) -> list[str]:
    """The config's Beam args plus the plugin that gives Beam's worker processes s3:// (pipeline/kubeflow/s3.py)."""
    return [kubeflow_s3.BEAM_ARG, *(arg for arg in args if arg != kubeflow_s3.BEAM_ARG)]


def compile_pipeline(config: config_lib.Config, out: str | Path) -> dict[str, Any]:
    """Writes the KFP package to `out` (.yaml); returns {"pipeline_spec": ..., "platform_spec": ...}."""
    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise ValueError(f"--out must end in .yaml, the package format self-hosted KFP takes; got {out.name}")
    kubeflow = config.kubeflow
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image={pipeline_builder.DEFAULT_IMAGE_PATH_KEY: kubeflow.image, GPU_NODE: kubeflow.gpu_image},
            # Schema 2.1 is the one self-hosted KFP's driver reads (2.0 is Vertex's legacy format).
            use_pipeline_spec_2_1=True,
        ),
        output_dir=str(out.parent),
        output_filename=out.name,
    )
    pipeline_spec = runner.run(build_pipeline(config), write_out=False)["pipelineSpec"]
    add_data_fingerprint(pipeline_spec, config)
    apply_kubernetes(pipeline_spec, config)
    platform_spec = platform_spec_for(pipeline_spec, config)
    kubeflow_platform.check_platform_spec(platform_spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as handle:
        handle.write(f"# {config.pipeline_name}: `xfer compile` with {pipeline_spec['sdkVersion']}\n")
        yaml.safe_dump_all([pipeline_spec, platform_spec], handle, sort_keys=True)
    return {"pipeline_spec": pipeline_spec, "platform_spec": platform_spec}


def add_data_fingerprint(pipeline_spec: dict[str, Any], config: config_lib.Config) -> None:
    """Adds the uncached DataFingerprint step and feeds its output to ImageExampleGen as an input parameter,
    so that KFP reruns ingest when the data changed and serves it from its cache when not
    (pipeline/kubeflow/fingerprint.py says why TFX's own fingerprint does not reach KFP)."""
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    ingest = tasks[names.INGEST]
    data = ingest["inputs"]["parameters"]["input_base"]["runtimeValue"]["constant"]
    label = f"{names.FINGERPRINT}_executor"
    pipeline_spec["components"][names.FINGERPRINT] = {
        "executorLabel": label,
        "inputDefinitions": {"parameters": {"data": {"parameterType": "STRING"}}},
        "outputDefinitions": {"parameters": {kubeflow_fingerprint.OUTPUT: {"parameterType": "STRING"}}},
    }
    pipeline_spec["deploymentSpec"]["executors"][label] = {
        "container": {
            "image": config.kubeflow.image,
            "command": ["python", "-m", "pipeline.kubeflow.fingerprint"],
            "args": [
                "--data",
                "{{$.inputs.parameters['data']}}",
                "--output",
                f"{{{{$.outputs.parameters['{kubeflow_fingerprint.OUTPUT}'].output_file}}}}",
            ],
        }
    }
    tasks[names.FINGERPRINT] = {
        "componentRef": {"name": names.FINGERPRINT},
        "taskInfo": {"name": names.FINGERPRINT},
        "inputs": {"parameters": {"data": {"runtimeValue": {"constant": data}}}},
        # Listing the data is the point of this step: a cached listing would be an earlier run's data.
        "cachingOptions": {"enableCache": False},
    }
    ingest["inputs"]["parameters"][FINGERPRINT_INPUT] = {
        "taskOutputParameter": {"producerTask": names.FINGERPRINT, "outputParameterKey": kubeflow_fingerprint.OUTPUT}
    }
    ingest["dependentTasks"] = sorted({*ingest.get("dependentTasks", []), names.FINGERPRINT})
    ingest_component = pipeline_spec["components"][ingest["componentRef"]["name"]]
    ingest_component["inputDefinitions"]["parameters"][FINGERPRINT_INPUT] = {"parameterType": "STRING"}
    # The same inputs spec is in the executor's arguments, where TFX's container module reads the types.
    container = pipeline_spec["deploymentSpec"]["executors"][ingest_component["executorLabel"]]["container"]
    spec_index = container["args"].index("--json_serialized_inputs_spec_args") + 1
    container["args"][spec_index] = json.dumps(ingest_component["inputDefinitions"], indent=2, sort_keys=True)


def executor_labels(pipeline_spec: dict[str, Any]) -> dict[str, str]:
    """Node id -> the executor label its container runs under."""
    components = pipeline_spec["components"]
    return {
        node_id: components[task["componentRef"]["name"]]["executorLabel"]
        for node_id, task in pipeline_spec["root"]["dag"]["tasks"].items()
    }


def apply_kubernetes(pipeline_spec: dict[str, Any], config: config_lib.Config) -> None:
    """Resources, retries, entrypoint and plain (non-secret) environment, in place."""
    kubeflow = config.kubeflow
    pipeline_spec["defaultPipelineRoot"] = kubeflow.pipeline_root
    executors = pipeline_spec["deploymentSpec"]["executors"]
    for node_id, label in executor_labels(pipeline_spec).items():
        task = pipeline_spec["root"]["dag"]["tasks"][node_id]
        task["retryPolicy"] = {
            "maxRetryCount": kubeflow.retries,
            "backoffDuration": f"{kubeflow.retry_backoff_seconds}s",
            "backoffFactor": 2.0,
            "backoffMaxDuration": "3600s",
        }
        if node_id in (names.CHAMPION, names.FINGERPRINT):
            # Champion reads the registry, DataFingerprint the dataset, both of which change between runs of
            # this one compiled pipeline: a cached result would be some earlier run's
            # (components/champion/component.py).
            task["cachingOptions"] = {"enableCache": False}
        container = executors[label]["container"]
        is_gpu_node = node_id == GPU_NODE
        # Set here rather than with TFX's with_platform_config, which the FileBasedExampleGen step ignores.
        container["resources"] = _resources(
            kubeflow.trainer_resources if is_gpu_node else kubeflow.resources,
            kubeflow.gpu_resource if is_gpu_node and kubeflow.gpu_count else "",
            kubeflow.gpu_count,
        )
        tfx_command = container.get("command", list(kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD))
        container["command"] = _wrapped(tfx_command, node_id)
        pre_cache_check = container.get("lifecycle", {}).get("preCacheCheck")
        if pre_cache_check:
            pre_cache_check["command"] = _wrapped(pre_cache_check["command"], node_id)
        # The run's config, in every pod: whichever starts first (a root step) creates the MLflow run and logs
        # it as the run's parameters; the Evaluator explains its gates with it, the Pusher names the registered
        # model with it. Env is not part of KFP's cache key (backend/src/v2/cacheutils/cache.go GenerateCacheKey).
        # The retry limit tells a failing pod whether Argo will try it again, and so whether its failure is
        # the run's (pipeline/kubeflow/entrypoint.py).
        container["env"] = [
            {"name": names.EXPERIMENT_ENV, "value": kubeflow.mlflow_experiment or config.experiment_name},
            {"name": names.MLFLOW_PARAMS_ENV, "value": json.dumps(config.to_dict(), sort_keys=True)},
            {"name": names.RETRY_LIMIT_ENV, "value": str(kubeflow.retries)},
        ]


def _wrapped(command: list[str], node_id: str) -> list[str]:
    """`python -m <tfx module>` -> `python -m pipeline.kubeflow.entrypoint --node <id> <tfx module>`."""
    if command[:2] != ["python", "-m"] or len(command) != 3:
        raise ValueError(f"unexpected TFX container command {shlex.join(command)}")
    return ["python", "-m", ENTRYPOINT_MODULE, "--node", node_id, command[2]]


def _resources(resources: config_lib.ResourcesConfig, gpu_resource: str, gpu_count: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "cpuRequest": resources.cpu_request,
        "cpuLimit": resources.cpu_limit,
        "memoryRequest": resources.memory_request_gb,
        "memoryLimit": resources.memory_limit_gb,
    }
    if gpu_resource:
        # Self-hosted KFP puts `type` verbatim into the pod's resource limits, so it is the Kubernetes
        # resource name (nvidia.com/gpu), not a Vertex accelerator name.
        spec["accelerator"] = {"type": gpu_resource, "count": str(gpu_count)}
    return spec


def platform_spec_for(pipeline_spec: dict[str, Any], config: config_lib.Config) -> dict[str, Any]:
    """The KFP Kubernetes platform spec: per executor, the Secret as env vars and the run name from the pod's
    labels; for the Trainer, also the GPU pool's node selector and toleration."""
    kubeflow = config.kubeflow
    executors: dict[str, Any] = {}
    for node_id, label in executor_labels(pipeline_spec).items():
        executor: dict[str, Any] = {
            "secretAsEnv": [
                {
                    "secretName": kubeflow.secret_name,
                    "keyToEnv": [{"secretKey": key, "envVar": env} for env, key in sorted(kubeflow.secret_env.items())],
                }
            ],
            "fieldPathAsEnv": [{"name": names.KFP_RUN_ENV, "fieldPath": RUN_NAME_FIELD}],
        }
        if node_id == GPU_NODE:
            executor["nodeSelector"] = {"labels": dict(kubeflow.node_selector)}
            executor["tolerations"] = [
                {key: value for key, value in config_lib.asdict(toleration).items() if value}
                for toleration in kubeflow.tolerations
            ]
        executors[label] = executor
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}
