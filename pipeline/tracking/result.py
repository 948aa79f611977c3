"""What one pipeline run produced, read once from ML Metadata and the nodes' outputs, as typed objects.

`read_run` reads a whole local run; its Evaluation is `components/evaluator/verdict.read_evaluation`'s, which
the Kubeflow Evaluator pod also calls right after its step. The MLflow logging (`mlflow_log`), the CLI's
summary, the run report and the run's description all read these objects; nothing here writes to MLflow, and
nothing is added to them afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from components import names
from components.evaluator import verdict
from components.ingest import example_gen
from components.trainer import module as trainer_module
from components.transform import features
from pipeline import config as config_lib
from pipeline.tracking import mlflow_text, mlmd


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One run of the DAG: each node's state and what its outputs say."""

    pipeline_run: str
    node_states: dict[str, str]
    examples_uri: str
    statistics: mlmd.Output  # StatisticsGen's, with the splits it holds.
    anomalies: mlmd.Output  # ExampleValidator's, split by split.
    input_fingerprint: str  # TFX's fingerprint of the input files; "" when the artifact has none.
    ingest: dict[str, Any] | None  # The ingest's own summary (ImageExampleGen's ingest_summary.json), if written.
    transform_graph_uri: str
    class_names: tuple[str, ...]  # The label vocabulary: class id -> name.
    trainer_model_uri: str
    history_path: str | None  # The Trainer's per-epoch history, when the Trainer ran in this run.
    evaluation: verdict.Evaluation
    pushed_path: str | None  # Where this run's Pusher put the model; None when it pushed nothing.

    def state(self, node: str) -> str:
        return self.node_states.get(node, "NOT_RUN")

    @property
    def trained(self) -> bool:
        """The Trainer ran in this run (not served from the cache): the curves and the report are this run's."""
        return self.state(names.TRAINER) == "COMPLETE"

    @property
    def transformed(self) -> bool:
        return self.state(names.TRANSFORM) == "COMPLETE"

    @property
    def pushed(self) -> bool:
        """This run's Pusher pushed a new model (a Pusher served from the cache pushed nothing new)."""
        return self.pushed_path is not None and self.state(names.PUSHER) == "COMPLETE"


def read_run(config: config_lib.Config, record: mlmd.RunRecord) -> RunResult:
    """The run `record` (from ML Metadata), with its nodes' outputs read once."""
    import tensorflow_transform as tft

    examples = record.nodes[names.INGEST].output("examples")
    summary_path = os.path.join(examples.uri, example_gen.SUMMARY_FILE)
    ingest = json.loads(tf.io.gfile.GFile(summary_path).read()) if tf.io.gfile.exists(summary_path) else None
    transform_uri = record.nodes[names.TRANSFORM].output("transform_graph").uri
    transform_output = tft.TFTransformOutput(transform_uri)
    class_names = tuple(value.decode() for value in transform_output.vocabulary_by_name(features.LABEL_VOCABULARY))
    trainer = record.nodes[names.TRAINER]
    history_path = None
    if trainer.state == "COMPLETE":
        history_path = os.path.join(trainer.output("model_run").uri, trainer_module.HISTORY_FILE)
    evaluator = record.nodes[names.EVALUATOR]
    evaluation = verdict.read_evaluation(
        evaluator.output("evaluation").uri,
        evaluator.output("blessing").uri,
        config.evaluation,
        config.task,
        slice_label=slice_labeller(config, transform_output),
    )
    pushed = record.nodes[names.PUSHER].output("pushed_model").properties
    return RunResult(
        pipeline_run=record.run_id,
        node_states={node: node_record.state for node, node_record in record.nodes.items()},
        examples_uri=examples.uri,
        statistics=record.nodes[names.STATISTICS].output("statistics"),
        anomalies=record.nodes[names.VALIDATOR].output("anomalies"),
        input_fingerprint=str(examples.properties.get("input_fingerprint", "")),
        ingest=ingest,
        transform_graph_uri=transform_uri,
        class_names=class_names,
        trainer_model_uri=trainer.output("model").uri,
        history_path=history_path,
        evaluation=evaluation,
        pushed_path=(str(pushed.get("pushed_destination", "")) or None) if pushed.get("pushed") else None,
    )


def slice_labeller(config: config_lib.Config, transform_output: Any) -> Callable[[Sequence[tuple[str, Any]]], str]:
    """Names slices by what their ids stand for ("camera_id=cam_00", "capture_hour=8..12"): TFMA slices on the
    transformed features, whose values are vocabulary and bucket ids. `transform_output`: a TFTransformOutput."""
    feature_configs = {feature["name"]: feature for feature in config.to_dict()["features"]}

    def vocabulary(name: str) -> list[str] | None:
        try:
            return [value.decode() for value in transform_output.vocabulary_by_name(name)]
        except (ValueError, KeyError, tf.errors.NotFoundError):
            return None

    return lambda slice_key: mlflow_text.slice_label(slice_key, feature_configs, vocabulary)
