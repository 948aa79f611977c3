"""The `xfer` command line: sample-data, run, validate, schema infer, ui, predict, compile, submit, schedule."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Importing `components` sets TF_USE_LEGACY_KERAS (components/__init__.py); the heavy imports happen inside the
# commands, so that --help and a config error answer before TensorFlow loads.
from components import mlflow_tags, names
from components.ingest.settings import INGEST_FORMATS
from pipeline import logs, predict_command, sample_command
from pipeline import workspace as workspace_lib
from pipeline.tracking import ui

if TYPE_CHECKING:  # The CLI imports the heavy modules inside its commands.
    from pipeline import config as config_lib
    from pipeline.tracking.mlflow_log import Tracked
    from pipeline.tracking.result import RunResult

DEFAULT_CONFIG = "configs/sample.yaml"
DEFAULT_PACKAGE = "pipeline.yaml"  # The KFP package `compile` writes and `submit` and `schedule` send.
EXIT_BLOCKED_BY_GATE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xfer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sample_command.add_parser(commands)
    _add_local_commands(commands)
    schema_commands = _add_schema(commands)
    _add_ui(commands)
    predict_command.add_parser(commands, _add_ingest_options)
    _add_kubeflow_commands(commands)
    for command in (*commands.choices.values(), *schema_commands.choices.values()):
        command.add_argument(
            "--verbose", action="store_true", help="show every log line and warning of TFX, Beam and TensorFlow"
        )
    return parser


def _add_local_commands(commands) -> None:
    """`run` and `validate`: the pipeline, or its data checks alone, on this machine."""
    run = commands.add_parser("run", help="run the whole pipeline locally (TFX LocalDagRunner on Beam)")
    run.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})")
    run.add_argument("--data", help="dataset folder; overrides the config's `data`")
    run.add_argument("--workspace", help="workspace folder; overrides the config's `workspace`")
    run.add_argument("--run-name", help="name of the MLflow run")
    _add_ingest_options(run)
    validate = commands.add_parser("validate", help="ingest, statistics and schema validation only; prints anomalies")
    validate.add_argument("--data", help="dataset folder; overrides the config's `data`")
    validate.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})")
    validate.add_argument("--workspace", help="workspace folder; overrides the config's `workspace`")
    _add_ingest_options(validate)


def _add_schema(commands):
    """`schema` and its own subcommands, which are returned."""
    schema = commands.add_parser("schema", help="schema tools")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True, metavar="SCHEMA_COMMAND")
    infer = schema_commands.add_parser("infer", help="bootstrap a schema from a dataset, for you to curate")
    infer.add_argument("--data", required=True, help="dataset folder")
    infer.add_argument("--out", required=True, help="schema file to write (text proto)")
    infer.add_argument("--config", default=DEFAULT_CONFIG, help=f"config for ingest (default {DEFAULT_CONFIG})")
    _add_ingest_options(infer)
    return schema_commands


def _add_ui(commands) -> None:
    workspace, timeout = workspace_lib.DEFAULT_ROOT, ui.DEFAULT_TIMEOUT_SECONDS
    ui_command = commands.add_parser("ui", help="serve the MLflow UI for a workspace on 127.0.0.1")
    ui_command.add_argument("--workspace", default=workspace, help=f"workspace folder (default ./{workspace})")
    ui_command.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    ui_command.add_argument(
        "--timeout", type=float, default=timeout, help=f"seconds to wait for the server (default {timeout:.0f})"
    )


def _add_kubeflow_commands(commands) -> None:
    """`compile` writes the KFP package; `submit` and `schedule` send it to a KFP server, with options of their
    own after the ones they share."""
    compile_ = commands.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (KFP YAML)")
    compile_.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})")
    compile_.add_argument("--out", default=DEFAULT_PACKAGE, help=f"package to write (default {DEFAULT_PACKAGE})")
    for name, help_text in (
        ("submit", "start one run of a compiled package on a KFP server"),
        ("schedule", "schedule a compiled package as a recurring run on a KFP server"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8888")
        command.add_argument("--package", default=DEFAULT_PACKAGE, help=f"package (default {DEFAULT_PACKAGE})")
        command.add_argument(
            "--config",
            default=DEFAULT_CONFIG,
            help=f"config with the experiment and pipeline root (default {DEFAULT_CONFIG})",
        )
        command.add_argument("--experiment", help="KFP experiment (default: the config's pipeline name)")
        command.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    commands.choices["submit"].add_argument("--run-name", help="run name (default: the pipeline name)")
    commands.choices["submit"].add_argument(
        "--wait",
        action="store_true",
        help="follow the run to its end: each task's state, then the MLflow run; exit 0 if it succeeded, 1 if "
        "not, 3 if its model was blocked by a gate",
    )
    commands.choices["submit"].add_argument(
        "--poll-seconds", type=float, default=15.0, help="with --wait: seconds between looks (default 15)"
    )
    commands.choices["schedule"].add_argument(
        "--cron", required=True, help="six-field cron, seconds first: '0 0 2 * * *' is 02:00 every day"
    )
    commands.choices["schedule"].add_argument("--job-name", help="recurring run name")


def _add_ingest_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--format",
        choices=INGEST_FORMATS,
        help="annotation format; overrides the config's ingest.format (default: detect it)",
    )
    command.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="Beam pipeline option, after the config's beam_args (repeatable), e.g. --beam-arg=--direct_num_workers=2",
    )


def _load_config(args: argparse.Namespace):
    """The config with the command line's --data, --workspace, --format and --beam-arg applied on top."""
    import dataclasses

    from pipeline import config as config_lib

    config = config_lib.load_config(args.config, {"data": args.data, "workspace": getattr(args, "workspace", None)})
    if args.format:
        config = config.replace(ingest=dataclasses.replace(config.ingest, format=args.format))
    # Later options win in Beam's parser, so the command line's come last.
    return config.replace(beam_args=(*config.beam_args, *args.beam_arg))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logs.quiet_before_imports(verbose)
    logs.configure(verbose)
    handlers = {
        "sample-data": sample_command.run,
        "run": _run,
        "validate": _validate,
        "schema": _schema,
        "ui": _ui,
        "predict": predict_command.run,
        "compile": _compile,
        "submit": _submit,
        "schedule": _schedule,
    }
    try:
        return handlers[args.command](args)
    except Exception as error:  # One readable line for the errors users cause; the traceback is in the log.
        if isinstance(error, _user_errors()):
            print(f"xfer {args.command}: error: {error}", file=sys.stderr)
            return 2
        raise


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user causes (a bad config, a bad dataset, data that failed validation). An error class
    whose module was never imported cannot have been raised, so those modules are looked up, not imported:
    importing components.validation.gate would load TensorFlow and TFX just to report a config error."""
    errors: list[type[BaseException]] = [FileNotFoundError, ValueError]
    for module, name in (
        ("pipeline.config", "ConfigError"),
        ("components.ingest.records", "IngestError"),
        ("components.validation.gate", "DataValidationError"),
        ("pipeline.tracking.ui", "ServerError"),
    ):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def _run(args: argparse.Namespace) -> int:
    # The config and the dataset folder are checked before TensorFlow and TFX are imported (~20 s), so a
    # mistake in either is reported at once.
    config = _load_config(args)
    if not Path(config.data).is_dir():
        raise FileNotFoundError(f"dataset folder {config.data} does not exist (make one with `xfer sample-data`)")
    from pipeline import data_check, local_runner

    data_check.check_features_against_data(config)

    run = local_runner.run_local(config, run_name=args.run_name)
    print(run_summary(config, run.result, run.tracked))
    # 3, not 0 and not the 2 of an error: the run worked, and the gates kept the model from being pushed.
    return 0 if run.result.evaluation.blessed else EXIT_BLOCKED_BY_GATE


def run_summary(config: config_lib.Config, result: RunResult, tracked: Tracked) -> str:
    """What `xfer run` prints when the run has finished."""
    ingest, evaluation = result.ingest, result.evaluation
    lines = [
        "",
        tracked.transform_table,
        "",
        f"pipeline run   {result.pipeline_run}",
        f"nodes          {', '.join(f'{n}={s}' for n, s in sorted(result.node_states.items()))}",
    ]
    if ingest:
        lines.append(
            f"ingest         {ingest['records']} records, {ingest['accepted']} accepted, "
            f"{ingest['rejected']} rejected {ingest['rejected_by_reason'] or ''}"
        )
    lines += ["", tracked.gate_table, "", f"blessed        {evaluation.blessed}"]
    lines += [f"  gate failed: {failure}" for failure in evaluation.gate_failures]
    if evaluation.outcome == "already_champion" and evaluation.comparison is not None:
        pushed = f"(not pushed: it is already the champion, version {evaluation.comparison.champion_version})"
    else:
        pushed = result.pushed_path or "(not pushed)"
    lines += [
        f"outcome        {evaluation.outcome}",
        f"pushed to      {pushed}",
        f"MLflow run     {tracked.mlflow_run_id} ({config.tracking_uri}); {ui_hint(config)}",
    ]
    return "\n".join(lines)


def ui_hint(config) -> str:
    """How to see this run: `make ui` only serves ./workspace, so any other store gets its own command."""
    uri = config.tracking_uri
    if uri.startswith(("http://", "https://")):
        return f"see it at {uri}"
    if config.mlflow.tracking_uri:
        return f"see it with `mlflow ui --backend-store-uri {uri}`"
    if config.workspace_path == Path(workspace_lib.DEFAULT_ROOT).resolve() and Path("Makefile").is_file():
        return "see it with `make ui`"
    return f"see it with `xfer ui --workspace {config.workspace_path}`"


def _validate(args: argparse.Namespace) -> int:
    from components.validation import gate as validation_gate
    from pipeline import validate

    config = _load_config(args)
    if not Path(config.data).is_dir():
        raise FileNotFoundError(
            f"dataset folder {config.data} does not exist (set `data` in {args.config} or pass --data)"
        )
    from pipeline import data_check

    data_check.check_features_against_data(config)
    report = validate.run_validation(config)
    ingest = report.ingest
    print(
        f"\ningest         {ingest['format']} dataset, boxes {'on' if ingest['has_boxes'] else 'off'}: "
        f"{ingest['records']} records, {ingest['accepted']} accepted, {ingest['rejected']} rejected "
        f"{ingest['rejected_by_reason'] or ''}"
    )
    if ingest["rejected"]:
        print(f"rejects        {report.rejects_path}")
    print(f"statistics     {report.statistics_html}")
    if not report.anomalies:
        print("anomalies      none: the data matches the schema")
        return 0
    print(f"anomalies      {len(report.anomalies)}; fix the data, or curate the schema if the data is right:")
    for line in validation_gate.shorten_lines(report.anomalies):
        print(f"  {line}")
    return 1


def _schema(args: argparse.Namespace) -> int:
    import tempfile

    from components.ingest import beam as ingest_beam
    from components.validation import schema_inference

    config = _load_config(args)
    # No column types from a schema: this command is how the first schema gets made; infer_schema reads them.
    settings = ingest_beam.IngestSettings.from_config(config.ingest, {})
    # Kept beside the schema: the work folder is deleted, and the rejects are what the user has to read.
    rejects_path = rejects_path_for(args.out)
    Path(rejects_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xfer-schema-") as work_dir:
        found = schema_inference.infer_schema(args.data, settings, work_dir, list(config.beam_args), rejects_path)
    schema_inference.write_schema(found.schema, args.out, args.data, found.statistics)
    summary = found.summary
    print(
        f"inferred {len(found.schema.feature)} features from {summary['accepted']} examples ({summary['format']}, "
        f"boxes {'on' if summary['has_boxes'] else 'off'}; {summary['rejected']} records rejected)"
    )
    for column, column_found in sorted(found.columns.items()):
        if column_found.rejected_values:
            print(
                f"column {column!r} is {column_found.column_type}: {column_found.rejected_values} value(s) are not "
                "numbers, their records are rejected as bad_metadata"
            )
    if summary["rejected"]:
        print(f"rejects        {rejects_path}")
    print(f"wrote {args.out}: curate it (presence, ranges, vocabularies), then point the config's `schema` at it")
    return 0


def rejects_path_for(schema_path: str) -> str:
    """Where `xfer schema infer` keeps the rejects: beside the schema, `mine.pbtxt` -> `mine.rejects.jsonl`."""
    path = Path(schema_path).resolve()
    return str(path.with_name(path.stem + ".rejects.jsonl"))


def _ui(args: argparse.Namespace) -> int:
    import signal

    # Stopped by a signal (a supervisor, a test), it still stops the server it started, as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workspace = Path(args.workspace).resolve()
    base_url = f"http://{ui.HOST}:{args.port}"
    print(f"starting the MLflow UI on {workspace_lib.Workspace(workspace).mlflow_db} ...", flush=True)
    try:
        with ui.serve(workspace, args.port, args.timeout) as server:
            # Printed once the server answers: a URL printed earlier showed an error page for half a minute.
            view = ui.training_view(ui.latest_experiment_id(ui.store_uri(workspace)))
            print(f"MLflow UI on {base_url}/{view} (Ctrl-C to stop)", flush=True)
            return server.wait()
    except KeyboardInterrupt:
        return 0


def _compile(args: argparse.Namespace) -> int:
    import time

    from pipeline import config as config_lib
    from pipeline.kubeflow import runner as kubeflow_runner

    config = config_lib.load_config(args.config)
    started = time.monotonic()
    package = kubeflow_runner.compile_pipeline(config, args.out)
    tasks = package["pipeline_spec"]["root"]["dag"]["tasks"]
    print(
        f"wrote {args.out}: {len(tasks)} steps, schema {package['pipeline_spec']['schemaVersion']}, "
        f"root {config.kubeflow.pipeline_root} ({time.monotonic() - started:.1f}s)"
    )
    return 0


def _submit(args: argparse.Namespace) -> int:
    from pipeline import config as config_lib
    from pipeline.kubeflow import client as kubeflow_client

    config = config_lib.load_config(args.config)
    result = kubeflow_client.submit(
        args.host,
        args.package,
        args.experiment or config.pipeline_name,
        args.run_name,
        config.kubeflow.pipeline_root,
        dry_run=args.dry_run,
    )
    print(json.dumps(result, indent=2))
    if args.dry_run or not args.wait:
        return 0
    return _wait(args, config, result)


def _wait(args: argparse.Namespace, config: config_lib.Config, submitted: dict[str, Any]) -> int:
    from pipeline.kubeflow import client as kubeflow_client

    ended = kubeflow_client.wait(args.host, submitted["run_id"], submitted["package"]["tasks"], args.poll_seconds)
    print(f"run {ended['run_id']}: {ended['state']}")
    status = 0 if ended["state"] == "SUCCEEDED" else 1
    tracking_uri = os.environ.get(names.TRACKING_URI_ENV, "")
    experiment = config.kubeflow.mlflow_experiment or config.experiment_name
    run = kubeflow_client.find_mlflow_run(tracking_uri, experiment, ended["pods"]) if tracking_uri else None
    if run is None:
        print(
            f"MLflow: {'no run found' if tracking_uri else 'set MLFLOW_TRACKING_URI to find the run'} "
            f"in experiment {experiment!r}"
        )
        return status
    tags = run.data.tags
    print(
        f"MLflow: run {run.info.run_id} ({tags.get(mlflow_tags.KFP_RUN)}) {run.info.status}, outcome "
        f"{tags.get(mlflow_tags.OUTCOME, '-')}"
        + (f", failure: {tags[mlflow_tags.FAILURE_REASON]}" if mlflow_tags.FAILURE_REASON in tags else "")
    )
    if status == 0 and tags.get(mlflow_tags.OUTCOME) == "blocked_by_gate":
        return EXIT_BLOCKED_BY_GATE  # As `xfer run`: a model the gates turned down.
    return status


def _schedule(args: argparse.Namespace) -> int:
    from pipeline import config as config_lib
    from pipeline.kubeflow import client as kubeflow_client

    config = config_lib.load_config(args.config)
    result = kubeflow_client.schedule(
        args.host,
        args.package,
        args.experiment or config.pipeline_name,
        args.job_name,
        args.cron,
        config.kubeflow.pipeline_root,
        dry_run=args.dry_run,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
