"""The run report's plots (pipeline/tracking/report/plots.py), each on tiny synthetic inputs, and Grad-CAM on a
network whose answer is known."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from matplotlib import patches

from components.evaluator import scores as eval_scores
from pipeline.tracking.report import plots as report
from tests.helpers import tiny_report


def test_learning_curves_show_both_splits_and_the_unfreeze_point(tmp_path):
    path = str(tmp_path / "curves.png")
    figure = report.plot_learning_curves(tiny_report.history(unfreeze=2, epochs=4), path)
    assert os.path.getsize(path) > 0
    loss, accuracy, iou = figure.axes
    train, val, unfreeze = loss.lines
    assert list(train.get_xdata()) == [0, 1, 2, 3]
    np.testing.assert_allclose(val.get_ydata(), [2.1, 2.0, 1.9, 1.8])
    np.testing.assert_allclose(accuracy.lines[0].get_ydata(), [0.0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(iou.lines[1].get_ydata(), [0.15] * 4)
    assert list(unfreeze.get_xdata()) == [1.5, 1.5]  # Between the last frozen and the first unfrozen epoch.


def test_learning_curves_without_a_frozen_phase_have_no_unfreeze_line(tmp_path):
    figure = report.plot_learning_curves(tiny_report.history(unfreeze=0, epochs=3), str(tmp_path / "curves.png"))
    assert all(len(axes.lines) == 2 for axes in figure.axes)


def test_confusion_matrix_counts_true_rows_and_predicted_columns(tmp_path):
    labels = ["cat", "cat", "dog", "bird", "dog"]
    predicted = ["cat", "dog", "dog", "cat", "dog"]
    names = ["bird", "cat", "dog"]
    np.testing.assert_array_equal(report.confusion_matrix(labels, predicted, names), [[0, 1, 0], [0, 1, 1], [0, 0, 2]])
    figure = report.plot_confusion_matrix(labels, predicted, names, str(tmp_path / "cm.png"))
    assert [text.get_text() for text in figure.axes[0].texts] == ["0", "1", "0", "0", "1", "1", "0", "0", "2"]
    assert "accuracy 0.600" in figure.axes[0].get_title()
    with pytest.raises(ValueError, match="fish"):
        report.confusion_matrix(["fish"], ["cat"], names)


def test_iou_histogram_counts_every_box_and_marks_one_half(tmp_path):
    ious = [0.0, 0.1, 0.45, 0.5, 0.55, 0.9, 1.0]
    figure = report.plot_iou_histogram(ious, str(tmp_path / "iou.png"))
    axes = figure.axes[0]
    assert sum(patch.get_height() for patch in axes.patches) == len(ious)
    assert list(axes.lines[0].get_xdata()) == [0.5, 0.5]
    assert "57% at or above 0.5" in axes.get_title()


def test_iou_histogram_draws_the_mean_and_the_gate_it_is_held_to(tmp_path):
    ious = [0.2, 0.4, 0.6]
    figure = report.plot_iou_histogram(ious, str(tmp_path / "iou.png"), mean_gate=0.65, hit_iou=0.5)
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    assert lines["gate: mean >= 0.65"].get_xdata()[0] == 0.65
    assert lines["mean 0.400"].get_xdata()[0] == pytest.approx(0.4)
    assert lines["gate: mean >= 0.65"].get_color() == "red"  # The mean is below it.
    passing = report.plot_iou_histogram([0.9], str(tmp_path / "ok.png"), mean_gate=0.65)
    assert {line.get_label(): line for line in passing.axes[0].lines}["gate: mean >= 0.65"].get_color() == "green"


def test_iou_by_box_size_buckets_by_the_true_boxes_area():
    boxes = np.array(
        [
            [0.0, 0.0, 0.2, 0.2],  # 0.04 of the image: small
            [0.0, 0.0, 0.4, 0.4],  # 0.16: medium
            [0.0, 0.0, 0.6, 0.6],  # 0.36: large
            [0.1, 0.1, 0.9, 0.9],  # 0.64: large
        ]
    )
    sizes = report.iou_by_box_size(boxes, [0.1, 0.5, 0.7, 0.9])
    assert sizes["small"] == (1, pytest.approx(0.1))
    assert sizes["medium"] == (1, pytest.approx(0.5))
    assert sizes["large"] == (2, pytest.approx(0.8))
    empty = report.iou_by_box_size(boxes[:1], [0.3])
    assert empty["large"][0] == 0 and np.isnan(empty["large"][1])


def test_iou_by_box_size_plot_labels_each_bar_with_its_count(tmp_path):
    boxes = np.array([[0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.6, 0.6]])
    figure = report.plot_iou_by_box_size(boxes, [0.25, 0.75], str(tmp_path / "sizes.png"))
    axes = figure.axes[0]
    assert [round(patch.get_height(), 2) for patch in axes.patches] == [0.25, 0.0, 0.75]
    assert [text.get_text() for text in axes.texts] == ["n=1\n0.25", "n=0", "n=1\n0.75"]


def test_the_worst_images_are_the_wrong_class_first_then_the_lowest_iou():
    ious = [0.9, 0.1, 0.5, 0.8, 0.3]
    true = ["a", "a", "a", "b", "b"]
    pred = ["a", "a", "a", "a", "b"]
    assert report.worst_first(ious, true, pred, 3) == [3, 1, 4]


def test_box_grid_draws_true_and_predicted_boxes_in_pixels(tmp_path):
    images = [np.zeros((100, 200, 3), np.uint8), np.zeros((50, 50, 3), np.uint8)]
    true_boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    pred_boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 0.5, 0.5]])
    figure = report.plot_box_grid(images, true_boxes, pred_boxes, ["a", "b"], ["a", "a"], str(tmp_path / "grid.png"))
    first, second = figure.axes[:2]
    # Each box is a dark outline and, over it, its coloured stroke.
    true_outline, true_box, pred_outline, pred_box = [p for p in first.patches if isinstance(p, patches.Rectangle)]
    assert true_outline.get_edgecolor()[:3] == (0.0, 0.0, 0.0) and true_outline.get_xy() == true_box.get_xy()
    assert true_outline.get_linewidth() > true_box.get_linewidth() and pred_outline.get_linestyle() == "solid"
    assert true_box.get_xy() == pytest.approx((20.0, 20.0)) and true_box.get_width() == pytest.approx(80.0)
    assert true_box.get_height() == pytest.approx(40.0)
    assert pred_box.get_linestyle() == "--"
    assert "IoU 1.00" in first.get_title() and first.title.get_color() == "black"
    assert "IoU 0.25" in second.get_title() and second.title.get_color() == "red"  # Wrong class.


def test_box_colours_stand_out_from_any_object_colour(tmp_path):
    # A true box lying exactly on the edge of an object of the true box's default colour (the green of the
    # green squares), and a predicted box on one of the predicted box's default red.
    box = np.array([[0.25, 0.25, 0.75, 0.75]])
    for colours, object_colour in ((report.TRUE_COLORS, report.TRUE_COLORS[0]), (report.PREDICTED_COLORS, (255, 0, 0))):
        image = np.full((80, 80, 3), 30, np.uint8)
        image[20:60, 20:60] = object_colour
        chosen = report.contrasting_color(image, box[0], colours)
        assert np.linalg.norm(np.subtract(chosen, object_colour)) > 150

    image = np.full((80, 80, 3), 30, np.uint8)
    image[20:60, 20:60] = report.TRUE_COLORS[0]
    figure = report.plot_box_grid([image], box, np.array([[0.0, 0.0, 0.1, 0.1]]), ["a"], ["a"], str(tmp_path / "g.png"))
    # What was drawn, in pixels: the middle of the true box's top edge is not the object's green.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    x, y = figure.axes[0].transData.transform((40, 20))
    drawn = pixels[int(round(pixels.shape[0] - y)), int(round(x))]
    assert np.linalg.norm(drawn - np.array(report.TRUE_COLORS[0])) > 150


@pytest.mark.parametrize("reloaded", [False, True], ids=["built", "reloaded-from-savedmodel"])
def test_grad_cam_lights_up_the_evidence_for_the_explained_class(tmp_path, reloaded):
    model = tiny_report.tiny_classifier()
    if reloaded:  # As build_run_report gets it: rebuilt by tf_keras from a SavedModel.
        model.save(str(tmp_path / "model"), save_format="tf")
        model = tf_keras.models.load_model(str(tmp_path / "model"), compile=False)
    image = tiny_report.red_top_left_green_bottom_right()
    inputs = {"image": tf.constant(image[np.newaxis])}
    red_map, explained = report.grad_cam(model, inputs, class_indices=[0])
    assert explained.tolist() == [0] and red_map.shape == (1, tiny_report.SIZE, tiny_report.SIZE)
    assert red_map[0, :3, :3].min() == pytest.approx(1.0) and red_map[0].sum() == pytest.approx(9.0)
    green_map, _ = report.grad_cam(model, inputs, class_indices=[1])
    assert green_map[0, 5:, 5:].min() == pytest.approx(1.0) and green_map[0].sum() == pytest.approx(9.0)
    # Without class indices it explains the predicted class: more red than green pixels makes it "red".
    image[:6, :6, 0] = 255
    _, predicted = report.grad_cam(model, {"image": tf.constant(image[np.newaxis])})
    assert predicted.tolist() == [0]
    figure = report.plot_grad_cam([image.astype(np.uint8)], red_map, ["red"], str(tmp_path / "cam.png"))
    assert len(figure.axes) == 2


def test_iou_is_measured_on_boxed_images_and_empty_errors_are_counted():
    scores = eval_scores.EvalScores(
        class_names=("cat", "empty"),
        true_labels=("cat", "cat", "empty", "empty"),
        predicted_labels=("cat", "empty", "empty", "cat"),
        true_boxes=np.array([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6], [np.nan] * 4, [0.0, 0.0, 0.0, 0.0]]),
        predicted_boxes=np.array([[0.1, 0.1, 0.5, 0.5]] * 4),
    )
    assert list(scores.boxed) == [True, True, False, False]
    assert scores.no_object_errors("empty") == {"missed_object": (1, 2), "false_object": (1, 2)}


def test_the_box_grid_draws_no_box_where_there_is_none(tmp_path):
    images = [np.full((20, 20, 3), 90, np.uint8)] * 2
    true_boxes = np.array([[0.1, 0.1, 0.6, 0.6], [np.nan] * 4])
    predicted = np.array([[0.1, 0.1, 0.5, 0.5], [np.nan] * 4])
    figure = report.plot_box_grid(
        images, true_boxes, predicted, ["cat", "empty"], ["cat", "empty"], str(tmp_path / "grid.png")
    )
    first, second = figure.axes[:2]
    assert len(first.patches) == 4 and len(second.patches) == 0  # Two outlined boxes; none on the empty image.
    assert second.get_title().endswith("no box")
