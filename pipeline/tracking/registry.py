"""The MLflow Model Registry side of a push: each pushed model becomes a new version of one registered model,
with its signature and an input example, and the alias `champion` moves to it. Earlier versions stay.

The registered model is the pushed SavedModel itself, unchanged, behind the `mlflow.pyfunc` wrapper of
components/serving/pyfunc.py. It carries that wrapper's code and nothing else of xfer, and requirements that
list only what the wrapper imports, so `mlflow models serve` and `mlflow.pyfunc.load_model` work in an
environment built from the model alone.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow
import pandas as pd
import tensorflow as tf
from mlflow.entities import LoggedModelOutput, Metric
from mlflow.tracking import MlflowClient

from components import mlflow_tags, names
from components.champion import component as champion_lib
from components.serving import contract, pyfunc
from pipeline import code_version
from pipeline.tracking.report import files as report_files

# Shared with components/champion/component.py, which fetches the champion back for the Evaluator.
CHAMPION_ALIAS = champion_lib.CHAMPION_ALIAS
# What the wrapper's code imports, pinned as installed here (MLflow adds itself); the model's code is the
# wrapper's own modules (serving_code), so nothing of TFX, Beam or Transform's Python package is needed.
# cloudpickle unpickles the wrapper object, as MLflow's own requirement inference would pin it.
_REQUIRED_DISTRIBUTIONS = ("tensorflow", "numpy", "pandas", "cloudpickle")
# The registry's description column is 5000 characters on every SQL backend.
_MAX_DESCRIPTION = 5000


def input_example(model_dir: str, serialized_examples: Sequence[bytes]) -> pd.DataFrame:
    """Raw `tf.Example`s (as ImageExampleGen writes them) -> the DataFrame the registered model takes."""
    types = contract.load_raw_feature_types(model_dir)
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
            elif name == names.IMAGE:
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
    types = contract.load_raw_feature_types(model_dir)
    row = {name: buffer.getvalue() if name == names.IMAGE else zeros[kind] for name, kind in types.items()}
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

    One function, long on purpose: its steps are ordered so that nothing is registered until the model has
    scored its own example, and the alias moves last; split up, that order would be the callers' to keep.
    """
    if example.empty:
        raise ValueError("the input example needs at least one row")
    # Model.log below gets no run id and would fall back to an active fluent run, copying its step-0 metrics.
    if mlflow.active_run() is not None:
        raise RuntimeError("register_champion works through the client; an active fluent run would get the model")
    client = MlflowClient(tracking_uri=tracking_uri)
    # The signature is inferred from what the model really returns for the example, computed here without
    # MLflow so that a model that cannot score its own example fails before anything is registered.
    predictions = pyfunc.predict_frame(
        tf.saved_model.load(model_dir).signatures[contract.SERVING_SIGNATURE],
        contract.load_raw_feature_types(model_dir),
        example,
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
    code_folder = tempfile.mkdtemp(prefix="xfer-model-code-")
    try:
        mlflow.models.Model.log(
            artifact_path=None,
            name="model",
            flavor=mlflow.pyfunc,
            model_id=logged_model.model_id,
            python_model=pyfunc.ServingModel(),
            artifacts={contract.SAVED_MODEL_ARTIFACT: model_dir},
            code_paths=serving_code(Path(code_folder)),
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
        shutil.rmtree(code_folder, ignore_errors=True)
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
    tags = {mlflow_tags.PUSHED_PATH: model_dir}
    for key in (mlflow_tags.OUTCOME, mlflow_tags.BLESSED, mlflow_tags.GATE_FAILURES, mlflow_tags.CHAMPION_VERSION):
        if run_tags.get(key):
            tags[key] = run_tags[key]
    if data_digest:
        tags[mlflow_tags.DATA_DIGEST] = data_digest
    return tags


def model_card_description(client: MlflowClient, run_id: str) -> str:
    """The run's model card (Markdown, as the registry page renders a description), or a line saying where it
    is missing; cut to what every registry backend stores."""
    files = {os.path.basename(item.path) for item in client.list_artifacts(run_id, report_files.ARTIFACT_DIR)}
    if report_files.CARD_FILE not in files:
        return (
            f"No model card: the report of run {run_id} has none "
            f"(see its {report_files.ARTIFACT_DIR}/{report_files.FAILURES_FILE})."
        )
    with tempfile.TemporaryDirectory(prefix="xfer-card-") as folder:
        path = client.download_artifacts(run_id, f"{report_files.ARTIFACT_DIR}/{report_files.CARD_FILE}", folder)
        with open(path) as handle:
            card = handle.read()
    if len(card) <= _MAX_DESCRIPTION:
        return card
    ending = f"\n\n(cut here; the whole card is {report_files.ARTIFACT_DIR}/{report_files.CARD_FILE} in run {run_id})"
    return card[: _MAX_DESCRIPTION - len(ending)] + ending


def serving_code(folder: Path) -> list[str]:
    """The registered model's code: the pyfunc's module and every project module it imports (read from the
    import statements, as the cache's code versions are), copied under `folder` as the packages they are.
    Returns the `code_paths` to log: MLflow copies each into the model's `code/` and puts that on sys.path."""
    closure = code_version.module_closure([pyfunc.__name__])
    tops = set()
    for path in closure.values():
        relative = path.relative_to(code_version.PROJECT_ROOT)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / relative)
        tops.add(relative.parts[0])
    return [str(folder / top) for top in sorted(tops)]


def _pinned_requirements() -> list[str]:
    # Pinned from this environment, so MLflow does not load the model in a subprocess to guess them.
    return [f"{name}=={importlib.metadata.version(name)}" for name in _REQUIRED_DISTRIBUTIONS] + [
        f"mlflow=={mlflow.__version__}"
    ]
