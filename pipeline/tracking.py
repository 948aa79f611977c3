"""MLflow bookkeeping for `xfer run`: one MLflow run per pipeline run, FINISHED or FAILED with the reason.

The Trainer logs per-epoch metrics live (components/live_tracking.py); everything else is read back from the
pipeline's outputs once it has finished, which also covers nodes that TFX served from its cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import tensorflow as tf
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from components import evaluator as evaluator_lib
from components import example_gen, features, live_tracking, trainer_module
from pipeline import config as config_lib
from pipeline import registry, run_record
from pipeline import report as run_report

# What TFMA calls the baseline model, which the Evaluator is given the champion as.
CHAMPION_MODEL_NAME = "baseline"
# The tag that names the model a run's Trainer produced, so a later run served from the cache finds the run
# that trained it (and holds its curves and report) instead of logging them again.
TRAINER_MODEL_TAG = "trainer_model"
TRAINED_IN_RUN_TAG = "trained_in_run"
# Names of the TFMA metrics the eval config asks for, and what the MLflow run calls them.
EVAL_METRICS = {("probabilities", "sparse_categorical_accuracy"): "eval_accuracy", ("box", "box_iou"): "eval_iou"}


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested config -> {"training.frozen.epochs": "1", ...}; lists of named items are keyed by name."""
    if isinstance(value, dict):
        items: dict[str, str] = {}
        for key, inner in value.items():
            items.update(flatten(f"{prefix}.{key}" if prefix else key, inner))
        return items
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) and "name" in v for v in value):
        items = {}
        for inner in value:
            items.update(flatten(f"{prefix}.{inner['name']}", {k: v for k, v in inner.items() if k != "name"}))
        return items
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


def versions_and_commit() -> dict[str, str]:
    import tensorflow_model_analysis as tfma
    import tensorflow_transform as tft
    import tfx

    tags = {
        "tfx_version": tfx.__version__,
        "tensorflow_version": tf.__version__,
        "tft_version": tft.__version__,
        "tfma_version": tfma.__version__,
    }
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        tags["git_commit"] = commit
    except (OSError, subprocess.CalledProcessError):
        tags["git_commit"] = "unknown"
    return tags


def _experiment_id(client: MlflowClient, config: config_lib.Config) -> str:
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if not config.mlflow.tracking_uri:  # The workspace's own store keeps its artifacts beside it.
        artifact_location = (config.workspace_path / "mlartifacts").as_uri()
    return client.create_experiment(config.experiment_name, artifact_location=artifact_location)


@contextlib.contextmanager
def tracked_run(config: config_lib.Config, run_name: str | None = None) -> Iterator[str]:
    """Opens the MLflow run, exposes it to the Trainer through the environment, and closes it FINISHED, or
    FAILED with the reason as the tag `failure_reason` when the body raises."""
    client = MlflowClient(tracking_uri=config.tracking_uri)
    run = client.create_run(_experiment_id(client, config), run_name=run_name, tags=versions_and_commit())
    run_id = run.info.run_id
    params = flatten("", config.to_dict())
    client.log_batch(run_id, params=[mlflow.entities.Param(k, v[:6000]) for k, v in sorted(params.items())])
    saved_env = {key: os.environ.get(key) for key in (live_tracking.RUN_ID_ENV, live_tracking.TRACKING_URI_ENV)}
    os.environ[live_tracking.RUN_ID_ENV] = run_id
    os.environ[live_tracking.TRACKING_URI_ENV] = config.tracking_uri
    try:
        yield run_id
    except BaseException as error:
        reason = f"{type(error).__name__}: {error}"
        client.set_tag(run_id, "failure_reason", reason[:5000])
        client.set_terminated(run_id, status="FAILED")
        raise
    else:
        client.set_terminated(run_id, status="FINISHED")
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def overall_eval_metrics(slices: dict[str, dict[tuple[str, str], float]]) -> dict[str, float]:
    overall = slices.get("overall", {})
    return {name: overall[key] for key, name in EVAL_METRICS.items() if key in overall}


def metrics_by_slice(evaluation_uri: str, model_name: str | None = None) -> dict[str, dict[tuple[str, str], float]]:
    """Every scalar TFMA metric, by slice ("overall", "camera_id=cam_01", ...), keyed by (output, metric[/class]).

    `model_name`: None is the candidate (with `<metric>_diff`, its change against the champion, when it was
    compared with one); "baseline" is the champion's own metrics.
    """
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
    slices: dict[str, dict[tuple[str, str], float]] = {}
    for slice_key, by_output in result.slicing_metrics:
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
) -> list[dict[str, Any]]:
    """One row per gate: metric, threshold, value, passed; for change gates also the champion's value and the
    change (TFMA's own difference). `changes` is None when the candidate was not compared with a champion.
    TFMA's blessing decides; this explains it."""
    evaluation = config.evaluation
    gates = [("eval_accuracy", evaluation.min_accuracy, evaluation.min_accuracy_change)]
    if config.task == "detection":
        gates.append(("eval_iou", evaluation.min_iou, evaluation.min_iou_change))
    rows = []
    for name, threshold, _ in gates:
        value = metrics.get(name)
        rows.append(
            {
                "metric": name,
                "kind": "absolute",
                "threshold": f">= {threshold:g}",
                "value": value,
                "passed": value is not None and value >= threshold,
            }
        )
    if changes is None:
        return rows
    for name, _, min_change in gates:
        if min_change is None:
            continue
        change = changes.get(name)
        rows.append(
            {
                "metric": name,
                "kind": "change",
                "threshold": f"change >= {min_change:+g}",
                "value": metrics.get(name),
                "champion": (champion_metrics or {}).get(name),
                "change": change,
                "passed": change is not None and change >= min_change,
            }
        )
    return rows


def format_gate_table(rows: list[dict[str, Any]], note: str = "") -> str:
    """The table, then (when given) the sentence saying what the candidate was compared with."""

    def number(value: float | None, sign: str = "") -> str:
        return "-" if value is None else f"{value:{sign}.4f}"

    lines = [f"{'gate':<16}{'threshold':<18}{'value':<10}{'champion':<10}{'change':<10}result"]
    for row in rows:
        lines.append(
            f"{row['metric']:<16}{row['threshold']:<18}{number(row['value']):<10}{number(row.get('champion')):<10}"
            f"{number(row.get('change'), '+'):<10}{'pass' if row['passed'] else 'FAIL'}"
        )
    if note:
        lines.append(f"champion: {note}")
    return "\n".join(lines)


def champion_gates(
    config: config_lib.Config, evaluation_uri: str, slices: dict[str, Any]
) -> tuple[list[dict[str, Any]], str, evaluator_lib.Comparison | None]:
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


def log_gates(
    client: MlflowClient,
    run_id: str,
    rows: list[dict[str, Any]],
    note: str,
    comparison: evaluator_lib.Comparison | None,
) -> str:
    """Logs the gate table (`evaluation/gates.txt`), what the candidate was compared with (tags
    `champion_version`, `champion_comparison`) and the champion's own values on this eval split (metrics
    `champion_eval_*`, beside the candidate's for the MLflow UI's comparisons). Returns the table's text."""
    table = format_gate_table(rows, note)
    client.log_text(run_id, table + "\n", "evaluation/gates.txt")
    if comparison is not None:
        client.set_tag(run_id, "champion_version", comparison.champion_version or "none")
        client.set_tag(run_id, "champion_comparison", comparison.note[:5000])
    champion_values = {
        f"champion_{row['metric']}": row["champion"]
        for row in rows
        if row["kind"] == "change" and row["champion"] is not None
    }
    if champion_values:
        client.log_batch(run_id, metrics=[Metric(name, value, _now(), 0) for name, value in champion_values.items()])
    return table


def log_results(config: config_lib.Config, run_id: str, record: run_record.RunRecord) -> dict[str, Any]:
    """Logs what the pipeline produced to the MLflow run; returns the summary it logged."""
    client = MlflowClient(tracking_uri=config.tracking_uri)
    summary: dict[str, Any] = {"pipeline_run": record.run_id}
    client.set_tag(run_id, "pipeline_run", record.run_id)
    client.set_tag(run_id, "cached_nodes", ",".join(sorted(n for n, r in record.nodes.items() if r.state == "CACHED")))

    examples = record.nodes["ImageExampleGen"].output("examples").uri
    summary_path = os.path.join(examples, example_gen.SUMMARY_FILE)
    if tf.io.gfile.exists(summary_path):
        ingest = json.loads(tf.io.gfile.GFile(summary_path).read())
        client.log_batch(
            run_id,
            metrics=[
                *(
                    Metric(f"ingest_{key}", float(ingest[key]), _now(), 0)
                    for key in ("records", "accepted", "rejected")
                ),
                *(
                    Metric(f"ingest_rejected_{reason}", float(count), _now(), 0)
                    for reason, count in ingest.get("rejected_by_reason", {}).items()
                ),
            ],
        )
        for key in ("format", "has_boxes"):
            if key in ingest:
                client.set_tag(run_id, f"ingest_{key}", str(ingest[key]).lower())
        client.log_artifact(run_id, summary_path, "ingest")
        client.log_artifact(run_id, os.path.join(examples, example_gen.REJECTS_FILE), "ingest")
        summary["ingest"] = ingest

    summary["transform_table"] = _log_transform(
        client,
        run_id,
        record.nodes["Transform"].output("transform_graph").uri,
        features.TransformSettings.from_config(config),
        with_graph=record.state("Transform") == "COMPLETE",
    )

    trainer = record.nodes["Trainer"]
    trainer_model = trainer.output("model").uri
    client.set_tag(run_id, TRAINER_MODEL_TAG, trainer_model)
    if trainer.state == "COMPLETE":  # It logged its epochs live; the history file and the report go with them.
        history_path = os.path.join(trainer.output("model_run").uri, trainer_module.HISTORY_FILE)
        history = json.loads(tf.io.gfile.GFile(history_path).read())
        client.set_tag(run_id, "unfreeze_epoch", str(history["unfreeze_epoch"]))
        client.log_artifact(run_id, history_path, "training")
    else:
        # Served from the cache: replaying its curves here would chart a training that did not happen. The run
        # that trained the model has them, with the report; this one points there.
        summary["trained_in_run"] = trained_in_run(client, run_id, trainer_model)
        client.set_tag(run_id, TRAINED_IN_RUN_TAG, summary["trained_in_run"] or "unknown")

    evaluation = record.nodes["Evaluator"].output("evaluation").uri
    slices = metrics_by_slice(evaluation)
    metrics = overall_eval_metrics(slices)
    overall = {f"eval_{output}_{name}".replace("/", "_"): value for (output, name), value in slices["overall"].items()}
    client.log_batch(run_id, metrics=[Metric(name, value, _now(), 0) for name, value in {**overall, **metrics}.items()])
    client.log_dict(
        run_id,
        {
            name: {f"{output}/{metric}": value for (output, metric), value in values.items()}
            for name, values in slices.items()
        },
        "evaluation/metrics_by_slice.json",
    )
    summary.update(metrics)
    summary["slices"] = slices

    blessing = record.nodes["Evaluator"].output("blessing")
    blessed = tf.io.gfile.exists(os.path.join(blessing.uri, "BLESSED"))
    summary["blessed"] = blessed
    summary["gates"], summary["champion_note"], comparison = champion_gates(config, evaluation, slices)
    summary["gate_table"] = log_gates(client, run_id, summary["gates"], summary["champion_note"], comparison)
    client.log_metric(run_id, "blessed", float(blessed))
    client.set_tag(run_id, "blessed", str(blessed).lower())
    if comparison is not None:
        summary["champion_version"] = comparison.champion_version
        summary["compared_with_champion"] = comparison.compared
    summary["outcome"] = run_outcome(blessed, comparison)
    client.set_tag(run_id, "outcome", summary["outcome"])
    if not blessed:
        summary["gate_failures"] = gate_failures(evaluation)
        client.set_tag(run_id, "gate_failures", "; ".join(summary["gate_failures"])[:5000])

    pushed = record.nodes["Pusher"].output("pushed_model").properties
    if pushed.get("pushed"):
        summary["pushed_path"] = pushed.get("pushed_destination", "")
        client.set_tag(run_id, "pushed_path", summary["pushed_path"])
    _report_and_register(config, client, run_id, record, summary)
    logging.debug("MLflow run %s: %s", run_id, summary)
    return summary


def _report_and_register(
    config: config_lib.Config, client: MlflowClient, run_id: str, record: run_record.RunRecord, summary: dict[str, Any]
) -> None:
    """The run's report when its Trainer trained (a plot that fails is a warning, never a failed run), then,
    when this run's Pusher pushed, the new registry version and its `champion` alias (a failure there fails the
    run: the serving folder and the registry would disagree). A Pusher served from the cache pushed nothing
    new; a Trainer served from the cache has its report in the run that trained it (`trained_in_run`)."""
    summary["report_failures"] = []
    if record.state("Trainer") == "COMPLETE":
        try:
            summary["report_failures"] = run_report.build_run_report(config, record, client, run_id, summary)[
                "failed"
            ]
        except Exception as error:
            logging.warning("MLflow run %s: no report: %s: %s", run_id, type(error).__name__, error, exc_info=True)
            summary["report_failures"] = [f"report: {type(error).__name__}: {error}"]
    if not summary.get("pushed_path") or record.state("Pusher") != "COMPLETE":
        return
    examples = run_report.read_examples(record.nodes["ImageExampleGen"].output("examples").uri, "eval")
    name = config.registered_model_name
    version = registry.register_champion(
        config.tracking_uri,
        run_id,
        summary["pushed_path"],
        name,
        registry.input_example(summary["pushed_path"], examples[:1]),
    )
    summary["registered_model"] = {"name": name, "version": str(version.version), "alias": registry.CHAMPION_ALIAS}
    client.set_tag(run_id, "registered_model", f"{name}/{version.version}")


def _log_transform(
    client: MlflowClient,
    run_id: str,
    transform_graph_uri: str,
    settings: features.TransformSettings,
    with_graph: bool = True,
) -> str:
    """Logs a readable summary of what each feature became, and (`with_graph`: when Transform ran in this run,
    not for a copy of an earlier run's) the Transform graph with its vocabularies."""
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(transform_graph_uri)
    num_classes = output.vocabulary_size_by_name(features.LABEL_VOCABULARY)
    table = features.format_table(features.describe(settings, output.vocabulary_size_by_name, num_classes))
    client.log_text(run_id, table + "\n", "transform/summary.txt")
    if with_graph:
        client.log_artifacts(run_id, transform_graph_uri, "transform/graph")
    return table


def trained_in_run(client: MlflowClient, run_id: str, trainer_model_uri: str) -> str | None:
    """The earliest other run of this experiment whose Trainer produced `trainer_model_uri`, or None."""
    experiment_id = client.get_run(run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{TRAINER_MODEL_TAG} = '{trainer_model_uri}'",
        order_by=["attributes.start_time ASC"],
        max_results=10,
    )
    return next((run.info.run_id for run in runs if run.info.run_id != run_id), None)


def _now() -> int:
    return int(time.time() * 1000)


def run_outcome(blessed: bool, comparison: Any) -> str:
    """A model the gates turned down is an outcome, not an error: the run is FINISHED, and this says which."""
    if not blessed:
        return "blocked_by_gate"
    if comparison is not None and comparison.candidate_is_champion:
        return "already_champion"  # Blessed, and already what is served: nothing new to push.
    return "pushed"
