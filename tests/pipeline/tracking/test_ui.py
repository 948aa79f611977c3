"""`xfer ui`: waiting for the server and the page opened. Everything on 127.0.0.1."""

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from pipeline.tracking import ui


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _LateHealth(http.server.BaseHTTPRequestHandler):
    """Answers /health with 503 until `ready_at`, then 200, like a server still loading."""

    ready_at = 0.0

    def do_GET(self):
        status = 200 if time.monotonic() >= self.ready_at and self.path == "/health" else 503
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_waiting_ends_when_the_server_answers_not_before(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _LateHealth)
    _LateHealth.ready_at = time.monotonic() + 1.5
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        waited = ui.wait_until_answering(f"http://127.0.0.1:{server.server_address[1]}", timeout=20)
    finally:
        server.shutdown()
    assert 1.4 <= waited < 10


def test_a_server_that_exits_or_never_answers_is_an_error():
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    exited.wait()
    with pytest.raises(ui.ServerError, match="exited with code 4 before answering"):
        ui.wait_until_answering(f"http://127.0.0.1:{_free_port()}", exited, timeout=20)
    with pytest.raises(ui.ServerError, match="did not answer within 1 s"):
        ui.wait_until_answering(f"http://127.0.0.1:{_free_port()}", timeout=1)


def test_the_view_opened_is_the_training_runs_of_the_latest_experiment(tracking):
    uri, client, experiment = tracking
    assert ui.latest_experiment_id(uri) is None
    assert ui.training_view(None) == "#/experiments"
    other = client.create_experiment("other")
    client.create_run(other)
    time.sleep(0.01)  # Start times are in milliseconds.
    client.create_run(experiment)
    assert ui.latest_experiment_id(uri) == experiment
    assert ui.training_view(experiment) == f"#/experiments/{experiment}/runs?workflowType=machine_learning"


@pytest.mark.slow
def test_xfer_ui_prints_its_url_once_the_server_answers(tmp_path, tracking):
    uri, client, experiment = tracking
    client.create_run(experiment)
    port = _free_port()
    # A generous timeout: on this shared machine the server has taken from 25 s to two minutes to answer.
    command = [sys.executable, "-m", "pipeline.cli", "ui", "--workspace", str(tmp_path), "--port", str(port),
               "--timeout", "600"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout.readline().startswith("starting the MLflow UI on")
        line = process.stdout.readline()
        # The moment the URL is printed, the server answers it.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        expected = f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs?workflowType=machine_learning"
        assert line == f"MLflow UI on {expected} (Ctrl-C to stop)\n"
    finally:
        process.terminate()
        process.wait(timeout=30)
