"""The report's plots of the eval split as serving answers it: the confusion matrix, and for detection the IoU
histogram, IoU by box size, and grids of eval images with their true and predicted boxes."""

from __future__ import annotations

import os

import numpy as np

from components.transform import features as features_lib
from pipeline.tracking.report import plots
from pipeline.tracking.report.inputs import RunForReport, ScoredEval

GRID_IMAGES = 12


def eval_plots(run: RunForReport, out: str) -> list[str]:
    scored = run.scored_eval()
    scores = scored.scores
    plots.plot_confusion_matrix(
        scores.true_labels, scores.predicted_labels, scores.class_names, os.path.join(out, "confusion_matrix.png")
    )
    if run.config.task != "detection":  # No boxes: nothing to measure IoU on or to draw.
        return ["confusion_matrix.png"]
    return ["confusion_matrix.png", *_box_plots(run, scored, out)]


def _box_plots(run: RunForReport, scored: ScoredEval, out: str) -> list[str]:
    scores, serialized = scored.scores, scored.serialized
    # IoU on the images that have a box; an image with no object in it has none to measure.
    boxed, hit = scores.boxed, run.config.evaluation.hit_iou
    ious = scores.ious[boxed]
    plots.plot_iou_histogram(ious, os.path.join(out, "iou_histogram.png"), run.config.evaluation.min_iou, hit)
    plots.plot_iou_by_box_size(scores.true_boxes[boxed], ious, os.path.join(out, "iou_by_box_size.png"), hit)
    # The first images (a fair sample: the split is a filename hash), then the worst ones.
    first = list(range(min(GRID_IMAGES, len(serialized))))
    ranked = np.where(boxed, scores.ious, 1.0)  # An empty image is only wrong by its class.
    worst = plots.worst_first(ranked, scores.true_labels, scores.predicted_labels, GRID_IMAGES)
    grids = (
        (first, "eval_boxes.png", "Eval images"),
        (worst, "eval_boxes_worst.png", "Worst eval images (wrong class first, then lowest IoU)"),
    )
    for shown, name, title in grids:
        plots.plot_box_grid(
            plots.decode_images([serialized[index] for index in shown], features_lib.IMAGE),
            scores.true_boxes[shown],
            scores.shown_predicted_boxes[shown],
            [scores.true_labels[index] for index in shown],
            [scores.predicted_labels[index] for index in shown],
            os.path.join(out, name),
            title=title,
        )
    return ["iou_histogram.png", "iou_by_box_size.png", "eval_boxes.png", "eval_boxes_worst.png"]
