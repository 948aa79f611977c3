"""The champion's round trip through an MLflow *server* with proxied artifacts (`mlflow-artifacts:` URIs), the
set-up infra/k8s runs for Kubeflow: registration by the Pusher, the fetch by the Champion step. Offline: the
server runs on localhost for the test's duration."""

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from components.champion import component as champion
from pipeline.tracking import registry
from tests.helpers import eval_fixtures, local_services

pytestmark = pytest.mark.slow
NAME = "xfer-server"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_server")
    port = local_services.free_port()
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--serve-artifacts", "--artifacts-destination", (root / "artifacts").as_uri()]
    with open(root / "server.log", "w") as log:
        # A session of its own, so that stopping it also stops the workers and job consumers it starts.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        uri = f"http://127.0.0.1:{port}"
        try:
            local_services.wait_for(f"{uri}/health", process, timeout=300)
            yield uri
        finally:
            local_services.stop(process)


def test_a_champion_registered_through_the_server_is_fetched_byte_for_byte(server, tmp_path):
    client = MlflowClient(tracking_uri=server)
    run_id = client.create_run(client.create_experiment("xfer-server")).info.run_id
    serving = os.path.join(
        eval_fixtures.tiny_model(str(tmp_path / "model"), skill=0.5, box_shift=0.0), "Format-Serving"
    )
    version = registry.register_champion(server, run_id, serving, NAME, registry.placeholder_input_example(serving))
    location = champion.model_location(client, version)
    assert location.startswith("mlflow-artifacts:/")  # Proxied: the pods need only the server's address.

    found = champion.fetch_champion(server, NAME, "", "detection", str(tmp_path / "fetched"))
    assert found.version == str(version.version) == champion.resolve_version(server, NAME)
    assert found.fingerprint == champion.fingerprint(serving)
