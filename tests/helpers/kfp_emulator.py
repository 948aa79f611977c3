"""A KFP 2.5 backend in one process, for tests: it runs a compiled package's tasks as subprocesses, started the
way KFP's driver and launcher start a task's pod, and keeps KFP's metadata and cache between runs.

What it mirrors, from kubeflow/pipelines at the pinned 2.5.0 (paths under backend/src/v2/):
- driver/driver.go `RootDAG`: the run's pipeline root is <root>/<pipeline name>/<run id>
  (metadata/client.go `GetPipeline`, `GenerateOutputURI`).
- driver/driver.go `Container` -> `resolveInputs`: parameters from the task's constants
  (`runtimeValue.constant`) or an upstream task's output parameter (`resolveUpstreamParameters`); upstream
  artifacts from the producer's ML Metadata outputs (`resolveUpstreamArtifacts` ->
  metadata/client.go `GetOutputArtifactsByExecutionId`, whose `Schema: ""` makes `type.instanceSchema` empty;
  metadata/converter.go `toRuntimeArtifact`: the artifact id as `name`, properties and custom properties as
  `metadata`).
- driver/driver.go `provisionOutputs`: output URIs <run root>/<task>/<uuid>/<output>, the declared types, the
  `executor-logs` output when logs are published (the 2.5.0 apiserver manifest sets PUBLISH_LOGS=true), output
  parameter files /tmp/kfp/outputs/<name>, the executor output file /tmp/kfp_outputs/output_metadata.json
  (component/launcher_v2.go `OutputMetadataFilepath`).
- driver/driver.go `getFingerPrint` + cacheutils/cache.go `GenerateCacheKey`/`GenerateFingerPrint`: the cache
  key (input artifact ids, input parameter values, output artifact specs without URI, output parameter types,
  image, command + args before placeholders are filled), sha256 of its JSON; `getFingerPrintsAndID` /
  `GetExecutionCache`: the newest execution with that fingerprint in this pipeline, only when the task's
  `cachingOptions.enableCache`; `reuseCachedOutputs`: a CACHED execution with the same output artifacts (same
  ids) and output parameters, and no pod.
- component/launcher_v2.go `executeV2`: placeholders (`{{$}}` is the executor input as JSON,
  `getPlaceholders`), the command run with stdout and stderr to the log (`getLogWriter`), the log uploaded to
  `executor-logs`; then `getExecutorOutputFile`, `collectOutputParameters` (the executor output's
  parameterValues first, else the parameter's file), `uploadOutputArtifacts` -> `mergeRuntimeArtifacts` (the
  executor output's URI and metadata fields over the provisioned artifact) -> metadata/client.go
  `RecordArtifact` (metadata as custom properties through converter.go `StructValueToMLMDValue`, plus
  `display_name` and `store_session_info` when absent); `Execute`: a cache entry after success when the task
  had a fingerprint.
- driver/driver.go `initPodSpecPatch` / `extendPodSpecPatch`: the pod's env from the container's `env`, the
  platform spec's `secretAsEnv` (from a local secret map) and `fieldPathAsEnv` (the Argo workflow label).
- compiler/argocompiler/container.go `getTaskRetryStrategy`: the launcher's pod is retried up to
  `maxRetryCount` times with back-off duration x factor^n (Argo), with the same executor input; the driver
  is not rerun.

What it does not do: run tasks in parallel (Argo starts independent tasks together; here they run one by one
in dependency order), run containers (every task runs in this machine's venv, the image only counts in the
cache key), copy input artifacts to /s3/... in the pod (launcher_v2.go `downloadArtifacts`; the TFX steps read
the URIs directly), Argo's pod-level env (KFP_POD_NAME...), resources, node selectors and tolerations (no
scheduler), conditions, loops, importers and sub-DAGs (the package has none).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

LOG_OUTPUT = "executor-logs"
OUTPUT_METADATA = "tmp/kfp_outputs/output_metadata.json"  # Inside the pod; here under the pod's own folder.
PARAMETER_DIR = "tmp/kfp/outputs"
WORKFLOW_LABEL = "metadata.labels['workflows.argoproj.io/workflow']"


@dataclasses.dataclass
class Artifact:
    id: int
    uri: str
    schema: str
    custom_properties: dict[str, Any]  # MLMD values: {"string_value": ...} / {"double_value": ...} / ...


@dataclasses.dataclass
class Execution:
    id: int
    run_id: str
    task: str
    state: str = "RUNNING"  # COMPLETE, CACHED, FAILED
    fingerprint: str = ""
    outputs: dict[str, int] = dataclasses.field(default_factory=dict)
    output_parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    attempts: int = 0
    seconds: float = 0.0
    executor_input: dict[str, Any] = dataclasses.field(default_factory=dict)
    log: str = ""


@dataclasses.dataclass
class CacheEntry:
    """One row of KFP's task table as the cache reads it (cacheutils/cache.go GetExecutionCache)."""

    fingerprint: str
    pipeline_name: str
    execution_id: int
    created: float


@dataclasses.dataclass
class RunResult:
    run_id: str
    workflow: str
    state: str  # SUCCEEDED or FAILED
    tasks: dict[str, Execution]
    seconds: float

    def states(self) -> dict[str, str]:
        return {name: execution.state for name, execution in self.tasks.items()}


@dataclasses.dataclass(frozen=True)
class KillOnce:
    """Fault injection: SIGKILL the task's pod (its whole process group, as the kubelet kills a container) the
    first time a line of its log matches `pattern`."""

    pattern: str


class KfpFailure(RuntimeError):
    pass


def to_mlmd_value(value: Any) -> dict[str, Any]:
    """metadata/converter.go StructValueToMLMDValue."""
    if isinstance(value, bool):
        return {"int_value": int(value)}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, (int, float)):
        return {"double_value": float(value)}
    if isinstance(value, list):
        return {"struct_value": {"list": value}}
    if isinstance(value, dict):
        return {"struct_value": {"struct": value}}
    raise KfpFailure(f"unknown/unsupported value type {type(value).__name__}")


def from_mlmd_value(value: dict[str, Any]) -> Any:
    """metadata/converter.go toRuntimeArtifact's propertiesToMetadata (an int comes back as a number)."""
    ((kind, inner),) = value.items()
    return float(inner) if kind in ("int_value", "double_value") else inner


def generate_output_uri(root: str, *paths: str) -> str:
    """metadata/client.go GenerateOutputURI (no query string in our roots)."""
    return f"{root.rstrip('/')}/{'/'.join(part.strip('/') for part in paths)}"


def fingerprint(cache_key: dict[str, Any]) -> str:
    """cacheutils/cache.go GenerateFingerPrint: sha256 of the cache key's JSON (encoding/json sorts map keys)."""
    return hashlib.sha256(json.dumps(cache_key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Emulator:
    def __init__(
        self,
        package: str | Path,
        secrets: dict[str, dict[str, str]],
        work_dir: Path,
        cwd: Path,
        image_env: dict[str, str],
        namespace: str = "kubeflow",
        log_uploader: Any = None,
    ):
        documents = list(yaml.safe_load_all(Path(package).read_text()))
        self.spec: dict[str, Any] = documents[0]
        self.platform: dict[str, Any] = {}
        for document in documents[1:]:
            self.platform.update(document or {})
        self.secrets = secrets
        self.work_dir = work_dir
        self.cwd = cwd
        self.image_env = image_env
        self.namespace = namespace
        self.log_uploader = log_uploader  # (local path, s3 uri) -> None; launcher_v2.go uploadOutputArtifacts.
        self.artifacts: dict[int, Artifact] = {}
        self.executions: dict[int, Execution] = {}
        self.cache: list[CacheEntry] = []
        self._next_id = 1

    @property
    def pipeline_name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- the DAG ------------------------------------------------------------------------------------------

    def task_order(self) -> list[str]:
        tasks = self.spec["root"]["dag"]["tasks"]
        order: list[str] = []
        pending = dict(tasks)
        while pending:
            ready = sorted(name for name, task in pending.items() if set(upstream(task)) <= set(order))
            if not ready:
                raise KfpFailure(f"cycle among {sorted(pending)}")
            order.append(ready[0])
            del pending[ready[0]]
        return order

    def run(self, faults: dict[str, KillOnce] | None = None, pipeline_root: str | None = None) -> RunResult:
        faults = faults or {}
        run_id = str(uuid.uuid4())
        # Argo names the workflow from the pipeline's name plus a random suffix (apiserver/template/v2_template.go
        # GenerateName); every pod carries it as the label workflows.argoproj.io/workflow.
        workflow = f"{self.pipeline_name}-{uuid.uuid4().hex[:5]}"
        # driver.go RootDAG: the run's pipeline root, or the package's default, then <pipeline>/<run id>.
        root = generate_output_uri(pipeline_root or self.spec["defaultPipelineRoot"], self.pipeline_name, run_id)
        started = time.monotonic()
        done: dict[str, Execution] = {}
        state = "SUCCEEDED"
        for name in self.task_order():
            task = self.spec["root"]["dag"]["tasks"][name]
            if any(done.get(dependency) is None or done[dependency].state == "FAILED" for dependency in upstream(task)):
                continue  # Argo does not start a task whose dependency failed.
            execution = self._run_task(name, task, done, run_id, workflow, root, faults.get(name))
            done[name] = execution
            if execution.state == "FAILED":
                state = "FAILED"
        return RunResult(run_id, workflow, state, done, time.monotonic() - started)

    # -- driver.go Container --------------------------------------------------------------------------------

    def _run_task(self, name, task, done, run_id, workflow, root, fault) -> Execution:
        component = self.spec["components"][task["componentRef"]["name"]]
        container = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        execution = Execution(self._id(), run_id, name)
        self.executions[execution.id] = execution
        pod_dir = self.work_dir / workflow / name
        executor_input = {
            "inputs": self._resolve_inputs(task, done),
            "outputs": self._provision_outputs(root, name, component, pod_dir),
        }
        execution.executor_input = executor_input
        enable_cache = task.get("cachingOptions", {}).get("enableCache", False)
        if enable_cache:
            execution.fingerprint = fingerprint(cache_key(executor_input, component, container))
            cached = self._cached_execution(execution.fingerprint)
            if cached is not None:  # driver.go reuseCachedOutputs: no pod at all.
                execution.outputs = dict(cached.outputs)
                execution.output_parameters = dict(cached.output_parameters)
                execution.state = "CACHED"
                return execution
        started = time.monotonic()
        self._launch_with_retries(execution, task, component, container, workflow, pod_dir, fault)
        execution.seconds = time.monotonic() - started
        if execution.state == "COMPLETE" and execution.fingerprint:
            # launcher_v2.go Execute: the cache entry, once the task succeeded.
            self.cache.append(CacheEntry(execution.fingerprint, self.pipeline_name, execution.id, time.time()))
        return execution

    def _resolve_inputs(self, task: dict, done: dict[str, Execution]) -> dict[str, Any]:
        inputs: dict[str, Any] = {"parameterValues": {}, "artifacts": {}}
        for name, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in spec:
                inputs["parameterValues"][name] = spec["runtimeValue"]["constant"]
            elif "taskOutputParameter" in spec:  # driver.go resolveUpstreamParameters.
                output = spec["taskOutputParameter"]
                producer = done[output["producerTask"]]
                inputs["parameterValues"][name] = producer.output_parameters[output["outputParameterKey"]]
            else:
                raise KfpFailure(f"input parameter {name}: {sorted(spec)} is not emulated")
        for name, spec in task.get("inputs", {}).get("artifacts", {}).items():
            output = spec["taskOutputArtifact"]  # driver.go resolveUpstreamArtifacts.
            artifact = self.artifacts[done[output["producerTask"]].outputs[output["outputArtifactKey"]]]
            inputs["artifacts"][name] = {
                "artifacts": [
                    {
                        "name": str(artifact.id),
                        "uri": artifact.uri,
                        "type": {"instanceSchema": ""},  # metadata/client.go: Schema: "" // TODO(Bobgy)
                        "metadata": {key: from_mlmd_value(value) for key, value in artifact.custom_properties.items()},
                    }
                ]
            }
        return inputs

    def _provision_outputs(self, root: str, name: str, component: dict, pod_dir: Path) -> dict[str, Any]:
        salt = str(uuid.uuid4())
        declared = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        declared[LOG_OUTPUT] = {"artifactType": {"schemaTitle": "system.Artifact"}}  # PUBLISH_LOGS=true
        artifacts = {}
        for output, spec in declared.items():
            artifact = {"uri": generate_output_uri(root, name, salt, output), "type": spec["artifactType"]}
            if spec.get("metadata"):
                artifact["metadata"] = spec["metadata"]
            artifacts[output] = {"artifacts": [artifact]}
        parameters = {
            output: {"outputFile": str(pod_dir / PARAMETER_DIR / output)}
            for output in component.get("outputDefinitions", {}).get("parameters", {})
        }
        return {"artifacts": artifacts, "parameters": parameters, "outputFile": str(pod_dir / OUTPUT_METADATA)}

    def _cached_execution(self, key: str) -> Execution | None:
        entries = [
            entry for entry in self.cache if entry.fingerprint == key and entry.pipeline_name == self.pipeline_name
        ]
        if not entries:
            return None
        return self.executions[max(entries, key=lambda entry: entry.created).execution_id]  # "created_at desc"

    # -- argocompiler retryStrategy around launcher_v2.go --------------------------------------------------

    def _launch_with_retries(self, execution, task, component, container, workflow, pod_dir, fault) -> None:
        policy = task.get("retryPolicy", {})
        limit = int(policy.get("maxRetryCount", 0))
        duration = seconds(policy.get("backoffDuration", "0s"))
        factor = int(policy.get("backoffFactor", 1))  # argocompiler: int32(GetBackoffFactor())
        max_duration = seconds(policy["backoffMaxDuration"]) if "backoffMaxDuration" in policy else None
        for attempt in range(limit + 1):
            execution.attempts = attempt + 1
            if self._launch(
                execution,
                component,
                container,
                workflow,
                pod_dir / f"attempt-{attempt}",
                fault if attempt == 0 else None,
            ):
                execution.state = "COMPLETE"
                return
            if attempt < limit:
                wait = duration * factor**attempt
                time.sleep(min(wait, max_duration) if max_duration is not None else wait)
        execution.state = "FAILED"

    def _launch(self, execution, component, container, workflow, attempt_dir, fault) -> bool:
        executor_input = json.loads(json.dumps(execution.executor_input))
        for parameter in executor_input["outputs"]["parameters"].values():
            Path(parameter["outputFile"]).parent.mkdir(parents=True, exist_ok=True)  # prepareOutputFolders
        output_file = Path(executor_input["outputs"]["outputFile"])
        output_file.parent.mkdir(parents=True, exist_ok=True)
        output_file.unlink(missing_ok=True)  # A fresh pod: nothing from an earlier attempt on its disk.
        placeholders = self._placeholders(executor_input, component)
        command = [fill(part, placeholders) for part in [*container.get("command", []), *container.get("args", [])]]
        env = self._pod_env(container, component["executorLabel"], workflow)
        attempt_dir.mkdir(parents=True, exist_ok=True)
        log_path = attempt_dir / "log.txt"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                errors="replace",
            )
            killed = False
            for line in process.stdout:
                log.write(line)
                if fault and not killed and re.search(fault.pattern, line):
                    os.killpg(process.pid, signal.SIGKILL)
                    killed = True
            status = process.wait()
        execution.log += log_path.read_text()
        if self.log_uploader:  # launcher_v2.go getLogWriter + uploadOutputArtifacts of executor-logs.
            self.log_uploader(log_path, executor_input["outputs"]["artifacts"][LOG_OUTPUT]["artifacts"][0]["uri"])
        if status != 0:  # launcher_v2.go execute: command.Run() returns the error, the task fails.
            return False
        self._publish_outputs(execution, executor_input, component)
        return True

    def _placeholders(self, executor_input: dict, component: dict) -> dict[str, str]:
        """launcher_v2.go getPlaceholders, over the input with defaults added (addDefaultParams)."""
        with_defaults = json.loads(json.dumps(executor_input))
        for name, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if "defaultValue" in spec and name not in with_defaults["inputs"]["parameterValues"]:
                with_defaults["inputs"]["parameterValues"][name] = spec["defaultValue"]
        placeholders = {"{{$}}": json.dumps(with_defaults)}
        for name, artifact_list in with_defaults["inputs"]["artifacts"].items():
            placeholders[f"{{{{$.inputs.artifacts['{name}'].uri}}}}"] = artifact_list["artifacts"][0]["uri"]
        for name, artifact_list in with_defaults["outputs"]["artifacts"].items():
            placeholders[f"{{{{$.outputs.artifacts['{name}'].uri}}}}"] = artifact_list["artifacts"][0]["uri"]
        for name, value in with_defaults["inputs"]["parameterValues"].items():
            text = value if isinstance(value, str) else json.dumps(value)
            placeholders[f"{{{{$.inputs.parameters['{name}']}}}}"] = text
        for name, parameter in with_defaults["outputs"]["parameters"].items():
            placeholders[f"{{{{$.outputs.parameters['{name}'].output_file}}}}"] = parameter["outputFile"]
        return placeholders

    def _pod_env(self, container: dict, label: str, workflow: str) -> dict[str, str]:
        env = dict(self.image_env)
        env.update({item["name"]: item["value"] for item in container.get("env", [])})
        kubernetes = self.platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        config = kubernetes.get("executors", {}).get(label, {})
        for secret in config.get("secretAsEnv", []):
            values = self.secrets[secret["secretName"]]  # A missing Secret or key fails the pod, as on a cluster.
            for item in secret["keyToEnv"]:
                env[item["envVar"]] = values[item["secretKey"]]
        for item in config.get("fieldPathAsEnv", []):
            if item["fieldPath"] != WORKFLOW_LABEL:
                raise KfpFailure(f"fieldPath {item['fieldPath']} is not emulated")
            env[item["name"]] = workflow
        return env

    def _publish_outputs(self, execution: Execution, executor_input: dict, component: dict) -> None:
        output_file = Path(executor_input["outputs"]["outputFile"])
        executor_output = json.loads(output_file.read_text()) if output_file.exists() else {}
        parameters = dict(executor_output.get("parameterValues", {}))
        for name, parameter in executor_input["outputs"]["parameters"].items():
            if name not in parameters:  # collectOutputParameters: the file when the output file has none.
                kind = component["outputDefinitions"]["parameters"][name]["parameterType"]
                parameters[name] = text_to_value(Path(parameter["outputFile"]).read_text(), kind)
        for name, artifact_list in executor_input["outputs"]["artifacts"].items():
            provisioned = artifact_list["artifacts"][0]
            produced = executor_output.get("artifacts", {}).get(name, {}).get("artifacts", [])
            if produced:  # mergeRuntimeArtifacts
                if produced[0].get("uri"):
                    provisioned["uri"] = produced[0]["uri"]
                provisioned.setdefault("metadata", {}).update(produced[0].get("metadata", {}))
            # metadata/client.go RecordArtifact.
            properties = {key: to_mlmd_value(value) for key, value in provisioned.get("metadata", {}).items()}
            properties.setdefault("display_name", {"string_value": name})
            properties.setdefault("store_session_info", {"string_value": json.dumps({"Provider": "s3"})})
            artifact_type = provisioned["type"]
            schema = artifact_type.get("instanceSchema") or f"title: {artifact_type.get('schemaTitle')}"
            artifact = Artifact(self._id(), provisioned["uri"], schema, properties)
            self.artifacts[artifact.id] = artifact
            execution.outputs[name] = artifact.id
        execution.output_parameters = parameters


def upstream(task: dict) -> list[str]:
    names = set(task.get("dependentTasks", []))
    for kind in ("parameters", "artifacts"):
        for spec in task.get("inputs", {}).get(kind, {}).values():
            for key in ("taskOutputParameter", "taskOutputArtifact"):
                if key in spec:
                    names.add(spec[key]["producerTask"])
    return sorted(names)


def cache_key(executor_input: dict, component: dict, container: dict) -> dict[str, Any]:
    """cacheutils/cache.go GenerateCacheKey, with driver.go getFingerPrint's arguments: the command and args as
    compiled (placeholders unfilled) and the image."""
    inputs, outputs = executor_input["inputs"], executor_input["outputs"]
    declared = component.get("outputDefinitions", {}).get("parameters", {})
    output_types = {name: spec["parameterType"] for name, spec in declared.items()}
    unknown = set(outputs["parameters"]) - set(output_types)
    if unknown:
        raise KfpFailure(f"unknown parameter {sorted(unknown)} found in ExecutorInput_Outputs")
    return {
        "inputArtifactNames": {
            name: {"artifactNames": [artifact["name"] for artifact in artifact_list["artifacts"]]}
            for name, artifact_list in inputs["artifacts"].items()
        },
        "inputParameterValues": dict(inputs["parameterValues"]),
        "outputArtifactsSpec": {
            name: {
                key: artifact_list["artifacts"][0][key]
                for key in ("name", "type", "metadata")
                if artifact_list["artifacts"][0].get(key)
            }
            for name, artifact_list in outputs["artifacts"].items()
            if artifact_list["artifacts"]
        },
        "outputParametersSpec": {name: output_types[name] for name in outputs["parameters"]},
        "containerSpec": {
            "image": container["image"],
            "cmdArgs": [*container.get("command", []), *container.get("args", [])],
        },
    }


def text_to_value(text: str, parameter_type: str) -> Any:
    """metadata TextToPbValue, for the types this package uses."""
    if parameter_type == "STRING":
        return text
    if parameter_type in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
        return float(text)
    if parameter_type == "BOOLEAN":
        return text.strip().lower() == "true"
    return json.loads(text)


def fill(text: str, placeholders: dict[str, str]) -> str:
    for placeholder, value in placeholders.items():
        text = text.replace(placeholder, value)
    return text


def seconds(duration: str) -> float:
    """A protobuf Duration in its JSON form ("60s")."""
    if not duration.endswith("s"):
        raise KfpFailure(f"not a duration: {duration!r}")
    return float(duration[:-1])


def image_env(venv_bin: Path) -> dict[str, str]:
    """The pod's environment before KFP adds to it: the image's ENV (infra/docker/Dockerfile)."""
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "VIRTUAL_ENV": str(venv_bin.parent),
        "LANG": "C.UTF-8",
    } | ({"TMPDIR": os.environ["TMPDIR"]} if "TMPDIR" in os.environ else {})
