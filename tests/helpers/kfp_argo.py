"""The Argo layer of KFP 2.17.0, for the emulator: the Workflow its API server builds from a compiled package,
the names Argo gives the nodes and pods of a run, and Argo's retry decisions.

Written from the Go source, not copied, at the pinned tags:
- kubeflow/pipelines 2.17.0 backend/src/v2/compiler/visitor.go `Accept` (depth first from `root`, tasks in name
  order) and backend/src/v2/compiler/argocompiler/: argo.go `Compile` (generateName, podMetadata, the
  security context, the `components-`/`implementations-`/`kubernetes-` workflow parameters), dag.go `DAG`,
  `task`, `addImplicitDependencies`, `depends`, `dagDriverTask`, `addDAGDriverTemplate`, container.go
  `containerDriverTask`, `addContainerDriverTemplate`, `containerExecutorTask`, `addContainerExecutorTemplate`
  (a retried task runs `retry-system-container-impl`; 2.5.0 named it `<task>-system-container-impl`),
  `getTaskRetryParametersWithValues`, `getTaskRetryStrategyFromInput`.
- argoproj/argo-workflows v4.0.5 (the Argo KFP 2.17.0's go.mod and manifests pin): workflow/util/pod_name.go
  `GeneratePodName` (`<workflow>-<template>-<fnv32a(node name)>`), workflow/controller/dag.go (a DAG task's node
  is `<dag node>.<task>`), operator.go `executeTemplate` (a retried node's attempts are `<node>(<n>)`) and
  `processNodeRetries` (below, `retry_decision`), workflowpod.go `createWorkflowPod` (labels, ARGO_DEADLINE),
  pkg/apis/workflow/v1alpha1 `RetryStrategy.RetryPolicyActual` (no policy and no expression: OnFailure) and
  utils.go `ParseStringToDuration` (a bare number is seconds).

The Go compiler names a component's workflow parameters after a sha256 of its container as encoding/json
writes the Go struct; here the hash is of the container's JSON, so parameter names differ from Go's while
every reference resolves to the same value (tests/pipeline/kubeflow/test_kfp_argo.py compares resolved values).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from tests.helpers import k8s_names

KFP_VERSION = "2.17.0"
DRIVER_IMAGE = "ghcr.io/kubeflow/kfp-driver:2.17.0"  # V2_DRIVER_IMAGE in the 2.17.0 apiserver manifest.
LAUNCHER_IMAGE = "ghcr.io/kubeflow/kfp-launcher:2.17.0"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
RUN_ID_LABEL = "pipeline/runid"  # apiserver/template/v2_template.go RunWorkflow: SetPodMetadataLabels.
CONTAINER_DRIVER = "system-container-driver"
DAG_DRIVER = "system-dag-driver"
RETRY_PARAMETERS = ("retry-max-count", "retry-backoff-duration", "retry-backoff-factor", "retry-backoff-max-duration")
SCRATCH_VOLUMES = (  # container.go: the launcher binary and one emptyDir per local mirror of a store.
    ("kfp-launcher", "/kfp-launcher"),
    ("gcs-scratch", "/gcs"),
    ("s3-scratch", "/s3"),
    ("minio-scratch", "/minio"),
    ("dot-local-scratch", "/.local"),
    ("dot-cache-scratch", "/.cache"),
    ("dot-config-scratch", "/.config"),
)
_POD_ENV = [
    {"name": "KFP_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "KFP_POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
]


def stable_json(value: Any) -> str:
    """argo.go stablyMarshalJSON: protojson, then encoding/json's sorted keys, compact."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def go_value(value: Any) -> str:
    """wfapi.AnyStringPtr: fmt's %v (a float64 2 is "2")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def duration_seconds(duration: str) -> int:
    """A protobuf Duration's JSON ("60s") -> its Seconds field, as getTaskRetryParametersWithValues passes it."""
    return int(float(duration.rstrip("s")))


def _input(name: str, default: str | None = None) -> dict[str, Any]:
    return {"name": name} if default is None else {"name": name, "default": default}


def _ref(name: str) -> str:
    return f"{{{{inputs.parameters.{name}}}}}"


def _task_output(task: str, name: str) -> str:
    return f"{{{{tasks.{task}.outputs.parameters.{name}}}}}"


def depends(tasks: list[str]) -> str:
    return " && ".join(f"{task}.Succeeded" for task in tasks)


def parse_depends(expression: str) -> list[str]:
    """The tasks a KFP `depends` names; KFP writes only `A.Succeeded && B.Succeeded`."""
    if not expression:
        return []
    names = []
    for term in expression.split(" && "):
        task, _, status = term.partition(".")
        if status != "Succeeded":
            raise ValueError(f"depends term {term!r} is not one KFP writes")
        names.append(task)
    return names


def with_implicit_dependencies(tasks: dict[str, Any]) -> dict[str, Any]:
    """dag.go addImplicitDependencies: every producer of an input joins dependentTasks (once, appended)."""
    tasks = json.loads(json.dumps(tasks))
    for task in tasks.values():
        for kind, key in (("parameters", "taskOutputParameter"), ("artifacts", "taskOutputArtifact")):
            for spec in task.get("inputs", {}).get(kind, {}).values():
                if key in spec:
                    producer = spec[key]["producerTask"]
                    if producer not in tasks:
                        raise ValueError(f'unknown producer task "{producer}" in DAG')
                    task.setdefault("dependentTasks", [])
                    if producer not in task["dependentTasks"]:
                        task["dependentTasks"].append(producer)
    return tasks


class WorkflowBuilder:
    def __init__(self, pipeline_spec: dict, platform_spec: dict | None, kfp_version: str = KFP_VERSION):
        self.spec = pipeline_spec
        self.kubernetes = (platform_spec or {}).get("platforms", {}).get("kubernetes", {})
        self.kfp_version = kfp_version
        self.templates: list[dict] = []
        self.parameters: list[dict] = []

    # -- argo.go: workflow parameters ----------------------------------------------------------------------

    def _parameter(self, name: str, value: Any) -> str:
        if not any(parameter["name"] == name for parameter in self.parameters):
            self.parameters.append({"name": name, "value": value if isinstance(value, str) else stable_json(value)})
        return f"{{{{workflow.parameters.{name}}}}}"

    def _hash(self, component: str) -> str:
        """argo.go hashComponentContainer: the component's container, hashed; `root` stays `root`."""
        if component == "root":
            return component
        label = self.spec["components"][component].get("executorLabel")
        container = self.spec["deploymentSpec"]["executors"].get(label, {}).get("container")
        return hashlib.sha256(stable_json(container).encode()).hexdigest() if container else component

    def _has_template(self, name: str) -> bool:
        return any(template["name"] == name for template in self.templates)

    # -- visitor.go Accept ---------------------------------------------------------------------------------

    def build(self, runtime_config: dict[str, Any]) -> dict[str, Any]:
        self._visit("root", self.spec["root"], runtime_config, set())
        pipeline_name = self.spec["pipelineInfo"]["name"]
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": pipeline_name.split("/")[-1] + "-"},
            "spec": {
                "arguments": {"parameters": self.parameters},
                "entrypoint": "entrypoint",
                "podMetadata": {
                    "annotations": {"pipelines.kubeflow.org/v2_component": "true"},
                    "labels": {"pipelines.kubeflow.org/v2_component": "true"},
                },
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "serviceAccountName": "pipeline-runner",
                "templates": self.templates,
            },
        }

    def _visit(self, name: str, component: dict, runtime_config: dict, visited: set[str]) -> None:
        if name in visited:
            return
        visited.add(name)
        label = component.get("executorLabel")
        if label:
            executor = self.kubernetes.get("deploymentSpec", {}).get("executors", {}).get(label)
            if executor is not None:  # AddKubernetesSpec, before Container.
                self._parameter(f"kubernetes-{name}", executor)
            self._parameter(f"components-{self._hash(name)}", component)  # container.go Container.
            container = self.spec["deploymentSpec"]["executors"][label]["container"]
            self._parameter(f"implementations-{self._hash(name)}", container)
            return
        for task_name in sorted(component["dag"]["tasks"]):
            reference = component["dag"]["tasks"][task_name]["componentRef"]["name"]
            self._visit(reference, self.spec["components"][reference], runtime_config, visited)
        self._dag(name, component, runtime_config)

    # -- dag.go DAG -----------------------------------------------------------------------------------------

    def _dag(self, name: str, component: dict, runtime_config: dict) -> None:
        tasks = with_implicit_dependencies(component["dag"]["tasks"])
        self._parameter(f"components-{self._hash(name)}", component)
        dag_tasks: list[dict] = []
        for task_name in sorted(tasks):
            dag_tasks.extend(self._task(task_name, tasks[task_name]))
        self.templates.append(
            {"name": name, "inputs": {"parameters": [_input("parent-dag-id")]}, "dag": {"tasks": dag_tasks}}
        )
        if name != "root":
            return
        driver = {
            "name": "root-driver",
            "template": self._dag_driver_template(),
            "arguments": {
                "parameters": [
                    {"name": "component", "value": f"{{{{workflow.parameters.components-{self._hash('root')}}}}}"},
                    {"name": "runtime-config", "value": stable_json(runtime_config)},
                    {"name": "driver-type", "value": "ROOT_DAG"},
                ]
            },
        }
        root = {
            "name": "root",
            "template": "root",
            "depends": depends(["root-driver"]),
            "arguments": {
                "parameters": [
                    {"name": "parent-dag-id", "value": _task_output("root-driver", "execution-id")},
                    {"name": "condition", "value": ""},
                ]
            },
        }
        self.templates.append({"name": "entrypoint", "dag": {"tasks": [driver, root]}})

    def _task(self, name: str, task: dict) -> list[dict]:
        """dag.go task, for a container component (the only kind a TFX package compiles to)."""
        component_name = task["componentRef"]["name"]
        component = self.spec["components"][component_name]
        if "executorLabel" not in component:
            raise NotImplementedError(f"task {name}: sub-DAGs are not emulated")
        if "parameterIterator" in task or "artifactIterator" in task or "triggerPolicy" in task:
            raise NotImplementedError(f"task {name}: loops, conditions and exit handlers are not emulated")
        component_ref = f"{{{{workflow.parameters.components-{self._hash(component_name)}}}}}"
        container_ref = f"{{{{workflow.parameters.implementations-{self._hash(component_name)}}}}}"
        driver_name = f"{name}-driver"
        arguments = [
            {"name": "component", "value": component_ref},
            {"name": "task", "value": stable_json(task)},
            {"name": "container", "value": container_ref},
            {"name": "task-name", "value": name},
            {"name": "parent-dag-id", "value": _ref("parent-dag-id")},
        ]
        if any(parameter["name"] == f"kubernetes-{component_name}" for parameter in self.parameters):
            arguments.append(
                {"name": "kubernetes-config", "value": f"{{{{workflow.parameters.kubernetes-{component_name}}}}}"}
            )
        driver = {"name": driver_name, "template": self._container_driver_template(), "arguments": {}}
        driver["arguments"]["parameters"] = arguments
        if task.get("dependentTasks"):
            driver["depends"] = depends(task["dependentTasks"])
        executor_arguments = [
            {"name": "pod-spec-patch", "value": _task_output(driver_name, "pod-spec-patch")},
            {"name": "cached-decision", "value": _task_output(driver_name, "cached-decision"), "default": "false"},
            *self._retry_values(task),
        ]
        executor = {
            "name": name,
            "template": self._executor_templates(name, task),
            "arguments": {"parameters": executor_arguments},
            "depends": depends([driver_name]),
        }
        return [driver, executor]

    # -- container.go ---------------------------------------------------------------------------------------

    @staticmethod
    def _retry_values(task: dict) -> list[dict]:
        """getTaskRetryParametersWithValues."""
        policy = task.get("retryPolicy")
        if policy is None:
            return []
        values = [{"name": "retry-max-count", "value": go_value(policy.get("maxRetryCount", 0))}]
        if "backoffDuration" in policy:
            values.append({"name": "retry-backoff-duration", "value": str(duration_seconds(policy["backoffDuration"]))})
        values.append({"name": "retry-backoff-factor", "value": go_value(policy.get("backoffFactor", 0))})
        if "backoffMaxDuration" in policy:
            seconds = duration_seconds(policy["backoffMaxDuration"])
            values.append({"name": "retry-backoff-max-duration", "value": str(seconds)})
        return values

    def _executor_templates(self, name: str, task: dict) -> str:
        """addContainerExecutorTemplate: the executor DAG and the implementation container it runs."""
        executor_name, impl_name = "system-container-executor", "system-container-impl"
        retried = "retryPolicy" in task
        if retried:
            prefix = f"{name}-" if self.kfp_version == "2.5.0" else "retry-"
            executor_name, impl_name = prefix + executor_name, prefix + impl_name
        if self._has_template(executor_name):
            return executor_name
        retry_inputs = [_input(parameter, "0") for parameter in RETRY_PARAMETERS] if retried else []
        executor = {
            "name": executor_name,
            "inputs": {"parameters": [_input("pod-spec-patch"), _input("cached-decision", "false"), *retry_inputs]},
            "dag": {
                "tasks": [
                    {
                        "name": "executor",
                        "template": impl_name,
                        "arguments": {
                            "parameters": [
                                {"name": "pod-spec-patch", "value": _ref("pod-spec-patch")},
                                *(
                                    {"name": parameter, "value": _ref(parameter)}
                                    for parameter in (RETRY_PARAMETERS if retried else ())
                                ),
                            ]
                        },
                        "when": f"{_ref('cached-decision')} != true",
                    }
                ]
            },
        }
        env = list(_POD_ENV)
        if retried:  # KFP_RETRY_INDEX: {{retries}} is only valid in a template with a retryStrategy.
            env.append({"name": "KFP_RETRY_INDEX", "value": "{{retries}}"})
        impl = {
            "name": impl_name,
            "metadata": {"annotations": {"pipelines.kubeflow.org/runtime-role": "launcher"}},
            "inputs": {
                "parameters": [_input("pod-spec-patch"), *(_input(parameter) for parameter in RETRY_PARAMETERS)]
                if retried
                else [_input("pod-spec-patch")]
            },
            "podSpecPatch": _ref("pod-spec-patch"),
            "initContainers": [
                {
                    "name": "kfp-launcher",
                    "image": LAUNCHER_IMAGE,
                    "command": ["launcher-v2"],
                    "args": ["--copy", "/kfp-launcher/launch"],
                    "volumeMounts": [{"name": "kfp-launcher", "mountPath": "/kfp-launcher"}],
                }
            ],
            "container": {
                "name": "",
                "image": "gcr.io/ml-pipeline/should-be-overridden-during-runtime",
                "command": ["should-be-overridden-during-runtime"],
                "env": env,
                "envFrom": [{"configMapRef": {"name": "metadata-grpc-configmap", "optional": True}}],
                "volumeMounts": [{"name": volume, "mountPath": path} for volume, path in SCRATCH_VOLUMES],
            },
            "volumes": [{"name": volume, "emptyDir": {}} for volume, _ in SCRATCH_VOLUMES],
        }
        if retried:  # getTaskRetryStrategyFromInput; no retryPolicy, so Argo's default (OnFailure).
            impl["retryStrategy"] = {
                "limit": _ref("retry-max-count"),
                "backoff": {
                    "duration": _ref("retry-backoff-duration"),
                    "factor": _ref("retry-backoff-factor"),
                    "maxDuration": _ref("retry-backoff-max-duration"),
                },
            }
        self.templates.extend([executor, impl])
        return executor_name

    def _container_driver_template(self) -> str:
        if not self._has_template(CONTAINER_DRIVER):
            self.templates.append(self._driver_template(CONTAINER_DRIVER, container=True))
        return CONTAINER_DRIVER

    def _dag_driver_template(self) -> str:
        if not self._has_template(DAG_DRIVER):
            self.templates.append(self._driver_template(DAG_DRIVER, container=False))
        return DAG_DRIVER

    def _driver_template(self, name: str, container: bool) -> dict[str, Any]:
        """addContainerDriverTemplate / addDAGDriverTemplate (their inputs and outputs; the args are the
        driver's flags, which the emulator's driver takes from the task's arguments instead)."""
        if container:
            inputs = [
                *(_input(parameter) for parameter in ("component", "task", "container", "task-name", "parent-dag-id")),
                _input("iteration-index", "-1"),
                _input("kubernetes-config", ""),
            ]
            outputs = [
                {"name": "pod-spec-patch", "valueFrom": {"default": "", "path": "/tmp/outputs/pod-spec-patch"}},
                {
                    "name": "cached-decision",
                    "default": "false",
                    "valueFrom": {"default": "false", "path": "/tmp/outputs/cached-decision"},
                },
                {"name": "condition", "valueFrom": {"default": "true", "path": "/tmp/outputs/condition"}},
            ]
        else:
            inputs = [
                _input("component"),
                _input("runtime-config", ""),
                _input("task", ""),
                _input("task-name", ""),
                _input("parent-dag-id", "0"),
                _input("iteration-index", "-1"),
                _input("driver-type", "DAG"),
            ]
            outputs = [
                {"name": "execution-id", "valueFrom": {"path": "/tmp/outputs/execution-id"}},
                {"name": "iteration-count", "valueFrom": {"default": "0", "path": "/tmp/outputs/iteration-count"}},
                {"name": "condition", "valueFrom": {"default": "true", "path": "/tmp/outputs/condition"}},
            ]
        return {
            "name": name,
            "metadata": {"annotations": {"pipelines.kubeflow.org/runtime-role": "driver"}},
            "inputs": {"parameters": inputs},
            "outputs": {"parameters": outputs},
            "container": {"name": "", "image": DRIVER_IMAGE, "command": ["driver"], "env": list(_POD_ENV) * container},
        }


def compile_workflow(
    pipeline_spec: dict, platform_spec: dict | None, runtime_config: dict, kfp_version: str = KFP_VERSION
) -> dict[str, Any]:
    """argocompiler.Compile for a run: the package plus the run's runtime config (its parameter values, with the
    root's defaults filled in, and `gcsOutputDirectory`, the run's pipeline root, when it has one)."""
    runtime = json.loads(json.dumps(runtime_config))
    values = runtime.setdefault("parameterValues", {})
    for name, parameter in pipeline_spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
        if name not in values and "defaultValue" in parameter:
            values[name] = parameter["defaultValue"]
    if not values:
        del runtime["parameterValues"]
    return WorkflowBuilder(pipeline_spec, platform_spec, kfp_version).build(runtime)


def template(workflow: dict, name: str) -> dict[str, Any]:
    (found,) = [item for item in workflow["spec"]["templates"] if item["name"] == name]
    return found


def resolve(workflow: dict, value: str) -> str:
    """A `{{workflow.parameters.X}}` reference -> the parameter's value (other text unchanged)."""
    for parameter in workflow["spec"]["arguments"]["parameters"]:
        value = value.replace(f"{{{{workflow.parameters.{parameter['name']}}}}}", parameter["value"])
    return value


# -- Argo: names -------------------------------------------------------------------------------------------


def fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def pod_name(workflow_name: str, node_name: str, template_name: str) -> str:
    """pod_name.go GeneratePodName, POD_NAMES=v2 (the default): not lowercased, the prefix cut at 242."""
    if workflow_name == node_name:
        return workflow_name
    prefix = f"{workflow_name}-{template_name}" if template_name else workflow_name
    return f"{prefix[: 253 - 10 - 1]}-{fnv32a(node_name)}"


def check_workflow(workflow: dict, name: str) -> None:
    """What Argo's validation and the API server check before the run starts (k8s_names says which rule)."""
    k8s_names.argo_workflow_name(name)
    for parameter in workflow["spec"]["arguments"]["parameters"]:
        k8s_names.argo_parameter_name("spec.arguments.parameters", parameter["name"])
    for item in workflow["spec"]["templates"]:
        k8s_names.argo_field_name("spec.templates", item["name"])
        for task in item.get("dag", {}).get("tasks", []):
            k8s_names.argo_field_name(f"templates.{item['name']}.tasks", task["name"])


def check_pod(name: str, labels: dict[str, str], containers: list[str], volumes: list[str], env: list[str]) -> None:
    """What the API server checks of a pod Argo creates (createWorkflowPod); a refusal is an Error node."""
    k8s_names.dns1123_subdomain("Pod", "metadata.name", name)
    for key, value in labels.items():
        k8s_names.label(f'Pod "{name}"', key, value)
    for container in containers:
        k8s_names.dns1123_label(f'Pod "{name}"', "spec.containers[].name", container)
    for volume in volumes:
        k8s_names.dns1123_label(f'Pod "{name}"', "spec.volumes[].name", volume)
    for variable in env:
        k8s_names.env_var(f'Pod "{name}"', variable)


# -- Argo: retries (operator.go processNodeRetries) ---------------------------------------------------------


def parse_duration(text: str) -> float:
    """ParseStringToDuration: a bare integer is seconds; otherwise a Go duration (only `s` and `m` here)."""
    if text.lstrip("-").isdigit():
        return float(int(text))
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unable to parse {text} as a duration")


@dataclasses.dataclass(frozen=True)
class RetryStrategy:
    limit: int
    duration: float
    factor: int  # intstr.Int32: a factor that is not an integer string is an error, as in Argo.
    max_duration: float | None
    policy: str = "OnFailure"  # RetryPolicyActual with no retryPolicy and no expression.

    @classmethod
    def from_template(cls, strategy: dict[str, str]) -> RetryStrategy:
        backoff = strategy.get("backoff", {})
        factor = backoff.get("factor", "0")
        if not str(factor).lstrip("-").isdigit():
            raise ValueError(f"retryStrategy.backoff.factor {factor!r}: not an integer (intstr.Int32)")
        max_duration = backoff.get("maxDuration", "")
        return cls(
            limit=int(strategy["limit"]),
            duration=parse_duration(backoff.get("duration", "0")),
            factor=int(factor),
            # Only an empty maxDuration means none: "0" (KFP's default when the task sets none) is a deadline
            # at the first attempt's start, so no retry is ever made.
            max_duration=parse_duration(max_duration) if max_duration != "" else None,
            policy=strategy.get("retryPolicy", "OnFailure"),
        )


@dataclasses.dataclass(frozen=True)
class Attempt:
    phase: str  # Succeeded, Failed (the container failed) or Error (the pod was lost or refused)
    started: float
    finished: float


@dataclasses.dataclass(frozen=True)
class Decision:
    action: str  # "done", "retry" or "fail"
    wait: float = 0.0  # Seconds to wait before the next attempt.
    deadline: float | None = None  # ARGO_DEADLINE of the next attempt (absolute), from backoff.maxDuration.
    message: str = ""


def retry_decision(strategy: RetryStrategy, attempts: list[Attempt], now: float) -> Decision:
    """After an attempt ended, what Argo does next, in processNodeRetries' order of checks (Argo waits out a
    backoff before it looks at the policy; the outcome is the same). The first attempt has no deadline
    (processNodeRetries returns before the backoff for a node with no attempt yet); every retry runs until
    the first attempt's start plus maxDuration, when Argo's wait container kills it (ARGO_DEADLINE,
    workflow/executor/executor.go monitorDeadline)."""
    last = attempts[-1]
    if last.phase == "Succeeded":
        return Decision("done")
    deadline = None
    wait = 0.0
    if strategy.max_duration is not None:
        deadline = attempts[0].started + strategy.max_duration
        if now > deadline:
            return Decision("fail", message="Max duration limit exceeded")
    wait = strategy.duration
    if strategy.factor > 0:
        wait = strategy.duration * math.pow(strategy.factor, len(attempts) - 1)
    waiting_deadline = last.finished + wait
    if deadline is not None and waiting_deadline > deadline:
        return Decision("fail", message="Backoff would exceed max duration limit")
    retry_on_failed = strategy.policy in ("Always", "OnFailure")
    retry_on_error = strategy.policy in ("Always", "OnError")
    if (last.phase == "Failed" and not retry_on_failed) or (last.phase == "Error" and not retry_on_error):
        return Decision("fail", message=f"{last.phase} node not set to be retried ({strategy.policy})")
    if len(attempts) > strategy.limit:
        return Decision("fail", message="No more retries left")
    return Decision("retry", wait=max(0.0, waiting_deadline - now), deadline=deadline)
