"""The registered model: the pushed SavedModel, unchanged, behind an `mlflow.pyfunc` wrapper.

It takes raw features as a DataFrame (one column per input the model's `raw_features.json` lists, the image
as encoded bytes, or as base64 text the way MLflow's scoring server receives binary columns in JSON) and
answers one row per image: `label`, `probability_<class>` per class, and the box corners (fractions of the
image sent) for a model with a box head.

`mlflow.tensorflow.log_model` would re-save the model through `tf.saved_model.save`, and its pyfunc calls the
module rather than a signature, so it cannot serve this one. This module and `contract` are all the code the
registered model carries (pipeline/tracking/registry.py logs them as its `code_paths`), so they import only
TensorFlow, numpy, pandas and MLflow: `mlflow models serve` builds its environment from the model's own
requirements, which list nothing of TFX, Beam or Transform's Python package (the Transform graph inside the
SavedModel runs on plain TensorFlow ops, as it does in TF Serving).
"""

from __future__ import annotations

import base64
from typing import Any

import mlflow
import pandas as pd
import tensorflow as tf

from components import names
from components.serving import contract

LABEL_COLUMN = "label"
HAS_BOX_COLUMN = "has_box"
PROBABILITY_PREFIX = "probability_"


class ServingModel(mlflow.pyfunc.PythonModel):
    """Raw features in (a DataFrame, one row per image); label, class probabilities and box out."""

    def load_context(self, context) -> None:
        model_dir = context.artifacts[contract.SAVED_MODEL_ARTIFACT]
        self._model = tf.saved_model.load(model_dir)
        self._serve = self._model.signatures[contract.SERVING_SIGNATURE]
        self._types = contract.load_raw_feature_types(model_dir)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_frame(self._serve, self._types, model_input)


def predict_frame(serve, types: dict[str, str], frame: pd.DataFrame) -> pd.DataFrame:
    """Scores a DataFrame of raw features with a loaded `serving_default` signature."""
    serialized = [
        contract.make_raw_example(
            _as_bytes(row[names.IMAGE]),
            {name: row[name] for name in types if name != names.IMAGE and name in row},
            types,
        )
        for _, row in frame.iterrows()
    ]
    return answer_frame(contract.serve(serve, serialized))


def answer_frame(served: contract.Served) -> pd.DataFrame:
    """The served answer as the registered model returns it: one row per image."""
    result = pd.DataFrame({LABEL_COLUMN: list(served.labels)})
    for index, name in enumerate(served.class_names):
        result[PROBABILITY_PREFIX + name] = served.probabilities[:, index]
    if served.boxes is not None:  # Classification-only models have no box.
        for index, corner in enumerate(names.BOX_CORNERS):
            result[corner] = served.boxes[:, index]
    if served.has_box is not None:  # A model that knows images with no object says which answers have a box.
        result[HAS_BOX_COLUMN] = served.has_box
    return result


def _as_bytes(value: Any) -> bytes:
    # Binary columns arrive as bytes after MLflow's schema enforcement; a frame read back from the saved input
    # example (MLflow stores bytes in its JSON as base64 text) without enforcement carries the text.
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)
