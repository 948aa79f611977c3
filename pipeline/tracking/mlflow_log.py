"""MLflow bookkeeping for `xfer run`: one MLflow run per pipeline run, FINISHED or FAILED with the reason.

The Trainer logs per-epoch metrics live (components/trainer/live_tracking.py); everything else is read back from the
pipeline's outputs once it has finished, which also covers nodes that TFX served from its cache. It only logs:
the run's outputs are read by `result`, worded by `mlflow_text` and drawn by `report/`, and the split counts are
StatisticsGen's (no example is read again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow
import tensorflow as tf
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from tensorflow_metadata.proto.v0 import schema_pb2

from components import mlflow_tags, names
from components.evaluator import verdict
from components.ingest import example_gen
from components.ingest import examples as ingest
from components.transform import features
from components.validation import gate as validation_gate
from components.validation import statistics as statistics_lib
from pipeline import config as config_lib
from pipeline.tracking import mlflow_text, mlmd, registry
from pipeline.tracking import result as result_lib
from pipeline.tracking.report import build as run_report
from pipeline.tracking.report import inputs as report_inputs

# Set when the caller named the run (`xfer run --run-name`): its name is then never replaced.
CHOSEN_NAME_TAG = mlflow_tags.CHOSEN_NAME
# The tag that names the model a run's Trainer produced, so a later run served from the cache finds the run
# that trained it (and holds its curves and report) instead of logging them again.
TRAINER_MODEL_TAG = mlflow_tags.TRAINER_MODEL
TRAINED_IN_RUN_TAG = mlflow_text.TRAINED_IN_RUN_TAG
# TFMA's account of each failed threshold, one line each, when the model was not blessed.
GATE_FAILURES_FILE = "evaluation/gate_failures.txt"
# MLflow's own tags for what the run page shows as its description and its source.
DESCRIPTION_TAG = mlflow_tags.DESCRIPTION
SOURCE_TAGS = {mlflow_tags.SOURCE_TYPE: "LOCAL", mlflow_tags.SOURCE_NAME: "xfer run"}
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
        mlflow_tags.TFX_VERSION: tfx.__version__,
        mlflow_tags.TENSORFLOW_VERSION: tf.__version__,
        mlflow_tags.TFT_VERSION: tft.__version__,
        mlflow_tags.TFMA_VERSION: tfma.__version__,
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
        tags[mlflow_tags.SOURCE_GIT_COMMIT] = commit
    except (OSError, subprocess.CalledProcessError):
        pass  # Not a git checkout (an installed package): MLflow shows no commit rather than a wrong one.
    return tags


def _experiment_id(client: MlflowClient, config: config_lib.Config) -> str:
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if not config.mlflow.tracking_uri:  # The workspace's own store keeps its artifacts beside it.
        artifact_location = config.workspace_layout.mlflow_artifacts.as_uri()
    return client.create_experiment(config.experiment_name, artifact_location=artifact_location)


@contextlib.contextmanager
def tracked_run(config: config_lib.Config, run_name: str | None = None) -> Iterator[str]:
    """Opens the MLflow run, exposes it to the Trainer through the environment, and closes it FINISHED, or
    FAILED with the reason as the tag `failure_reason` when the body raises."""
    client = MlflowClient(tracking_uri=config.tracking_uri)
    started = datetime.datetime.now()
    data = mlflow_text.data_name(config.data)
    tags = versions_and_commit()
    if run_name:  # The caller's name stays; otherwise the run is renamed once its outcome is known.
        tags[CHOSEN_NAME_TAG] = "true"
    name = run_name or mlflow_text.run_name("running", data, started)
    run = client.create_run(_experiment_id(client, config), run_name=name, tags=tags)
    run_id = run.info.run_id
    raw = config.to_dict()
    params = mlflow_text.params(flatten("", raw), raw, runner="local")
    client.log_batch(run_id, params=[mlflow.entities.Param(k, v[:6000]) for k, v in sorted(params.items())])
    saved_env = {key: os.environ.get(key) for key in (names.MLFLOW_RUN_ID_ENV, names.TRACKING_URI_ENV)}
    os.environ[names.MLFLOW_RUN_ID_ENV] = run_id
    os.environ[names.TRACKING_URI_ENV] = config.tracking_uri
    try:
        yield run_id
    except BaseException as error:
        reason = f"{type(error).__name__}: {error}"
        client.set_tag(run_id, mlflow_tags.FAILURE_REASON, reason[:5000])
        log_stopped_rejects(client, run_id, error)
        if not run_name:
            client.update_run(run_id, name=mlflow_text.run_name("failed", data, started))
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


def stopped_rejects_path(error: BaseException) -> str | None:
    """The rejects.jsonl an ingest that stopped on its rejects kept (records.TooManyRejectsError), looked for
    along the chain of exceptions, since the error may reach us raised from within a runner's own."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        path = getattr(current, "rejects_path", None)
        if isinstance(path, str) and path:
            return path
        current = current.__cause__ or current.__context__
    return None


def log_stopped_rejects(client: MlflowClient, run_id: str, error: BaseException) -> None:
    """A run stopped on its rejects keeps the list with the run, as `ingest/rejects.jsonl`: the MLflow run is
    where people look, and the workspace or bucket may be gone or out of reach by then."""
    path = stopped_rejects_path(error)
    if not path or not tf.io.gfile.exists(path):
        return
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, os.path.basename(path))
        tf.io.gfile.copy(path, local, overwrite=True)  # The path may be s3:// on Kubeflow.
        client.log_artifact(run_id, local, "ingest")
    logging.info("The rejects of the stopped run are logged to MLflow run %s as ingest/%s", run_id, REJECTS_NAME)


REJECTS_NAME = example_gen.REJECTS_FILE


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str


@dataclasses.dataclass(frozen=True)
class Tracked:
    """What logging a run to MLflow added to its `RunResult`: the MLflow run, and what only MLflow knows."""

    mlflow_run_id: str
    data_digest: str | None  # The MLflow dataset input's digest; None without an ingest summary.
    transform_table: str  # What each feature became, as text.
    gate_table: str
    trained_in_run: str | None  # When the Trainer came from the cache: the run that trained the model.
    report_failures: tuple[str, ...]
    registered_model: RegisteredModel | None  # The registry version this run's push became.


def log_evaluation(
    client: MlflowClient, run_id: str, evaluation: verdict.Evaluation, class_names: Sequence[str]
) -> str:
    """Everything the Evaluator decided, logged the same way by `xfer run` and by the Kubeflow Evaluator pod:
    the metrics (overall and by slice), the gates, the blessing, the outcome and, when not blessed, why.
    Returns the gate table's text."""
    log_eval_metrics(client, run_id, evaluation.slices, class_names)
    table = ""
    if evaluation.gates:  # Without the config (a pod not given it) there are no gates to explain.
        table = log_gates(client, run_id, evaluation.gates, evaluation.champion_note, evaluation.comparison)
    client.set_tag(run_id, mlflow_tags.BLESSED, str(evaluation.blessed).lower())
    client.set_tag(run_id, mlflow_tags.OUTCOME, evaluation.outcome)
    if not evaluation.blessed:
        # Every line in full as an artifact; the tag is short enough for the runs table and says where they are.
        client.log_text(run_id, "".join(f"{line}\n" for line in evaluation.gate_failures), GATE_FAILURES_FILE)
        failures = "; ".join(evaluation.gate_failures)
        client.set_tag(run_id, mlflow_tags.GATE_FAILURES, mlflow_text.short(failures, where=GATE_FAILURES_FILE))
    return table


def log_gates(
    client: MlflowClient,
    run_id: str,
    rows: Sequence[verdict.GateRow],
    note: str,
    comparison: verdict.Comparison | None,
) -> str:
    """Logs the gate table (`evaluation/gates.txt`), what the candidate was compared with (tags
    `champion_version`, `champion_comparison`) and the champion's own values on this eval split (metrics
    `champion_eval_*`, beside the candidate's for the MLflow UI's comparisons). Returns the table's text."""
    table = mlflow_text.format_gate_table(rows, note)
    client.log_text(run_id, table + "\n", "evaluation/gates.txt")
    if comparison is not None:
        client.set_tag(run_id, mlflow_tags.CHAMPION_VERSION, comparison.champion_version or "none")
        # The whole sentence is in evaluation/gates.txt and the description; the tag says it in brief.
        client.set_tag(run_id, mlflow_tags.CHAMPION_COMPARISON, mlflow_text.champion_comparison_tag(rows, comparison))
    champion_values = {
        f"champion_{row.metric}": row.champion for row in rows if row.kind == "change" and row.champion is not None
    }
    if champion_values:
        client.log_batch(run_id, metrics=[Metric(name, value, _now(), 0) for name, value in champion_values.items()])
    return table


def log_results(config: config_lib.Config, run_id: str, result: result_lib.RunResult) -> Tracked:
    """Logs what the pipeline produced (`result`, read once from ML Metadata) to the MLflow run."""
    client = MlflowClient(tracking_uri=config.tracking_uri)
    client.set_tag(run_id, mlflow_tags.PIPELINE_RUN, result.pipeline_run)
    summary = mlflow_text.node_summary(result.node_states)
    client.set_tag(run_id, mlflow_tags.NODES, mlflow_text.short(summary, where="run/nodes.txt"))
    states = "".join(f"{node}\t{state}\n" for node, state in result.node_states.items())
    client.log_text(run_id, states, "run/nodes.txt")

    data_digest = None
    if result.ingest is not None:
        data_digest = log_ingest(client, run_id, config, result)

    transform_table = _log_transform(client, run_id, result, config.transform_settings)

    # Relative to the workspace: short, and still the same value when the workspace moves.
    trainer_model = workspace_relative(config, result.trainer_model_uri)
    client.set_tag(run_id, TRAINER_MODEL_TAG, trainer_model)
    trained_in = None
    if result.history_path is not None:  # It logged its epochs live; the history file and the report go with them.
        history = json.loads(tf.io.gfile.GFile(result.history_path).read())
        client.set_tag(run_id, mlflow_tags.UNFREEZE_EPOCH, str(history["unfreeze_epoch"]))
        client.log_artifact(run_id, result.history_path, "training")
    else:
        # Served from the cache: replaying its curves here would chart a training that did not happen. The run
        # that trained the model has them, with the report; this one points there.
        trained_in = trained_in_run(client, run_id, trainer_model)
        client.set_tag(run_id, TRAINED_IN_RUN_TAG, trained_in or "unknown")

    evaluation = result.evaluation
    gate_table = log_evaluation(client, run_id, evaluation, result.class_names)
    if result.pushed_path is not None:
        client.set_tag(run_id, mlflow_tags.PUSHED_PATH, workspace_relative(config, result.pushed_path))
    report_failures = _report(config, client, run_id, result)
    registered = _register(config, client, run_id, result)
    tracked = Tracked(run_id, data_digest, transform_table, gate_table, trained_in, report_failures, registered)
    describe_run(client, run_id, config, result, tracked)
    logging.debug("MLflow run %s: %s", run_id, tracked)
    return tracked


def describe_run(
    client: MlflowClient, run_id: str, config: config_lib.Config, result: result_lib.RunResult, tracked: Tracked
) -> None:
    """The run's Markdown description, and its name once the outcome is known (unless the caller chose one)."""
    client.set_tag(run_id, DESCRIPTION_TAG, description(result, tracked, config.data))
    run = client.get_run(run_id)
    if run.data.tags.get(CHOSEN_NAME_TAG) != "true":
        started = datetime.datetime.fromtimestamp(run.info.start_time / 1000)
        outcome = result.evaluation.outcome
        name = mlflow_text.run_name(outcome, mlflow_text.data_name(config.data), started, result.node_states)
        client.update_run(run_id, name=name)


def description(result: result_lib.RunResult, tracked: Tracked, data: str) -> str:
    """The run's Markdown description: outcome, data, gates, champion comparison, which nodes ran."""
    evaluation = result.evaluation
    headline = {
        "pushed": "Blessed and **pushed**",
        "already_champion": "Blessed; it **is already the champion**, so nothing new was pushed",
        "blocked_by_gate": "**Blocked by a gate**: not pushed",
    }[evaluation.outcome]
    registered = tracked.registered_model
    if registered is not None:
        headline += f", registered as `{registered.name}` version {registered.version} (alias `{registered.alias}`)"
    lines = [f"### {headline}.", ""]
    ingest = result.ingest
    if ingest:
        lines.append(
            f"**Data** `{data}`: {ingest['records']} records, {ingest['accepted']} accepted, "
            f"{ingest['rejected']} rejected (`ingest/rejects.jsonl`)."
        )
    else:
        lines.append(f"**Data** `{data}`.")
    metrics = [f"{name} {value:.4f}" for name, value in evaluation.metrics.items()]
    if metrics:
        lines.append(f"**Eval split**: {', '.join(metrics)}.")
    lines += ["", mlflow_text.gate_table_markdown(evaluation.gates), ""]
    if evaluation.champion_note:
        lines.append(f"**Champion**: {evaluation.champion_note}")
    lines += [f"- {failure}" for failure in evaluation.gate_failures]
    lines.append("")
    ran = [node for node, state in result.node_states.items() if state != "CACHED"]
    cached = [node for node, state in result.node_states.items() if state == "CACHED"]
    lines.append(f"**Nodes** ran: {', '.join(ran) or 'none'}; from the cache: {', '.join(cached) or 'none'}.")
    if tracked.trained_in_run:
        lines.append(
            f"The model came from the cache: it was trained in run `{tracked.trained_in_run}`, which has "
            "the training curves and the report."
        )
    if result.pushed_path is not None:
        lines.append(f"Pushed to `{result.pushed_path}`.")
    return "\n".join(lines) + "\n"


def workspace_relative(config: config_lib.Config, path: str) -> str:
    """A path inside the workspace as `serving/1733...`, readable in a tag and still right when it moves."""
    try:
        return str(Path(path).resolve().relative_to(config.workspace_path))
    except ValueError:
        return path  # Elsewhere (s3://, another disk): as it is.


def log_eval_metrics(client: MlflowClient, run_id: str, slices: verdict.Slices, class_names: Sequence[str]) -> None:
    """The overall slice as metrics, one name each (mlflow_text.eval_metric_name), and every slice as
    `evaluation/metrics_by_slice.json` under the same names (NaN as null: JSON has no NaN)."""
    overall = mlflow_text.eval_metrics(slices.get("overall", {}), class_names)
    client.log_batch(run_id, metrics=[Metric(name, value, _now(), 0) for name, value in sorted(overall.items())])
    by_slice = {name: mlflow_text.eval_metrics(values, class_names) for name, values in slices.items()}
    client.log_text(
        run_id,
        json.dumps(mlflow_text.finite_or_none(by_slice), indent=2, allow_nan=False, sort_keys=True) + "\n",
        "evaluation/metrics_by_slice.json",
    )


def log_ingest(client: MlflowClient, run_id: str, config: config_lib.Config, result: result_lib.RunResult) -> str:
    """The ingest's counts (metrics `ingest_*`), its format and boxes (tags), its summary and rejects (artifacts
    under `ingest/`), and the dataset as the run's input. Returns the dataset's digest."""
    ingest_summary = result.ingest or {}
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
    for key, tag in mlflow_tags.INGEST.items():
        if key in ingest_summary:
            client.set_tag(run_id, tag, str(ingest_summary[key]).lower())
    client.log_artifact(run_id, os.path.join(result.examples_uri, example_gen.SUMMARY_FILE), "ingest")
    client.log_artifact(run_id, os.path.join(result.examples_uri, example_gen.REJECTS_FILE), "ingest")
    return log_dataset(client, run_id, config, result)


def log_dataset(client: MlflowClient, run_id: str, config: config_lib.Config, result: result_lib.RunResult) -> str:
    """The ingested dataset as the run's MLflow dataset input: its folder as the source, a digest of TFX's
    input fingerprint (every file's path, size and time), the counts as its profile, the curated schema's
    columns as its schema. Returns the digest."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    fingerprint = result.input_fingerprint
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:12] if fingerprint else "unknown"
    columns = []
    for feature in ingest.load_schema(config.schema).feature:
        kind = schema_pb2.FeatureType.Name(feature.type)
        column_type = "binary" if feature.name == features.IMAGE else _SCHEMA_TYPES.get(kind, "string")
        columns.append(ColSpec(column_type, feature.name))
    ingest_summary = result.ingest or {}
    profile = {
        key: ingest_summary[key] for key in ("records", "accepted", "rejected", "format") if key in ingest_summary
    }
    profile["splits"] = split_counts(result.statistics)
    source = config.data if "://" in config.data else str(Path(config.data).resolve())
    dataset = Dataset(
        name=mlflow_text.data_name(config.data),
        digest=digest,
        source_type=source.split("://", 1)[0] if "://" in source else "local",
        source=json.dumps({"uri": source}),
        schema=json.dumps({"mlflow_colspec": Schema(columns).to_dict()}),
        profile=json.dumps(profile),
    )
    context = ", ".join(names.SPLITS)
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])
    return digest


def split_counts(statistics: mlmd.Output) -> dict[str, int]:
    """Examples per split, as StatisticsGen counted them (it reads every example; no need to read them again)."""
    loaded = validation_gate.load_split_statistics(statistics.uri, sorted(statistics.split_names()))
    return {split: statistics_lib.example_count(found) for split, found in loaded.items()}


def _report(
    config: config_lib.Config,
    client: MlflowClient,
    run_id: str,
    result: result_lib.RunResult,
) -> tuple[str, ...]:
    """The run's report when its Trainer trained: a plot that fails is a warning, never a failed run. A Trainer
    served from the cache has its report in the run that trained it (`trained_in_run`). Returns the failures."""
    if not result.trained:
        return ()
    try:
        return tuple(run_report.build_run_report(config, result, client, run_id)["failed"])
    except Exception as error:
        logging.warning("MLflow run %s: no report: %s: %s", run_id, type(error).__name__, error, exc_info=True)
        return (f"report: {type(error).__name__}: {error}",)


def _register(
    config: config_lib.Config, client: MlflowClient, run_id: str, result: result_lib.RunResult
) -> RegisteredModel | None:
    """When this run's Pusher pushed: the new registry version and its `champion` alias. A failure here fails
    the run: the serving folder and the registry would disagree. A Pusher served from the cache pushed nothing
    new, and registers nothing."""
    if not result.pushed or result.pushed_path is None:
        return None
    # The version's input example is one eval example: read that one, not the whole split.
    examples = report_inputs.read_examples(result.examples_uri, names.EVAL_SPLIT, limit=1)
    name = config.registered_model_name
    version = registry.register_champion(
        config.tracking_uri, run_id, result.pushed_path, name, registry.input_example(result.pushed_path, examples)
    )
    client.set_tag(run_id, mlflow_tags.REGISTERED_MODEL, f"{name}/{version.version}")
    return RegisteredModel(name, str(version.version), registry.CHAMPION_ALIAS)


def _log_transform(
    client: MlflowClient, run_id: str, result: result_lib.RunResult, settings: features.TransformSettings
) -> str:
    """Logs a readable summary of what each feature became, and (when Transform ran in this run, not for a copy
    of an earlier run's) the Transform graph with its vocabularies. Returns the summary."""
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(result.transform_graph_uri)
    num_classes = output.vocabulary_size_by_name(features.LABEL_VOCABULARY)
    table = features.format_table(features.describe(settings, output.vocabulary_size_by_name, num_classes))
    client.log_text(run_id, table + "\n", "transform/summary.txt")
    if result.transformed:
        client.log_artifacts(run_id, result.transform_graph_uri, "transform/graph")
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
