"""The cluster's services on 127.0.0.1 for the Kubeflow tests: an S3 API (moto's server mode, as MinIO serves
the pipeline root and the data) and an MLflow server proxying its artifacts (as infra/k8s runs it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before serving {url}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"nothing served {url} within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """Ends a server and every process it started (MLflow's server starts workers and job consumers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextlib.contextmanager
def s3_server(log_dir: Path):
    """moto's S3 API on 127.0.0.1; yields the AWS_* variables the cluster's Secret gives every pod."""
    port = free_port()
    log = (log_dir / "moto.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/moto-api/", process)
        yield {
            "AWS_ACCESS_KEY_ID": "emulator-key",
            "AWS_SECRET_ACCESS_KEY": "emulator-secret",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_REGION": REGION,
        }
    finally:
        stop(process)
        log.close()


@contextlib.contextmanager
def mlflow_server(root: Path, s3_env: dict[str, str], artifacts: str):
    """`mlflow server --serve-artifacts`, its artifacts in the S3 bucket, as the cluster's MLflow runs."""
    port = free_port()
    log = (root / "mlflow.log").open("w")
    env = {**os.environ, **s3_env, "MLFLOW_S3_ENDPOINT_URL": s3_env["AWS_ENDPOINT_URL"]}
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            artifacts,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
        log.close()


def s3_client(s3_env: dict[str, str]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
    )


def make_bucket(s3_env: dict[str, str], bucket: str) -> None:
    s3_client(s3_env).create_bucket(Bucket=bucket)


def upload_tree(s3_env: dict[str, str], local: Path, bucket: str, prefix: str) -> int:
    client = s3_client(s3_env)
    count = 0
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")
            count += 1
    return count


@contextlib.contextmanager
def model_server(model_uri: str, tracking_uri: str, root: Path, timeout: float = 600.0):
    """`mlflow models serve` for a registered model on 127.0.0.1, in the environment MLflow builds from the
    model's own python_env.yaml and requirements.txt (`--env-manager uv`), as a user serving the registry
    gets it; yields (the server's URL, that environment's python).

    uv is the one make installs (.tools/bin); the interpreter is this Python's base installation, which has the
    version the model records. uv may not download an interpreter (there is no network for that here)."""
    from tests.helpers import REPO_ROOT

    port = free_port()
    env_root = root / "model-envs"
    log = (root / "model-server.log").open("w")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_ENV_ROOT": str(env_root),
        "UV_PYTHON_DOWNLOADS": "never",
        "PATH": os.pathsep.join(
            [str(REPO_ROOT / ".tools" / "bin"), str(Path(sys.base_prefix) / "bin"), os.environ["PATH"]]
        ),
    }
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "uv",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", process, timeout)
        [python] = env_root.glob("*/bin/python")
        yield f"http://127.0.0.1:{port}", python
    finally:
        stop(process)
        log.close()
