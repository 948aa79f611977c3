"""Shared test set-up. TF_USE_LEGACY_KERAS must be set before anything imports TensorFlow."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import pytest  # noqa: E402


@pytest.fixture()
def tracking(tmp_path):
    """An empty MLflow store (sqlite) with one experiment: (tracking URI, client, experiment id)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("xfer-test", artifact_location=(tmp_path / "artifacts").as_uri())
    return uri, client, experiment
