"""`xfer submit` and `xfer schedule`: a compiled package to a KFP server over `kfp.Client`, or, with dry_run,
a description of the request instead."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components import mlflow_tags


@dataclasses.dataclass(frozen=True)
class Package:
    path: Path
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any]

    @property
    def name(self) -> str:
        return self.pipeline_spec["pipelineInfo"]["name"]

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "pipeline": self.name,
            "schema_version": self.pipeline_spec.get("schemaVersion"),
            "tasks": sorted(self.pipeline_spec["root"]["dag"]["tasks"]),
            "kubernetes_executors": sorted(
                self.platform_spec.get("platforms", {})
                .get("kubernetes", {})
                .get("deploymentSpec", {})
                .get("executors", {})
            ),
            "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(),
        }


def load_package(path: str | Path) -> Package:
    """Reads `xfer compile` output and checks both documents against KFP's own protos, as the client will."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pipeline package at {path} (make one with `xfer compile --out {path}`)")
    documents = list(yaml.safe_load_all(path.read_text()))
    if not documents or not isinstance(documents[0], dict):
        raise ValueError(f"{path}: not a KFP pipeline package")
    pipeline_spec, platform_spec = documents[0], {}
    for document in documents[1:]:
        platform_spec.update(document or {})
    try:
        json_format.ParseDict(pipeline_spec, pipeline_spec_pb2.PipelineSpec())
        json_format.ParseDict(platform_spec, pipeline_spec_pb2.PlatformSpec())
    except json_format.ParseError as error:
        raise ValueError(f"{path}: not a valid KFP package: {error}") from None
    from pipeline.kubeflow import platform as kubeflow_platform

    try:  # The platform spec is a Struct to kfp's proto: this is the check that knows its fields.
        kubeflow_platform.check_platform_spec(platform_spec)
    except kubeflow_platform.PlatformSpecError as error:
        raise ValueError(f"{path}: not a valid KFP package: {error}") from None
    return Package(path, pipeline_spec, platform_spec)


def check_cron(cron: str) -> str:
    # KFP's scheduler takes six fields, seconds first ('0 0 2 * * *' is 02:00 every day); a five-field
    # crontab line would be read shifted by one field.
    if len(cron.split()) != 6:
        raise ValueError(f"--cron needs 6 fields (seconds minutes hours day month weekday), got {cron!r}")
    return cron


def submit(
    host: str,
    package_path: str | Path,
    experiment: str,
    run_name: str | None,
    pipeline_root: str | None,
    dry_run: bool = False,
) -> dict[str, Any]:
    package = load_package(package_path)
    request = {
        "host": host,
        "action": "create_run",
        "experiment": experiment,
        "run_name": run_name or package.name,
        "pipeline_root": pipeline_root,
        "package": package.describe(),
    }
    if dry_run:
        return request
    result = _client(host).create_run_from_pipeline_package(
        str(package.path),
        run_name=request["run_name"],
        experiment_name=experiment,
        pipeline_root=pipeline_root,
    )
    return {**request, "run_id": result.run_id}


def schedule(
    host: str,
    package_path: str | Path,
    experiment: str,
    job_name: str | None,
    cron: str,
    pipeline_root: str | None,
    max_concurrency: int = 1,
    dry_run: bool = False,
) -> dict[str, Any]:
    package = load_package(package_path)
    request = {
        "host": host,
        "action": "create_recurring_run",
        "experiment": experiment,
        "job_name": job_name or f"{package.name}-scheduled",
        "cron": check_cron(cron),
        "max_concurrency": max_concurrency,
        "no_catchup": True,
        "pipeline_root": pipeline_root,
        "package": package.describe(),
    }
    if dry_run:
        return request
    client = _client(host)
    experiment_id = client.create_experiment(name=experiment).experiment_id
    # no_catchup: after downtime, run once rather than once per missed slot. Each run re-ingests and retrains
    # when the data changed (the DataFingerprint step), and is served from KFP's cache when it did not.
    recurring = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=request["job_name"],
        cron_expression=cron,
        max_concurrency=max_concurrency,
        no_catchup=True,
        pipeline_package_path=str(package.path),
        pipeline_root=pipeline_root,
    )
    return {**request, "recurring_run_id": recurring.recurring_run_id}


# KFP's terminal run states (v2beta1 RuntimeState); the others are PENDING, RUNNING, PAUSED, CANCELING.
TERMINAL_STATES = ("SUCCEEDED", "SKIPPED", "FAILED", "CANCELED")


def wait(
    host: str,
    run_id: str,
    task_names: list[str],
    poll_seconds: float = 15.0,
    timeout_seconds: float = 0.0,
    report: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Follows a run to its end: reports each pipeline task's state as it changes; returns the final state, the
    tasks' states and their pods' names. `timeout_seconds` 0 waits for ever."""
    client = _client(host)
    started = time.monotonic()
    states: dict[str, str] = {}
    pods: list[str] = []
    while True:
        run = client.get_run(run_id)
        details = run.run_details.task_details if run.run_details and run.run_details.task_details else []
        for task in details:
            # KFP lists drivers and the root DAG too; the pipeline's own tasks are the ones the package names.
            if task.display_name in task_names and states.get(task.display_name) != str(task.state):
                states[task.display_name] = str(task.state)
                report(f"{task.display_name:<18} {task.state}")
            if task.pod_name and task.pod_name not in pods:
                pods.append(task.pod_name)
        if str(run.state) in TERMINAL_STATES:
            return {"run_id": run_id, "state": str(run.state), "tasks": states, "pods": pods}
        if timeout_seconds and time.monotonic() - started > timeout_seconds:
            raise TimeoutError(f"run {run_id} still {run.state} after {timeout_seconds:.0f} s")
        time.sleep(poll_seconds)


def find_mlflow_run(tracking_uri: str, experiment: str, pods: list[str]) -> Any:
    """The MLflow run of a KFP run: the pods tag it with their Argo workflow's name (kfp_run), which begins
    every pod's name. None when there is none (yet)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None or not pods:
        return None
    query = f"tags.{mlflow_tags.RUNNER} = 'kubeflow'"
    for run in client.search_runs([found.experiment_id], query, max_results=200):
        workflow = run.data.tags.get(mlflow_tags.KFP_RUN, "")
        if workflow and all(pod.startswith(f"{workflow}-") for pod in pods):
            return run
    return None


def _client(host: str):
    import kfp

    return kfp.Client(host=host)
