"""What a pushed SavedModel takes and answers, for every client that scores one.

`serving_default` (components/trainer/export.py) takes serialized raw `tf.Example`s (the encoded image and
the metadata columns `assets.extra/raw_features.json` lists with their types) and answers `probabilities`,
`classes`, `label` and, with a box head, `box` (corners as fractions of the image sent). Everything here
builds those examples or reads that answer.

This module ships inside each registered model and is imported where only the model's own requirements are
installed, so it imports TensorFlow and numpy and nothing else of the pipeline (tests/components/serving
loads a registered model in a fresh virtualenv to keep it so).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from components import names

# Beside the SavedModel: the raw inputs and their types ("string", "int", "float").
RAW_FEATURES_FILE = "raw_features.json"
# Where the registered pyfunc model keeps the SavedModel: its artifact key. The registry logs it under this
# key, the pyfunc and the Champion node read it back.
SAVED_MODEL_ARTIFACT = "saved_model"
SERVING_SIGNATURE = "serving_default"


def load_raw_feature_types(model_dir: str) -> dict[str, str]:
    with tf.io.gfile.GFile(os.path.join(model_dir, "assets.extra", RAW_FEATURES_FILE)) as handle:
        return json.load(handle)


def make_raw_example(image_bytes: bytes, metadata: Mapping[str, Any], types: Mapping[str, str]) -> bytes:
    """A serialized raw `tf.Example` from image bytes and metadata values, typed as the model expects."""
    feature = {names.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes]))}
    for name, value in metadata.items():
        if name not in types:
            raise ValueError(f"the model has no input {name!r}; its inputs are {', '.join(sorted(types))}")
        kind = types[name]
        try:
            if kind == "int":
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            elif kind == "float":
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
            else:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        except ValueError:
            raise ValueError(
                f"{name} must be {'a whole number' if kind == 'int' else 'a number'}, got {value!r}"
            ) from None
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@dataclasses.dataclass(frozen=True)
class Served:
    """A batch's answer from `serving_default`, decoded once for every client (`xfer predict`, batch scoring,
    the registry's pyfunc, the report's scoring)."""

    labels: tuple[str, ...]  # The predicted class of each example.
    class_names: tuple[str, ...]  # The order of `probabilities`' columns.
    probabilities: np.ndarray  # (examples, classes), float64.
    boxes: np.ndarray | None  # (examples, 4) corners as fractions of the image sent; None without a box head.
    # Whether each example's answer has a box: False where the class is the no-object one (ingest.no_object:
    # keep); None from a model that does not say (every answer of a box head then has its box).
    has_box: np.ndarray | None = None


def decode_served(outputs: Mapping[str, tf.Tensor]) -> Served:
    """`serving_default`'s output tensors -> `Served`."""
    labels = tuple(label.decode() for label in outputs["label"].numpy())
    classes = outputs["classes"].numpy()
    return Served(
        labels=labels,
        class_names=tuple(name.decode() for name in classes[0]) if len(classes) else (),
        probabilities=outputs["probabilities"].numpy().astype(np.float64),
        boxes=outputs["box"].numpy().astype(np.float64) if "box" in outputs else None,
        has_box=outputs["has_box"].numpy().astype(bool) if "has_box" in outputs else None,
    )


def serve(signature, serialized: list[bytes]) -> Served:
    """Scores serialized raw examples with a loaded `serving_default` signature."""
    return decode_served(signature(examples=tf.constant(serialized, dtype=tf.string)))
