"""Live per-epoch metrics from inside the Trainer to the MLflow run that `xfer run` opened.

The run id travels in the environment, not in the component's properties: a per-run value there would
change the Trainer's fingerprint and defeat TFX's cache.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from components import mlflow_tags, names
from components.trainer import training


def from_environment(unfreeze_epoch: int) -> Callable[[dict[str, Any]], None] | None:
    """An on-epoch hook logging to the run named by $XFER_MLFLOW_RUN_ID, or None when no run is open."""
    run_id = os.environ.get(names.MLFLOW_RUN_ID_ENV)
    if not run_id:
        return None
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=os.environ.get(names.TRACKING_URI_ENV))
    client.set_tag(run_id, mlflow_tags.UNFREEZE_EPOCH, str(unfreeze_epoch))

    def log_epoch(row: dict[str, Any]) -> None:
        timestamp = int(time.time() * 1000)
        metrics = [
            Metric(key, value, timestamp, int(row["epoch"])) for key, value in training.tracking_metrics(row).items()
        ]
        try:
            client.log_batch(run_id, metrics=metrics)
        except Exception as error:  # Tracking trouble must not kill a training run that is otherwise fine.
            logging.warning("could not log epoch %s to MLflow: %s", row["epoch"], error)

    return log_epoch
