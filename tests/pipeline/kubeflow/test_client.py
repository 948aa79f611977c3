"""`xfer submit` and `xfer schedule` against a local stub of the KFP REST API (127.0.0.1 only)."""

from __future__ import annotations

import json
from pathlib import Path

import kfp
import pytest
from kfp.client import client as kfp_client

from pipeline import cli
from pipeline import config as config_lib
from pipeline.kubeflow import client as kubeflow_client
from pipeline.kubeflow import runner as kubeflow_runner
from tests.helpers import SAMPLE_CONFIG
from tests.helpers.kfp_stub import KfpStub

SAMPLE = str(SAMPLE_CONFIG)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    kubeflow_runner.compile_pipeline(config_lib.load_config(SAMPLE), out)
    return out


@pytest.fixture(autouse=True)
def kfp_context(tmp_path, monkeypatch):
    # kfp.Client records its context in ~/.config/kfp; keep that in the test's folder.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp" / "context.json"))


@pytest.fixture
def stub():
    with KfpStub() as server:
        yield server


def test_submit_creates_the_experiment_and_the_run(stub, package):
    result = kubeflow_client.submit(stub.url, package, "xfer-nightly", "first", "s3://xfer/pipeline_root")
    assert result["run_id"] == "run-1"
    (experiment,) = stub.calls("POST", "/apis/v2beta1/experiments")
    assert experiment["body"]["display_name"] == "xfer-nightly"
    (run,) = stub.calls("POST", "/apis/v2beta1/runs")
    body = run["body"]
    assert body["display_name"] == "first"
    assert body["experiment_id"] == "exp-1"
    assert body["runtime_config"]["pipeline_root"] == "s3://xfer/pipeline_root"
    # The platform spec travels with the pipeline spec, or the GPU pool settings would be lost.
    executors = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["Trainer_executor"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert set(body["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]) >= {"Trainer", "Pusher"}


def test_schedule_creates_an_enabled_cron_recurring_run(stub, package):
    result = kubeflow_client.schedule(stub.url, package, "xfer-nightly", None, "0 0 2 * * *", "s3://xfer/root")
    assert result["recurring_run_id"] == "recurring-1"
    (recurring,) = stub.calls("POST", "/apis/v2beta1/recurringruns")
    body = recurring["body"]
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert body["mode"] == "ENABLE"
    assert body["max_concurrency"] == "1" or body["max_concurrency"] == 1
    assert body["no_catchup"] is True
    assert body["display_name"] == "xfer-sample-scheduled"
    assert body["runtime_config"]["pipeline_root"] == "s3://xfer/root"


def test_schedule_reuses_an_existing_experiment(stub, package):
    kubeflow_client.submit(stub.url, package, "xfer-nightly", None, None)
    kubeflow_client.schedule(stub.url, package, "xfer-nightly", None, "0 0 2 * * *", None)
    assert len(stub.calls("POST", "/apis/v2beta1/experiments")) == 1


def test_five_field_cron_is_refused_before_sending(stub, package):
    with pytest.raises(ValueError, match="6 fields"):
        kubeflow_client.schedule(stub.url, package, "x", None, "0 2 * * *", None)
    assert stub.requests == []


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "--run-name", "dry"],
        ["schedule", "--cron", "0 0 2 * * *"],
    ],
)
def test_cli_dry_run_prints_the_request_and_sends_nothing(stub, package, capsys, command):
    code = cli.main(
        [command[0], "--host", stub.url, "--package", str(package), "--config", SAMPLE, "--dry-run", *command[1:]]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["host"] == stub.url
    assert printed["package"]["pipeline"] == "xfer-sample"
    assert "Trainer" in printed["package"]["tasks"]
    assert stub.requests == []


def test_cli_submit_sends_the_run(stub, package, capsys):
    code = cli.main(
        [
            "submit",
            "--host",
            stub.url,
            "--package",
            str(package),
            "--config",
            SAMPLE,
            "--experiment",
            "cli",
            "--run-name",
            "from-cli",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("{\n") :])  # kfp.Client prints its own links first.
    assert printed["run_id"] == "run-1"
    (run,) = stub.calls("POST", "/apis/v2beta1/runs")
    assert run["body"]["display_name"] == "from-cli"


def test_a_missing_package_is_a_one_line_error(stub, tmp_path):
    with pytest.raises(FileNotFoundError, match="xfer compile"):
        kubeflow_client.submit(stub.url, tmp_path / "nope.yaml", "x", None, None)


def _kfp_mlflow_run(tmp_path, monkeypatch, workflow: str, status: str, outcome: str) -> str:
    """The MLflow run the pods of `workflow` made (pipeline/kubeflow/entrypoint.py), in a local store."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("xfer-sample")
    client.create_run(experiment, tags={"kfp_run": "xfer-sample-other", "runner": "kubeflow"})
    run = client.create_run(experiment, tags={"kfp_run": workflow, "runner": "kubeflow", "outcome": outcome})
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


@pytest.mark.parametrize(
    ("final", "outcome", "mlflow_status", "exit_status"),
    [
        ("SUCCEEDED", "pushed", "FINISHED", 0),
        ("SUCCEEDED", "blocked_by_gate", "FINISHED", 3),
        ("FAILED", "", "FAILED", 1),
    ],
)
def test_submit_wait_follows_the_run_and_exits_with_how_it_ended(
    stub, package, capsys, tmp_path, monkeypatch, final, outcome, mlflow_status, exit_status
):
    last_task = "FAILED" if final == "FAILED" else "SUCCEEDED"
    stub.run_progress = [
        {"state": "PENDING", "tasks": {}},
        {"state": "RUNNING", "tasks": {"DataFingerprint": "RUNNING"}},
        {"state": "RUNNING", "tasks": {"DataFingerprint": "SUCCEEDED", "ImageExampleGen": "RUNNING"}},
        {"state": final, "tasks": {"DataFingerprint": "SUCCEEDED", "ImageExampleGen": last_task}},
    ]
    mlflow_run_id = _kfp_mlflow_run(tmp_path, monkeypatch, stub.workflow, mlflow_status, outcome)
    code = cli.main(
        [
            "submit",
            "--host",
            stub.url,
            "--package",
            str(package),
            "--config",
            SAMPLE,
            "--run-name",
            "first",
            "--wait",
            "--poll-seconds",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == exit_status, out
    lines = [line.split() for line in out.splitlines()]
    assert ["DataFingerprint", "RUNNING"] in lines and ["DataFingerprint", "SUCCEEDED"] in lines
    assert ["ImageExampleGen", last_task] in lines
    assert not any(line and line[0].endswith("-driver") for line in lines)  # Only the pipeline's tasks.
    assert f"run run-1: {final}" in out
    assert f"MLflow: run {mlflow_run_id} ({stub.workflow}) {mlflow_status}" in out
    assert len(stub.calls("GET", "/apis/v2beta1/runs/run-1")) == 4


@pytest.mark.parametrize(
    ("path", "misspelt", "message"),
    [
        (("Trainer_executor",), ("tolerations", "toleration"), "Trainer_executor.toleration: no such field"),
        (("Trainer_executor", "tolerations", 0), ("effect", "efect"), r"tolerations\[0\]\.efect: no such field"),
        (("Pusher_executor", "secretAsEnv", 0, "keyToEnv", 0), ("envVar", "env_name"), "keyToEnv\\[0\\].env_name"),
        (("Pusher_executor", "fieldPathAsEnv", 0), ("fieldPath", "fieldpath"), r"fieldPathAsEnv\[0\]\.fieldpath"),
    ],
)
def test_a_misspelt_platform_spec_key_fails_before_sending(stub, package, tmp_path, path, misspelt, message):
    """kfp's own proto holds the platform spec as a Struct and takes any key; the strict check does not."""
    import yaml

    pipeline_spec, platform_spec = yaml.safe_load_all(package.read_text())
    node = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for key in path:
        node = node[key]
    node[misspelt[1]] = node.pop(misspelt[0])
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all([pipeline_spec, platform_spec]))
    kfp_client._extract_pipeline_yaml(str(broken))  # kfp itself accepts it ...
    with pytest.raises(ValueError, match=message):  # ... the check does not, and nothing is sent.
        kubeflow_client.submit(stub.url, broken, "x", None, None)
    assert stub.requests == []
