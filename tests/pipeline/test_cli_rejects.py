"""A run that stops on its rejects: the list its error names exists, after TFX deleted the failed execution's
outputs, and it is logged with the MLflow run."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from pipeline import cli
from pipeline.tracking import mlflow_log
from tests.pipeline.test_cli_schema import metadata_csv, write_config


class Stopped(Exception):
    rejects_path = ""


def test_the_rejects_are_found_along_the_chain_of_errors():
    inner = Stopped("too many")
    inner.rejects_path = "/w/pipeline_root/ImageExampleGen/stopped/3/rejects.jsonl"
    try:
        try:
            raise inner
        except Stopped as error:
            raise RuntimeError("the component failed") from error
    except RuntimeError as outer:
        assert mlflow_log.stopped_rejects_path(outer) == inner.rejects_path
    assert mlflow_log.stopped_rejects_path(ValueError("other")) is None


def test_a_failed_runs_rejects_are_logged_to_it(tracking, tmp_path):
    _, client, experiment = tracking
    run_id = client.create_run(experiment).info.run_id
    rejects = tmp_path / "rejects.jsonl"
    rejects.write_text('{"filename": "a.png", "reason": "missing_file"}\n')
    error = Stopped("too many")
    error.rejects_path = str(rejects)
    mlflow_log.log_stopped_rejects(client, run_id, error)
    logged = client.download_artifacts(run_id, "ingest/rejects.jsonl", str(tmp_path / "down"))
    assert open(logged).read() == rejects.read_text()


@pytest.mark.slow
def test_xfer_run_stopped_on_rejects_names_a_file_that_exists_and_logs_it(tmp_path, capsys):
    clean = metadata_csv(tmp_path / "clean", rows=20, bad_hours=())
    schema = tmp_path / "schema.pbtxt"
    assert cli.main(["schema", "infer", "--data", str(clean), "--out", str(schema)]) == 0
    # The same columns with three hours that are no number: 3 of 20 is over the 5% limit.
    data = metadata_csv(tmp_path / "data", rows=20, bad_hours=(1, 2, 3))
    config = write_config(tmp_path / "config.yaml", schema, tmp_path / "workspace", data)
    capsys.readouterr()
    assert cli.main(["run", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "3 of 20 records rejected (15.0%), more than max_reject_fraction 5.0% (bad_metadata: 3)" in error
    named = error.rsplit("Each reject and its reason is in ", 1)[1].strip()
    assert "/ImageExampleGen/stopped/" in named
    rejects = [json.loads(line) for line in open(named)]
    assert sorted(r["filename"] for r in rejects) == ["img_01.png", "img_02.png", "img_03.png"]
    assert {r["reason"] for r in rejects} == {"bad_metadata"}
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'workspace' / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED" and "max_reject_fraction" in run.data.tags["failure_reason"]
    logged = client.download_artifacts(run.info.run_id, "ingest/rejects.jsonl", str(tmp_path / "down"))
    assert open(logged).read() == open(named).read()
