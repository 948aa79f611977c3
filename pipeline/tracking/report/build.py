"""Builds every run's report: runs each part, logs what the parts wrote to the MLflow run under `report/`.

Everything is computed from the run's outputs in the pipeline root (also for nodes served from the cache): the
eval split's raw examples go through the trained model's own `serving_default` signature, so the report shows
what serving would answer. Each part is made on its own; one that fails is logged as a warning and listed in
`report/failures.txt`, and the others are still logged.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import TypedDict

import tf_keras
from mlflow.tracking import MlflowClient

from pipeline import config as config_lib
from pipeline.tracking import result as result_lib
from pipeline.tracking.report import card, curves, data, eval_plots, network
from pipeline.tracking.report.files import ARTIFACT_DIR, FAILURES_FILE
from pipeline.tracking.report.inputs import RunForReport

Part = Callable[[RunForReport, str], Sequence[str]]
# In this order: the statistics page shows the anomalies the part before it read, and the model card the scores.
PARTS: tuple[tuple[str, Part], ...] = (
    ("learning curves", curves.learning_curves),
    ("eval plots", eval_plots.eval_plots),
    ("model summary", network.model_summary),
    ("Grad-CAM", network.grad_cam),
    ("anomalies", data.anomalies),
    ("TFDV statistics", data.statistics),
    ("model card", card.card),
)


class Report(TypedDict):
    """What the report holds: the files written (names under `report/`), and a "part: error" line per part that
    failed."""

    written: list[str]
    failed: list[str]


def build_run_report(
    config: config_lib.Config,
    result: result_lib.RunResult,
    client: MlflowClient,
    run_id: str,
    load_network: Callable[[str], tf_keras.Model] | None = None,
) -> Report:
    """Writes the report into a temporary folder and logs it to the MLflow run under `report/`.

    `load_network(model_dir)` gives the trained Keras network; by default `network.load_trained_model`. Parts
    that need the model or the data fail with a line of their own when those are missing; nothing here raises
    for a single part.
    """
    run = RunForReport(config, result, load_network or network.load_trained_model)
    report = Report(written=[], failed=[])
    with tempfile.TemporaryDirectory(prefix="xfer-report-") as out:
        for name, part in PARTS:
            try:
                report["written"].extend(part(run, out))
            except Exception as error:  # A plot must not fail the run; the failure is reported instead.
                logging.warning("report: %s failed: %s: %s", name, type(error).__name__, error, exc_info=True)
                report["failed"].append(f"{name}: {type(error).__name__}: {error}")
        if report["failed"]:
            with open(os.path.join(out, FAILURES_FILE), "w") as handle:
                handle.write("\n".join(report["failed"]) + "\n")
        client.log_artifacts(run_id, out, ARTIFACT_DIR)
    return report
