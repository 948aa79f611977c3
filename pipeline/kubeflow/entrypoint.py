"""What every pod of a Kubeflow run executes: `python -m pipeline.kubeflow.entrypoint --node ID <module> ...`.

It prepares the process the way `xfer run` prepares its own, then runs TFX's container module unchanged:
- TF_USE_LEGACY_KERAS before TensorFlow is imported;
- S3 for TensorFlow (pipeline/kubeflow/s3.py: tensorflow-io's filesystem, configured from the same AWS_*
  variables boto3 reads; Beam's worker processes import the same module);
- the executor input as TFX's module expects it, from what KFP's driver sends (`driver_input_for_tfx`);
- one MLflow run per KFP run, found by the Argo workflow name, so the Trainer's live epochs, the Evaluator's
  metrics and gate, and the Pusher's destination land in one run, FINISHED or FAILED with the reason, as
  `xfer run` records it locally.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import runpy
import sys
from typing import Any

# Sets TF_USE_LEGACY_KERAS before TFX's module imports TensorFlow (components/__init__.py).
from components import mlflow_tags, names

LAST_NODE = names.PUSHER


def find_or_create_run(client: Any, experiment_name: str, kfp_run: str, params: dict[str, str]) -> str:
    """The MLflow run of this KFP run. Root tasks start together and may each create one: every pod keeps the
    oldest, so they converge on the same run, and deletes the others. The config is logged to the run that
    is kept, never to the one just created, which another pod may already have deleted (found when the
    emulator started the root tasks together, as Argo does).

    The oldest a pod sees is not final: a peer's run can be stored after this pod searched and still be older
    (its start time is the peer's clock when it asked, and a busy server stores requests out of that order),
    and that peer then deletes the run this pod kept. So a pod returns only a run that is still active after
    its parameters are logged, and otherwise looks again (DataFingerprint failed its first attempt on the
    deleted run in the emulator's scheduled run 1)."""
    from mlflow.exceptions import MlflowException

    experiment_id = experiment_id_for(client, experiment_name)
    query = f"tags.{mlflow_tags.KFP_RUN} = '{kfp_run}'"
    for _ in range(FIND_RUN_ATTEMPTS):
        runs = client.search_runs([experiment_id], filter_string=query)
        if not runs:
            client.create_run(
                experiment_id, run_name=kfp_run, tags={mlflow_tags.KFP_RUN: kfp_run, mlflow_tags.RUNNER: "kubeflow"}
            )
            runs = client.search_runs([experiment_id], filter_string=query)
            if not runs:
                continue  # A peer deleted the run just created, and its own is not listed yet.
        kept, *duplicates = sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))
        for duplicate in duplicates:
            with contextlib.suppress(MlflowException):  # Another pod may have deleted it first.
                client.delete_run(duplicate.info.run_id)
        try:
            if params and not kept.data.params:
                from mlflow.entities import Param

                batch = [Param(key, value[:6000]) for key, value in sorted(params.items())]
                client.log_batch(kept.info.run_id, params=batch)  # The same values again if a peer logged them.
            if client.get_run(kept.info.run_id).info.lifecycle_stage == "active":
                return kept.info.run_id
        except MlflowException as error:  # MLflow refuses to log to a deleted run: a peer kept an older one.
            logging.info("MLflow run %s was deleted by a peer pod (%s); looking again", kept.info.run_id, error)
    raise RuntimeError(f"no stable MLflow run for KFP run {kfp_run} after {FIND_RUN_ATTEMPTS} attempts")


# Each attempt ends on a run no peer has deleted; a peer deletes only when it created a run itself, which it
# does at most once per attempt, so a handful of attempts outlasts any number of root pods starting together.
FIND_RUN_ATTEMPTS = 5


def experiment_id_for(client: Any, name: str) -> str:
    """The experiment's id, created if missing; root pods starting together may race to create it, and the
    loser finds the winner's (MLflow answers RESOURCE_ALREADY_EXISTS)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def output_uri(invocation_json: str, output: str) -> str:
    """The URI KFP assigned to one output artifact, from the executor input TFX's module receives."""
    executor_input = json.loads(invocation_json)
    return executor_input["outputs"]["artifacts"][output]["artifacts"][0]["uri"]


def log_node_results(client: Any, run_id: str, node: str, invocation_json: str) -> None:
    """After a node succeeded: what `xfer run` logs for it once the local DAG has finished, read and logged by
    the same functions (`verdict.read_evaluation`, `mlflow_log.log_evaluation`)."""
    if node not in (names.EVALUATOR, LAST_NODE):
        return  # Nothing to log: no other pod pays for the config parse and the TFMA imports below.
    from components.evaluator import verdict
    from pipeline import config as config_lib
    from pipeline.tracking import mlflow_log

    # The config, to explain the gates and name the registered model as `xfer run` does.
    params = os.environ.get(names.MLFLOW_PARAMS_ENV)
    config = config_lib.config_from_dict(json.loads(params)) if params else None
    if node == names.EVALUATOR:
        evaluation = verdict.read_evaluation(
            output_uri(invocation_json, "evaluation"),
            output_uri(invocation_json, "blessing"),
            config.evaluation if config else None,
            config.task if config else "detection",
        )
        # The Evaluator pod has no transform graph, so classes keep TFMA's ids here.
        mlflow_log.log_evaluation(client, run_id, evaluation, class_names=[])
    if node == LAST_NODE:
        client.set_tag(run_id, mlflow_tags.PUSHED_MODEL, output_uri(invocation_json, "pushed_model"))
        destination = pushed_destination(invocation_json)
        if destination and config is not None:
            register_once(client, run_id, destination, config.registered_model_name)


def register_once(client: Any, run_id: str, destination: str, name: str) -> None:
    """As `xfer run` does after a push: a registry version, and the alias `champion` on it, which the next run's
    Champion step compares with. Once per run: Argo reruns a pod whose program succeeded when the launcher
    fails after it (its upload or ML Metadata step, kubeflow/pipelines 2.17.0 launcher_v2.go executeV2), and a
    rerun must neither register a second version nor move the alias again."""
    from pipeline.tracking import registry

    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if found:
        version = max(found, key=lambda item: int(item.version))
        try:
            current = str(client.get_model_version_by_alias(name, registry.CHAMPION_ALIAS).version)
        except Exception:  # noqa: BLE001  MLflow raises when the alias is not set yet.
            current = None
        if current != str(version.version):  # The earlier attempt stopped between registering and the alias.
            client.set_registered_model_alias(name, registry.CHAMPION_ALIAS, version.version)
        logging.info("Run %s already registered %s version %s", run_id, name, version.version)
    else:
        version = registry.register_champion(
            os.environ[names.TRACKING_URI_ENV],
            run_id,
            destination,
            name,
            registry.placeholder_input_example(destination),
        )
    client.set_tag(run_id, mlflow_tags.REGISTERED_MODEL, f"{name}/{version.version}")


def pushed_destination(invocation_json: str) -> str | None:
    """Where the Pusher put the model, from the executor output TFX's module wrote; None if it pushed nothing."""
    import tensorflow as tf

    output_file = json.loads(invocation_json)["outputs"]["outputFile"]
    if not tf.io.gfile.exists(output_file):
        return None
    with tf.io.gfile.GFile(output_file) as handle:
        executor_output = json.load(handle)
    (pushed,) = executor_output["artifacts"]["pushed_model"]["artifacts"]
    metadata = pushed.get("metadata", {})
    if int(metadata.get("pushed", 0)) != 1:
        return None
    return str(metadata.get("pushed_destination", "")) or None


def _invocation_json(argv: list[str]) -> str:
    return argv[argv.index("--json_serialized_invocation_args") + 1]


# The output the KFP launcher itself writes the pod's log to; the driver adds it to every task's outputs when
# logs are published (kubeflow/pipelines 2.17.0 backend/src/v2/driver/driver.go provisionOutputs; the driver's
# --publish_logs defaults to "true", backend/src/v2/cmd/driver/main.go). It is no output of the TFX component.
KFP_LOG_OUTPUT = "executor-logs"


def driver_input_for_tfx(invocation: dict[str, Any], inputs_spec: dict[str, Any]) -> dict[str, Any]:
    """The executor input KFP's driver built, made readable by TFX's container module (tensorflow/tfx#7768).

    KFP hands an upstream artifact over with an empty `instanceSchema` (kubeflow/pipelines 2.17.0
    backend/src/v2/metadata/client.go GetOutputArtifactsByExecutionId: `Schema: "", // TODO`), and TFX finds
    the artifact class from that schema's title: `yaml.safe_load("")` is None and it crashes. The component's
    own input spec, which the compiled command passes as --json_serialized_inputs_spec_args, has the type.
    KFP's log output is dropped: TFX would look for an artifact class named `system.Artifact`."""
    fixed = json.loads(json.dumps(invocation))
    declared = inputs_spec.get("artifacts", {})
    for name, artifact_list in fixed.get("inputs", {}).get("artifacts", {}).items():
        artifact_type = declared.get(name, {}).get("artifactType")
        for artifact in artifact_list.get("artifacts", []):
            given = artifact.get("type") or {}
            if artifact_type and not (given.get("instanceSchema") or given.get("schemaTitle")):
                artifact["type"] = artifact_type
    fixed.get("outputs", {}).get("artifacts", {}).pop(KFP_LOG_OUTPUT, None)
    return fixed


def _with_driver_input_fixed(module_argv: list[str]) -> list[str]:
    if "--json_serialized_invocation_args" not in module_argv:
        return module_argv
    argv = list(module_argv)
    index = argv.index("--json_serialized_invocation_args") + 1
    spec_flag = "--json_serialized_inputs_spec_args"
    inputs_spec = json.loads(argv[argv.index(spec_flag) + 1]) if spec_flag in argv else {}
    argv[index] = json.dumps(driver_input_for_tfx(json.loads(argv[index]), inputs_spec))
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeflow_entrypoint")
    parser.add_argument("--node", required=True, help="the TFX node id this pod runs")
    parser.add_argument("module", help="the TFX container module to run, e.g. its kubeflow_v2_run_executor")
    args, module_argv = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    module_argv = _with_driver_input_fixed(module_argv)
    logging.basicConfig(level=logging.INFO)
    from pipeline.kubeflow import s3 as kubeflow_s3  # noqa: F401  s3:// for tf.io.gfile here; Beam's workers import it too.

    client = run_id = None
    if os.environ.get(names.TRACKING_URI_ENV) and os.environ.get(names.KFP_RUN_ENV):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=os.environ[names.TRACKING_URI_ENV])
        params = json.loads(os.environ.get(names.MLFLOW_PARAMS_ENV, "{}"))
        if params:
            from pipeline.tracking import mlflow_log as tracking

            params = tracking.flatten("", params)
        experiment = os.environ.get(names.EXPERIMENT_ENV) or "xfer"
        # A new run starts RUNNING; an existing one keeps its status: a pod never reopens a FAILED run.
        run_id = find_or_create_run(client, experiment, os.environ[names.KFP_RUN_ENV], params)
        os.environ[names.MLFLOW_RUN_ID_ENV] = run_id
    else:
        logging.warning("no %s or %s: this step is not tracked in MLflow", names.TRACKING_URI_ENV, names.KFP_RUN_ENV)

    sys.argv = [args.module, *module_argv]
    try:
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            _fail(client, run_id, args.node, f"exit status {exit_.code}")
            raise
    except BaseException as error:
        _fail(client, run_id, args.node, f"{type(error).__name__}: {error}", error)
        raise
    if "--json_serialized_invocation_args" in module_argv:
        _remove_directory_markers(_invocation_json(module_argv))
    if client is not None:
        if "--json_serialized_invocation_args" in module_argv and args.module.endswith("run_executor"):
            log_node_results(client, run_id, args.node, _invocation_json(module_argv))
        if args.node == LAST_NODE and client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="FINISHED")
    return 0


def _remove_directory_markers(invocation_json: str) -> None:
    """The step's outputs without the S3 folder markers that would fail the next step's input copy
    (pipeline/kubeflow/markers.py directory_markers)."""
    from pipeline.kubeflow import markers

    artifacts = json.loads(invocation_json).get("outputs", {}).get("artifacts", {})
    uris = [item["uri"] for name, found in artifacts.items() if name != KFP_LOG_OUTPUT for item in found["artifacts"]]
    removed = markers.remove_directory_markers(uris)
    if removed:
        logging.info("removed %d S3 folder markers under the outputs", removed)


def last_attempt(environ: dict[str, str] | None = None) -> bool:
    """Whether Argo would not start this task again if this pod failed: its attempt index (KFP_RETRY_INDEX,
    which KFP 2.17.0 sets from Argo's {{retries}} in a retried task's pod, argocompiler/container.go
    addContainerExecutorTemplate) has reached the compiled retry limit. A pod killed outright (evicted, out of
    memory, past the retries' deadline) reports nothing at all."""
    environ = os.environ if environ is None else environ
    index, limit = environ.get(names.RETRY_INDEX_ENV, ""), environ.get(names.RETRY_LIMIT_ENV, "")
    if not (index.isdigit() and limit.isdigit()):
        return True
    return int(index) >= int(limit)


def _fail(client: Any, run_id: str | None, node: str, reason: str, error: BaseException | None = None) -> None:
    """The run FAILED with the reason, once Argo will not retry; an attempt that will be retried is noted in a
    tag and leaves the run open. A run another task already ended keeps its status and first reason. An
    ingest stopped on its rejects logs the list it kept to the run (every attempt: each wrote its own)."""
    if client is None or run_id is None:
        return
    if error is not None and node == names.INGEST:
        from pipeline.tracking import mlflow_log

        mlflow_log.log_stopped_rejects(client, run_id, error)
    if not last_attempt():
        attempt = int(os.environ[names.RETRY_INDEX_ENV]) + 1
        client.set_tag(run_id, f"{mlflow_tags.FAILED_ATTEMPT}.{node}", f"attempt {attempt}: {reason}"[:5000])
        return
    if client.get_run(run_id).info.status != "RUNNING":
        return
    client.set_tag(run_id, mlflow_tags.FAILURE_REASON, f"{node}: {reason}"[:5000])
    client.set_terminated(run_id, status="FAILED")


def run_and_exit() -> None:
    """main(), then the process ends with main's status without running C++ static destructors:
    tensorflow-io 0.37.1 aborts the interpreter at exit once S3 was used ("pure virtual method called", status
    134; tensorflow/io#2039, fixed upstream after its last release), which KFP's launcher would take for a
    failed task (kubeflow/pipelines 2.17.0 backend/src/v2/component/launcher_v2.go execute: command.Run())."""
    import traceback

    try:
        status = main()
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: B036  Whatever failed, the traceback goes to the pod's log.
        traceback.print_exc()
        status = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run_and_exit()
