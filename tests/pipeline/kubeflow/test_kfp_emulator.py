"""The compiled package, four scheduled runs on a KFP 2.17.0 emulator (tests/helpers/kfp_emulator.py): the Argo
Workflow KFP builds for it, run as Argo runs it (independent tasks together, pods named as Argo names them), every
pod a subprocess started as KFP's driver and launcher start it (inputs copied into the pod first), against an S3
API on 127.0.0.1 (pipeline root and data) and an `mlflow server --serve-artifacts` (tracking and registry).

Run 1 trains, pushes and registers the champion, with its Trainer pod killed once and retried, and its Pusher's
launcher failing after the program succeeded, so Argo reruns a Pusher that has already registered; run 2, on
the same data and with no pipeline root of its own (the kfp-launcher ConfigMap's applies), is served from KFP's
cache up to the Trainer; run 3, after new images landed in the bucket, re-ingests and retrains; run 4, with the
annotations emptied, fails at ingest after its retry, and its MLflow run is FAILED with the reason.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT, SAMPLE_CONFIG, kfp_emulator, local_services

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.kfp_emulator]

ROOT = REPO_ROOT
PIPELINE = "xfer-kfp-e2e"
BUCKET = "xfer"
DATA_PREFIX = "data/tiny"
INGEST_TO_TRAINER = (
    "ImageExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomaliesGate",
    "Transform",
    "Trainer",
)
ALWAYS_RUN = ("DataFingerprint", "Champion")  # enableCache: false
TASKS = {*INGEST_TO_TRAINER, *ALWAYS_RUN, "Evaluator", "Pusher"}
# The fewest images whose filename-hash split (7:1:2) gives every class to train and one image to val: with 12,
# val is empty and a class only eval holds has no id in the label vocabulary (learnt from train), which TFMA's
# confusion matrices refuse (label -1). Run 3 adds images: the generator's first 16 are the same bytes.
RUN1_IMAGES, RUN3_IMAGES = 16, 20
ROOT_OF_RUNS = f"s3://{BUCKET}/pipeline_root"  # What `xfer submit` and `xfer schedule` pass as the run's root.


def cluster_config(tmp_path: Path):
    from pipeline import config as config_lib

    raw = config_lib.load_config(SAMPLE_CONFIG).to_dict()
    raw.update(
        pipeline_name=PIPELINE,
        data=str(tmp_path / "unused-local-data"),
        workspace=str(tmp_path / "workspace"),
        schema=str(ROOT / "schemas" / "schema.pbtxt"),
        # A handful of images, one step per phase: the plumbing is under test, not the model.
        training={
            **raw["training"],
            "batch_size": 16,
            "frozen": {"epochs": 1, "learning_rate": 1e-3},
            "finetune": {"epochs": 1, "learning_rate": 1e-4},
        },
        evaluation={
            **raw["evaluation"],
            "min_accuracy": 0.0,
            "min_iou": 0.0,
            "min_accuracy_change": -1.0,
            "min_iou_change": -1.0,
        },
    )
    raw["kubeflow"].update(
        pipeline_root=f"s3://{BUCKET}/pipeline_root",
        data=f"s3://{BUCKET}/{DATA_PREFIX}",
        serving_dir=f"s3://{BUCKET}/serving",
        image_workdir=str(ROOT),  # The image's WORKDIR holds schemas/; here the checkout does.
        # The default mode (worker processes), one worker: this machine's two cores are shared.
        beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=1"],
        retries=1,
        retry_backoff_seconds=1,
        mlflow_experiment=PIPELINE,
    )
    return config_lib.config_from_dict(raw)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """S3 and MLflow on 127.0.0.1, the compiled package, the dataset in the bucket, and the emulator."""
    from pipeline.kubeflow import runner as kubeflow_runner

    tmp_path = tmp_path_factory.mktemp("kfp")
    with local_services.s3_server(tmp_path) as s3_env:
        local_services.make_bucket(s3_env, BUCKET)
        local_services.make_bucket(s3_env, "mlflow")
        with local_services.mlflow_server(tmp_path, s3_env, "s3://mlflow/artifacts") as tracking_uri:
            config = cluster_config(tmp_path)
            package = tmp_path / "pipeline.yaml"
            kubeflow_runner.compile_pipeline(config, package)
            from components.ingest import sample_data

            sample_data.write_sample_dataset(tmp_path / "data-v1", num_images=RUN1_IMAGES, seed=11)
            local_services.upload_tree(s3_env, tmp_path / "data-v1", BUCKET, DATA_PREFIX)
            secret = {
                "aws-access-key-id": s3_env["AWS_ACCESS_KEY_ID"],
                "aws-secret-access-key": s3_env["AWS_SECRET_ACCESS_KEY"],
                "aws-endpoint-url": s3_env["AWS_ENDPOINT_URL"],
                "aws-region": s3_env["AWS_REGION"],
                "mlflow-tracking-uri": tracking_uri,
                "mlflow-tracking-username": "admin",
                "mlflow-tracking-password": "local",
            }
            s3 = local_services.s3_client(s3_env)
            launcher = yaml.safe_load((ROOT / "infra" / "k8s" / "pipelines" / "kfp-launcher.yaml").read_text())
            emulator = kfp_emulator.Emulator(
                package,
                secrets={config.kubeflow.secret_name: secret},
                work_dir=tmp_path / "pods",
                cwd=ROOT,
                image_env=kfp_emulator.image_env(Path(sys.executable).parent),
                object_store=s3,
                launcher_config=launcher["data"],  # infra's kfp-launcher ConfigMap, as the driver reads it.
            )
            yield {
                "tmp_path": tmp_path,
                "s3_env": s3_env,
                "tracking_uri": tracking_uri,
                "config": config,
                "emulator": emulator,
                "s3": s3,
                "runs": {},
            }


def scheduled_run(cluster, name: str, pipeline_root: str | None = ROOT_OF_RUNS, **faults) -> kfp_emulator.RunResult:
    if name not in cluster["runs"]:
        started = time.monotonic()
        result = cluster["emulator"].run(faults=faults, pipeline_root=pipeline_root)
        print(
            f"\n{name}: {result.state} in {time.monotonic() - started:.0f} s, root {result.pipeline_root}: "
            + ", ".join(
                f"{task}={execution.state}x{execution.attempts}({execution.seconds:.0f}s, "
                f"start {execution.started:.0f}s, copied {execution.copied_bytes / 1e6:.1f} MB)"
                for task, execution in sorted(result.tasks.items(), key=lambda item: item[1].started)
            )
        )
        cluster["runs"][name] = result
    return cluster["runs"][name]


def mlflow_run(cluster, result: kfp_emulator.RunResult):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cluster["tracking_uri"])
    experiment = client.get_experiment_by_name(PIPELINE)
    (run,) = client.search_runs([experiment.experiment_id], f"tags.kfp_run = '{result.workflow}'")
    return client, run


def failed_logs(result: kfp_emulator.RunResult) -> str:
    return "\n".join(
        f"--- {name}\n{execution.log[-4000:]}"
        for name, execution in result.tasks.items()
        if execution.state == "FAILED"
    )


def retried_logs(result: kfp_emulator.RunResult, expected: set[str]) -> str:
    """Every attempt's log of a task that took more attempts than the faults injected: the unplanned failure."""
    return "\n".join(
        f"--- {name} ({execution.attempts} attempts)\n{execution.log[-6000:]}"
        for name, execution in result.tasks.items()
        if execution.attempts > 1 and name not in expected
    )


@pytest.fixture(scope="module")
def run1(cluster):
    # The Trainer's pod is killed at its first epoch's log line; KFP (Argo) retries it. The Pusher's launcher
    # fails after the program registered the model; Argo reruns the whole pod.
    return scheduled_run(
        cluster, "run1", Trainer=kfp_emulator.KillOnce(r"\] epoch 1/"), Pusher=kfp_emulator.FailAfterExit()
    )


@pytest.fixture(scope="module")
def run2(cluster, run1):
    # Started with no pipeline root, as a run from the API or a recurring run without one: the driver takes the
    # kfp-launcher ConfigMap's (infra/k8s/pipelines/kfp-launcher.yaml).
    return scheduled_run(cluster, "run2", pipeline_root=None)


@pytest.fixture(scope="module")
def run3(cluster, run2):
    from components.ingest import sample_data

    # New images land in the bucket (the same generator with more images: the old files plus new ones).
    time.sleep(1.1)  # A later modification time than run 1's upload, whatever the clock's resolution.
    new = cluster["tmp_path"] / "data-v2"
    sample_data.write_sample_dataset(new, num_images=RUN3_IMAGES, seed=11)
    local_services.upload_tree(cluster["s3_env"], new, BUCKET, DATA_PREFIX)
    return scheduled_run(cluster, "run3")


def test_run1_runs_every_task_retries_the_killed_trainer_and_registers_the_champion(cluster, run1):
    assert run1.state == "SUCCEEDED", failed_logs(run1)
    assert set(run1.tasks) == TASKS
    assert set(run1.states().values()) == {"COMPLETE"}
    assert run1.tasks["Trainer"].attempts == 2  # Killed once, then retried with the same executor input.
    assert run1.tasks["Pusher"].attempts == 2  # Its launcher failed after the program: the pod reran.
    retried = {"Trainer", "Pusher"}
    assert {name: e.attempts for name, e in run1.tasks.items() if name not in retried} == {
        name: 1 for name in TASKS - retried
    }, retried_logs(run1, retried)
    # Argo starts the tasks whose dependencies are met together: the three roots, before any of them ended.
    roots = [run1.tasks[name] for name in ("DataFingerprint", "ImportSchemaGen", "Champion")]
    assert max(e.started for e in roots) < min(e.started + e.seconds for e in roots)
    # Pods named as Argo names them: <workflow>-retry-system-container-impl-<hash of the node>.
    assert all(pod.startswith(f"{run1.workflow}-retry-system-container-impl-") for pod in run1.tasks["Trainer"].pods)
    # The launcher copied each input into the pod before the step ran: the Evaluator got examples and models.
    assert run1.tasks["Evaluator"].copied_bytes > run1.tasks["Trainer"].copied_bytes > 0
    # What the pods were given is what KFP's driver gives: numeric ids and an empty instanceSchema upstream.
    (examples,) = run1.tasks["StatisticsGen"].executor_input["inputs"]["artifacts"]["examples"]["artifacts"]
    assert examples["name"].isdigit() and examples["type"] == {"instanceSchema": ""}
    assert examples["metadata"]["display_name"] == "examples"

    client, run = mlflow_run(cluster, run1)
    assert run.info.status == "FINISHED", run.data.tags.get("failure_reason")
    assert run.data.params["training.seed"] == str(cluster["config"].training.seed)
    assert run.data.params["kubeflow.pipeline_root"] == f"s3://{BUCKET}/pipeline_root"
    # Live epochs of both phases on one axis (the killed attempt may have logged epoch 0 before it died).
    assert {m.step for m in client.get_metric_history(run.info.run_id, "train_loss")} == {0, 1}
    assert {"eval_accuracy", "eval_iou", "eval_hit_rate"} <= set(run.data.metrics)
    assert run.data.tags["blessed"] in ("true", "false")
    assert run.data.tags["outcome"] == "pushed"
    assert run.data.tags["registered_model"] == f"{PIPELINE}/1"
    champion = client.get_model_version_by_alias(PIPELINE, "champion")
    assert (str(champion.version), champion.run_id) == ("1", run.info.run_id)
    # The Pusher ran twice and registered once.
    assert len(client.search_model_versions(f"name = '{PIPELINE}' and run_id = '{run.info.run_id}'")) == 1
    gates = Path(client.download_artifacts(run.info.run_id, "evaluation/gates.txt", str(cluster["tmp_path"])))
    assert "eval_accuracy" in gates.read_text() and "no champion" in gates.read_text()
    pushed = run.data.tags["pushed_model"]
    assert pushed.startswith(f"s3://{BUCKET}/pipeline_root/{PIPELINE}/{run1.run_id}/Pusher/")
    serving = cluster["s3"].list_objects_v2(Bucket=BUCKET, Prefix="serving/")
    assert any(item["Key"].endswith("saved_model.pb") for item in serving.get("Contents", []))
    # The launcher's log of each attempt is in the bucket too (`executor-logs-<retry index>`).
    log_uri = run1.tasks["Pusher"].executor_input["outputs"]["artifacts"]["executor-logs"]["artifacts"][0]["uri"]
    bucket, key = log_uri.removeprefix("s3://").split("/", 1)
    for attempt in (0, 1):
        assert cluster["s3"].get_object(Bucket=bucket, Key=f"{key}-{attempt}")["ContentLength"] > 0


def test_run2_on_the_same_data_is_served_from_kfps_cache_up_to_the_trainer(cluster, run1, run2):
    assert run2.state == "SUCCEEDED", failed_logs(run2)
    states = run2.states()
    assert {name: states[name] for name in INGEST_TO_TRAINER} == {name: "CACHED" for name in INGEST_TO_TRAINER}
    assert {name: states[name] for name in ALWAYS_RUN} == {name: "COMPLETE" for name in ALWAYS_RUN}
    # The champion is a new artifact each run, so the evaluation reruns: against the champion, which is the
    # very model the cached Trainer gives, so nothing is pushed or registered again.
    assert states["Evaluator"] == states["Pusher"] == "COMPLETE"
    assert run2.tasks["Trainer"].outputs == run1.tasks["Trainer"].outputs  # The same MLMD artifacts.
    # No root of its own: the kfp-launcher ConfigMap's, in our bucket, not minio://mlpipeline/v2/artifacts.
    assert run2.pipeline_root == f"s3://{BUCKET}/pipeline_root"
    evaluation = run2.tasks["Evaluator"].executor_input["outputs"]["artifacts"]["evaluation"]["artifacts"][0]
    assert evaluation["uri"].startswith(f"s3://{BUCKET}/pipeline_root/{PIPELINE}/{run2.run_id}/Evaluator/")
    client, run = mlflow_run(cluster, run2)
    assert run.info.status == "FINISHED", run.data.tags.get("failure_reason")
    assert run.data.params["training.seed"] == str(cluster["config"].training.seed)
    assert run.data.tags["outcome"] == "already_champion"
    assert "registered_model" not in run.data.tags
    assert str(client.get_model_version_by_alias(PIPELINE, "champion").version) == "1"


def test_run3_after_new_images_reingests_and_retrains(cluster, run1, run2, run3):
    assert run3.state == "SUCCEEDED", failed_logs(run3)
    states = run3.states()
    assert states["ImportSchemaGen"] == "CACHED"  # Its input is the schema file, which did not change.
    rerun = set(INGEST_TO_TRAINER) - {"ImportSchemaGen"}
    assert {name: states[name] for name in rerun} == {name: "COMPLETE" for name in rerun}
    fingerprints = [run.tasks["DataFingerprint"].output_parameters["fingerprint"] for run in (run1, run2, run3)]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]
    client, run = mlflow_run(cluster, run3)
    assert run.info.status == "FINISHED", run.data.tags.get("failure_reason")
    assert run.data.params["training.seed"] == str(cluster["config"].training.seed)
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss")) == [0, 1]
    assert run.data.tags["champion_version"] == "1"  # Compared with run 1's model.
    assert run.data.tags["outcome"] == "pushed" and run.data.tags["registered_model"] == f"{PIPELINE}/2"
    ingested = json.dumps(run3.tasks["ImageExampleGen"].executor_input["inputs"]["parameterValues"])
    assert fingerprints[2] in ingested


def test_a_task_that_keeps_failing_fails_the_run_and_its_mlflow_run_with_the_reason(cluster, run3):
    """After its retries, a failing task fails the KFP run, nothing downstream starts, and the MLflow run is
    FAILED with the reason (the data location emptied: ingest finds no images)."""
    s3 = cluster["s3"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{DATA_PREFIX}/")
    for item in listed.get("Contents", []):
        if item["Key"].endswith("annotations.csv"):
            s3.put_object(Bucket=BUCKET, Key=item["Key"], Body=b"filename,label,xmin,ymin,xmax,ymax\n")
    result = scheduled_run(cluster, "run4")
    assert result.state == "FAILED"
    assert result.tasks["ImageExampleGen"].state == "FAILED" and result.tasks["ImageExampleGen"].attempts == 2
    assert "Trainer" not in result.tasks
    _, run = mlflow_run(cluster, result)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith("ImageExampleGen: ")
