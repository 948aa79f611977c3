"""`xfer validate`: the data-validation head of the DAG (ingest, statistics, schema check) run on its own.

The nodes come from `pipeline.data_validation_nodes`, the same builder `create_pipeline` uses, so validate
judges the data exactly as a full run would. The anomalies gate is left out: validate reports the anomalies
instead of stopping on them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.local import local_dag_runner

from components import names
from components.ingest import example_gen
from components.validation import gate as validation_gate
from components.validation import statistics_page
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline import pipeline as pipeline_lib
from pipeline.tracking import mlmd


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    ingest: dict[str, Any]
    anomalies: list[str]
    statistics_html: str
    rejects_path: str


def validation_pipeline(
    config: config_lib.Config,
    pipeline_root: str,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
) -> tfx_pipeline.Pipeline:
    nodes = pipeline_lib.data_validation_nodes(config)
    return tfx_pipeline.Pipeline(
        # A name of its own, so that validate runs never pass for training runs in ML Metadata.
        pipeline_name=f"{config.pipeline_name}-validate",
        pipeline_root=pipeline_root,
        components=[nodes.example_gen, nodes.statistics_gen, nodes.schema_gen, nodes.example_validator],
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )


def run_validation(config: config_lib.Config) -> ValidationReport:
    """Runs ingest, statistics and validation; saves the statistics as HTML in the workspace."""
    workspace = config.workspace_layout
    config.workspace_path.mkdir(parents=True, exist_ok=True)
    pipeline = validation_pipeline(config, str(workspace.pipeline_root), local_runner.metadata_config(workspace))
    with local_runner.program_name_only_argv():
        local_dag_runner.LocalDagRunner().run(pipeline)
    record = mlmd.latest_run(local_runner.metadata_config(workspace), pipeline.pipeline_info.pipeline_name)
    if record is None:
        raise RuntimeError("the validation pipeline finished but ML Metadata has no record of the run")
    examples_uri = record.nodes[names.INGEST].output("examples").uri
    with tf.io.gfile.GFile(os.path.join(examples_uri, example_gen.SUMMARY_FILE)) as handle:
        summary = json.loads(handle.read())
    # The splits each artifact records, as the run report reads them: a config with other splits needs no edit here.
    anomalies = record.nodes[names.VALIDATOR].output("anomalies")
    lines = validation_gate.anomaly_lines(anomalies.uri, anomalies.split_names())
    statistics_output = record.nodes[names.STATISTICS].output("statistics")
    statistics = validation_gate.load_split_statistics(statistics_output.uri, statistics_output.split_names())
    statistics_page.write_pages(str(workspace.reports), statistics, lines)
    html_path = str(workspace.reports / statistics_page.STATISTICS_FILE)
    return ValidationReport(summary, lines, html_path, os.path.join(examples_uri, example_gen.REJECTS_FILE))
