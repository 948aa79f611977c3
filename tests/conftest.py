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


_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _no_store_in_the_checkout(request):
    """MLflow's default store is `./mlruns` in the current folder: a test that reaches it (a client or `Model.log`
    without a tracking URI) writes into the checkout, where it is not cleaned up. That test errors here."""
    stray = [os.path.join(folder, "mlruns") for folder in {_REPO_ROOT, os.getcwd()}]
    before = {path for path in stray if os.path.exists(path)}
    yield
    created = [path for path in stray if os.path.exists(path) and path not in before]
    if created:
        pytest.fail(f"{request.node.nodeid} wrote MLflow's default store {created[0]}; give it a tracking URI")
