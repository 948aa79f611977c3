"""MLflow bookkeeping for `xfer run`: one MLflow run per pipeline run, FINISHED or FAILED with the reason.

The Trainer logs per-epoch metrics live (components/trainer/live_tracking.py); everything else is read back from the
pipeline's outputs once it has finished, which also covers nodes that TFX served from its cache.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow
import tensorflow as tf
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from tensorflow_metadata.proto.v0 import schema_pb2

from components.evaluator import executor as evaluator_lib
from components.ingest import example_gen
from components.ingest import examples as ingest
from components.trainer import live_tracking
from components.trainer import module as trainer_module
from components.transform import features
from pipeline import config as config_lib
from pipeline import registry, run_record, run_story
from pipeline import report as run_report

# Set when the caller named the run (`xfer run --run-name`): its name is then never replaced.
CHOSEN_NAME_TAG = "xfer.run_name_chosen"
# What TFMA calls the baseline model, which the Evaluator is given the champion as.
CHAMPION_MODEL_NAME = "baseline"
# The tag that names the model a run's Trainer produced, so a later run served from the cache finds the run
# that trained it (and holds its curves and report) instead of logging them again.
TRAINER_MODEL_TAG = "trainer_model"
TRAINED_IN_RUN_TAG = run_story.TRAINED_IN_RUN_TAG
# Names of the TFMA metrics the gates read, and what the MLflow run calls them.
EVAL_METRICS = {("probabilities", "sparse_categorical_accuracy"): "eval_accuracy", ("box", "box_iou"): "eval_iou"}
# MLflow's own tags for what the run page shows as its description and its source.
DESCRIPTION_TAG = "mlflow.note.content"
SOURCE_TAGS = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "xfer run"}
# Column types of the dataset's schema as MLflow's dataset view names them (mlflow.types.DataType).
_SCHEMA_TYPES = {"INT": "long", "FLOAT": "double", "BYTES": "string"}


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
    """The library versions, and the commit as MLflow's own source tag (the run page shows it as Source)."""
    import tensorflow_model_analysis as tfma
    import tensorflow_transform as tft
    import tfx

    tags = {
        "tfx_version": tfx.__version__,
        "tensorflow_version": tf.__version__,
        "tft_version": tft.__version__,
        "tfma_version": tfma.__version__,
        **SOURCE_TAGS,
    }
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        tags["mlflow.source.git.commit"] = commit
    except (OSError, subprocess.CalledProcessError):
        pass  # Not a git checkout (an installed package): MLflow shows no commit rather than a wrong one.
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
    started = datetime.datetime.now()
    data = run_story.data_name(config.data)
    tags = versions_and_commit()
    if run_name:  # The caller's name stays; otherwise the run is renamed once its outcome is known.
        tags[CHOSEN_NAME_TAG] = "true"
    name = run_name or run_story.run_name("running", data, started)
    run = client.create_run(_experiment_id(client, config), run_name=name, tags=tags)
    run_id = run.info.run_id
    raw = config.to_dict()
    params = run_story.params(flatten("", raw), raw, runner="local")
    client.log_batch(run_id, params=[mlflow.entities.Param(k, v[:6000]) for k, v in sorted(params.items())])
    saved_env = {key: os.environ.get(key) for key in (live_tracking.RUN_ID_ENV, live_tracking.TRACKING_URI_ENV)}
    os.environ[live_tracking.RUN_ID_ENV] = run_id
    os.environ[live_tracking.TRACKING_URI_ENV] = config.tracking_uri
    try:
        yield run_id
    except BaseException as error:
        reason = f"{type(error).__name__}: {error}"
        client.set_tag(run_id, "failure_reason", reason[:5000])
        if not run_name:
            client.update_run(run_id, name=run_story.run_name("failed", data, started))
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


def metrics_by_slice(
    evaluation_uri: str,
    model_name: str | None = None,
    slice_label: Callable[[Sequence[tuple[str, Any]]], str] | None = None,
) -> dict[str, dict[tuple[str, str], float]]:
    """Every scalar TFMA metric, by slice ("overall", "camera_id=cam_01", ...), keyed by (output, metric[/class]).

    `model_name`: None is the candidate (with `<metric>_diff`, its change against the champion, when it was
    compared with one); "baseline" is the champion's own metrics. `slice_label` names a slice key (default:
    TFMA's values as they are, which for a transformed feature are its ids).
    """
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
    slices: dict[str, dict[tuple[str, str], float]] = {}
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
        # The whole sentence is in evaluation/gates.txt and the description; the tag says it in brief.
        client.set_tag(run_id, "champion_comparison", champion_comparison_tag(rows, comparison))
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
    import tensorflow_transform as tft

    client = MlflowClient(tracking_uri=config.tracking_uri)
    summary: dict[str, Any] = {"pipeline_run": record.run_id}
    node_states = {node: node_record.state for node, node_record in record.nodes.items()}
    client.set_tag(run_id, "pipeline_run", record.run_id)
    client.set_tag(run_id, "nodes", run_story.short(run_story.node_summary(node_states), where="run/nodes.txt"))
    client.log_text(run_id, "".join(f"{node}\t{state}\n" for node, state in node_states.items()), "run/nodes.txt")

    examples = record.nodes["ImageExampleGen"].output("examples")
    summary_path = os.path.join(examples.uri, example_gen.SUMMARY_FILE)
    if tf.io.gfile.exists(summary_path):
        ingest_summary = json.loads(tf.io.gfile.GFile(summary_path).read())
        client.log_batch(
            run_id,
            metrics=[
                *(
                    Metric(f"ingest_{key}", float(ingest_summary[key]), _now(), 0)
                    for key in ("records", "accepted", "rejected")
                ),
                *(
                    Metric(f"ingest_rejected_{reason}", float(count), _now(), 0)
                    for reason, count in ingest_summary.get("rejected_by_reason", {}).items()
                ),
            ],
        )
        for key in ("format", "has_boxes"):
            if key in ingest_summary:
                client.set_tag(run_id, f"ingest_{key}", str(ingest_summary[key]).lower())
        client.log_artifact(run_id, summary_path, "ingest")
        client.log_artifact(run_id, os.path.join(examples.uri, example_gen.REJECTS_FILE), "ingest")
        summary["ingest"] = ingest_summary
        summary["data_digest"] = log_dataset(client, run_id, config, examples, ingest_summary)

    transform_uri = record.nodes["Transform"].output("transform_graph").uri
    transform_output = tft.TFTransformOutput(transform_uri)
    summary["transform_table"] = _log_transform(
        client,
        run_id,
        transform_output,
        transform_uri,
        config.transform_settings,
        with_graph=record.state("Transform") == "COMPLETE",
    )
    class_names = [value.decode() for value in transform_output.vocabulary_by_name(features.LABEL_VOCABULARY)]

    trainer = record.nodes["Trainer"]
    # Relative to the workspace: short, and still the same value when the workspace moves.
    trainer_model = workspace_relative(config, trainer.output("model").uri)
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
    slices = metrics_by_slice(evaluation, slice_label=slice_labeller(config, transform_output))
    metrics = overall_eval_metrics(slices)
    log_eval_metrics(client, run_id, slices, class_names)
    summary.update(metrics)
    summary["slices"] = slices

    blessing = record.nodes["Evaluator"].output("blessing")
    blessed = tf.io.gfile.exists(os.path.join(blessing.uri, "BLESSED"))
    summary["blessed"] = blessed
    summary["gates"], summary["champion_note"], comparison = champion_gates(config, evaluation, slices)
    summary["gate_table"] = log_gates(client, run_id, summary["gates"], summary["champion_note"], comparison)
    client.set_tag(run_id, "blessed", str(blessed).lower())
    if comparison is not None:
        summary["champion_version"] = comparison.champion_version
        summary["compared_with_champion"] = comparison.compared
    summary["outcome"] = run_outcome(blessed, comparison)
    client.set_tag(run_id, "outcome", summary["outcome"])
    if not blessed:
        summary["gate_failures"] = gate_failures(evaluation)
        client.set_tag(
            run_id, "gate_failures", run_story.short("; ".join(summary["gate_failures"]), where="evaluation/gates.txt")
        )

    pushed = record.nodes["Pusher"].output("pushed_model").properties
    if pushed.get("pushed"):
        summary["pushed_path"] = pushed.get("pushed_destination", "")
        client.set_tag(run_id, "pushed_path", workspace_relative(config, summary["pushed_path"]))
    _report_and_register(config, client, run_id, record, summary)
    describe_run(client, run_id, config, summary, node_states)
    logging.debug("MLflow run %s: %s", run_id, summary)
    return summary


def describe_run(
    client: MlflowClient,
    run_id: str,
    config: config_lib.Config,
    summary: dict[str, Any],
    node_states: dict[str, str],
) -> None:
    """The run's Markdown description, and its name once the outcome is known (unless the caller chose one)."""
    client.set_tag(run_id, DESCRIPTION_TAG, run_story.description(summary, node_states, config.data))
    run = client.get_run(run_id)
    if run.data.tags.get(CHOSEN_NAME_TAG) != "true":
        started = datetime.datetime.fromtimestamp(run.info.start_time / 1000)
        name = run_story.run_name(summary["outcome"], run_story.data_name(config.data), started, node_states)
        client.update_run(run_id, name=name)


def workspace_relative(config: config_lib.Config, path: str) -> str:
    """A path inside the workspace as `serving/1733...`, readable in a tag and still right when it moves."""
    try:
        return str(Path(path).resolve().relative_to(config.workspace_path))
    except ValueError:
        return path  # Elsewhere (s3://, another disk): as it is.


def champion_comparison_tag(rows: list[dict[str, Any]], comparison: evaluator_lib.Comparison) -> str:
    """ "v3: eval_accuracy +0.0100, eval_iou -0.0040", or why there was no comparison, in brief."""
    if not comparison.compared:
        if comparison.candidate_is_champion:
            return f"is champion v{comparison.champion_version}"
        return "no champion yet" if not comparison.champion_version else run_story.short(comparison.note)
    changes = [
        f"{row['metric']} {row['change']:+.4f}" for row in rows if row["kind"] == "change" and row["change"] is not None
    ]
    return run_story.short(f"v{comparison.champion_version}: {', '.join(changes) or 'compared'}", limit=60)


def log_eval_metrics(
    client: MlflowClient, run_id: str, slices: dict[str, dict[tuple[str, str], float]], class_names: list[str]
) -> None:
    """The overall slice as metrics, one name each (run_story.eval_metric_name), and every slice as
    `evaluation/metrics_by_slice.json` under the same names (NaN as null: JSON has no NaN)."""
    overall = run_story.eval_metrics(slices.get("overall", {}), class_names)
    client.log_batch(run_id, metrics=[Metric(name, value, _now(), 0) for name, value in sorted(overall.items())])
    by_slice = {name: run_story.eval_metrics(values, class_names) for name, values in slices.items()}
    client.log_text(
        run_id,
        json.dumps(run_story.finite_or_none(by_slice), indent=2, allow_nan=False, sort_keys=True) + "\n",
        "evaluation/metrics_by_slice.json",
    )


def slice_labeller(config: config_lib.Config, transform_output: Any) -> Callable[[Sequence[tuple[str, Any]]], str]:
    """Names slices by what their ids stand for ("camera_id=cam_00", "capture_hour=8..12"): TFMA slices on the
    transformed features, whose values are vocabulary and bucket ids."""
    feature_configs = {feature["name"]: feature for feature in config.to_dict()["features"]}

    def vocabulary(name: str) -> list[str] | None:
        try:
            return [value.decode() for value in transform_output.vocabulary_by_name(name)]
        except (ValueError, KeyError, tf.errors.NotFoundError):
            return None

    return lambda slice_key: run_story.slice_label(slice_key, feature_configs, vocabulary)


def log_dataset(
    client: MlflowClient,
    run_id: str,
    config: config_lib.Config,
    examples: run_record.Output,
    ingest_summary: dict[str, Any],
) -> str:
    """The ingested dataset as the run's MLflow dataset input: its folder as the source, a digest of TFX's
    input fingerprint (every file's path, size and time), the counts as its profile, the curated schema's
    columns as its schema. Returns the digest."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    fingerprint = str(examples.properties.get("input_fingerprint", ""))
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:12] if fingerprint else "unknown"
    columns = []
    for feature in ingest.load_schema(config.schema).feature:
        kind = schema_pb2.FeatureType.Name(feature.type)
        column_type = "binary" if feature.name == features.IMAGE else _SCHEMA_TYPES.get(kind, "string")
        columns.append(ColSpec(column_type, feature.name))
    profile = {
        key: ingest_summary[key] for key in ("records", "accepted", "rejected", "format") if key in ingest_summary
    }
    profile["splits"] = split_counts(examples.uri)
    source = config.data if "://" in config.data else str(Path(config.data).resolve())
    dataset = Dataset(
        name=run_story.data_name(config.data),
        digest=digest,
        source_type=source.split("://", 1)[0] if "://" in source else "local",
        source=json.dumps({"uri": source}),
        schema=json.dumps({"mlflow_colspec": Schema(columns).to_dict()}),
        profile=json.dumps(profile),
    )
    client.log_inputs(
        run_id, datasets=[DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "train, val, eval")])]
    )
    return digest


def split_counts(examples_uri: str) -> dict[str, int]:
    """Records per split of the ingested examples (GZIP TFRecords under Split-<name>/)."""
    counts = {}
    for folder in sorted(tf.io.gfile.glob(os.path.join(examples_uri, "Split-*"))):
        files = tf.io.gfile.glob(os.path.join(folder, "*"))
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
        counts[os.path.basename(folder).removeprefix("Split-")] = int(dataset.reduce(0, lambda count, _: count + 1))
    return counts


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
            summary["report_failures"] = run_report.build_run_report(config, record, client, run_id, summary)["failed"]
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
    output: Any,
    transform_graph_uri: str,
    settings: features.TransformSettings,
    with_graph: bool = True,
) -> str:
    """Logs a readable summary of what each feature became, and (`with_graph`: when Transform ran in this run,
    not for a copy of an earlier run's) the Transform graph with its vocabularies. `output`: its
    `tft.TFTransformOutput`."""
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
