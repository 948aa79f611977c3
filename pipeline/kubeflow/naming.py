"""The one name KFP derives Kubernetes names from: the pipeline's, which names every run's Argo Workflow and,
through it, every pod of the run. Checked when the config is parsed (pipeline/config.py)."""

from __future__ import annotations

import re

from components.settings import ConfigError

# KFP names each run's Argo Workflow `<pipeline_name>-` plus 5 random characters (kubeflow/pipelines 2.17.0
# backend/src/v2/compiler/argocompiler/argo.go Compile: GenerateName). Argo refuses a workflow name over 63
# characters, the limit of the label value every pod carries it in (argoproj/argo-workflows v4.0.5
# workflow/validate/validate.go ValidateWorkflow, maxCharsInObjectName), and Kubernetes wants the name of the
# Workflow and of each pod named after it a lowercase RFC 1123 name.
WORKFLOW_SUFFIX = 6  # "-" and Kubernetes' 5 random characters of generateName.
MAX_PIPELINE_NAME = 63 - WORKFLOW_SUFFIX
_PIPELINE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_pipeline_name(name: str) -> None:
    """Raises ConfigError unless `name` can name a KFP run's Argo Workflow and its pods."""
    if not _PIPELINE_NAME.fullmatch(name):
        raise ConfigError(
            f"pipeline_name: {name!r} is not a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending "
            "with a letter or digit), which Kubernetes requires of the Argo Workflow and pod names KFP derives "
            "from it"
        )
    if len(name) > MAX_PIPELINE_NAME:
        raise ConfigError(
            f"pipeline_name: {name!r} has {len(name)} characters; at most {MAX_PIPELINE_NAME}, since KFP adds "
            f"{WORKFLOW_SUFFIX} to name the Argo Workflow and Argo refuses names over 63 (a label value's limit)"
        )
