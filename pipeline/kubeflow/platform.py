"""A strict check of the KFP Kubernetes platform spec: a misspelt key fails `xfer compile` and `xfer submit`
offline, instead of being dropped or refused when the run starts.

kfp's PipelineSpec proto types the platform spec as a plain Struct, so kfp's own loader accepts any key. The
messages below mirror kubeflow/pipelines 2.17.0 kubernetes_platform/proto/kubernetes_executor_config.proto
(the proto the pinned 2.17.0 backend builds with, go.mod: `kubernetes_platform => ./kubernetes_platform`),
field by field in their JSON names. The kfp-kubernetes package that ships it compiled is not used: the newest
release that installs beside kfp 2.5 (1.0.0) predates fieldPathAsEnv and tolerations.
"""

from __future__ import annotations

from typing import Any

# Field kinds: "string", "bool", "int", "map" (string to string), "parameter" (an ml_pipelines
# TaskInputsSpec.InputParameterSpec, checked with kfp's own proto), "struct" (google.protobuf.Struct), a
# message name, or a list of one of them (repeated).
_MESSAGES: dict[str, dict[str, Any]] = {
    "KubernetesExecutorConfig": {
        "secretAsVolume": ["SecretAsVolume"],
        "secretAsEnv": ["SecretAsEnv"],
        "pvcMount": ["PvcMount"],
        "nodeSelector": "NodeSelector",
        "podMetadata": "PodMetadata",
        "imagePullSecret": ["ImagePullSecret"],
        "imagePullPolicy": "string",
        "configMapAsVolume": ["ConfigMapAsVolume"],
        "configMapAsEnv": ["ConfigMapAsEnv"],
        "activeDeadlineSeconds": "int",
        "fieldPathAsEnv": ["FieldPathAsEnv"],
        "tolerations": ["Toleration"],
        "genericEphemeralVolume": ["GenericEphemeralVolume"],
        "nodeAffinity": ["NodeAffinityTerm"],
        "podAffinity": ["PodAffinityTerm"],
        "enabledSharedMemory": "EnabledSharedMemory",
        "emptyDirMounts": ["EmptyDirMount"],
        "securityContext": "SecurityContext",
    },
    # Fields 3-5 (privileged, capabilities) are reserved in 2.17.0: the backend drops every capability.
    "SecurityContext": {"runAsUser": "int", "runAsGroup": "int", "runAsNonRoot": "bool"},
    "EnabledSharedMemory": {"volumeName": "string", "size": "string"},
    "SecretAsVolume": {
        "secretName": "string",
        "mountPath": "string",
        "optional": "bool",
        "secretNameParameter": "parameter",
    },
    "SecretAsEnv": {
        "secretName": "string",
        "keyToEnv": ["SecretKeyToEnvMap"],
        "optional": "bool",
        "secretNameParameter": "parameter",
    },
    "SecretKeyToEnvMap": {"secretKey": "string", "envVar": "string"},
    "PvcMount": {
        "taskOutputParameter": "parameter",
        "constant": "string",
        "componentInputParameter": "string",
        "mountPath": "string",
        "pvcNameParameter": "parameter",
        "subPath": "string",
    },
    "NodeSelector": {"labels": "map", "nodeSelectorJson": "parameter"},
    "PodMetadata": {"labels": "map", "annotations": "map"},
    "ConfigMapAsVolume": {
        "configMapName": "string",
        "mountPath": "string",
        "optional": "bool",
        "configMapNameParameter": "parameter",
    },
    "ConfigMapAsEnv": {
        "configMapName": "string",
        "keyToEnv": ["ConfigMapKeyToEnvMap"],
        "configMapNameParameter": "parameter",
        "optional": "bool",
    },
    "ConfigMapKeyToEnvMap": {"configMapKey": "string", "envVar": "string"},
    "GenericEphemeralVolume": {
        "volumeName": "string",
        "mountPath": "string",
        "accessModes": ["string"],
        "size": "string",
        "defaultStorageClass": "bool",
        "storageClassName": "string",
        "metadata": "PodMetadata",
    },
    "ImagePullSecret": {"secretName": "string", "secretNameParameter": "parameter"},
    "FieldPathAsEnv": {"name": "string", "fieldPath": "string"},
    "Toleration": {
        "key": "string",
        "operator": "string",
        "value": "string",
        "effect": "string",
        "tolerationSeconds": "int",
        "tolerationJson": "parameter",
    },
    "SelectorRequirement": {"key": "string", "operator": "string", "values": ["string"]},
    "NodeAffinityTerm": {
        "matchExpressions": ["SelectorRequirement"],
        "matchFields": ["SelectorRequirement"],
        "weight": "int",
        "nodeAffinityJson": "parameter",
    },
    "PodAffinityTerm": {
        "matchPodExpressions": ["SelectorRequirement"],
        "matchPodLabels": "map",
        "topologyKey": "string",
        "namespaces": ["string"],
        "matchNamespaceExpressions": ["SelectorRequirement"],
        "matchNamespaceLabels": "map",
        "weight": "int",
        "anti": "bool",
    },
    "EmptyDirMount": {"volumeName": "string", "mountPath": "string", "medium": "string", "sizeLimit": "string"},
}


class PlatformSpecError(ValueError):
    pass


def check_platform_spec(platform_spec: dict[str, Any]) -> None:
    """Raises PlatformSpecError naming the first key KFP's KubernetesExecutorConfig does not have."""
    _keys(platform_spec, {"platforms"}, "platform_spec")
    for platform, body in platform_spec.get("platforms", {}).items():
        where = f"platforms.{platform}"
        if platform != "kubernetes":
            raise PlatformSpecError(f"{where}: self-hosted KFP reads only the `kubernetes` platform")
        _keys(body, {"deploymentSpec"}, where)
        _keys(body.get("deploymentSpec", {}), {"executors"}, f"{where}.deploymentSpec")
        for label, config in body.get("deploymentSpec", {}).get("executors", {}).items():
            _check(config, "KubernetesExecutorConfig", f"{where}.deploymentSpec.executors.{label}")


def _keys(value: Any, allowed: set[str], where: str) -> None:
    if not isinstance(value, dict):
        raise PlatformSpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise PlatformSpecError(f"{where}.{unknown[0]}: no such field (fields: {', '.join(sorted(allowed))})")


def _check(value: Any, kind: Any, where: str) -> None:
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise PlatformSpecError(f"{where}: expected a list, got {type(value).__name__}")
        for index, item in enumerate(value):
            _check(item, kind[0], f"{where}[{index}]")
    elif kind in _MESSAGES:
        fields = _MESSAGES[kind]
        _keys(value, set(fields), where)
        for name, item in value.items():
            _check(item, fields[name], f"{where}.{name}")
    elif kind == "map":
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise PlatformSpecError(f"{where}: expected a mapping of strings")
    elif kind == "parameter":
        from google.protobuf import json_format
        from kfp.pipeline_spec import pipeline_spec_pb2

        try:
            json_format.ParseDict(value, pipeline_spec_pb2.TaskInputsSpec.InputParameterSpec())
        except json_format.ParseError as error:
            raise PlatformSpecError(f"{where}: {error}") from None
    else:
        expected = {"string": str, "bool": bool, "int": (int, str)}[kind]  # int64 may be a JSON string.
        if not isinstance(value, expected) or (kind == "int" and isinstance(value, bool)):
            raise PlatformSpecError(f"{where}: expected {kind}, got {value!r}")
