"""The MLflow Model Registry side of a push: each pushed model becomes a new version of one registered model,
with its signature and an input example, and the alias `champion` moves to it. Earlier versions stay.

The registered model is the pushed SavedModel itself, unchanged, behind an `mlflow.pyfunc` wrapper that takes
raw features (one column per input the model's `raw_features.json` lists, the image as encoded bytes) and
calls its `serving_default` signature. `mlflow.tensorflow.log_model` would re-save the model through
`tf.saved_model.save`, and its pyfunc calls the module rather than a signature, so it cannot serve this one.
"""

from __future__ import annotations

import base64
import importlib.metadata
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import tensorflow as tf
from mlflow.entities import LoggedModelOutput, Metric
from mlflow.tracking import MlflowClient

from components import names
from components.champion import component as champion_lib
from components.trainer import export
from components.transform import features as features_lib

# Shared with components/champion/component.py, which fetches the champion back for the Evaluator.
CHAMPION_ALIAS = champion_lib.CHAMPION_ALIAS
_ARTIFACT_KEY = champion_lib.SAVED_MODEL_ARTIFACT
_ROOT = Path(__file__).resolve().parents[2]
# What the wrapper imports when MLflow loads it elsewhere: xfer's own code ships with the model (code_paths).
_REQUIRED_DISTRIBUTIONS = ("tensorflow", "tensorflow-transform", "tf-keras", "pandas", "pyyaml")
# Where pipeline/tracking/report.py logs the model card in the run (its ARTIFACT_DIR); not imported, since that module
# pulls in TFX and Keras, which the Kubeflow Pusher's registration does not need.
_REPORT_DIR = "report"
_MODEL_CARD = "model_card.md"
# The registry's description column is 5000 characters on every SQL backend.
_MAX_DESCRIPTION = 5000


class ServingModel(mlflow.pyfunc.PythonModel):
    """Raw features in (a DataFrame, one row per image); label, class probabilities and box out."""

    def load_context(self, context) -> None:
        model_dir = context.artifacts[_ARTIFACT_KEY]
        self._model = tf.saved_model.load(model_dir)
        self._serve = self._model.signatures["serving_default"]
        self._types = export.load_raw_feature_types(model_dir)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_frame(self._serve, self._types, model_input)


def predict_frame(serve, types: dict[str, str], frame: pd.DataFrame) -> pd.DataFrame:
    serialized = [
        export.make_raw_example(
            _as_bytes(row[features_lib.IMAGE]),
            {name: row[name] for name in types if name != features_lib.IMAGE and name in row},
            types,
        )
        for _, row in frame.iterrows()
    ]
    served = export.decode_served(serve(examples=tf.constant(serialized, dtype=tf.string)))
    result = pd.DataFrame({"label": list(served.labels)})
    for index, name in enumerate(served.class_names):
        result[f"probability_{name}"] = served.probabilities[:, index]
    if served.boxes is not None:  # Classification-only models have no box.
        for index, corner in enumerate(names.BOX_CORNERS):
            result[corner] = served.boxes[:, index]
    return result


def _as_bytes(value: Any) -> bytes:
    # Binary columns arrive as bytes after MLflow's schema enforcement; a frame read back from the saved input
    # example (MLflow stores bytes in its JSON as base64 text) without enforcement carries the text.
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)


def input_example(model_dir: str, serialized_examples: Sequence[bytes]) -> pd.DataFrame:
    """Raw `tf.Example`s (as ImageExampleGen writes them) -> the DataFrame the registered model takes."""
    types = export.load_raw_feature_types(model_dir)
    rows = []
    for serialized in serialized_examples:
        feature = tf.train.Example.FromString(serialized).features.feature
        row = {}
        for name, kind in types.items():
            if name not in feature:
                raise ValueError(f"the example has no feature {name!r}, which the model takes")
            values = feature[name]
            if kind == "int":
                row[name] = int(values.int64_list.value[0])
            elif kind == "float":
                row[name] = float(values.float_list.value[0])
            elif name == features_lib.IMAGE:
                row[name] = bytes(values.bytes_list.value[0])
            else:
                row[name] = values.bytes_list.value[0].decode()
        rows.append(row)
    return pd.DataFrame(rows, columns=list(types))


def placeholder_input_example(model_dir: str) -> pd.DataFrame:
    """One made-up row of the model's raw inputs: a plain grey PNG and each metadata column's zero value.

    For a push with no eval example at hand (the Kubeflow Pusher's pod has only the model): it documents the
    input schema, and the model scores it (an empty string is a vocabulary's OOV value), as registration
    checks."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
    zeros = {"int": 0, "float": 0.0, "string": ""}
    types = export.load_raw_feature_types(model_dir)
    row = {name: buffer.getvalue() if name == features_lib.IMAGE else zeros[kind] for name, kind in types.items()}
    return pd.DataFrame([row], columns=list(types))


def register_champion(
    tracking_uri: str,
    run_id: str,
    model_dir: str,
    name: str,
    example: pd.DataFrame,
    data_digest: str | None = None,
) -> mlflow.entities.model_registry.ModelVersion:
    """Logs `model_dir` (a pushed SavedModel) to the MLflow run as a pyfunc model, registers it as a new
    version of `name` and points the alias `champion` at it. Returns the new version.

    The logged model carries each of the run's metrics at its final value (the last training epoch's, the
    evaluation's), the version has the run's model card (`report/model_card.md`) as its description and the
    gate outcome and the data digest as tags. `data_digest` defaults to the digest of the run's dataset input.
    """
    if example.empty:
        raise ValueError("the input example needs at least one row")
    # Model.log below gets no run id and would fall back to an active fluent run, copying its step-0 metrics.
    if mlflow.active_run() is not None:
        raise RuntimeError("register_champion works through the client; an active fluent run would get the model")
    client = MlflowClient(tracking_uri=tracking_uri)
    # The signature is inferred from what the model really returns for the example, computed here without
    # MLflow so that a model that cannot score its own example fails before anything is registered.
    predictions = predict_frame(
        tf.saved_model.load(model_dir).signatures["serving_default"], export.load_raw_feature_types(model_dir), example
    )
    signature = mlflow.models.infer_signature(example, predictions)
    run = client.get_run(run_id)
    # Created here in the run's experiment: left to Model.log, the logged model would go to the active (default)
    # experiment, whose artifacts live wherever the process happens to run.
    logged_model = client.create_logged_model(experiment_id=run.info.experiment_id, name="model", source_run_id=run_id)
    # Model.log, and register_model resolving `models:/<id>`, read the global tracking URI; it is restored
    # afterwards so the caller's MLflow state is unchanged.
    # Model.log is given no run id: with one, it would copy the run's metrics at one step (0 unless told)
    # onto the model, which is epoch 0 of training; the final values are linked below instead. The logged
    # model still names the run as its source (create_logged_model above).
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.models.Model.log(
            artifact_path=None,
            name="model",
            flavor=mlflow.pyfunc,
            model_id=logged_model.model_id,
            python_model=ServingModel(),
            artifacts={_ARTIFACT_KEY: model_dir},
            code_paths=[str(_ROOT / "components"), str(_ROOT / "pipeline")],
            signature=signature,
            input_example=example,
            pip_requirements=_pinned_requirements(),
        )
        final = final_metrics(client, run_id)
        step = max((metric.step for metric in final), default=0)
        client.log_outputs(run_id, [LoggedModelOutput(logged_model.model_id, step=step)])
        client.log_batch(run_id, metrics=[_for_model(metric, logged_model.model_id) for metric in final])
        # The config the model came from, on the model itself (Model.log copies it only for a model it creates).
        if run.data.params:
            client.log_model_params(logged_model.model_id, run.data.params)
        # register_model, not the client's create_model_version: it also links the logged model to its
        # version, which the logged model's page lists.
        tags = version_tags(run, model_dir, data_digest or _dataset_digest(run))
        version = mlflow.register_model(f"models:/{logged_model.model_id}", name, tags=tags).version
        client.update_model_version(name, version, description=model_card_description(client, run_id))
    finally:
        mlflow.set_tracking_uri(previous_uri)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    logging.info("Registered %s version %s as %s", name, version, CHAMPION_ALIAS)
    return client.get_model_version(name, version)


def final_metrics(client: MlflowClient, run_id: str) -> list[Metric]:
    """Each of the run's metrics at its last step (the latest logged, at equal steps): the final training
    epoch for the per-epoch curves, the one value for the evaluation's."""
    final = []
    for key in sorted(client.get_run(run_id).data.metrics):
        history = client.get_metric_history(run_id, key)
        if history:
            final.append(max(history, key=lambda metric: (metric.step, metric.timestamp)))
    return final


def _for_model(metric: Metric, model_id: str) -> Metric:
    # The same point of the run's history (key, value, time, step), linked to the model: the run's curves get
    # no extra point, as when MLflow links a step's metrics itself.
    return Metric(
        metric.key,
        metric.value,
        metric.timestamp,
        metric.step,
        dataset_name=metric.dataset_name,
        dataset_digest=metric.dataset_digest,
        model_id=model_id,
        run_id=metric.run_id,
    )


def _dataset_digest(run: mlflow.entities.Run) -> str:
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return ",".join(sorted({dataset_input.dataset.digest for dataset_input in inputs}))


def version_tags(run: mlflow.entities.Run, model_dir: str, data_digest: str) -> dict[str, str]:
    """What a version list should show without opening the run: the gate outcome, the data, where it is served."""
    run_tags = run.data.tags
    tags = {"pushed_path": model_dir}
    for key in ("outcome", "blessed", "gate_failures", "champion_version"):
        if run_tags.get(key):
            tags[key] = run_tags[key]
    if data_digest:
        tags["data_digest"] = data_digest
    return tags


def model_card_description(client: MlflowClient, run_id: str) -> str:
    """The run's model card (Markdown, as the registry page renders a description), or a line saying where it
    is missing; cut to what every registry backend stores."""
    import tempfile

    names = {os.path.basename(item.path) for item in client.list_artifacts(run_id, _REPORT_DIR)}
    if _MODEL_CARD not in names:
        return f"No model card: the report of run {run_id} has none (see its report/failures.txt)."
    with tempfile.TemporaryDirectory(prefix="xfer-card-") as folder:
        path = client.download_artifacts(run_id, f"{_REPORT_DIR}/{_MODEL_CARD}", folder)
        with open(path) as handle:
            card = handle.read()
    if len(card) <= _MAX_DESCRIPTION:
        return card
    ending = f"\n\n(cut here; the whole card is {_REPORT_DIR}/{_MODEL_CARD} in run {run_id})"
    return card[: _MAX_DESCRIPTION - len(ending)] + ending


def _pinned_requirements() -> list[str]:
    # Pinned from this environment, so MLflow does not load the model in a subprocess to guess them.
    return [f"{name}=={importlib.metadata.version(name)}" for name in _REQUIRED_DISTRIBUTIONS] + [
        f"mlflow=={mlflow.__version__}"
    ]


def champion(tracking_uri: str, name: str) -> mlflow.entities.model_registry.ModelVersion:
    return MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(name, CHAMPION_ALIAS)
