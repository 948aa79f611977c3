"""Scores one image with a pushed model through its raw-example serving signature (`xfer predict IMAGE`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from components import names
from components.ingest import image_io
from components.serving import contract


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


REGISTRY_PREFIX = "models:/"


def fetch_registered(model_uri: str, tracking_uri: str, destination: str) -> str:
    """Downloads a registered model (`models:/<name>@<alias>` or `models:/<name>/<version>`) into
    `destination` and returns its SavedModel folder: the pyfunc's MLmodel names where its artifact went."""
    import mlflow
    import yaml

    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=destination, tracking_uri=tracking_uri)
    with open(os.path.join(local, "MLmodel")) as handle:
        flavor = yaml.safe_load(handle)["flavors"]["python_function"]
    return os.path.join(local, flavor["artifacts"][contract.SAVED_MODEL_ARTIFACT]["path"])


def load_signature(model_dir: str):
    """The model's `serving_default`; the loaded model is kept alive by the signature's reference to it."""
    return tf.saved_model.load(model_dir).signatures[contract.SERVING_SIGNATURE]


def answers(served: contract.Served) -> list[dict[str, Any]]:
    """Each image's answer as `xfer predict` prints it: class, probabilities and the box as fractions."""
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
            if served.has_box is not None and not served.has_box[index]:
                result["box"] = None  # The no-object class: nothing in the image to put a box on.
        results.append(result)
    return results


def predict_serialized(model_dir: str, serialized: list[bytes]) -> list[dict[str, Any]]:
    return answers(contract.serve(load_signature(model_dir), serialized))


def predict_file(model_dir: str, image_path: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    model_dir = resolve_model_dir(model_dir)
    with tf.io.gfile.GFile(image_path, "rb") as handle:
        # Upright and 8-bit, as ingest stored the training images: the served graph's decoder ignores EXIF
        # orientation and alpha. A plain RGB or grayscale file passes through byte for byte.
        image = image_io.normalize(handle.read())
    serialized = contract.make_raw_example(image.data, metadata, contract.load_raw_feature_types(model_dir))
    return {"model": model_dir, "image": image_path, **predict_serialized(model_dir, [serialized])[0]}
