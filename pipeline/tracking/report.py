"""Every run's report, logged to its MLflow run under `report/`: learning curves, confusion matrix, IoU
histogram, eval images with true and predicted boxes, Grad-CAM heatmaps, the model summary, the TFDV
statistics page and a model card.

Everything is computed from the run's outputs in the pipeline root (also for nodes served from the cache):
the eval split's raw examples go through the trained model's own `serving_default` signature, so the report
shows what serving would answer. Each part is made on its own; one that fails is logged as a warning and
listed in `report/failures.txt`, and the others are still logged.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras
from mlflow.tracking import MlflowClient
from tfx.utils import path_utils

from components import names
from components.evaluator import report
from components.evaluator import scores as eval_scores
from components.trainer import model as model_lib
from components.transform import features as features_lib
from components.validation import data_report
from components.validation import gate as validation_gate
from pipeline import config as config_lib
from pipeline.tracking import result as result_lib
from pipeline.tracking import run_record

ARTIFACT_DIR = "report"
GRID_IMAGES = 12
GRAD_CAM_IMAGES = 4
STATISTICS_SPLITS = names.SPLITS  # When an artifact does not say its splits (older stores).


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


def run_anomalies(anomalies: run_record.Output) -> list[str]:
    """ExampleValidator's anomalies (its output), one plain line each (none when the data is clean)."""
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


def load_trained_model(model_dir: str) -> tf_keras.Model:
    """The trained network, differentiable, for Grad-CAM and the summary: the pushed SavedModel itself, reloaded
    by Keras (components/trainer/model.py registers the layers it is made of)."""
    return tf_keras.models.load_model(model_dir, compile=False)


def model_inputs(serving_model, keras_model: tf_keras.Model, serialized: Sequence[bytes]) -> dict[str, tf.Tensor]:
    """What the network is fed for raw eval examples: the SavedModel's own `transformed_inputs` signature, the
    parsing, Transform graph and image decoding that serving applies before the network."""
    transformed = serving_model.signatures["transformed_inputs"](examples=tf.constant(list(serialized)))
    return {name: transformed[name] for name in keras_model.input.keys()}


def build_run_report(
    config: config_lib.Config,
    result: result_lib.RunResult,
    client: MlflowClient,
    run_id: str,
    load_network: Callable[[str], tf_keras.Model] | None = None,
) -> dict[str, list[str]]:
    """Writes the report into a temporary folder and logs it to the MLflow run under `report/`.

    `load_network(model_dir)` gives the trained Keras network; by default `load_trained_model`.
    Returns {"written": file names, "failed": "part: error" lines}. Parts that need the model or the data are
    skipped with a failure line when those are missing; nothing here raises for a single part.
    """
    load_network = load_network or load_trained_model
    written: list[str] = []
    failed: list[str] = []
    model_dir = path_utils.serving_model_path(result.trainer_model_uri)

    with tempfile.TemporaryDirectory(prefix="xfer-report-") as out:

        def attempt(part: str, make: Callable[[], Sequence[str]]) -> Any:
            try:
                files = make()
            except Exception as error:  # A plot must not fail the run; the failure is reported instead.
                logging.warning("report: %s failed: %s: %s", part, type(error).__name__, error, exc_info=True)
                failed.append(f"{part}: {type(error).__name__}: {error}")
                return
            written.extend(files)

        def learning_curves() -> list[str]:
            if result.history_path is None:
                raise RuntimeError("the Trainer came from the cache: its curves are in the run that trained it")
            history = json.loads(tf.io.gfile.GFile(result.history_path).read())
            report.plot_learning_curves(history, os.path.join(out, "learning_curves.png"))
            return ["learning_curves.png"]

        attempt("learning curves", learning_curves)

        state: dict[str, Any] = {}

        def eval_plots() -> list[str]:
            serialized = read_examples(result.examples_uri, names.EVAL_SPLIT)
            serving_model = tf.saved_model.load(model_dir)
            scores = eval_scores.score_examples(serving_model.signatures["serving_default"], serialized)
            state.update(serialized=serialized, serving_model=serving_model, scores=scores)
            report.plot_confusion_matrix(
                scores.true_labels,
                scores.predicted_labels,
                scores.class_names,
                os.path.join(out, "confusion_matrix.png"),
            )
            if config.task != "detection":  # No boxes: nothing to measure IoU on or to draw.
                return ["confusion_matrix.png"]
            # IoU on the images that have a box; an image with no object in it has none to measure.
            boxed, hit = scores.boxed, config.evaluation.hit_iou
            ious = scores.ious[boxed]
            report.plot_iou_histogram(ious, os.path.join(out, "iou_histogram.png"), config.evaluation.min_iou, hit)
            report.plot_iou_by_box_size(scores.true_boxes[boxed], ious, os.path.join(out, "iou_by_box_size.png"), hit)
            # The first images (a fair sample: the split is a filename hash), then the worst ones.
            first = list(range(min(GRID_IMAGES, len(serialized))))
            ranked = np.where(boxed, scores.ious, 1.0)  # An empty image is only wrong by its class.
            worst = report.worst_first(ranked, scores.true_labels, scores.predicted_labels, GRID_IMAGES)
            grids = (
                (first, "eval_boxes.png", "Eval images"),
                (worst, "eval_boxes_worst.png", "Worst eval images (wrong class first, then lowest IoU)"),
            )
            for shown, name, title in grids:
                report.plot_box_grid(
                    report.decode_images([serialized[index] for index in shown], features_lib.IMAGE),
                    scores.true_boxes[shown],
                    scores.shown_predicted_boxes[shown],
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
            reloaded = keras_model(inputs, training=False)[model_lib.PROBABILITIES]
            difference = float(np.max(np.abs(served["probabilities"].numpy() - reloaded.numpy())))
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
            state["anomalies"] = run_anomalies(result.anomalies)
            with open(os.path.join(out, "anomalies.txt"), "w") as handle:
                handle.write(anomalies_text(state["anomalies"]))
            return ["anomalies.txt"]

        attempt("anomalies", anomalies)

        def statistics() -> list[str]:
            statistics = result.statistics
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
                handle.write(model_card(config, result, state.get("scores"), config.registered_model_name))
            return ["model_card.md"]

        attempt("model card", card)

        if failed:
            with open(os.path.join(out, "failures.txt"), "w") as handle:
                handle.write("\n".join(failed) + "\n")
        client.log_artifacts(run_id, out, ARTIFACT_DIR)
    return {"written": written, "failed": failed}


def model_card(
    config: config_lib.Config,
    result: result_lib.RunResult,
    scores: eval_scores.EvalScores | None,
    registered_model: str = "",
) -> str:
    """A Markdown model card: what the model is, what it was trained and judged on, and where not to use it.

    `registered_model`: the registry name a push goes to ("" to leave it out).
    """
    training_config, model_config = config.training, config.model
    ingest_summary = result.ingest or {}
    evaluation = result.evaluation
    gates = config.evaluation
    lines = [
        f"# Model card: {config.pipeline_name}",
        "",
        "## Model",
        f"- Backbone: {model_config.backbone}, weights `{model_config.weights}`; a class head and a box head "
        f"({model_config.head_units} units each, dropout {model_config.dropout_rate}) and a metadata tower.",
        f"- Input: one image ({config.image.size}x{config.image.size} px after `{config.image.resize}` resizing) "
        f"and the metadata features {', '.join(f'`{f.name}` ({f.kind})' for f in config.features) or '(none)'}.",
        "- Output: class probabilities, the predicted class and one box (xmin, ymin, xmax, ymax as fractions of "
        "the image sent).",
        "",
        "## Training",
        f"- Phase 1, frozen backbone: {_epochs(training_config.frozen.epochs)} at learning rate "
        f"{training_config.frozen.learning_rate:g} ({training_config.frozen.schedule}).",
        f"- Phase 2, unfrozen: {_epochs(training_config.finetune.epochs)} at learning rate "
        f"{training_config.finetune.learning_rate:g} ({training_config.finetune.schedule}).",
        f"- Batch size {training_config.batch_size}, seed {training_config.seed}.",
        "",
        "## Data",
        f"- Source: `{config.data}`; train/val/eval split by a hash of the filename "
        f"({config.split.train}:{config.split.val}:{config.split.eval}); the Trainer validates on val, the gates "
        "judge eval.",
    ]
    if ingest_summary:
        lines.append(
            f"- Records: {ingest_summary.get('records')} read, {ingest_summary.get('accepted')} accepted, "
            f"{ingest_summary.get('rejected')} rejected."
        )
    if scores is not None:
        lines += [f"- Classes: {', '.join(scores.class_names)}.", f"- Eval images scored: {len(scores.true_labels)}."]
    lines += ["", "## Evaluation (eval split)", "", "| metric | value | gate |", "| --- | --- | --- |"]
    accuracy, iou = (evaluation.metrics.get(name, "n/a") for name in ("eval_accuracy", "eval_iou"))
    lines.append(f"| accuracy (TFMA) | {_fmt(accuracy)} | >= {gates.min_accuracy:g} |")
    lines.append(f"| mean box IoU (TFMA) | {_fmt(iou)} | >= {gates.min_iou:g} |")
    if scores is not None:
        boxed = scores.boxed
        hits = float(np.mean(scores.ious[boxed] >= report.IOU_MARK)) if boxed.any() else float("nan")
        lines.append(f"| share of boxes with IoU >= {report.IOU_MARK} | {hits:.4f} | |")
        if config.ingest.no_object == "keep":
            empty = config.ingest.no_object_class
            errors = scores.no_object_errors(empty)
            for key, words in (
                ("missed_object", f"said `{empty}` on an image with an object"),
                ("false_object", f"said a class on a `{empty}` image"),
            ):
                wrong, total = errors[key]
                rate = f"{wrong / total:.4f} ({wrong} of {total})" if total else "n/a (no such image)"
                lines.append(f"| {words} | {rate} | |")
        lines += ["", "| class | eval images | accuracy |", "| --- | --- | --- |"]
        for name, (count, accuracy) in scores.per_class_accuracy().items():
            lines.append(f"| {name} | {count} | {'n/a' if count == 0 else f'{accuracy:.4f}'} |")
    lines += ["", "## Gates and blessing"]
    if evaluation.blessed:
        lines.append("- **Blessed**: every gate passed.")
    else:
        failures = evaluation.gate_failures
        lines.append("- **Not blessed**: " + ("; ".join(failures) if failures else "a gate failed."))
    if evaluation.champion_note:
        lines.append(f"- Champion: {evaluation.champion_note}.")
    for row in evaluation.gates:
        if row.kind == "change":
            lines.append(
                f"- {row.metric} against the champion: {_fmt(row.value)} vs {_fmt(row.champion)}, "
                f"change {_fmt(row.change, '+')} ({row.threshold}): {'pass' if row.passed else 'FAIL'}."
            )
    if result.pushed_path is not None:
        registered = f"; registered in MLflow as `{registered_model}`, alias `champion`" if registered_model else ""
        lines.append(f"- Pushed to `{result.pushed_path}`{registered}.")
    elif evaluation.outcome == "already_champion":
        lines.append("- Not pushed: this model is already the champion.")
    else:
        lines.append("- Not pushed: the serving folder and the registry's `champion` keep the previous model.")
    lines += [
        "",
        "## Intended use",
        "- Classify an image into one of the classes above and locate the one object in it, given the metadata "
        "the training data carried; for images like the training data (same cameras, subjects and framing).",
        "- As a decision aid with a person reviewing low-probability predictions, not as an unattended decision maker.",
        "",
        "## Limitations",
        "- One box per image: images with several objects get one box, those with none still get a box.",
        "- Only the classes above; anything else is forced into one of them (there is no 'other' class).",
        "- Metadata carries signal: a camera, hour or place unlike the training data (OOV bucket, defaults for "
        "missing values) can shift predictions even when the image is clear.",
        "- Judged on the eval split only, a hash of the same source as training: no measure of performance on "
        "other cameras, places or times.",
    ]
    if model_config.weights.lower() == "none":
        lines.append("- Trained from random weights (no ImageNet pretraining): expect little beyond the training data.")
    return "\n".join(lines) + "\n"


def _epochs(count: int) -> str:
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def _fmt(value: float | str | None, sign: str = "") -> str:
    return f"{value:{sign}.4f}" if isinstance(value, float) else str(value)
