"""A tiny SavedModel with the serving contract of components/trainer/export.py, whose answers depend on its
inputs in known ways: for the registry, the pyfunc and batch scoring tests."""

import io
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from components.serving import contract

CLASSES = ["circle", "square"]
TYPES = {"image": "string", "capture_hour": "int", "camera_id": "string"}


def tiny_saved_model(path: str, bias: float) -> str:
    """Same `serving_default` contract as components/trainer/export.py: serialized raw examples in; probabilities,
    classes, label and box out. The score of "square" grows with capture_hour, so outputs depend on inputs."""
    spec = {
        "image": tf.io.FixedLenFeature([1], tf.string),
        "capture_hour": tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
        "camera_id": tf.io.FixedLenFeature([1], tf.string, default_value=[""]),
    }
    module = tf.Module()
    module.bias = tf.Variable(bias)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized):
        raw = tf.io.parse_example(serialized, spec)
        hour = tf.cast(raw["capture_hour"][:, 0], tf.float32)
        image = tf.map_fn(
            lambda data: tf.cast(tf.io.decode_png(data, channels=3), tf.float32),
            raw["image"][:, 0],
            fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32),
        )
        brightness = tf.reduce_mean(image, axis=[1, 2, 3]) / 255.0
        logits = tf.stack([tf.zeros_like(hour), hour / 12.0 - 1.0 + module.bias], axis=1)
        probabilities = tf.nn.softmax(logits)
        classes = tf.constant(CLASSES)
        size = tf.shape(probabilities)[0]
        return {
            "probabilities": probabilities,
            "classes": tf.tile(classes[tf.newaxis, :], [size, 1]),
            "label": tf.gather(classes, tf.argmax(probabilities, axis=1)),
            "box": tf.stack([tf.zeros([size]), tf.zeros([size]), brightness, brightness], axis=1),
        }

    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    os.makedirs(os.path.join(path, "assets.extra"))
    with open(os.path.join(path, "assets.extra", contract.RAW_FEATURES_FILE), "w") as handle:
        json.dump(TYPES, handle)
    return path


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def raw_example(hour: int, brightness: int) -> bytes:
    return contract.make_raw_example(png(brightness), {"capture_hour": hour, "camera_id": "cam_01"}, TYPES)
