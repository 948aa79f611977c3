"""Runs `create_pipeline()` with TFX's LocalDagRunner on Apache Beam's DirectRunner, tracked in MLflow."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys

from tfx.orchestration import metadata
from tfx.orchestration.local import local_dag_runner

from components.champion import component as champion
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib
from pipeline import workspace as workspace_lib
from pipeline import workspace_move
from pipeline.tracking import mlflow_log as tracking
from pipeline.tracking import mlmd
from pipeline.tracking import result as result_lib


def metadata_config(workspace: workspace_lib.Workspace):
    """The workspace's ML Metadata store, as TFX connects to it."""
    return metadata.sqlite_metadata_connection_config(str(workspace.metadata_db))


@contextlib.contextmanager
def program_name_only_argv():
    """TFX's Beam executors parse sys.argv as absl flags, so the caller's own arguments would be read as theirs
    (pytest's `-v` becomes absl's --verbosity and fails). They get the program name only."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """What `xfer run` did: the run's result, read from ML Metadata, and what its MLflow run holds."""

    result: result_lib.RunResult
    tracked: tracking.Tracked


def run_local(config: config_lib.Config, run_name: str | None = None) -> LocalRun:
    """Runs the whole DAG once, tracked in one MLflow run."""
    workspace = config.workspace_layout
    config.workspace_path.mkdir(parents=True, exist_ok=True)
    workspace_move.relocate(config.workspace_path)  # A moved workspace: its stores point here first.
    # Resolved now, once: the Champion node fetches this version, and caches on it (components/champion/).
    champion_version = champion.resolve_version(config.tracking_uri, config.registered_model_name)
    if champion_version == champion.NO_CHAMPION:
        logging.info("No champion in %s yet: the absolute gates alone decide", config.registered_model_name)
    else:
        logging.info("Champion to compare with: %s version %s", config.registered_model_name, champion_version)
    pipeline = pipeline_lib.create_pipeline(
        config,
        pipeline_root=str(workspace.pipeline_root),
        serving_dir=str(workspace.serving_dir),
        metadata_connection_config=metadata_config(workspace),
        champion_version=champion_version,
        tracking_uri=config.tracking_uri,
    )
    with tracking.tracked_run(config, run_name) as mlflow_run_id:
        logging.info("MLflow run %s in %s", mlflow_run_id, config.tracking_uri)
        with program_name_only_argv():
            local_dag_runner.LocalDagRunner().run(pipeline)
        record = mlmd.latest_run(metadata_config(workspace), config.pipeline_name)
        if record is None:
            raise RuntimeError("the pipeline finished but ML Metadata has no record of the run")
        result = result_lib.read_run(config, record)
        tracked = tracking.log_results(config, mlflow_run_id, result)
    return LocalRun(result, tracked)
