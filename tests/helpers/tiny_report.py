"""A tiny run report's inputs: a network whose answer is known (its Grad-CAM too), exported with the real
export's signatures, and a pipeline root and run result that point at it."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import tensorflow as tf
import tf_keras
from mlflow.tracking import MlflowClient
from PIL import Image
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from components import names
from components.validation import gate as validation_gate
from pipeline import config as config_lib
from tests.helpers import SAMPLE_CONFIG, run_results

CLASSES = ["red", "green"]
SIZE = 8


def history(unfreeze: int, epochs: int) -> dict:
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


def tiny_classifier() -> tf_keras.Model:
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


def untrained_tiny_classifier() -> tf_keras.Model:
    """Same layers as tiny_classifier, different weights: what the report's loader gets before loading."""
    model = tiny_classifier()
    model.get_layer("probabilities").set_weights([np.zeros((2, 2), np.float32), np.array([3.0, 0.0], np.float32)])
    return model


def red_top_left_green_bottom_right() -> np.ndarray:
    image = np.zeros((SIZE, SIZE, 3), np.int64)
    image[:3, :3, 0] = 255
    image[5:, 5:, 1] = 255
    return image


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def raw_example(image: np.ndarray, label: str, box) -> bytes:
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png(image)])),
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
    }
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def export(model: tf_keras.Model, model_dir: str) -> None:
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

    # The network's inputs as serving feeds them (here the same as the transformed features).
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transformed_inputs(serialized):
        return transform(serialized)

    model.save(
        model_dir,
        save_format="tf",
        signatures={
            "serving_default": serve,
            "transform_features": transform_features,
            "transformed_inputs": transformed_inputs,
        },
    )


def statistics(num_examples: int) -> statistics_pb2.DatasetFeatureStatisticsList:
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = statistics.datasets.add(num_examples=num_examples)
    feature = dataset.features.add()
    feature.path.step.append("label")
    feature.string_stats.unique = 2
    return statistics


def write_gzip_records(path: str, records: list[bytes]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)


def make_tiny_run(tmp_path):
    """A pipeline root with what build_run_report reads and the RunResult that points at it (laid out where
    `run_results.run_result` puts each output), the config, an MLflow client and a fresh run id."""
    root = tmp_path / "pipeline_root"
    export(tiny_classifier(), str(root / "Trainer" / "model" / "7" / "Format-Serving"))
    (root / "Trainer" / "model_run" / "7").mkdir(parents=True)
    (root / "Trainer" / "model_run" / "7" / "history.json").write_text(json.dumps(history(1, 3)))
    red, green = np.zeros((SIZE, SIZE, 3)), np.zeros((SIZE, SIZE, 3))
    red[:4, :4, 0] = 255
    green[4:, 4:, 1] = 255
    examples = [
        raw_example(red, "red", (0.0, 0.0, 0.5, 0.5)),
        raw_example(green, "green", (0.5, 0.5, 1.0, 1.0)),
        raw_example(green, "red", (0.5, 0.5, 1.0, 1.0)),
    ]
    write_gzip_records(str(root / "ImageExampleGen" / "examples" / "1" / "Split-eval" / "data.gz"), examples)
    for split in names.SPLITS:
        path = root / "StatisticsGen" / "statistics" / "3" / f"Split-{split}"
        path.mkdir(parents=True)
        (path / "FeatureStats.pb").write_bytes(statistics(3).SerializeToString())
        path = root / "ExampleValidator" / "anomalies" / "4" / f"Split-{split}"
        path.mkdir(parents=True)
        (path / validation_gate.ANOMALIES_FILE).write_bytes(anomalies_pb2.Anomalies().SerializeToString())

    config = config_lib.load_config(SAMPLE_CONFIG).replace(pipeline_name="tiny")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("tiny", artifact_location=(tmp_path / "artifacts").as_uri())
    result = run_results.run_result(str(root))
    return root, result, config, client, client.create_run(experiment).info.run_id
