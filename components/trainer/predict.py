"""Scores one image with an exported model through its raw-example serving signature."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from components import names
from components.trainer import export


def resolve_model_dir(model_dir: str) -> str:
    """A SavedModel folder itself, or the newest numbered version inside a serving folder."""
    if tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
        return model_dir
    versions = (
        [name.rstrip("/") for name in tf.io.gfile.listdir(model_dir) if name.rstrip("/").isdigit()]
        if tf.io.gfile.isdir(model_dir)
        else []
    )
    if not versions:
        raise FileNotFoundError(f"{model_dir} is neither a SavedModel nor a folder of numbered model versions")
    return os.path.join(model_dir, max(versions, key=int))


def predict_serialized(model_dir: str, serialized: list[bytes]) -> list[dict[str, Any]]:
    model = tf.saved_model.load(model_dir)
    served = export.decode_served(model.signatures["serving_default"](examples=tf.constant(serialized)))
    results = []
    for index, label in enumerate(served.labels):
        probabilities = served.probabilities[index].tolist()
        result: dict[str, Any] = {
            "class": label,
            "probabilities": {name: round(p, 6) for name, p in zip(served.class_names, probabilities, strict=True)},
        }
        if served.boxes is not None:  # Absent from classification-only models.
            corners = (round(v, 6) for v in served.boxes[index].tolist())
            result["box"] = dict(zip(names.BOX_CORNERS, corners, strict=True))
        results.append(result)
    return results


def predict_file(model_dir: str, image_path: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    model_dir = resolve_model_dir(model_dir)
    with tf.io.gfile.GFile(image_path, "rb") as handle:
        image_bytes = handle.read()
    serialized = export.make_raw_example(image_bytes, metadata, export.load_raw_feature_types(model_dir))
    return {"model": model_dir, "image": image_path, **predict_serialized(model_dir, [serialized])[0]}
