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


# `make test` runs two xdist workers, a test file per work unit (`--dist loadfile --no-loadscope-reorder`), in
# this order: the longest files first, so that neither worker is left with a long one at the end. The KFP
# emulator's file (about 26 min beside the rest) starts at once on one worker while the other works through the rest;
# an `early` file (a DAG in a process of its own) starts while the workers hold no in-process DAG yet.
_FILE_RANK = {"kfp_emulator": 0, "early": 0, "e2e": 1, "slow": 2}


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return min((r for mark, r in _FILE_RANK.items() if item.get_closest_marker(mark)), default=len(_FILE_RANK))

    file_rank: dict[str, int] = {}
    for item in items:
        file_rank[item.path] = min(file_rank.get(item.path, len(_FILE_RANK)), rank(item))
    first_seen = {path: index for index, path in enumerate(dict.fromkeys(item.path for item in items))}
    # A stable sort by file: each file's tests keep their order (module fixtures build on one another).
    items.sort(key=lambda item: (file_rank[item.path], first_seen[item.path]))
