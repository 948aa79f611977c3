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
