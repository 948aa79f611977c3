"""The run report: each plot on tiny synthetic inputs, Grad-CAM on a network whose answer is known, the model
card, and build_run_report on a tiny SavedModel with the real export's signatures, logged to MLflow."""

import dataclasses
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from matplotlib import patches
from mlflow.tracking import MlflowClient
from PIL import Image
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from components.evaluator import report
from components.validation import data_report
from components.validation import gate as validation_gate
from pipeline import config as config_lib
from pipeline.tracking import report as pipeline_report
from pipeline.tracking import result as result_lib
from pipeline.tracking import run_record
from tests.helpers import REPO_ROOT, run_results

ROOT = str(REPO_ROOT)
CLASSES = ["red", "green"]
SIZE = 8


def _history(unfreeze: int, epochs: int) -> dict:
    rows = [
        {
            "phase": "frozen" if epoch < unfreeze else "finetune",
            "epoch": epoch,
            "loss": 2.0 - 0.1 * epoch,
            "val_loss": 2.1 - 0.1 * epoch,
            "probabilities_accuracy": 0.1 * epoch,
            "val_probabilities_accuracy": 0.05 * epoch,
            "box_iou": 0.2,
            "val_box_iou": 0.15,
        }
        for epoch in range(epochs)
    ]
    return {"unfreeze_epoch": unfreeze, "epochs": rows}


def test_learning_curves_show_both_splits_and_the_unfreeze_point(tmp_path):
    path = str(tmp_path / "curves.png")
    figure = report.plot_learning_curves(_history(unfreeze=2, epochs=4), path)
    assert os.path.getsize(path) > 0
    loss, accuracy, iou = figure.axes
    train, val, unfreeze = loss.lines
    assert list(train.get_xdata()) == [0, 1, 2, 3]
    np.testing.assert_allclose(val.get_ydata(), [2.1, 2.0, 1.9, 1.8])
    np.testing.assert_allclose(accuracy.lines[0].get_ydata(), [0.0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(iou.lines[1].get_ydata(), [0.15] * 4)
    assert list(unfreeze.get_xdata()) == [1.5, 1.5]  # Between the last frozen and the first unfrozen epoch.


def test_learning_curves_without_a_frozen_phase_have_no_unfreeze_line(tmp_path):
    figure = report.plot_learning_curves(_history(unfreeze=0, epochs=3), str(tmp_path / "curves.png"))
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


def _tiny_classifier() -> tf_keras.Model:
    """Image in; a nested 'backbone' whose 1x1 conv copies the red and green channels; pooled; a softmax head
    whose logit for "red" is the mean red value and for "green" the mean green value. Grad-CAM for "red" must
    therefore light up exactly the red pixels."""
    pixels = tf_keras.Input((SIZE, SIZE, 3), name="pixels")
    copied = tf_keras.layers.Conv2D(2, 1, use_bias=False, activation="relu", name="copy_red_green")(pixels)
    backbone = tf_keras.Model(pixels, copied, name="backbone")
    image = tf_keras.Input((SIZE, SIZE, 3), dtype=tf.int64, name="image")
    scaled = tf_keras.layers.Rescaling(1.0 / 255.0, name="scale")(image)
    pooled = tf_keras.layers.GlobalAveragePooling2D(name="pool")(backbone(scaled))
    probabilities = tf_keras.layers.Dense(2, activation="softmax", name="probabilities")(pooled)
    box = tf_keras.layers.Dense(4, activation="sigmoid", name="box")(pooled)
    model = tf_keras.Model({"image": image}, {"probabilities": probabilities, "box": box})
    backbone.get_layer("copy_red_green").set_weights([np.eye(3, 2).reshape(1, 1, 3, 2).astype(np.float32)])
    model.get_layer("probabilities").set_weights([np.eye(2, dtype=np.float32) * 4.0, np.zeros(2, np.float32)])
    return model


def _untrained_tiny_classifier() -> tf_keras.Model:
    """Same layers as _tiny_classifier, different weights: what the report's loader gets before loading."""
    model = _tiny_classifier()
    model.get_layer("probabilities").set_weights([np.zeros((2, 2), np.float32), np.array([3.0, 0.0], np.float32)])
    return model


def test_the_report_loads_the_saved_network_itself(tmp_path):
    """What the report reads for Grad-CAM: the SavedModel, reloaded by Keras, answers as the network did."""
    _tiny_classifier().save(str(tmp_path / "model"), save_format="tf")
    image = tf.constant(_red_top_left_green_bottom_right()[np.newaxis])
    loaded = pipeline_report.load_trained_model(str(tmp_path / "model"))
    np.testing.assert_allclose(
        loaded({"image": image})["probabilities"], _tiny_classifier()({"image": image})["probabilities"], atol=1e-6
    )


def _red_top_left_green_bottom_right() -> np.ndarray:
    image = np.zeros((SIZE, SIZE, 3), np.int64)
    image[:3, :3, 0] = 255
    image[5:, 5:, 1] = 255
    return image


@pytest.mark.parametrize("reloaded", [False, True], ids=["built", "reloaded-from-savedmodel"])
def test_grad_cam_lights_up_the_evidence_for_the_explained_class(tmp_path, reloaded):
    model = _tiny_classifier()
    if reloaded:  # As build_run_report gets it: rebuilt by tf_keras from a SavedModel.
        model.save(str(tmp_path / "model"), save_format="tf")
        model = tf_keras.models.load_model(str(tmp_path / "model"), compile=False)
    image = _red_top_left_green_bottom_right()
    inputs = {"image": tf.constant(image[np.newaxis])}
    red_map, explained = report.grad_cam(model, inputs, class_indices=[0])
    assert explained.tolist() == [0] and red_map.shape == (1, SIZE, SIZE)
    assert red_map[0, :3, :3].min() == pytest.approx(1.0) and red_map[0].sum() == pytest.approx(9.0)
    green_map, _ = report.grad_cam(model, inputs, class_indices=[1])
    assert green_map[0, 5:, 5:].min() == pytest.approx(1.0) and green_map[0].sum() == pytest.approx(9.0)
    # Without class indices it explains the predicted class: more red than green pixels makes it "red".
    image[:6, :6, 0] = 255
    _, predicted = report.grad_cam(model, {"image": tf.constant(image[np.newaxis])})
    assert predicted.tolist() == [0]
    figure = report.plot_grad_cam([image.astype(np.uint8)], red_map, ["red"], str(tmp_path / "cam.png"))
    assert len(figure.axes) == 2


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _raw_example(image: np.ndarray, label: str, box) -> bytes:
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_png(image)])),
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
    }
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _export(model: tf_keras.Model, model_dir: str) -> None:
    """The tiny classifier with components/trainer/export.py's signatures: serialized raw examples in."""
    spec = {"image": tf.io.FixedLenFeature([1], tf.string)}

    def transform(serialized):
        raw = tf.io.parse_example(serialized, spec)
        image = tf.map_fn(
            lambda data: tf.cast(tf.io.decode_png(data, channels=3), tf.int64),
            raw["image"][:, 0],
            fn_output_signature=tf.TensorSpec([SIZE, SIZE, 3], tf.int64),
        )
        return {"image": image}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized):
        outputs = model(transform(serialized), training=False)
        probabilities = outputs["probabilities"]
        classes = tf.constant(CLASSES)
        return {
            "probabilities": probabilities,
            "classes": tf.tile(classes[tf.newaxis, :], [tf.shape(probabilities)[0], 1]),
            "label": tf.gather(classes, tf.argmax(probabilities, axis=1)),
            "box": outputs["box"],
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        return transform(serialized)

    model.save(
        model_dir, save_format="tf", signatures={"serving_default": serve, "transform_features": transform_features}
    )


def _statistics(num_examples: int) -> statistics_pb2.DatasetFeatureStatisticsList:
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = statistics.datasets.add(num_examples=num_examples)
    feature = dataset.features.add()
    feature.path.step.append("label")
    feature.string_stats.unique = 2
    return statistics


def _write_gzip_records(path: str, records: list[bytes]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)


@pytest.fixture()
def tiny_run(tmp_path):
    """A pipeline root with what build_run_report reads, and the RunRecord that points at it."""
    root = tmp_path / "pipeline_root"
    _export(_tiny_classifier(), str(root / "Trainer" / "model" / "7" / "Format-Serving"))
    (root / "Trainer" / "model_run" / "7").mkdir(parents=True)
    (root / "Trainer" / "model_run" / "7" / "history.json").write_text(json.dumps(_history(1, 3)))
    red, green = np.zeros((SIZE, SIZE, 3)), np.zeros((SIZE, SIZE, 3))
    red[:4, :4, 0] = 255
    green[4:, 4:, 1] = 255
    examples = [
        _raw_example(red, "red", (0.0, 0.0, 0.5, 0.5)),
        _raw_example(green, "green", (0.5, 0.5, 1.0, 1.0)),
        _raw_example(green, "red", (0.5, 0.5, 1.0, 1.0)),
    ]
    _write_gzip_records(str(root / "ImageExampleGen" / "examples" / "1" / "Split-eval" / "data.gz"), examples)
    splits = ("train", "val", "eval")
    for split in splits:
        path = root / "StatisticsGen" / "statistics" / "3" / f"Split-{split}"
        path.mkdir(parents=True)
        (path / "FeatureStats.pb").write_bytes(_statistics(3).SerializeToString())
        path = root / "ExampleValidator" / "anomalies" / "4" / f"Split-{split}"
        path.mkdir(parents=True)
        (path / validation_gate.ANOMALIES_FILE).write_bytes(anomalies_pb2.Anomalies().SerializeToString())

    def node(node_id, **outputs):
        # As ML Metadata records them: the split-holding artifacts say their splits.
        properties = (
            {"split_names": json.dumps(list(splits))} if node_id in ("StatisticsGen", "ExampleValidator") else {}
        )
        return run_record.NodeRecord(
            node_id,
            "COMPLETE",
            {key: [run_record.Output(str(root / uri), properties)] for key, uri in outputs.items()},
        )

    record = run_record.RunRecord(
        "run-1",
        {
            "Trainer": node("Trainer", model="Trainer/model/7", model_run="Trainer/model_run/7"),
            "ImageExampleGen": node("ImageExampleGen", examples="ImageExampleGen/examples/1"),
            "StatisticsGen": node("StatisticsGen", statistics="StatisticsGen/statistics/3"),
            "ExampleValidator": node("ExampleValidator", anomalies="ExampleValidator/anomalies/4"),
        },
    )
    config = config_lib.load_config(os.path.join(ROOT, "configs", "sample.yaml")).replace(pipeline_name="tiny")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("tiny", artifact_location=(tmp_path / "artifacts").as_uri())
    result = run_results.run_result(str(root))
    return root, record, result, config, client, client.create_run(experiment).info.run_id


def _logged(client, run_id) -> dict[str, str]:
    return {
        os.path.basename(item.path): item.path for item in client.list_artifacts(run_id, pipeline_report.ARTIFACT_DIR)
    }


def test_run_report_scores_the_eval_split_and_logs_every_part(tiny_run, tmp_path):
    _, record, run, config, client, run_id = tiny_run
    evaluation = run_results.evaluation(
        metrics={"eval_accuracy": 0.66, "eval_iou": 0.5}, blessed=False, gate_failures=("accuracy too low",)
    )
    run = dataclasses.replace(run, evaluation=evaluation)
    result = pipeline_report.build_run_report(config, record, run, client, run_id)
    expected = {
        "learning_curves.png",
        "confusion_matrix.png",
        "iou_histogram.png",
        "iou_by_box_size.png",
        "eval_boxes_worst.png",
        "eval_boxes.png",
        "model_summary.txt",
        "grad_cam.png",
        "anomalies.txt",
        "statistics.html",
        "statistics_facets.html",
        "model_card.md",
    }
    assert result["failed"] == []
    assert set(result["written"]) == expected
    assert set(_logged(client, run_id)) == expected
    local = client.download_artifacts(run_id, pipeline_report.ARTIFACT_DIR, str(tmp_path / "downloaded"))
    card = open(os.path.join(local, "model_card.md")).read()
    # The tiny network gets the red and the green image right and the mislabelled third one "wrong".
    assert "| red | 2 | 0.5000 |" in card and "| green | 1 | 1.0000 |" in card
    assert "**Not blessed**: accuracy too low" in card
    assert "backbone: 2 layers" in open(os.path.join(local, "model_summary.txt")).read()
    assert "facets-overview" in open(os.path.join(local, "statistics_facets.html")).read()
    # The page people open renders offline: no script, nothing to fetch; and it says the data was clean.
    page = open(os.path.join(local, "statistics.html")).read()
    assert "<script" not in page and "src=" not in page and "@import" not in page
    assert "0 anomalies: the data matches the schema." in page and "<td>label</td>" in page
    assert open(os.path.join(local, "anomalies.txt")).read() == "0 anomalies: the data matches the schema.\n"
    for name in expected:
        assert os.path.getsize(os.path.join(local, name)) > 0


def test_a_part_that_fails_is_listed_and_the_rest_is_still_logged(tiny_run):
    root, record, run, config, client, run_id = tiny_run
    for split in ("train", "eval"):
        os.remove(root / "StatisticsGen" / "statistics" / "3" / f"Split-{split}" / "FeatureStats.pb")
    result = pipeline_report.build_run_report(config, record, run, client, run_id)
    assert [line.split(":")[0] for line in result["failed"]] == ["TFDV statistics"]
    logged = _logged(client, run_id)
    assert "statistics.html" not in logged
    assert {"failures.txt", "anomalies.txt", "grad_cam.png", "model_card.md", "eval_boxes.png"} <= set(logged)


def test_anomalies_are_listed_in_the_report_with_their_count(tiny_run, tmp_path):
    root, record, run, config, client, run_id = tiny_run
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["camera_id"]
    info.short_description = "Unexpected string values"
    info.reason.add(description="Examples contain values missing from the schema: cam_99 (~10%). ")
    (root / "ExampleValidator" / "anomalies" / "4" / "Split-eval" / validation_gate.ANOMALIES_FILE).write_bytes(
        anomalies.SerializeToString()
    )
    result = pipeline_report.build_run_report(config, record, run, client, run_id)
    assert result["failed"] == []
    local = client.download_artifacts(run_id, pipeline_report.ARTIFACT_DIR, str(tmp_path / "downloaded"))
    line = "[eval] feature 'camera_id': Unexpected string values: Examples contain values missing from the schema"
    text = open(os.path.join(local, "anomalies.txt")).read()
    assert text.startswith("1 anomalies:\n") and line in text
    page = open(os.path.join(local, "statistics.html")).read()
    assert "1 anomalies:" in page and "cam_99" in page and "0 anomalies" not in page


def test_the_static_statistics_page_shows_each_feature_of_each_split():
    import pandas as pd
    import tensorflow_data_validation as tfdv

    statistics = {
        split: tfdv.generate_statistics_from_dataframe(
            pd.DataFrame({"hour": [1, 2, 2, 3, None][:size], "camera_id": ["a", "b", "a", "a", "c"][:size]})
        )
        for split, size in (("train", 5), ("eval", 3))
    }
    page = data_report.statistics_html(statistics, [])
    assert "train: 5 examples, eval: 3 examples" in page
    assert page.count("<td>hour</td>") == 2 and page.count("<td>camera_id</td>") == 2
    # train's hour: 4 present, 1 missing (20%), mean 2; its histogram is an inline SVG with one bar per bucket.
    assert "<td>hour</td><td>train</td><td class='number'>4</td><td class='number'><span class='warn'>20.0%" in page
    assert "<td class='number'>2</td>" in page and page.count("<svg") == 2 and "<rect" in page
    assert "<td>a (3), " in page and "<td>a (2), b (1)</td>" in page  # Most frequent first.
    assert "0 anomalies" in page and "<script" not in page


def test_grad_cam_refuses_a_network_that_is_not_the_served_one(tiny_run):
    _, record, run, config, client, run_id = tiny_run
    result = pipeline_report.build_run_report(
        config, record, run, client, run_id, load_network=lambda model_dir: _untrained_tiny_classifier()
    )
    assert len(result["failed"]) == 1 and "differs from the served model" in result["failed"][0]
    logged = _logged(client, run_id)
    assert "grad_cam.png" not in logged and {"model_summary.txt", "failures.txt"} <= set(logged)


def test_model_card_states_data_metrics_gates_and_limits():
    config = config_lib.load_config(os.path.join(ROOT, "configs", "sample.yaml"))
    scores = report.EvalScores(
        class_names=("a", "b"),
        true_labels=("a", "a", "b"),
        predicted_labels=("a", "b", "b"),
        true_boxes=np.array([[0, 0, 1, 1]] * 3, float),
        predicted_boxes=np.array([[0, 0, 1, 1], [0, 0, 0.5, 1], [0, 0, 0.1, 0.1]], float),
    )
    run = run_results.run_result(
        ingest={"records": 10, "accepted": 9, "rejected": 1},
        evaluation=run_results.evaluation(metrics={"eval_accuracy": 0.6667, "eval_iou": 0.5}, blessed=True),
        pushed_path="/serving/17",
    )
    card = pipeline_report.model_card(config, run, scores, registered_model="xfer-sample")
    for heading in (
        "## Model",
        "## Training",
        "## Data",
        "## Evaluation",
        "## Gates and blessing",
        "## Intended use",
        "## Limitations",
    ):
        assert heading in card
    assert "10 read, 9 accepted, 1 rejected" in card
    assert f"| accuracy (TFMA) | 0.6667 | >= {config.evaluation.min_accuracy:g} |" in card
    assert "| share of boxes with IoU >= 0.5 | 0.6667 |" in card  # IoUs 1.0, 0.5, 0.01.
    assert "| a | 2 | 0.5000 |" in card and "| b | 1 | 1.0000 |" in card
    assert "**Blessed**" in card and "`/serving/17`; registered in MLflow as `xfer-sample`, alias `champion`" in card
    blocked = run_results.evaluation(blessed=False, gate_failures=("iou too low",))
    unpushed = pipeline_report.model_card(config, run_results.run_result(evaluation=blocked), None)
    assert "**Not blessed**: iou too low" in unpushed and "Not pushed" in unpushed


def test_model_card_says_what_the_model_was_compared_with():
    config = config_lib.load_config(os.path.join(ROOT, "configs", "sample.yaml"))
    gates = (
        result_lib.GateRow("eval_accuracy", "absolute", ">= 0.9", 0.91, True),
        result_lib.GateRow("eval_accuracy", "change", "change >= -0.01", 0.91, False, champion=0.95, change=-0.04),
    )
    note = "change gates against the champion, version 3"
    evaluation = run_results.evaluation(blessed=False, gates=gates, champion_note=note)
    card = pipeline_report.model_card(config, run_results.run_result(evaluation=evaluation), None)
    assert "- Champion: change gates against the champion, version 3." in card
    assert "- eval_accuracy against the champion: 0.9100 vs 0.9500, change -0.0400 (change >= -0.01): FAIL." in card
    is_champion = run_results.evaluation(
        blessed=True, comparison=run_results.comparison(compared=False, is_champion=True)
    )
    again = pipeline_report.model_card(config, run_results.run_result(evaluation=is_champion), None)
    assert "Not pushed: this model is already the champion." in again
