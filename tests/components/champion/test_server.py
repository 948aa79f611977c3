"""The champion's round trip through an MLflow *server* with proxied artifacts (`mlflow-artifacts:` URIs), the
set-up infra/k8s runs for Kubeflow: registration by the Pusher, the fetch by the Champion step. Offline: the
server runs on localhost for the test's duration."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from components.champion import component as champion
from pipeline.tracking import registry
from tests.helpers import eval_fixtures

pytestmark = pytest.mark.slow
NAME = "xfer-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--serve-artifacts", "--artifacts-destination", (root / "artifacts").as_uri()]
    with open(root / "server.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        uri = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while not _healthy(uri):
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        try:
            yield uri
        finally:
            process.terminate()
            process.wait(timeout=30)


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


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
