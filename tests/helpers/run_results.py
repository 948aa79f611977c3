"""Typed run results built by hand, for the tests of what reads them (the report, the model card, the run's
description): only the fields a test names differ from an unremarkable blessed run."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from components import names
from components.evaluator import verdict
from pipeline.tracking import mlflow_log, mlmd
from pipeline.tracking import result as result_lib


def evaluation(**changes: Any) -> verdict.Evaluation:
    base = verdict.Evaluation(
        slices={},
        metrics={},
        blessed=True,
        gates=(),
        champion_note="",
        comparison=None,
        gate_failures=(),
    )
    return dataclasses.replace(base, **changes)


def comparison(version: str = "3", compared: bool = True, is_champion: bool = False) -> verdict.Comparison:
    return verdict.Comparison(version, compared, is_champion, f"compared with version {version}")


def run_result(root: str = "/nowhere", **changes: Any) -> result_lib.RunResult:
    """`root`: a pipeline root laid out as `tests/components/evaluator/test_report.py`'s tiny run is."""
    base = result_lib.RunResult(
        pipeline_run="run-1",
        node_states={node: "COMPLETE" for node in (names.INGEST, names.TRANSFORM, names.TRAINER, names.EVALUATOR)},
        examples_uri=f"{root}/ImageExampleGen/examples/1",
        statistics=mlmd.Output(f"{root}/StatisticsGen/statistics/3", {"split_names": json.dumps(names.SPLITS)}),
        anomalies=mlmd.Output(f"{root}/ExampleValidator/anomalies/4", {"split_names": json.dumps(names.SPLITS)}),
        input_fingerprint="",
        ingest=None,
        transform_graph_uri=f"{root}/Transform/transform_graph/5",
        class_names=(),
        trainer_model_uri=f"{root}/Trainer/model/7",
        history_path=f"{root}/Trainer/model_run/7/history.json",
        evaluation=evaluation(),
        pushed_path=None,
    )
    return dataclasses.replace(base, **changes)


def tracked(**changes: Any) -> mlflow_log.Tracked:
    base = mlflow_log.Tracked(
        mlflow_run_id="mlflow-run",
        data_digest=None,
        transform_table="",
        gate_table="",
        trained_in_run=None,
        report_failures=(),
        registered_model=None,
    )
    return dataclasses.replace(base, **changes)
