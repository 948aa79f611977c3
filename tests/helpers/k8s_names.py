"""The names Kubernetes and Argo accept, as their validators word them, for the KFP emulator's checks.

Kubernetes: k8s.io/apimachinery pkg/util/validation/validation.go (IsDNS1123Subdomain, IsDNS1123Label,
IsValidLabelValue, IsQualifiedName, IsEnvVarName); a Pod's and a Workflow's metadata.name are DNS-1123
subdomains (pkg/apis/core/validation ValidatePodName = NameIsDNSSubdomain), container and volume names DNS-1123
labels. Argo: argoproj/argo-workflows v4.0.5 workflow/validate/validate.go (ValidateWorkflow: a workflow name
of at most 63 characters; validateWorkflowFieldNames: template and DAG task names `[a-zA-Z0-9][-a-zA-Z0-9]*` of
at most 128, parameter names `[-a-zA-Z0-9_]+`).
"""

from __future__ import annotations

import re

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_ARGO_FIELD_NAME = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9]*")
_ARGO_PARAMETER_NAME = re.compile(r"[-a-zA-Z0-9_]+")
ARGO_MAX_WORKFLOW_NAME = 63
ARGO_MAX_FIELD_NAME = 128


class InvalidName(ValueError):
    """What the API server answers when it refuses an object: `<Kind> "<name>" is invalid: <field>: ...`."""


def dns1123_subdomain(kind: str, field: str, name: str) -> None:
    if len(name) > 253:
        raise InvalidName(f'{kind} "{name}" is invalid: {field}: must be no more than 253 characters')
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        raise InvalidName(
            f'{kind} "{name}" is invalid: {field}: Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
            "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character"
        )


def dns1123_label(kind: str, field: str, name: str) -> None:
    if len(name) > 63 or not re.fullmatch(_DNS1123_LABEL, name):
        raise InvalidName(
            f'{kind} is invalid: {field}: Invalid value: "{name}": a lowercase RFC 1123 label must consist of '
            "lower case alphanumeric characters or '-', and must start and end with an alphanumeric character "
            "(at most 63 characters)"
        )


def label(kind: str, key: str, value: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix:
        dns1123_subdomain(kind, f"metadata.labels: prefix of {key}", prefix)
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        raise InvalidName(f"{kind} is invalid: metadata.labels: Invalid value: {key!r}: not a qualified name")
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise InvalidName(
            f'{kind} is invalid: metadata.labels: Invalid value: "{value}": a valid label must be an empty string '
            "or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
            "character (at most 63 characters)"
        )


def env_var(kind: str, name: str) -> None:
    if not _ENV_VAR_NAME.fullmatch(name):
        raise InvalidName(f'{kind} is invalid: env: Invalid value: "{name}": a valid environment variable name')


def argo_workflow_name(name: str) -> None:
    if len(name) > ARGO_MAX_WORKFLOW_NAME:
        raise InvalidName(f"workflow name {name!r} must not be more than 63 characters long (currently {len(name)})")
    dns1123_subdomain("Workflow", "metadata.name", name)


def argo_field_name(where: str, name: str) -> None:
    """A template's or a DAG task's name."""
    if len(name) > ARGO_MAX_FIELD_NAME or not _ARGO_FIELD_NAME.fullmatch(name):
        raise InvalidName(
            f"{where}.name: '{name}' is invalid: name must consist of alpha-numeric characters or '-', and must "
            "start with an alpha-numeric character (e.g. My-name1-2, 123-NAME)"
        )


def argo_parameter_name(where: str, name: str) -> None:
    if not _ARGO_PARAMETER_NAME.fullmatch(name):
        raise InvalidName(
            f"{where}.name: '{name}' is invalid: Parameter/Artifact name must consist of alpha-numeric "
            "characters, '_' or '-' e.g. my_param_1, MY-PARAM-1"
        )
