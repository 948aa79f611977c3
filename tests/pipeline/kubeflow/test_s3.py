"""s3:// in every process of a pod, against a real S3 API on 127.0.0.1 (moto's server mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, local_services

ROOT = REPO_ROOT
# The default kubeflow.beam_args' mode, with one worker process to keep the test short.
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=1"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with local_services.s3_server(tmp_path_factory.mktemp("moto")) as env:
        local_services.make_bucket(env, "xfer")
        yield env


def run_probe(s3_env: dict, beam_args: list[str], out: Path) -> subprocess.CompletedProcess:
    """A pod's process: the entrypoint's S3 set-up, then a Beam pipeline whose DoFn stats an s3:// object."""
    script = f"""
import json, os, sys
from pipeline.kubeflow import s3 as kubeflow_s3  # What the pod entrypoint imports first.
import boto3
boto3.client("s3").put_object(Bucket="xfer", Key="data/a.txt", Body=b"a")
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from tests.helpers import beam_s3_probe
with beam.Pipeline(options=PipelineOptions({beam_args!r})) as pipeline:
    (pipeline | beam.Create(["s3://xfer/data/a.txt"]) | beam.Map(beam_s3_probe.stat_in_worker)
     | beam.io.WriteToText({str(out)!r}, shard_name_template=""))
print("driver pid", os.getpid())
"""
    env = {**os.environ, **s3_env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_beam_worker_processes_have_s3_with_the_compiled_args(s3, tmp_path):
    from pipeline.kubeflow import runner as kubeflow_runner

    out = tmp_path / "seen.txt"
    result = run_probe(s3, kubeflow_runner.pod_beam_args(MULTI_PROCESSING), out)
    assert out.exists(), result.stderr[-3000:]
    (seen,) = [json.loads(line) for line in out.read_text().splitlines()]
    driver_pid = int(result.stdout.split("driver pid")[1].split()[0])
    assert seen == {"pid": seen["pid"], "exists": True} and seen["pid"] != driver_pid  # A worker process.


@pytest.mark.slow
def test_without_the_plugin_a_beam_worker_has_no_s3(s3, tmp_path):
    """The control: the same pipeline without the plugin fails in the worker, which is what the pods did."""
    result = run_probe(s3, MULTI_PROCESSING, tmp_path / "seen.txt")
    assert result.returncode != 0
    assert "File system scheme 's3' not implemented" in result.stderr


def run_entrypoint(s3_env: dict, tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "s3_step.py").write_text(body)
    env = {**os.environ, **s3_env, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.kubeflow.entrypoint", "--node", "Transform", "s3_step"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_a_pod_that_used_s3_exits_with_its_own_status(s3, tmp_path):
    """tensorflow-io 0.37.1 aborts the interpreter at exit once S3 was used ("pure virtual method called",
    status 134; tensorflow/io#2039), which KFP's launcher would report as a failed task."""
    write = 'import tensorflow as tf\ntf.io.gfile.GFile("s3://xfer/out/ok.txt", "w").write("ok")\n'
    ok = run_entrypoint(s3, tmp_path, write)
    assert ok.returncode == 0, ok.stderr[-2000:]
    failing = run_entrypoint(s3, tmp_path, write + 'raise RuntimeError("disk full")\n')
    assert failing.returncode == 1 and "RuntimeError: disk full" in failing.stderr


def test_an_empty_file_can_be_written_to_s3_through_beam(s3, tmp_path):
    """Beam 2.59's S3 writer completes a multipart upload of no parts for an empty file, which S3 refuses
    (MalformedXML): ImageExampleGen's empty rejects.jsonl failed the step. The pods' S3 module fixes it."""
    script = """
from pipeline.kubeflow import s3 as kubeflow_s3  # What every pod process and Beam worker imports.
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
FileSystems.set_options(PipelineOptions([]))  # As a Beam pipeline sets them in its workers.
FileSystems.create("s3://xfer/empty/rejects.jsonl").close()
print("size", FileSystems.match(["s3://xfer/empty/rejects.jsonl"])[0].metadata_list[0].size_in_bytes)
"""
    env = {**os.environ, **s3, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "size 0" in result.stdout


@pytest.mark.slow
def test_the_trainer_checkpoints_to_an_s3_pipeline_root(s3, tmp_path):
    """Keras writes HDF5 weights with h5py, which cannot open s3:// paths: the Trainer's per-epoch checkpoint
    failed every Trainer pod on the cluster's pipeline root (found by tests/pipeline/kubeflow/test_kfp_emulator.py)."""
    script = """
from pipeline.kubeflow import s3 as kubeflow_s3  # What the pod entrypoint imports first.
import numpy as np
import tf_keras
from components.trainer import training
def model():
    inputs = tf_keras.Input((3,))
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(inputs))
saved = model()
checkpoint = training.Checkpoint("s3://xfer/pipeline_root/Trainer/checkpoints/x")
checkpoint.save(saved, [{"epoch": 0}])
restored = model()
assert checkpoint.restore(restored) == [{"epoch": 0}]
for a, b in zip(saved.get_weights(), restored.get_weights()):
    np.testing.assert_array_equal(a, b)
print("restored", flush=True)
import os
os._exit(0)  # tensorflow-io's abort at exit (tensorflow/io#2039); pods exit through the entrypoint the same way.
"""
    env = {**os.environ, **s3, "PYTHONPATH": str(ROOT), "TF_USE_LEGACY_KERAS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and "restored" in result.stdout, result.stderr[-3000:]
