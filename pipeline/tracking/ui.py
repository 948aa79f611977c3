"""The MLflow UI on a workspace: start the server, wait until it answers, and find the page to open.

`xfer ui` and `make ui-check` share it. MLflow 3 opens on its GenAI home, and an experiment on its Traces
overview; `#/experiments/<id>/runs?workflowType=machine_learning` is the model-training view of the runs, the
one a pipeline run is read in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline import workspace_move
from pipeline.workspace import Workspace

HOST = "127.0.0.1"
# The server took 24 to 28 s to answer here on a loaded machine; two minutes leaves room for a slower one.
DEFAULT_TIMEOUT_SECONDS = 120.0
_POLL_SECONDS = 0.5


class ServerError(RuntimeError):
    """The MLflow UI did not come up."""


def store_uri(workspace: Path) -> str:
    return Workspace(workspace).tracking_uri


def server_command(workspace: Path, port: int) -> list[str]:
    # One worker: one person reads the UI, and each of the default four imports MLflow before the server answers.
    return [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", store_uri(workspace),
        "--host", HOST,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip


def server_environment() -> dict[str, str]:
    # MLflow's job runner (ten background consumers) serves GenAI features that runs of this pipeline never use.
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def wait_until_answering(
    base_url: str, server: subprocess.Popen | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> float:
    """Polls `base_url`/health until it answers 200; returns the seconds waited. ServerError when `server`
    exits first (a port in use, a broken store) or when `timeout` passes."""
    # Here, not at the top: the CLI reads this module's defaults to build its parser, and urllib.request
    # (http.client, email) was two thirds of the 50 ms that added to every `xfer` command's start.
    import urllib.error
    import urllib.request

    started = time.monotonic()
    while True:
        if server is not None and server.poll() is not None:
            raise ServerError(f"the MLflow server exited with code {server.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # Not listening yet.
        if time.monotonic() - started > timeout:
            raise ServerError(f"the MLflow server at {base_url} did not answer within {timeout:.0f} s")
        time.sleep(_POLL_SECONDS)


@contextlib.contextmanager
def serve(workspace: Path, port: int, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[subprocess.Popen]:
    """Runs `mlflow ui` on the workspace's store until the block ends; yields once the server answers."""
    store = Workspace(workspace).mlflow_db
    if not store.exists():
        raise FileNotFoundError(f"no MLflow store at {store}; run the pipeline first (`make run`)")
    moved_from = workspace_move.relocate(workspace)
    if moved_from is not None:
        print(f"The workspace was at {moved_from}; its artifact locations now point to {workspace.resolve()}.")
    # A session of its own: `mlflow ui` starts its web server as a child process, and stopping the group
    # stops both, where terminating the one process would leave the other serving.
    # The server's own lines go to stderr: stdout carries xfer's, the address first of all.
    server = subprocess.Popen(
        server_command(workspace, port), env=server_environment(), stdout=_stderr(), start_new_session=True
    )
    try:
        wait_until_answering(f"http://{HOST}:{port}", server, timeout)
        yield server
    finally:
        _stop_group(server)


def _stderr() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None  # A captured stderr (tests) has no descriptor; the server's output then goes where ours does.


def _stop_group(server: subprocess.Popen) -> None:
    for sent, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sent)
        except ProcessLookupError:
            return  # The group is gone already.
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def latest_experiment_id(tracking_uri: str) -> str | None:
    """The experiment of the most recent run in the store (None when there is no run)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(experiments, max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.experiment_id if runs else None


def training_view(experiment_id: str | None) -> str:
    """The fragment of the model-training view of an experiment's runs; the experiment list without one."""
    if experiment_id is None:
        return "#/experiments"
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
