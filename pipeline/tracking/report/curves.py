"""The report's learning curves: the Trainer's per-epoch history, both phases on one epoch axis."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from pipeline.tracking.report import plots
from pipeline.tracking.report.inputs import RunForReport


def learning_curves(run: RunForReport, out: str) -> list[str]:
    if run.result.history_path is None:
        raise RuntimeError("the Trainer came from the cache: its curves are in the run that trained it")
    history = json.loads(tf.io.gfile.GFile(run.result.history_path).read())
    plots.plot_learning_curves(history, os.path.join(out, "learning_curves.png"))
    return ["learning_curves.png"]
