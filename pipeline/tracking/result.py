"""What one pipeline run produced, read once from ML Metadata and the nodes' outputs, as typed objects.

`read_evaluation` reads the Evaluator's outputs: `xfer run` calls it after the DAG, and the Kubeflow Evaluator
pod right after its step. `read_run` reads a whole local run. The MLflow logging (`run_log`), the CLI's
summary, the run report and the run's description all read these objects; nothing here writes to MLflow, and
nothing is added to them afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import tensorflow as tf

from components import names
from components.evaluator import executor as evaluator_lib
from components.ingest import example_gen
from components.trainer import module as trainer_module
from components.transform import features
from pipeline import config as config_lib
from pipeline.tracking import run_record, run_story

# Names of the TFMA metrics the gates read, and what the MLflow run calls them.
EVAL_METRICS = {("probabilities", "sparse_categorical_accuracy"): "eval_accuracy", ("box", "box_iou"): "eval_iou"}
# What TFMA calls the baseline model, which the Evaluator is given the champion as.
CHAMPION_MODEL_NAME = "baseline"
Outcome = Literal["pushed", "already_champion", "blocked_by_gate"]
# TFMA's metrics by slice name ("overall", "camera_id=cam_01") and (output, metric[/class]).
Slices = dict[str, dict[tuple[str, str], float]]


@dataclasses.dataclass(frozen=True)
class GateRow:
    """One gate: an absolute one (the value against a threshold) or a change one (against the champion)."""

    metric: str
    kind: Literal["absolute", "change"]
    threshold: str
    value: float | None
    passed: bool
    champion: float | None = None
    change: float | None = None


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What the Evaluator decided, and why. TFMA's blessing decides; `gates` explains it."""

    slices: Slices
    metrics: dict[str, float]  # eval_accuracy, eval_iou: the overall slice, as the gates read them.
    blessed: bool
    gates: tuple[GateRow, ...]
    champion_note: str
    comparison: evaluator_lib.Comparison | None  # None: no record of one (a Kubeflow pod without the config).
    gate_failures: tuple[str, ...]  # TFMA's own account of each failed threshold; empty when blessed.

    @property
    def outcome(self) -> Outcome:
        return run_outcome(self.blessed, self.comparison)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One run of the DAG: each node's state and what its outputs say."""

    pipeline_run: str
    node_states: dict[str, str]
    examples_uri: str
    statistics: run_record.Output  # StatisticsGen's, with the splits it holds.
    anomalies: run_record.Output  # ExampleValidator's, split by split.
    input_fingerprint: str  # TFX's fingerprint of the input files; "" when the artifact has none.
    ingest: dict[str, Any] | None  # The ingest's own summary (ImageExampleGen's ingest_summary.json), if written.
    transform_graph_uri: str
    class_names: tuple[str, ...]  # The label vocabulary: class id -> name.
    trainer_model_uri: str
    history_path: str | None  # The Trainer's per-epoch history, when the Trainer ran in this run.
    evaluation: Evaluation
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


def read_run(config: config_lib.Config, record: run_record.RunRecord) -> RunResult:
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
    evaluation = read_evaluation(
        config,
        evaluator.output("evaluation").uri,
        evaluator.output("blessing").uri,
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


def read_evaluation(
    config: config_lib.Config | None,
    evaluation_uri: str,
    blessing_uri: str,
    slice_label: Callable[[Sequence[tuple[str, Any]]], str] | None = None,
) -> Evaluation:
    """The Evaluator's outputs, read once. Without the `config` (a Kubeflow pod that was not given it) there
    are no gates to explain, and no comparison is reported."""
    slices = metrics_by_slice(evaluation_uri, slice_label=slice_label)
    blessed = tf.io.gfile.exists(os.path.join(blessing_uri, "BLESSED"))
    gates: tuple[GateRow, ...] = ()
    note, comparison = "", None
    if config is not None:
        gates, note, comparison = champion_gates(config, evaluation_uri, slices)
    return Evaluation(
        slices=slices,
        metrics=overall_eval_metrics(slices),
        blessed=blessed,
        gates=gates,
        champion_note=note,
        comparison=comparison,
        gate_failures=() if blessed else tuple(gate_failures(evaluation_uri)),
    )


def run_outcome(blessed: bool, comparison: evaluator_lib.Comparison | None) -> Outcome:
    """A model the gates turned down is an outcome, not an error: the run is FINISHED, and this says which."""
    if not blessed:
        return "blocked_by_gate"
    if comparison is not None and comparison.candidate_is_champion:
        return "already_champion"  # Blessed, and already what is served: nothing new to push.
    return "pushed"


def overall_eval_metrics(slices: Slices) -> dict[str, float]:
    overall = slices.get("overall", {})
    return {name: overall[key] for key, name in EVAL_METRICS.items() if key in overall}


def metrics_by_slice(
    evaluation_uri: str,
    model_name: str | None = None,
    slice_label: Callable[[Sequence[tuple[str, Any]]], str] | None = None,
) -> Slices:
    """Every scalar TFMA metric, by slice ("overall", "camera_id=cam_01", ...), keyed by (output, metric[/class]).

    `model_name`: None is the candidate (with `<metric>_diff`, its change against the champion, when it was
    compared with one); "baseline" is the champion's own metrics. `slice_label` names a slice key (default:
    TFMA's values as they are, which for a transformed feature are its ids).
    """
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
    slices: Slices = {}
    for slice_key, by_output in result.slicing_metrics:
        if slice_label is not None:
            name = slice_label(slice_key)
        else:
            name = ",".join(f"{feature}={value}" for feature, value in slice_key) or "overall"
        values = slices.setdefault(name, {})
        for output, by_sub_key in by_output.items():
            for sub_key, by_metric in by_sub_key.items():
                for metric, value in by_metric.items():
                    if "doubleValue" in value:
                        label = f"{metric}/{sub_key.replace(':', '_')}" if sub_key else metric
                        values[(output, label)] = float(value["doubleValue"])
    return slices


def gate_failures(evaluation_uri: str) -> list[str]:
    """TFMA's own account of each failed threshold, in one line each."""
    import tensorflow_model_analysis as tfma

    validation = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            key, threshold = failure.metric_key, failure.metric_threshold
            value = failure.metric_value.double_value.value
            if key.is_diff:
                change = threshold.change_threshold
                wanted = [f">= {change.absolute.value:+g}"] if change.HasField("absolute") else []
                failures.append(
                    f"{key.name} ({key.output_name}) changed by {value:+.4f} against the champion, "
                    f"needs {' and '.join(wanted) or failure.message}"
                )
                continue
            bounds = threshold.value_threshold
            wanted = []
            if bounds.HasField("lower_bound"):
                wanted.append(f">= {bounds.lower_bound.value:g}")
            if bounds.HasField("upper_bound"):
                wanted.append(f"<= {bounds.upper_bound.value:g}")
            failures.append(
                f"{key.name} ({key.output_name}) = {value:.4f}, needs {' and '.join(wanted) or failure.message}"
            )
    return failures


def gate_table(
    config: config_lib.Config,
    metrics: dict[str, float],
    changes: dict[str, float] | None = None,
    champion_metrics: dict[str, float] | None = None,
) -> tuple[GateRow, ...]:
    """One row per gate; for change gates also the champion's value and the change (TFMA's own difference).
    `changes` is None when the candidate was not compared with a champion."""
    evaluation = config.evaluation
    gates = [("eval_accuracy", evaluation.min_accuracy, evaluation.min_accuracy_change)]
    if config.task == "detection":
        gates.append(("eval_iou", evaluation.min_iou, evaluation.min_iou_change))
    rows = []
    for name, threshold, _ in gates:
        value = metrics.get(name)
        rows.append(GateRow(name, "absolute", f">= {threshold:g}", value, value is not None and value >= threshold))
    if changes is None:
        return tuple(rows)
    for name, _, min_change in gates:
        if min_change is None:
            continue
        change = changes.get(name)
        rows.append(
            GateRow(
                name,
                "change",
                f"change >= {min_change:+g}",
                metrics.get(name),
                change is not None and change >= min_change,
                champion=(champion_metrics or {}).get(name),
                change=change,
            )
        )
    return tuple(rows)


def champion_gates(
    config: config_lib.Config, evaluation_uri: str, slices: Slices
) -> tuple[tuple[GateRow, ...], str, evaluator_lib.Comparison | None]:
    """The gate rows and the comparison note of an evaluation (`slices`: its `metrics_by_slice`), and its
    `Comparison` (None if not recorded)."""
    metrics = overall_eval_metrics(slices)
    comparison = evaluator_lib.load_comparison(evaluation_uri)
    if comparison is None or not comparison.compared:
        return gate_table(config, metrics), comparison.note if comparison else "", comparison
    overall = slices.get("overall", {})
    changes = {
        name: overall[(output, f"{metric}_diff")]
        for (output, metric), name in EVAL_METRICS.items()
        if (output, f"{metric}_diff") in overall
    }
    champion_metrics = overall_eval_metrics(metrics_by_slice(evaluation_uri, CHAMPION_MODEL_NAME))
    return gate_table(config, metrics, changes, champion_metrics), comparison.note, comparison


def slice_labeller(config: config_lib.Config, transform_output: Any) -> Callable[[Sequence[tuple[str, Any]]], str]:
    """Names slices by what their ids stand for ("camera_id=cam_00", "capture_hour=8..12"): TFMA slices on the
    transformed features, whose values are vocabulary and bucket ids. `transform_output`: a TFTransformOutput."""
    feature_configs = {feature["name"]: feature for feature in config.to_dict()["features"]}

    def vocabulary(name: str) -> list[str] | None:
        try:
            return [value.decode() for value in transform_output.vocabulary_by_name(name)]
        except (ValueError, KeyError, tf.errors.NotFoundError):
            return None

    return lambda slice_key: run_story.slice_label(slice_key, feature_configs, vocabulary)
