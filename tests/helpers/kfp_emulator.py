"""A KFP 2.17.0 backend in one process, for tests: it builds the Argo Workflow KFP's API server builds for a
compiled package, runs it as Argo v4.0.5 runs it (tasks whose dependencies are met start together, pods named
and checked as Argo names them and Kubernetes checks them, retries as Argo decides them), starts each pod the
way KFP's driver and launcher start it, and keeps KFP's metadata and cache between runs.

The Argo layer is tests/helpers/kfp_argo.py (the Workflow, pod names, retry decisions, checked against KFP's own
golden Workflows by tests/pipeline/kubeflow/test_kfp_argo.py). What this module mirrors, from
kubeflow/pipelines at the pinned 2.17.0 (paths under backend/src/v2/):
- driver/root_dag.go `RootDAG`: the run's pipeline root is the run's runtime config (`gcsOutputDirectory`, the
  run's pipeline_root), else the `kfp-launcher` ConfigMap's `defaultPipelineRoot` (config/env.go
  `FromConfigMap`, `DefaultPipelineRoot`), else `minio://mlpipeline/v2/artifacts`; never the package's own
  `defaultPipelineRoot` (only the KFP UI pre-fills a new run's form with it, frontend/src/pages/NewRunV2.tsx).
- driver/container.go `Container` -> driver/resolve.go: parameters from constants or an upstream task's output
  parameter; upstream artifacts from ML Metadata (metadata/client.go `GetOutputArtifactsByExecutionId`,
  `Schema: ""`; metadata/converter.go `toRuntimeArtifact`: the artifact id as `name`, properties as metadata).
- driver/driver.go `provisionOutputs`: output URIs <root>/<pipeline>/<run id>/<task>/<uuid>/<output> (each with
  its `name`), `executor-logs` (the driver's --publish_logs defaults to "true"), output parameter files
  /tmp/kfp/outputs/<name>, the executor output file in the task root's local mirror
  (/s3/<bucket>/.../<task>/<uuid>/output_metadata.json).
- driver/cache.go `getFingerPrint`, cacheutils/cache.go `GenerateCacheKey`, `GetExecutionCache`: the cache key
  (input artifact ids, parameter values, output specs without URI, output parameter types, the compiled command
  and args, the image), newest entry of this pipeline; driver/cache.go `reuseCachedOutputs`: CACHED, no pod.
- driver/driver.go `initPodSpecPatch`, driver/k8s.go `extendPodSpecPatch`: the pod's env (the container's env,
  `secretAsEnv` from a local Secret map, `fieldPathAsEnv` from the pod's labels) beside the template's
  KFP_POD_NAME, KFP_POD_UID and KFP_RETRY_INDEX (argocompiler/container.go).
- component/launcher_v2.go `Execute` -> `executeV2` -> `execute`: `downloadArtifacts` copies every input
  artifact to its local mirror /s3/<bucket>/<key> (objectstore/object_store.go `DownloadBlob`: every key under
  the prefix, a zero-byte `dir/` marker saved as a file, so a key under it fails; kubeflow/pipelines#13476),
  `prepareOutputFolders`, the command with `{{$}}` and the other placeholders filled (`getPlaceholders`), its
  output to `executor-logs-<retry index>` (`qualifyExecutorLogsForRetry`, `getLogWriter`); then
  `collectOutputParameters`, `uploadOutputArtifacts` (a local output folder, if the step wrote one, uploaded;
  `mergeRuntimeArtifacts`; metadata/client.go `RecordArtifact`), and the cache entry.

Every pod runs in this machine's venv with its own root folder standing for the pod's filesystem (so
/s3/... is <pod root>/s3/...); the image only counts in the cache key. Not emulated: scheduling (resources,
node selectors, tolerations, GPUs), conditions, loops, importers, sub-DAGs and exit handlers (the package has
none; kfp_argo refuses them).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import k8s_names, kfp_argo

LOG_OUTPUT = "executor-logs"
FALLBACK_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"  # config/env.go defaultPipelineRoot.
PARAMETER_DIR = "/tmp/kfp/outputs"
WORKFLOW_FIELD = "metadata.labels['workflows.argoproj.io/workflow']"
LOCAL_MIRRORS = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}  # launcher_v2.go LocalPathForURI.


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
    started: float = 0.0  # Since the run's start.
    executor_input: dict[str, Any] = dataclasses.field(default_factory=dict)
    pods: list[str] = dataclasses.field(default_factory=list)
    copied_bytes: int = 0  # What the launcher's input copy put on the pod's disk (the largest attempt).
    phases: list[str] = dataclasses.field(default_factory=list)  # Each attempt's Argo phase.
    message: str = ""
    log: str = ""
    component: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    container: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


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
    pipeline_root: str
    state: str  # SUCCEEDED or FAILED
    tasks: dict[str, Execution]
    seconds: float

    def states(self) -> dict[str, str]:
        return {name: execution.state for name, execution in self.tasks.items()}


@dataclasses.dataclass(frozen=True)
class KillOnce:
    """Fault: SIGKILL the task's first pod (its process group, as the kubelet kills a container) when a line of
    its log matches `pattern`: the container fails, the node is Failed, and Argo retries it."""

    pattern: str


@dataclasses.dataclass(frozen=True)
class FailAfterExit:
    """Fault: the launcher of the task's first pod fails after the program exited 0 (its upload or ML Metadata
    step, launcher_v2.go executeV2): the pod fails, the node is Failed, and Argo reruns the whole pod."""

    step: str = "uploadOutputArtifacts"


@dataclasses.dataclass(frozen=True)
class LoseNode:
    """Fault: the task's first pod disappears when a log line matches `pattern` (its node was lost and the
    pod deleted): Argo marks the node Error, which its default retry policy does not retry."""

    pattern: str


class KfpFailure(RuntimeError):
    pass


class PodError(RuntimeError):
    """The pod could not be created or was lost: an Error node."""


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


def local_path_for_uri(uri: str) -> str:
    """launcher_v2.go LocalPathForURI (the path inside the pod)."""
    for scheme, mirror in LOCAL_MIRRORS.items():
        if uri.startswith(scheme):
            return mirror + uri.removeprefix(scheme)
    raise KfpFailure(f"failed to generate local path for URI {uri}: unsupported storage scheme")


def choose_pipeline_root(runtime_config: dict[str, Any], launcher_config: dict[str, str] | None) -> str:
    """driver/root_dag.go RootDAG with config/env.go DefaultPipelineRoot."""
    if runtime_config.get("gcsOutputDirectory"):
        return runtime_config["gcsOutputDirectory"]
    if launcher_config and launcher_config.get("defaultPipelineRoot"):
        return launcher_config["defaultPipelineRoot"]
    return FALLBACK_PIPELINE_ROOT


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
        object_store: Any,
        launcher_config: dict[str, str] | None = None,
        namespace: str = "kubeflow",
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
        self.object_store = object_store  # A boto3 S3 client: the store the launcher reaches (providers.s3).
        self.launcher_config = launcher_config  # The kfp-launcher ConfigMap's data, or None when absent.
        self.namespace = namespace
        self.artifacts: dict[int, Artifact] = {}
        self.executions: dict[int, Execution] = {}
        self.cache: list[CacheEntry] = []
        self._next_id = 1
        self._lock = threading.RLock()

    @property
    def pipeline_name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    def _id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    # -- Argo: the run ------------------------------------------------------------------------------------

    def run(
        self, faults: dict[str, Any] | None = None, pipeline_root: str | None = None, kfp_version: str = "2.17.0"
    ) -> RunResult:
        """One KFP run: `pipeline_root` is the run's own (kfp.Client's pipeline_root), None for none."""
        faults = faults or {}
        runtime_config = {"gcsOutputDirectory": pipeline_root} if pipeline_root else {}
        workflow = kfp_argo.compile_workflow(self.spec, self.platform, runtime_config, kfp_version)
        # Kubernetes' generateName: 5 characters from its alphabet (apimachinery util/rand String).
        name = workflow["metadata"]["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        kfp_argo.check_workflow(workflow, name)
        run_id = str(uuid.uuid4())
        root_choice = choose_pipeline_root(runtime_config, self.launcher_config)
        root = generate_output_uri(root_choice, self.pipeline_name, run_id)
        self._check_pod(kfp_argo.pod_name(name, f"{name}.root-driver", kfp_argo.DAG_DRIVER), name, run_id, [])
        run = _Run(workflow, name, run_id, root, faults, time.time())
        tasks = {task["name"]: task for task in kfp_argo.template(workflow, "root")["dag"]["tasks"]}
        status: dict[str, str] = {}
        running: dict[concurrent.futures.Future, str] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(tasks)) as pool:
            while True:
                failed = any(phase != "Succeeded" for phase in status.values())
                if not failed:  # Argo's DAG fails fast: once a task failed, no new task starts.
                    for task_name, task in tasks.items():
                        needs = kfp_argo.parse_depends(task.get("depends", ""))
                        started = task_name in status or task_name in running.values()
                        if not started and all(status.get(need) == "Succeeded" for need in needs):
                            running[pool.submit(self._argo_task, run, task)] = task_name
                if not running:
                    break
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    status[running.pop(future)] = future.result()
        state = "SUCCEEDED" if len(status) == len(tasks) and set(status.values()) == {"Succeeded"} else "FAILED"
        return RunResult(run_id, name, root_choice, state, dict(run.executions), time.time() - run.started)

    def _argo_task(self, run: _Run, task: dict) -> str:
        """One task of the root DAG: a KFP task's driver, or its executor (DAG template -> implementation)."""
        arguments = {p["name"]: p.get("value", "") for p in task.get("arguments", {}).get("parameters", [])}
        if task["template"] == kfp_argo.CONTAINER_DRIVER:
            kfp_task = arguments["task-name"]
            node = f"{run.name}.root.{task['name']}"
            self._check_pod(kfp_argo.pod_name(run.name, node, kfp_argo.CONTAINER_DRIVER), run.name, run.run_id, [])
            return self._driver(run, kfp_task)
        execution = run.executions[task["name"]]
        if execution.state == "CACHED":  # when: cached-decision != true; the executor DAG still Succeeded.
            return "Succeeded"
        executor = kfp_argo.template(run.workflow, task["template"])
        impl_name = executor["dag"]["tasks"][0]["template"]
        impl = kfp_argo.template(run.workflow, impl_name)
        strategy = None
        if "retryStrategy" in impl:
            resolved = json.loads(
                re.sub(
                    r"\{\{inputs\.parameters\.([-a-z]+)\}\}",
                    lambda m: arguments[m.group(1)],
                    json.dumps(impl["retryStrategy"]),
                )
            )
            strategy = kfp_argo.RetryStrategy.from_template(resolved)
        return self._executor(run, task["name"], impl, strategy)

    def _executor(self, run: _Run, task_name: str, impl: dict, strategy: kfp_argo.RetryStrategy | None) -> str:
        execution = run.executions[task_name]
        fault = run.faults.get(task_name)
        attempts: list[kfp_argo.Attempt] = []
        deadline = None
        started = time.monotonic()
        while True:
            node = f"{run.name}.root.{task_name}.executor" + (f"({len(attempts)})" if strategy else "")
            pod = kfp_argo.pod_name(run.name, node, impl["name"])
            execution.pods.append(pod)
            begin = time.time()
            try:
                phase = self._pod(run, execution, pod, len(attempts), fault if not attempts else None, deadline)
            except (k8s_names.InvalidName, PodError) as error:
                phase, execution.message = "Error", str(error)
            attempts.append(kfp_argo.Attempt(phase, begin, time.time()))
            execution.phases.append(phase)
            execution.attempts = len(attempts)
            if strategy is None:
                decision = kfp_argo.Decision("done" if phase == "Succeeded" else "fail")
            else:
                decision = kfp_argo.retry_decision(strategy, attempts, time.time())
            if decision.action == "retry":
                time.sleep(decision.wait)
                deadline = decision.deadline
                continue
            execution.seconds = time.monotonic() - started
            if decision.action == "done":
                execution.state = "COMPLETE"
                return "Succeeded"
            execution.state = "FAILED"
            execution.message = execution.message or decision.message
            return phase

    def _check_pod(self, pod: str, workflow: str, run_id: str, env: list[str]) -> None:
        labels = {
            kfp_argo.WORKFLOW_LABEL: workflow,
            "workflows.argoproj.io/completed": "false",
            "pipelines.kubeflow.org/v2_component": "true",
            kfp_argo.RUN_ID_LABEL: run_id,
        }
        volumes = [volume for volume, _ in kfp_argo.SCRATCH_VOLUMES]
        kfp_argo.check_pod(pod, labels, ["main", "kfp-launcher", "init", "wait"], volumes, env)

    # -- driver/container.go Container -----------------------------------------------------------------------

    def _driver(self, run: _Run, name: str) -> str:
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        container = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        execution = Execution(self._id(), run.run_id, name, started=time.time() - run.started)
        with self._lock:
            self.executions[execution.id] = execution
            run.executions[name] = execution
        try:
            inputs = self._resolve_inputs(task, run)
        except KeyError as error:
            execution.state, execution.message = "FAILED", f"driver: cannot resolve input {error}"
            return "Failed"
        execution.executor_input = {"inputs": inputs, "outputs": self._provision_outputs(run.root, name, component)}
        execution.component, execution.container = component, container
        if task.get("cachingOptions", {}).get("enableCache", False):
            execution.fingerprint = fingerprint(cache_key(execution.executor_input, component, container))
            cached = self._cached_execution(execution.fingerprint)
            if cached is not None:  # driver/cache.go reuseCachedOutputs: no pod at all.
                execution.outputs = dict(cached.outputs)
                execution.output_parameters = dict(cached.output_parameters)
                execution.state = "CACHED"
        return "Succeeded"

    def _resolve_inputs(self, task: dict, run: _Run) -> dict[str, Any]:
        inputs: dict[str, Any] = {"parameterValues": {}, "artifacts": {}}
        for name, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in spec:
                inputs["parameterValues"][name] = spec["runtimeValue"]["constant"]
            elif "taskOutputParameter" in spec:  # resolve.go resolveUpstreamParameters.
                output = spec["taskOutputParameter"]
                producer = run.executions[output["producerTask"]]
                inputs["parameterValues"][name] = producer.output_parameters[output["outputParameterKey"]]
            else:
                raise KfpFailure(f"input parameter {name}: {sorted(spec)} is not emulated")
        for name, spec in task.get("inputs", {}).get("artifacts", {}).items():
            output = spec["taskOutputArtifact"]  # resolve.go resolveUpstreamArtifacts.
            artifact = self.artifacts[run.executions[output["producerTask"]].outputs[output["outputArtifactKey"]]]
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

    def _provision_outputs(self, root: str, name: str, component: dict) -> dict[str, Any]:
        task_root = generate_output_uri(root, name, str(uuid.uuid4()))
        declared = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        declared[LOG_OUTPUT] = {"artifactType": {"schemaTitle": "system.Artifact"}}  # --publish_logs=true
        artifacts = {}
        for output, spec in declared.items():
            artifact = {"name": output, "uri": generate_output_uri(task_root, output), "type": spec["artifactType"]}
            if spec.get("metadata"):
                artifact["metadata"] = spec["metadata"]
            artifacts[output] = {"artifacts": [artifact]}
        parameters = {
            output: {"outputFile": f"{PARAMETER_DIR}/{output}"}
            for output in component.get("outputDefinitions", {}).get("parameters", {})
        }
        output_file = f"{local_path_for_uri(task_root)}/output_metadata.json"
        return {"artifacts": artifacts, "parameters": parameters, "outputFile": output_file}

    def _cached_execution(self, key: str) -> Execution | None:
        with self._lock:
            entries = [e for e in self.cache if e.fingerprint == key and e.pipeline_name == self.pipeline_name]
            if not entries:
                return None
            return self.executions[max(entries, key=lambda entry: entry.created).execution_id]  # created_at desc

    # -- one pod: component/launcher_v2.go Execute ------------------------------------------------------------

    def _pod(self, run: _Run, execution: Execution, pod: str, retry: int, fault: Any, deadline: float | None) -> str:
        component, container = execution.component, execution.container
        pod_root = self.work_dir / run.name / execution.task / f"attempt-{retry}"
        env = self._pod_env(container, component["executorLabel"], run.name, pod, retry)
        self._check_pod(pod, run.name, run.run_id, list(env))
        executor_input = json.loads(json.dumps(execution.executor_input))
        logs = executor_input["outputs"]["artifacts"][LOG_OUTPUT]["artifacts"][0]
        logs["uri"] = f"{logs['uri']}-{retry}"  # qualifyExecutorLogsForRetry.
        in_pod = _PodFiles(pod_root)
        # The pod's own paths, under its root folder here.
        executor_input["outputs"]["outputFile"] = in_pod.path(executor_input["outputs"]["outputFile"])
        for parameter in executor_input["outputs"]["parameters"].values():
            parameter["outputFile"] = in_pod.path(parameter["outputFile"])
        log_path = in_pod.path(local_path_for_uri(logs["uri"]))
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            execution.copied_bytes = max(execution.copied_bytes, self._download_artifacts(executor_input, in_pod))
        except OSError as error:  # The launcher fails before the program starts.
            Path(log_path).write_text(f"failed to download input artifact: {error}\n")
            execution.log += Path(log_path).read_text()
            execution.message = f"launcher: {error}"
            self._upload(log_path, logs["uri"])
            return "Failed"
        for artifact_list in executor_input["outputs"]["artifacts"].values():  # prepareOutputFolders
            Path(in_pod.path(local_path_for_uri(artifact_list["artifacts"][0]["uri"]))).parent.mkdir(
                parents=True, exist_ok=True
            )
        for parameter in executor_input["outputs"]["parameters"].values():
            Path(parameter["outputFile"]).parent.mkdir(parents=True, exist_ok=True)
        Path(executor_input["outputs"]["outputFile"]).parent.mkdir(parents=True, exist_ok=True)
        placeholders = self._placeholders(executor_input, component)
        command = [fill(part, placeholders) for part in [*container.get("command", []), *container.get("args", [])]]
        status = self._execute(command, env, log_path, fault, deadline)
        execution.log += Path(log_path).read_text()
        if status != 0:  # execute: command.Run() returns the error; only the log is uploaded and recorded.
            self._upload(log_path, logs["uri"])
            execution.message = f"exit status {status}"
            return "Failed"
        if isinstance(fault, FailAfterExit):
            self._upload(log_path, logs["uri"])
            execution.message = f"launcher: {fault.step} failed after the program exited 0"
            return "Failed"
        self._publish_outputs(execution, executor_input, component, in_pod)
        if execution.fingerprint:  # Execute: the cache entry, once the task succeeded.
            with self._lock:
                self.cache.append(CacheEntry(execution.fingerprint, self.pipeline_name, execution.id, time.time()))
        return "Succeeded"

    def _execute(self, command, env, log_path, fault, deadline) -> int:
        with open(log_path, "w") as log:
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
            timer = None
            if deadline is not None:  # Argo's wait container kills the main container at ARGO_DEADLINE.
                timer = threading.Timer(max(0.0, deadline - time.time()), os.killpg, (process.pid, signal.SIGKILL))
                timer.start()
            lost = False
            for line in process.stdout:
                log.write(line)
                if isinstance(fault, (KillOnce, LoseNode)) and re.search(fault.pattern, line):
                    os.killpg(process.pid, signal.SIGKILL)
                    lost = isinstance(fault, LoseNode)
                    fault = None
            status = process.wait()
            if timer is not None:
                timer.cancel()
        if lost:
            raise PodError("pod deleted: its node was lost")
        return status

    def _download_artifacts(self, executor_input: dict, in_pod: _PodFiles) -> int:
        """launcher_v2.go downloadArtifacts -> objectstore DownloadBlob: every key under each input's prefix,
        to the input's local mirror; returns the bytes written to the pod's disk."""
        copied = 0
        for artifact_list in executor_input["inputs"]["artifacts"].values():
            for artifact in artifact_list["artifacts"]:
                local_dir = in_pod.path(local_path_for_uri(artifact["uri"]))
                bucket, _, blob_dir = artifact["uri"].removeprefix("s3://").partition("/")
                paginator = self.object_store.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=bucket, Prefix=blob_dir):
                    for item in page.get("Contents", []):
                        key = item["Key"]
                        if key != blob_dir.rstrip("/") and not key.startswith(blob_dir.rstrip("/") + "/"):
                            continue  # isBlobKeyUnderPrefix
                        local = os.path.normpath(os.path.join(local_dir, os.path.relpath(key, blob_dir)))
                        os.makedirs(os.path.dirname(local), exist_ok=True)  # Fails where a file is in the way.
                        body = self.object_store.get_object(Bucket=bucket, Key=key)["Body"].read()
                        with open(local, "wb") as handle:  # os.Create: a marker `dir/` becomes a file `dir`.
                            handle.write(body)
                        copied += len(body)
        return copied

    def _upload(self, local: str, uri: str) -> None:
        """objectstore UploadBlob: a file to its key, a folder's files under the prefix; a missing path is
        allowed (uploadOutputArtifacts: components need not write their local outputs)."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        path = Path(local)
        if path.is_file():
            self.object_store.upload_file(str(path), bucket, key)
        elif path.is_dir():
            for file in sorted(item for item in path.rglob("*") if item.is_file()):
                self.object_store.upload_file(str(file), bucket, f"{key}/{file.relative_to(path).as_posix()}")

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

    def _pod_env(self, container: dict, label: str, workflow: str, pod: str, retry: int) -> dict[str, str]:
        """The template's env (KFP_POD_NAME, KFP_POD_UID, KFP_RETRY_INDEX) and the driver's pod spec patch."""
        env = dict(self.image_env)
        env.update({"KFP_POD_NAME": pod, "KFP_POD_UID": str(uuid.uuid4()), "KFP_RETRY_INDEX": str(retry)})
        env.update({item["name"]: item["value"] for item in container.get("env", [])})
        kubernetes = self.platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        config = kubernetes.get("executors", {}).get(label, {})
        for secret in config.get("secretAsEnv", []):
            values = self.secrets[secret["secretName"]]  # A missing Secret or key fails the pod, as on a cluster.
            for item in secret["keyToEnv"]:
                env[item["envVar"]] = values[item["secretKey"]]
        for item in config.get("fieldPathAsEnv", []):
            if item["fieldPath"] != WORKFLOW_FIELD:
                raise KfpFailure(f"fieldPath {item['fieldPath']} is not emulated")
            env[item["name"]] = workflow
        return env

    def _publish_outputs(self, execution: Execution, executor_input: dict, component: dict, in_pod) -> None:
        output_file = Path(executor_input["outputs"]["outputFile"])
        executor_output = json.loads(output_file.read_text()) if output_file.exists() else {}
        parameters = dict(executor_output.get("parameterValues", {}))
        for name, parameter in executor_input["outputs"]["parameters"].items():
            if name not in parameters:  # collectOutputParameters: the file when the output file has none.
                kind = component["outputDefinitions"]["parameters"][name]["parameterType"]
                parameters[name] = text_to_value(Path(parameter["outputFile"]).read_text(), kind)
        outputs = {}
        for name, artifact_list in executor_input["outputs"]["artifacts"].items():
            provisioned = artifact_list["artifacts"][0]
            produced = executor_output.get("artifacts", {}).get(name, {}).get("artifacts", [])
            if produced and name != LOG_OUTPUT:  # mergeRuntimeArtifacts
                if produced[0].get("uri"):
                    provisioned["uri"] = produced[0]["uri"]
                provisioned.setdefault("metadata", {}).update(produced[0].get("metadata", {}))
            self._upload(in_pod.path(local_path_for_uri(provisioned["uri"])), provisioned["uri"])
            # metadata/client.go RecordArtifact.
            properties = {key: to_mlmd_value(value) for key, value in provisioned.get("metadata", {}).items()}
            properties.setdefault("display_name", {"string_value": name})
            properties.setdefault("store_session_info", {"string_value": json.dumps({"Provider": "s3"})})
            artifact_type = provisioned["type"]
            schema = artifact_type.get("instanceSchema") or f"title: {artifact_type.get('schemaTitle')}"
            artifact = Artifact(self._id(), provisioned["uri"], schema, properties)
            with self._lock:
                self.artifacts[artifact.id] = artifact
            outputs[name] = artifact.id
        execution.outputs = outputs
        execution.output_parameters = parameters


@dataclasses.dataclass
class _Run:
    workflow: dict
    name: str
    run_id: str
    root: str
    faults: dict[str, Any]
    started: float
    executions: dict[str, Execution] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _PodFiles:
    """The pod's filesystem: its absolute paths, under a folder of this machine."""

    root: Path

    def path(self, pod_path: str) -> str:
        return str(self.root / pod_path.lstrip("/"))


def cache_key(executor_input: dict, component: dict, container: dict) -> dict[str, Any]:
    """cacheutils/cache.go GenerateCacheKey, with driver/cache.go getFingerPrint's arguments (2.17.0): the command
    and args as compiled (placeholders unfilled) and the image. 2.17.0's `containerSpec.pvcNames` lists the
    task's PVCs; the package mounts none, and protojson leaves the empty list out."""
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
