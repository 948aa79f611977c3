"""The pods' entrypoint: S3 settings for tensorflow-io, and one MLflow run per KFP run."""

from __future__ import annotations

import json

import pytest

from pipeline import kubeflow_entrypoint


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("http://minio.xfer.svc.cluster.local:9000", {"S3_ENDPOINT": "minio.xfer.svc.cluster.local:9000",
                                                  "S3_USE_HTTPS": "0"}),
    ("https://s3.eu-west-1.amazonaws.com", {"S3_ENDPOINT": "s3.eu-west-1.amazonaws.com", "S3_USE_HTTPS": "1"}),
])
def test_s3_environment_from_the_aws_endpoint(endpoint, expected):
    assert kubeflow_entrypoint.s3_environment({"AWS_ENDPOINT_URL": endpoint}) == expected


def test_s3_environment_leaves_an_explicit_setting_alone():
    assert kubeflow_entrypoint.s3_environment({"AWS_ENDPOINT_URL": "http://a:1", "S3_ENDPOINT": "b:2"}) == {}
    assert kubeflow_entrypoint.s3_environment({}) == {}


def test_output_uri_from_the_executor_input():
    invocation = json.dumps({"outputs": {"artifacts": {"evaluation": {"artifacts": [{"uri": "s3://r/e/1"}]}}}})
    assert kubeflow_entrypoint.output_uri(invocation, "evaluation") == "s3://r/e/1"


@pytest.fixture
def client(tmp_path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_every_pod_of_a_kfp_run_finds_the_same_mlflow_run(client):
    first = kubeflow_entrypoint.find_or_create_run(client, "xfer", "xfer-sample-abc12", {"training.seed": "42"})
    again = kubeflow_entrypoint.find_or_create_run(client, "xfer", "xfer-sample-abc12", {})
    other = kubeflow_entrypoint.find_or_create_run(client, "xfer", "xfer-sample-zz999", {})
    assert first == again != other
    assert client.get_run(first).data.params == {"training.seed": "42"}


def test_duplicates_from_parallel_root_pods_converge_on_the_oldest(client):
    experiment_id = client.create_experiment("xfer")
    tags = {kubeflow_entrypoint.KFP_RUN_TAG: "run-x"}
    oldest = client.create_run(experiment_id, tags=tags, start_time=1_000).info.run_id
    newer = client.create_run(experiment_id, tags=tags, start_time=2_000).info.run_id
    assert kubeflow_entrypoint.find_or_create_run(client, "xfer", "run-x", {}) == oldest
    assert client.get_run(newer).info.lifecycle_stage == "deleted"


@pytest.fixture
def pod_env(tmp_path, monkeypatch):
    """A pod's environment: MLflow from the Secret, the run name from the pod's labels, a stand-in TFX module."""
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("XFER_KFP_RUN", "xfer-sample-run42")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "xfer-sample")
    monkeypatch.setenv("XFER_MLFLOW_PARAMS", json.dumps({"training": {"seed": 7}}))
    monkeypatch.delenv("XFER_MLFLOW_RUN_ID", raising=False)
    (tmp_path / "fake_step_ok.py").write_text(
        "import os, sys\nassert os.environ['XFER_MLFLOW_RUN_ID']\nassert sys.argv[1:] == ['--flag', 'x']\n"
    )
    (tmp_path / "fake_step_broken.py").write_text("raise RuntimeError('disk full')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("sys.argv", ["entrypoint"])
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def kfp_run(client):
    (run,) = client.search_runs(
        [client.get_experiment_by_name("xfer-sample").experiment_id], "tags.kfp_run = 'xfer-sample-run42'"
    )
    return run


def test_a_failing_step_marks_the_run_failed_with_the_reason(pod_env):
    with pytest.raises(RuntimeError, match="disk full"):
        kubeflow_entrypoint.main(["--node", "Transform", "fake_step_broken"])
    run = kfp_run(pod_env)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"] == "Transform: RuntimeError: disk full"
    assert run.data.params == {"training.seed": "7"}


def test_the_last_step_finishes_the_run_a_retry_reopened(pod_env):
    with pytest.raises(RuntimeError):
        kubeflow_entrypoint.main(["--node", "Pusher", "fake_step_broken"])
    assert kubeflow_entrypoint.main(["--node", "Pusher", "fake_step_ok", "--flag", "x"]) == 0
    assert kfp_run(pod_env).info.status == "FINISHED"
