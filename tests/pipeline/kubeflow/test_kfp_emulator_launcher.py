"""The KFP 2.17.0 emulator's launcher and Argo behaviour on a two-step package of plain Python steps (seconds, no
TensorFlow), against an S3 API on 127.0.0.1: the input copy into the pod (folder markers included), tasks started
together, a lost node not retried, and the pipeline root as the root driver chooses it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT, kfp_emulator, local_services

pytestmark = pytest.mark.slow

BUCKET = "emu"
# Writes its output under the artifact's URI as tensorflow-io does: a zero-byte `dir/` marker per folder.
PRODUCER = """
import os, sys, time, boto3
uri = sys.argv[1]
bucket, _, key = uri.removeprefix("s3://").partition("/")
s3 = boto3.client("s3")
s3.put_object(Bucket=bucket, Key=key + "/", Body=b"")
s3.put_object(Bucket=bucket, Key=key + "/part/", Body=b"")
s3.put_object(Bucket=bucket, Key=key + "/part/data.bin", Body=b"x" * 1000)
print("wrote", uri, flush=True)
if os.environ.get("CLEAN") == "1":
    from pipeline.kubeflow import markers
    print("removed", markers.remove_directory_markers([uri]), flush=True)
if os.environ.get("PAUSE_FROM_ATTEMPT", "0") <= os.environ["KFP_RETRY_INDEX"]:
    time.sleep(float(os.environ.get("PAUSE", "0")))
"""
CONSUMER = "import sys; print('reading', sys.argv[1])"
RETRY = {"maxRetryCount": 1, "backoffDuration": "0s", "backoffFactor": 2.0, "backoffMaxDuration": "600s"}
DATASET = {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}


def package(tmp_path: Path, env: dict[str, str]) -> Path:
    def executor(script: str, placeholder: str) -> dict:
        return {
            "container": {
                "image": "python:3.10",
                "command": [sys.executable, "-c", script, placeholder],
                "env": [{"name": key, "value": value} for key, value in env.items()],
            }
        }

    def task(name: str, **extra) -> dict:
        return {"componentRef": {"name": f"comp-{name}"}, "taskInfo": {"name": name}, "retryPolicy": RETRY, **extra}

    spec = {
        "pipelineInfo": {"name": "emu-test"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.5.0",
        "components": {
            "comp-producer": {"executorLabel": "exec-producer", "outputDefinitions": {"artifacts": {"out": DATASET}}},
            "comp-sidecar": {"executorLabel": "exec-sidecar", "outputDefinitions": {"artifacts": {"out": DATASET}}},
            "comp-consumer": {"executorLabel": "exec-consumer", "inputDefinitions": {"artifacts": {"data": DATASET}}},
        },
        "deploymentSpec": {
            "executors": {
                "exec-producer": executor(PRODUCER, "{{$.outputs.artifacts['out'].uri}}"),
                "exec-sidecar": executor(PRODUCER, "{{$.outputs.artifacts['out'].uri}}"),
                "exec-consumer": executor(CONSUMER, "{{$.inputs.artifacts['data'].uri}}"),
            }
        },
        "root": {
            "dag": {
                "tasks": {
                    "producer": task("producer"),
                    "sidecar": task("sidecar"),
                    "consumer": task(
                        "consumer",
                        dependentTasks=["producer"],
                        inputs={
                            "artifacts": {
                                "data": {"taskOutputArtifact": {"producerTask": "producer", "outputArtifactKey": "out"}}
                            }
                        },
                    ),
                }
            }
        },
    }
    path = tmp_path / "package.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("emu")
    with local_services.s3_server(tmp_path) as s3_env:
        local_services.make_bucket(s3_env, BUCKET)
        yield tmp_path, s3_env


def emulator(store, **env) -> kfp_emulator.Emulator:
    tmp_path, s3_env = store
    return kfp_emulator.Emulator(
        package(tmp_path, env),
        secrets={},
        work_dir=tmp_path / "pods",
        cwd=REPO_ROOT,
        image_env=kfp_emulator.image_env(Path(sys.executable).parent) | s3_env,
        object_store=local_services.s3_client(s3_env),
        launcher_config={"defaultPipelineRoot": f"s3://{BUCKET}/root"},
    )


def test_a_folder_marker_with_objects_under_it_fails_the_next_steps_input_copy(store):
    """launcher_v2.go downloadArtifacts saves the zero-byte `part/` marker as a file `part`, and then cannot
    write `part/data.bin` (kubeflow/pipelines#13476): the consumer fails before its program starts, each time."""
    result = emulator(store).run()
    assert result.state == "FAILED"
    consumer = result.tasks["consumer"]
    assert consumer.phases == ["Failed", "Failed"]  # Failed, so Argo retried it; the copy failed again.
    assert consumer.message.startswith("launcher: ") and "reading" not in consumer.log


def test_with_the_markers_removed_the_copy_puts_every_byte_on_the_pods_disk(store):
    result = emulator(store, CLEAN="1").run()
    assert result.state == "SUCCEEDED", {name: e.message for name, e in result.tasks.items()}
    assert result.tasks["consumer"].copied_bytes == 1000
    assert "reading s3://emu/root/emu-test/" in result.tasks["consumer"].log
    # No root of its own: the kfp-launcher ConfigMap's.
    assert result.pipeline_root == f"s3://{BUCKET}/root"


def test_tasks_whose_dependencies_are_met_run_together(store):
    result = emulator(store, CLEAN="1", PAUSE="3").run()
    producer, sidecar = result.tasks["producer"], result.tasks["sidecar"]
    assert abs(producer.started - sidecar.started) < 2 < min(producer.seconds, sidecar.seconds)
    assert result.tasks["consumer"].started >= producer.started + producer.seconds


def test_a_lost_node_is_an_error_which_argos_default_policy_does_not_retry(store):
    result = emulator(store, CLEAN="1").run(faults={"producer": kfp_emulator.LoseNode("wrote")})
    producer = result.tasks["producer"]
    assert producer.phases == ["Error"] and producer.state == "FAILED"
    assert result.state == "FAILED" and "consumer" not in result.tasks


def test_a_failure_after_the_program_exited_0_reruns_the_whole_pod(store):
    result = emulator(store, CLEAN="1").run(faults={"producer": kfp_emulator.FailAfterExit()})
    assert result.state == "SUCCEEDED"
    assert result.tasks["producer"].phases == ["Failed", "Succeeded"]
    assert result.tasks["producer"].log.count("wrote") == 2


def test_the_pipeline_root_is_the_runs_then_the_configmaps_then_kfps_minio_default():
    choose = kfp_emulator.choose_pipeline_root
    configmap = {"defaultPipelineRoot": "s3://xfer/pipeline_root"}
    assert choose({"gcsOutputDirectory": "s3://mine/root"}, configmap) == "s3://mine/root"
    assert choose({}, configmap) == "s3://xfer/pipeline_root"
    assert choose({}, None) == "minio://mlpipeline/v2/artifacts"
    infra = yaml.safe_load((REPO_ROOT / "infra" / "k8s" / "pipelines" / "kfp-launcher.yaml").read_text())
    from pipeline import config as config_lib

    assert choose({}, infra["data"]) == config_lib.KubeflowConfig().pipeline_root


def test_a_retry_still_running_at_max_duration_from_the_first_start_is_killed(store):
    """Argo gives every retry the deadline first start + backoffMaxDuration (ARGO_DEADLINE) and then does not
    retry again: the first attempt fails at once, the retry pauses 120 s and is killed 20 s after the first
    start."""
    fresh = emulator(store, PAUSE="120", PAUSE_FROM_ATTEMPT="1")
    fresh.spec["root"]["dag"]["tasks"]["producer"]["retryPolicy"] = {**RETRY, "backoffMaxDuration": "20s"}
    result = fresh.run(faults={"producer": kfp_emulator.FailAfterExit()})
    producer = result.tasks["producer"]
    assert producer.phases == ["Failed", "Failed"] and producer.message == "exit status -9"
    assert 19 < producer.seconds < 60


def test_on_kfp_2_5s_naming_a_camelcase_task_never_gets_a_pod(store):
    """TFX node ids are CamelCase; KFP 2.5.0 named the executor template, and so the pod, after the task: the
    API server refuses the pod, Argo marks the node Error and does not retry it, and the run fails."""
    camel = emulator(store, CLEAN="1")
    tasks = camel.spec["root"]["dag"]["tasks"]
    tasks["Producer"] = tasks.pop("producer")
    tasks["consumer"]["dependentTasks"] = ["Producer"]
    tasks["consumer"]["inputs"]["artifacts"]["data"]["taskOutputArtifact"]["producerTask"] = "Producer"
    result = camel.run(kfp_version="2.5.0")
    producer = result.tasks["Producer"]
    assert producer.phases == ["Error"] and "a lowercase RFC 1123 subdomain" in producer.message
    assert "-Producer-system-container-impl-" in producer.pods[0]
    assert result.state == "FAILED" and "consumer" not in result.tasks
    assert camel.run().tasks["Producer"].state == "COMPLETE"  # The same package on 2.17.0's naming.
