"""The camera-trap walk-through end to end: `xfer run` on a COCO Camera Traps export, in a process of its own.

Marked `early`: conftest.py schedules it at the start, beside the KFP emulator, while the xdist workers are
fresh. The other end-to-end tests run their DAGs inside a worker, which then holds 12 to 17 GB; a DAG in a
process of its own started beside such a worker ran this 24 GB machine out of memory (the kernel killed the
worker).
"""

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from components.ingest import sample_data
from components.serving import contract, predict
from pipeline import config as config_lib
from tests.helpers import REPO_ROOT
from tests.test_e2e import _assert_serving_equals_training, _records

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.early]

ROOT = str(REPO_ROOT)


def test_a_coco_camera_traps_export_with_empty_images_and_derived_features(tmp_path):
    """The camera-trap walk-through's config on a COCO Camera Traps export (metadata on the image entries) where
    a third of the images hold nothing (`ingest.no_object: keep`): they are kept as `empty`, their missing box
    costs no box loss and no IoU (TFMA's IoU equals the mean over the images with a box), the served answer
    has no box wherever it says `empty`, and the hour derived from `datetime` is the same in serving as in
    training. Run as a user runs it, `xfer run` in a process of its own (which also keeps this worker's
    memory to the other tests' DAGs)."""
    from components.evaluator import scores as eval_scores

    records = sample_data.write_sample_dataset(
        tmp_path / "data", num_images=30, seed=11, empty_fraction=0.3, layout="coco-camera-traps"
    )
    empties = sum(record.box is None for record in records)
    config_path = tmp_path / "camera_traps.yaml"
    overrides = {
        "base": os.path.join(ROOT, "configs", "camera_traps.yaml"),
        "pipeline_name": "xfer-e2e-camera-traps",
        "data": str(tmp_path / "data"),
        "workspace": str(tmp_path / "workspace"),
        "schema": os.path.join(ROOT, "schemas", "camera_traps.pbtxt"),
        "training": {
            "batch_size": 8,
            "frozen": {"epochs": 1, "learning_rate": 1e-3},
            "finetune": {"epochs": 1, "learning_rate": 1e-4},
        },
        "evaluation": {"min_accuracy": 0.0, "min_iou": 0.0},
    }
    config_path.write_text(json.dumps(overrides))  # JSON is YAML.
    xfer = os.path.join(os.path.dirname(sys.executable), "xfer")
    done = subprocess.run([xfer, "run", "--config", str(config_path)], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    config = config_lib.load_config(config_path)
    root = config.workspace_path / "pipeline_root"
    (summary_path,) = root.glob("ImageExampleGen/examples/*/ingest_summary.json")
    ingest = json.loads(summary_path.read_text())
    assert ingest["format"] == "coco" and empties >= 5
    assert (ingest["accepted"], ingest["rejected"]) == (30, 0)
    assert {"location", "datetime", "seq_id", "frame_num"} <= set(ingest["metadata_columns"])
    client = mlflow.tracking.MlflowClient(tracking_uri=config.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(config.experiment_name).experiment_id])
    (pushed,) = (config.workspace_path / "serving").iterdir()
    serialized = _records(str(root / "ImageExampleGen" / "examples" / "*" / "Split-eval" / "*"))
    model = tf.saved_model.load(str(pushed))
    scores = eval_scores.score_examples(model.signatures["serving_default"], serialized)
    boxed = scores.boxed
    assert 0 < boxed.sum() < len(serialized), "the eval split should hold images with and without an object"
    assert run.data.metrics["eval_iou"] == pytest.approx(float(np.mean(scores.ious[boxed])), abs=1e-4)
    for answer in predict.predict_serialized(str(pushed), serialized):
        assert (answer["box"] is None) == (answer["class"] == "empty")
    served = contract.serve(model.signatures["serving_default"], serialized)
    assert list(served.has_box) == [label != "empty" for label in served.labels]
    # The derived hour, from the raw datetime string, as serving computes it and as training read it.
    names = _assert_serving_equals_training(str(pushed), root)
    assert {"hour", "hour_sin", "hour_cos", "location"} <= set(names)
    assert run.data.params["features.hour.derive"] == "hour" and run.data.params["features.hour.source"] == "datetime"
    card = client.download_artifacts(run.info.run_id, "report/model_card.md", str(tmp_path / "card"))
    text = open(card).read()
    assert "said `empty` on an image with an object" in text and "said a class on a `empty` image" in text
    plots = {os.path.basename(item.path) for item in client.list_artifacts(run.info.run_id, "report")}
    assert {"eval_boxes.png", "eval_boxes_worst.png", "iou_histogram.png"} <= plots  # Empty images drawn too.
