"""Every run's report, logged to its MLflow run under `report/`: learning curves, confusion matrix, IoU
histogram, eval images with true and predicted boxes, Grad-CAM heatmaps, the model summary, the TFDV
statistics page and a model card.

Everything is computed from the run's outputs in the pipeline root (also for nodes served from the cache):
the eval split's raw examples go through the trained model's own `serving_default` signature, so the report
shows what serving would answer. Each part is made on its own; one that fails is logged as a warning and
listed in `report/failures.txt`, and the others are still logged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import posixpath
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from mlflow.tracking import MlflowClient
from tfx.utils import path_utils

from components.evaluator import report
from components.trainer import export
from components.trainer import model as model_lib
from components.trainer import module as trainer_module
from components.transform import features as features_lib
from components.validation import data_report
from components.validation import gate as validation_gate
from pipeline import config as config_lib
from pipeline import run_record

ARTIFACT_DIR = "report"
GRID_IMAGES = 12
GRAD_CAM_IMAGES = 4
STATISTICS_SPLITS = ("train", "val", "eval")  # When an artifact does not say its splits (older stores).


def read_examples(examples_uri: str, split: str) -> list[bytes]:
    """The serialized raw `tf.Example`s of one split of an ImageExampleGen output (GZIP TFRecords)."""
    files = sorted(tf.io.gfile.glob(posixpath.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no {split} examples under {examples_uri}")
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def split_names(output: run_record.Output) -> list[str]:
    """The splits an artifact holds, as TFX recorded them (its `split_names` property)."""
    recorded = output.properties.get("split_names")
    return json.loads(recorded) if recorded else list(STATISTICS_SPLITS)


def run_anomalies(record: run_record.RunRecord) -> list[str]:
    """The ExampleValidator's anomalies for the run, one plain line each (none when the data is clean)."""
    anomalies = record.nodes["ExampleValidator"].output("anomalies")
    uri = anomalies.uri
    return [
        line
        for split in split_names(anomalies)
        for line in validation_gate.describe_anomalies(split, validation_gate.load_anomalies(uri, split))
    ]


def anomalies_text(anomalies: list[str]) -> str:
    if not anomalies:
        return "0 anomalies: the data matches the schema.\n"
    return f"{len(anomalies)} anomalies:\n" + "".join(f"  {line}\n" for line in anomalies)


def rebuild_trained_model(config: config_lib.Config, transform_graph_uri: str, model_dir: str) -> tf_keras.Model:
    """The trained network, differentiable, for Grad-CAM and the summary (the Trainer saves no Keras copy).

    Rebuilt by components/trainer/model.py from the config and the Transform output, as the Trainer built it, then
    given the SavedModel's weights. `tf_keras.models.load_model` would rebuild it from the SavedModel's Keras
    metadata instead, but that stores Lambda layers as bytecode, and one that closes over a local variable
    (the backbone's `normalize`) comes back broken. The code is the Trainer's: a change to it reruns the
    Trainer (see pipeline/code_version.py).
    """
    settings = config.transform_settings
    transform_output = tft.TFTransformOutput(transform_graph_uri)
    # Pretrained weights would only be downloaded to be overwritten; the architecture does not depend on them.
    model_config = dataclasses.replace(config.model, weights="none")
    model = model_lib.build_model(
        model_config,
        settings.image_size,
        model_lib.model_inputs(settings, transform_output.vocabulary_size_by_name),
        len(export.read_label_names(transform_output)),
    )
    return load_saved_weights(model, model_dir)


def load_saved_weights(model: tf_keras.Model, model_dir: str) -> tf_keras.Model:
    """Loads a Keras SavedModel's variables into `model`, which must have the same layers; every variable of
    `model` must get a value (the SavedModel's extras, such as the Transform layer, are ignored)."""
    status = model.load_weights(posixpath.join(model_dir, "variables", "variables"))
    # The optimizer's slots and the metrics' totals are in the file but not wanted here: expected, so not
    # hundreds of "could not be found" warnings in the user's log.
    status.assert_existing_objects_matched().expect_partial()
    return model


def model_inputs(serving_model, keras_model: tf_keras.Model, serialized: Sequence[bytes]) -> dict[str, tf.Tensor]:
    """What the network is fed for raw eval examples: the SavedModel's own Transform graph, through its
    `transform_features` signature (eval examples carry every raw feature it parses)."""
    transformed = serving_model.signatures["transform_features"](examples=tf.constant(list(serialized)))
    return {name: transformed[name] for name in keras_model.input.keys()}


def build_run_report(
    config: config_lib.Config,
    record: run_record.RunRecord,
    client: MlflowClient,
    run_id: str,
    summary: dict[str, Any] | None = None,
    load_network: Callable[[str], tf_keras.Model] | None = None,
) -> dict[str, list[str]]:
    """Writes the report into a temporary folder and logs it to the MLflow run under `report/`.

    `load_network(model_dir)` gives the trained Keras network; by default `rebuild_trained_model`.
    Returns {"written": file names, "failed": "part: error" lines}. Parts that need the model or the data are
    skipped with a failure line when those are missing; nothing here raises for a single part.
    """
    summary = summary or {}

    def rebuilt_network(model_dir: str) -> tf_keras.Model:
        return rebuild_trained_model(config, record.nodes["Transform"].output("transform_graph").uri, model_dir)

    load_network = load_network or rebuilt_network
    written: list[str] = []
    failed: list[str] = []
    trainer = record.nodes["Trainer"]
    model_dir = path_utils.serving_model_path(trainer.output("model").uri)

    with tempfile.TemporaryDirectory(prefix="xfer-report-") as out:

        def attempt(part: str, make: Callable[[], Sequence[str]]) -> Any:
            try:
                names = make()
            except Exception as error:  # A plot must not fail the run; the failure is reported instead.
                logging.warning("report: %s failed: %s: %s", part, type(error).__name__, error, exc_info=True)
                failed.append(f"{part}: {type(error).__name__}: {error}")
                return
            written.extend(names)

        def learning_curves() -> list[str]:
            history_path = posixpath.join(trainer.output("model_run").uri, trainer_module.HISTORY_FILE)
            history = json.loads(tf.io.gfile.GFile(history_path).read())
            report.plot_learning_curves(history, os.path.join(out, "learning_curves.png"))
            return ["learning_curves.png"]

        attempt("learning curves", learning_curves)

        state: dict[str, Any] = {}

        def eval_plots() -> list[str]:
            examples_uri = record.nodes["ImageExampleGen"].output("examples").uri
            serialized = read_examples(examples_uri, "eval")
            serving_model = tf.saved_model.load(model_dir)
            scores = report.score_examples(serving_model.signatures["serving_default"], serialized)
            state.update(serialized=serialized, serving_model=serving_model, scores=scores)
            report.plot_confusion_matrix(
                scores.true_labels,
                scores.predicted_labels,
                scores.class_names,
                os.path.join(out, "confusion_matrix.png"),
            )
            if config.task != "detection":  # No boxes: nothing to measure IoU on or to draw.
                return ["confusion_matrix.png"]
            ious, hit = scores.ious, config.evaluation.hit_iou
            report.plot_iou_histogram(ious, os.path.join(out, "iou_histogram.png"), config.evaluation.min_iou, hit)
            report.plot_iou_by_box_size(scores.true_boxes, ious, os.path.join(out, "iou_by_box_size.png"), hit)
            # The first images (a fair sample: the split is a filename hash), then the worst ones.
            first = list(range(min(GRID_IMAGES, len(serialized))))
            worst = report.worst_first(ious, scores.true_labels, scores.predicted_labels, GRID_IMAGES)
            grids = (
                (first, "eval_boxes.png", "Eval images"),
                (worst, "eval_boxes_worst.png", "Worst eval images (wrong class first, then lowest IoU)"),
            )
            for shown, name, title in grids:
                report.plot_box_grid(
                    report.decode_images([serialized[index] for index in shown], features_lib.IMAGE),
                    scores.true_boxes[shown],
                    scores.predicted_boxes[shown],
                    [scores.true_labels[index] for index in shown],
                    [scores.predicted_labels[index] for index in shown],
                    os.path.join(out, name),
                    title=title,
                )
            return [
                "confusion_matrix.png",
                "iou_histogram.png",
                "iou_by_box_size.png",
                "eval_boxes.png",
                "eval_boxes_worst.png",
            ]

        attempt("eval plots", eval_plots)

        def keras_parts() -> list[str]:
            keras_model = load_network(model_dir)
            with open(os.path.join(out, "model_summary.txt"), "w") as handle:
                handle.write(report.model_summary(keras_model))
            written.append("model_summary.txt")
            if "scores" not in state:
                raise RuntimeError("no eval scores (see the eval plots failure), so no Grad-CAM")
            chosen = state["serialized"][:GRAD_CAM_IMAGES]
            inputs = model_inputs(state["serving_model"], keras_model, chosen)
            # Grad-CAM explains the network it is given; check that it is the one serving answers with.
            served = state["serving_model"].signatures["serving_default"](examples=tf.constant(chosen))
            rebuilt = keras_model(inputs, training=False)[model_lib.PROBABILITIES]
            difference = float(np.max(np.abs(served["probabilities"].numpy() - rebuilt.numpy())))
            if difference > 1e-4:
                raise RuntimeError(
                    f"the Keras network differs from the served model (probabilities by {difference:.3g})"
                )
            heatmaps, explained = report.grad_cam(keras_model, inputs)
            scores = state["scores"]
            titles = [
                f"true {scores.true_labels[i]}, explains {scores.class_names[explained[i]]}" for i in range(len(chosen))
            ]
            # The image the network saw (resized by Transform), so the heatmap lines up with its input.
            images = np.clip(inputs[features_lib.IMAGE].numpy(), 0, 255).astype(np.uint8)
            report.plot_grad_cam(images, heatmaps, titles, os.path.join(out, "grad_cam.png"))
            return ["grad_cam.png"]

        attempt("model summary and Grad-CAM", keras_parts)

        def anomalies() -> list[str]:
            state["anomalies"] = run_anomalies(record)
            with open(os.path.join(out, "anomalies.txt"), "w") as handle:
                handle.write(anomalies_text(state["anomalies"]))
            return ["anomalies.txt"]

        attempt("anomalies", anomalies)

        def statistics() -> list[str]:
            statistics = record.nodes["StatisticsGen"].output("statistics")
            loaded = {
                split: validation_gate.load_statistics(statistics.uri, split) for split in split_names(statistics)
            }
            # The static page renders offline and inside MLflow's artifact viewer; Facets needs its CDN.
            with open(os.path.join(out, "statistics.html"), "w") as handle:
                handle.write(data_report.statistics_html(loaded, state.get("anomalies")))
            with open(os.path.join(out, "statistics_facets.html"), "w") as handle:
                handle.write(data_report.facets_html(loaded))
            return ["statistics.html", "statistics_facets.html"]

        attempt("TFDV statistics", statistics)

        def card() -> list[str]:
            with open(os.path.join(out, "model_card.md"), "w") as handle:
                handle.write(report.model_card(config, summary, state.get("scores"), config.registered_model_name))
            return ["model_card.md"]

        attempt("model card", card)

        if failed:
            with open(os.path.join(out, "failures.txt"), "w") as handle:
                handle.write("\n".join(failed) + "\n")
        client.log_artifacts(run_id, out, ARTIFACT_DIR)
    return {"written": written, "failed": failed}
