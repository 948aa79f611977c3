"""The model's verdict: what TFMA is asked to compute and gate, what it decided, and what that means for the push.

One home for every rule the gates follow, as plain functions that the Evaluator's and Pusher's executors, the
run's report, the MLflow logging and the Kubeflow pods all call:
- `eval_config` builds TFMA's config from the `evaluation:` settings (the gates are its thresholds);
- `compare` decides whether a candidate is compared with the champion, and the Evaluator records it;
- `read_evaluation` reads TFMA's outputs back: the metrics, the blessing, and a gate table whose pass or fail
  is TFMA's own (its `ValidationResult`), with the thresholds the settings set;
- `run_outcome` turns the blessing and the comparison into what happened to the model.

TensorFlow, TFMA and the champion's module are imported where they are used: the names and tables here are also
read by code that must stay light (`pipeline/tracking/mlflow_text.py`: plain functions over plain values).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from components.evaluator.settings import EvaluationConfig

# What TFMA calls an output's metric (output name, metric name) -> what xfer calls it (MLflow, the gate table,
# the CLI). Anything not listed becomes `eval_<metric>`; None: not worth a second name.
METRIC_NAMES: dict[tuple[str, str], str | None] = {
    ("probabilities", "sparse_categorical_accuracy"): "eval_accuracy",
    ("box", "box_iou"): "eval_iou",
    ("box", "box_hit_rate"): "eval_hit_rate",
    ("probabilities", "example_count"): "eval_examples",
    ("box", "example_count"): None,  # The same count again, for the other output.
}
# The metrics the gates read, by the names above.
GATED_METRICS = {
    key: METRIC_NAMES[key] for key in (("probabilities", "sparse_categorical_accuracy"), ("box", "box_iou"))
}
# What TFMA calls the baseline model, which the Evaluator is given the champion as.
CHAMPION_MODEL_NAME = "baseline"
# TFMA's suffix for a candidate's change against the baseline model.
DIFF_SUFFIX = "_diff"
COMPARISON_FILE = "champion.json"
# Custom properties of the blessing: what was compared (the Pusher reads the second).
COMPARED_PROPERTY = "compared_with_champion"
IS_CHAMPION_PROPERTY = "candidate_is_champion"

Task = Literal["classification", "detection"]
Outcome = Literal["pushed", "already_champion", "blocked_by_gate"]
# TFMA's metrics by slice name ("overall", "camera_id=cam_01") and (output, metric[/class]).
Slices = dict[str, dict[tuple[str, str], float]]


@dataclasses.dataclass(frozen=True)
class Comparison:
    champion_version: str  # "" when there is no champion.
    compared: bool  # The change thresholds were checked against it.
    candidate_is_champion: bool
    note: str


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
    comparison: Comparison | None  # None: no record of one (a Kubeflow pod without the config).
    gate_failures: tuple[str, ...]  # TFMA's own account of each failed threshold; empty when blessed.

    @property
    def outcome(self) -> Outcome:
        return run_outcome(self.blessed, self.comparison)


# --- What TFMA is asked -------------------------------------------------------------------------------------


def eval_config(settings: EvaluationConfig, task: Task, num_classes: int) -> Any:
    """TFMA's `EvalConfig`: what it computes on the eval split, and the gates as its thresholds (absolute lower
    bounds, and lower bounds on the change against the champion).

    Gated: accuracy and, for detection, mean box IoU. Reported: per-class precision and recall (when
    `num_classes` is known), the share of boxes with IoU >= `hit_iou`; overall and for each value of the
    `slice_by` features.
    """
    import tensorflow_model_analysis as tfma

    from components.transform import features

    metrics_specs = [
        tfma.MetricsSpec(
            output_names=["probabilities"],
            metrics=[
                tfma.MetricConfig(
                    class_name="SparseCategoricalAccuracy",
                    per_slice_thresholds=_at_least(settings.min_accuracy, settings.min_accuracy_change),
                ),
                # No `MultiClassConfusionMatrixPlot`: nothing reads TFMA's plots, and the report draws its
                # confusion matrix from the served model's answers (pipeline/tracking/report/eval_plots.py).
            ],
        )
    ]
    if num_classes:
        # One-vs-rest per class; needs the class count up front, which the label list or the schema gives.
        metrics_specs.append(
            tfma.MetricsSpec(
                output_names=["probabilities"],
                binarize=tfma.BinarizationOptions(class_ids={"values": list(range(num_classes))}),
                metrics=[tfma.MetricConfig(class_name="Precision"), tfma.MetricConfig(class_name="Recall")],
            )
        )
    if task == "detection":
        metrics_specs.append(_box_metrics(settings))
    labels = {"probabilities": features.LABEL_ID}
    if task == "detection":
        labels["box"] = features.BOX
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Said, not guessed: without a type TFMA loads the whole model through Keras once only to find
                # it (model_util.get_model_type), then again to evaluate, and that Keras load needs xfer's layer
                # classes imported in the Evaluator's process. TFMA evaluates through the signatures either way.
                model_type=tfma.TF_GENERIC,
                signature_name="serving_default",
                # Labels are transformed features (class index, box vector), so TFMA runs the Transform graph.
                preprocessing_function_names=["transform_features"],
                label_keys=labels,
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=[name]) for name in settings.slice_by)],
        metrics_specs=metrics_specs,
    )


def _box_metrics(settings: EvaluationConfig) -> Any:
    import tensorflow_model_analysis as tfma

    # TFMA loads these tf_keras metrics by module name in the Evaluator's process.
    return tfma.MetricsSpec(
        output_names=["box"],
        metrics=[
            tfma.MetricConfig(
                class_name="BoxIoU",
                module="components.trainer.metrics",
                config='"name": "box_iou"',
                per_slice_thresholds=_at_least(settings.min_iou, settings.min_iou_change),
            ),
            tfma.MetricConfig(
                class_name="BoxHitRate",
                module="components.trainer.metrics",
                config=f'"name": "box_hit_rate", "iou_threshold": {settings.hit_iou}',
            ),
        ],
    )


def _at_least(value: float, change: float | None) -> list[Any]:
    import tensorflow_model_analysis as tfma

    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}))
    if change is not None:
        # candidate - champion >= change. The Evaluator ignores it when it is given no champion.
        threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": change})
        )
    # On the overall slice only: a plain `threshold` would hold every slice (each camera) to it too, where a
    # handful of images decide, and the gate table, which shows the overall values, would not explain it.
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]


# --- The champion comparison --------------------------------------------------------------------------------


def compare(candidate_model_dir: str, champion: Any | None) -> Comparison:
    """Whether to evaluate against `champion` (a ChampionModel output artifact), and what the log should say."""
    from components.champion import component as champion_lib

    version = champion.get_string_custom_property(champion_lib.VERSION_PROPERTY) if champion else ""
    if not version:
        note = champion.get_string_custom_property(champion_lib.NOTE_PROPERTY) if champion else "no champion given"
        return Comparison("", False, False, f"{note}: the absolute gates alone decide")
    if champion_lib.fingerprint(candidate_model_dir) == champion.get_string_custom_property(
        champion_lib.FINGERPRINT_PROPERTY
    ):
        return Comparison(
            version,
            False,
            True,
            f"the candidate is the champion (version {version}) itself: the absolute gates alone decide, and it "
            "will not be pushed again",
        )
    return Comparison(version, True, False, f"change gates against the champion, version {version}")


def record_comparison(comparison: Comparison, evaluation_uri: str, blessing: Any) -> None:
    """Writes what was compared beside TFMA's metrics and onto the blessing artifact, for the Pusher and the UI."""
    import tensorflow as tf

    from components.champion import component as champion_lib

    with tf.io.gfile.GFile(os.path.join(evaluation_uri, COMPARISON_FILE), "w") as handle:
        json.dump(dataclasses.asdict(comparison), handle, indent=1)
    blessing.set_string_custom_property(champion_lib.VERSION_PROPERTY, comparison.champion_version)
    blessing.set_int_custom_property(COMPARED_PROPERTY, int(comparison.compared))
    blessing.set_int_custom_property(IS_CHAMPION_PROPERTY, int(comparison.candidate_is_champion))
    blessing.set_string_custom_property(champion_lib.NOTE_PROPERTY, comparison.note)


def is_already_champion(blessing: Any) -> bool:
    """The Evaluator found the candidate to be the champion's very files (0 when the property is absent)."""
    return bool(blessing.get_int_custom_property(IS_CHAMPION_PROPERTY))


def load_comparison(evaluation_uri: str) -> Comparison | None:
    """What the Evaluator compared with; None for an evaluation written before xfer compared with champions."""
    import tensorflow as tf

    path = os.path.join(evaluation_uri, COMPARISON_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return Comparison(**json.load(handle))


# --- What TFMA decided --------------------------------------------------------------------------------------


def read_evaluation(
    evaluation_uri: str,
    blessing_uri: str,
    settings: EvaluationConfig | None = None,
    task: Task = "detection",
    slice_label: Callable[[Sequence[tuple[str, Any]]], str] | None = None,
) -> Evaluation:
    """The Evaluator's outputs, read once. Without the `settings` (a Kubeflow pod that was not given the config)
    there are no gates to explain, and no comparison is reported."""
    import tensorflow as tf

    slices = metrics_by_slice(evaluation_uri, slice_label=slice_label)
    blessed = tf.io.gfile.exists(os.path.join(blessing_uri, "BLESSED"))
    failures = _failed_thresholds(evaluation_uri)  # Read once: for the gate table and for the failure lines.
    gates: tuple[GateRow, ...] = ()
    note, comparison = "", None
    if settings is not None:
        gates, note, comparison = champion_gates(settings, task, evaluation_uri, slices, failures)
    return Evaluation(
        slices=slices,
        metrics=overall_eval_metrics(slices),
        blessed=blessed,
        gates=gates,
        champion_note=note,
        comparison=comparison,
        gate_failures=() if blessed else tuple(_describe_failure(failure) for failure in failures),
    )


def run_outcome(blessed: bool, comparison: Comparison | None) -> Outcome:
    """A model the gates turned down is an outcome, not an error: the run is FINISHED, and this says which."""
    if not blessed:
        return "blocked_by_gate"
    if comparison is not None and comparison.candidate_is_champion:
        return "already_champion"  # Blessed, and already what is served: nothing new to push.
    return "pushed"


def overall_eval_metrics(slices: Slices) -> dict[str, float]:
    overall = slices.get("overall", {})
    return {name: overall[key] for key, name in GATED_METRICS.items() if key in overall}


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


def _failed_thresholds(evaluation_uri: str) -> list[Any]:
    """TFMA's `ValidationResult` failures: one per threshold a metric did not meet, on any slice."""
    import tensorflow_model_analysis as tfma

    validation = tfma.load_validation_result(evaluation_uri)
    return [failure for per_slice in validation.metric_validations_per_slice for failure in per_slice.failures]


def gate_failures(evaluation_uri: str) -> list[str]:
    """TFMA's own account of each failed threshold, in one line each."""
    return [_describe_failure(failure) for failure in _failed_thresholds(evaluation_uri)]


def _describe_failure(failure: Any) -> str:
    key, threshold = failure.metric_key, failure.metric_threshold
    value = failure.metric_value.double_value.value
    if key.is_diff:
        change = threshold.change_threshold
        wanted = [f">= {change.absolute.value:+g}"] if change.HasField("absolute") else []
        return (
            f"{key.name} ({key.output_name}) changed by {value:+.4f} against the champion, "
            f"needs {' and '.join(wanted) or failure.message}"
        )
    bounds = threshold.value_threshold
    wanted = []
    if bounds.HasField("lower_bound"):
        wanted.append(f">= {bounds.lower_bound.value:g}")
    if bounds.HasField("upper_bound"):
        wanted.append(f"<= {bounds.upper_bound.value:g}")
    return f"{key.name} ({key.output_name}) = {value:.4f}, needs {' and '.join(wanted) or failure.message}"


def gate_table(
    settings: EvaluationConfig,
    task: Task,
    metrics: dict[str, float],
    failed: set[tuple[str, str]],
    changes: dict[str, float] | None = None,
    champion_metrics: dict[str, float] | None = None,
) -> tuple[GateRow, ...]:
    """One row per gate; for change gates also the champion's value and the change (TFMA's own difference).

    `failed`: the (metric name, "absolute" or "change") gates TFMA's validation result lists as failed; a gate
    whose metric TFMA did not compute fails too. `changes` is None when the candidate was not compared with a
    champion."""
    gates = [("eval_accuracy", settings.min_accuracy, settings.min_accuracy_change)]
    if task == "detection":
        gates.append(("eval_iou", settings.min_iou, settings.min_iou_change))
    rows = []
    for name, threshold, _ in gates:
        value = metrics.get(name)
        passed = value is not None and (name, "absolute") not in failed
        rows.append(GateRow(name, "absolute", f">= {threshold:g}", value, passed))
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
                change is not None and (name, "change") not in failed,
                champion=(champion_metrics or {}).get(name),
                change=change,
            )
        )
    return tuple(rows)


def champion_gates(
    settings: EvaluationConfig, task: Task, evaluation_uri: str, slices: Slices, failures: list[Any] | None = None
) -> tuple[tuple[GateRow, ...], str, Comparison | None]:
    """The gate rows and the comparison note of an evaluation (`slices`: its `metrics_by_slice`; `failures`: its
    validation result's, read here when not given), and its `Comparison` (None if not recorded)."""
    metrics = overall_eval_metrics(slices)
    if failures is None:
        failures = _failed_thresholds(evaluation_uri)
    failed = {
        (GATED_METRICS[key], "change" if failure.metric_key.is_diff else "absolute")
        for failure in failures
        if (key := (failure.metric_key.output_name, failure.metric_key.name)) in GATED_METRICS
    }
    comparison = load_comparison(evaluation_uri)
    if comparison is None or not comparison.compared:
        return gate_table(settings, task, metrics, failed), comparison.note if comparison else "", comparison
    overall = slices.get("overall", {})
    changes = {
        name: overall[(output, f"{metric}{DIFF_SUFFIX}")]
        for (output, metric), name in GATED_METRICS.items()
        if (output, f"{metric}{DIFF_SUFFIX}") in overall
    }
    champion_metrics = overall_eval_metrics(metrics_by_slice(evaluation_uri, CHAMPION_MODEL_NAME))
    return gate_table(settings, task, metrics, failed, changes, champion_metrics), comparison.note, comparison
