"""Registering pushed models in the MLflow Model Registry (sqlite backend), on a tiny SavedModel built here."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from components.champion import component as champion
from pipeline.tracking import registry
from tests.helpers.tiny_serving import png, raw_example, tiny_saved_model


def test_input_example_has_one_typed_column_per_raw_feature(tmp_path):
    model_dir = tiny_saved_model(str(tmp_path / "model"), 0.0)
    frame = registry.input_example(model_dir, [raw_example(20, 255), raw_example(3, 0)])
    assert list(frame.columns) == ["image", "capture_hour", "camera_id"]
    assert frame["capture_hour"].tolist() == [20, 3]
    assert frame["camera_id"].tolist() == ["cam_01", "cam_01"]
    assert frame["image"][0] == png(255)


def test_each_push_is_a_new_version_and_champion_follows_the_latest(tmp_path, tracking):
    uri, client, experiment = tracking
    first_dir = tiny_saved_model(str(tmp_path / "serving" / "1"), 0.0)
    second_dir = tiny_saved_model(str(tmp_path / "serving" / "2"), 5.0)
    example = registry.input_example(first_dir, [raw_example(20, 255), raw_example(3, 0)])

    first_run = client.create_run(experiment).info.run_id
    first = registry.register_champion(uri, first_run, first_dir, "xfer-test", example)
    assert str(first.version) == "1" and first.run_id == first_run
    assert champion.resolve_version(uri, "xfer-test") == "1"

    second_run = client.create_run(experiment).info.run_id
    second = registry.register_champion(uri, second_run, second_dir, "xfer-test", example)
    assert str(second.version) == "2"
    assert champion.resolve_version(uri, "xfer-test") == "2"
    # Earlier versions stay, without the alias.
    versions = {str(v.version): v for v in client.search_model_versions("name='xfer-test'")}
    assert set(versions) == {"1", "2"}
    assert client.get_model_version("xfer-test", "1").aliases == []
    assert client.get_model_version("xfer-test", "2").tags["pushed_path"] == second_dir
    # Registering did not end the runs: the pipeline's tracked_run closes them.
    assert client.get_run(second_run).info.status == "RUNNING"
    assert mlflow.active_run() is None


def test_champion_loads_with_its_signature_and_scores_raw_features(tmp_path, tracking):
    uri, client, experiment = tracking
    model_dir = tiny_saved_model(str(tmp_path / "serving" / "1"), 0.0)
    example = registry.input_example(model_dir, [raw_example(20, 255), raw_example(3, 0)])
    run_id = client.create_run(experiment).info.run_id
    registry.register_champion(uri, run_id, model_dir, "xfer-test", example)

    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/xfer-test@champion")
        local = mlflow.artifacts.download_artifacts("models:/xfer-test@champion", dst_path=str(tmp_path / "dl"))
        saved_example = mlflow.models.Model.load(local).load_input_example(local)
    finally:
        mlflow.set_tracking_uri(None)
    signature = model.metadata.signature
    assert signature.inputs.input_names() == ["image", "capture_hour", "camera_id"]
    input_types = {column.name: column.type for column in signature.inputs.inputs}
    assert input_types["image"] == mlflow.types.DataType.binary
    assert input_types["capture_hour"] == mlflow.types.DataType.long
    assert {"label", "probability_circle", "probability_square", "xmin", "ymax"} <= set(signature.outputs.input_names())
    assert saved_example["capture_hour"].tolist() == [20, 3]

    scored = model.predict(example)
    assert scored["label"].tolist() == ["square", "circle"]  # Hour 20 favours square, hour 3 circle.
    np.testing.assert_allclose(scored["probability_circle"] + scored["probability_square"], 1.0, atol=1e-6)
    np.testing.assert_allclose(scored["xmax"], [1.0, 0.0], atol=1e-6)  # A white and a black image.


def test_a_model_that_cannot_score_its_example_is_not_registered(tmp_path, tracking):
    uri, client, experiment = tracking
    model_dir = tiny_saved_model(str(tmp_path / "serving" / "1"), 0.0)
    example = registry.input_example(model_dir, [raw_example(20, 255)])
    example["image"] = [b"not an image"]
    run_id = client.create_run(experiment).info.run_id
    with pytest.raises(tf.errors.InvalidArgumentError):
        registry.register_champion(uri, run_id, model_dir, "xfer-test", example)
    assert client.search_registered_models() == []


def test_the_model_is_stored_with_the_run_s_experiment(tmp_path, tracking, monkeypatch):
    uri, client, experiment = tracking
    monkeypatch.chdir(tmp_path)  # Anything written relative to the working directory would land here.
    model_dir = tiny_saved_model(str(tmp_path / "serving" / "1"), 0.0)
    run_id = client.create_run(experiment).info.run_id
    version = registry.register_champion(
        uri, run_id, model_dir, "xfer-test", registry.input_example(model_dir, [raw_example(20, 255)])
    )
    location = client.get_logged_model(version.source.removeprefix("models:/")).artifact_location
    assert location.startswith((tmp_path / "artifacts").as_uri())
    assert not (tmp_path / "mlruns").exists()
    # The wrapper's code travels with the model, so it loads where xfer is not installed; and only that code,
    # so loading it needs nothing of TFX, Beam or Transform (the fresh-venv test in tests/components/serving/
    # loads a real pipeline's model where only its requirements are installed).
    code = Path(location.removeprefix("file://")) / "code"
    shipped = sorted(str(path.relative_to(code)) for path in code.rglob("*.py"))
    assert shipped == [
        "components/__init__.py",
        "components/names.py",
        "components/serving/__init__.py",
        "components/serving/contract.py",
        "components/serving/pyfunc.py",
    ]
    requirements = (code.parent / "requirements.txt").read_text().split()
    assert sorted(line.split("==")[0] for line in requirements) == [
        "cloudpickle",
        "mlflow",
        "numpy",
        "pandas",
        "tensorflow",
    ]


def test_the_version_carries_the_final_metrics_the_card_and_the_gate_outcome(tmp_path, tracking):
    from mlflow.entities import Metric

    uri, client, experiment = tracking
    model_dir = tiny_saved_model(str(tmp_path / "serving" / "1"), 0.0)
    run_id = client.create_run(experiment).info.run_id
    # As tracking logs them: one point per epoch for the curves (each epoch different), TFMA's at step 0.
    epochs = [
        {"train_loss": 2.29 - 0.5 * epoch, "val_accuracy": 0.6 + 0.1 * epoch, "val_iou": 0.3 + 0.07 * epoch}
        for epoch in range(4)
    ]
    client.log_batch(
        run_id,
        metrics=[
            Metric(key, value, 1_000 + epoch, epoch) for epoch, row in enumerate(epochs) for key, value in row.items()
        ],
    )
    evaluation = {"eval_accuracy": 0.95, "eval_iou": 0.52, "blessed": 1.0}
    client.log_batch(run_id, metrics=[Metric(key, value, 2_000, 0) for key, value in evaluation.items()])
    client.log_text(run_id, "# Model card: xfer-test\n\n| accuracy (TFMA) | 0.9500 |\n", "report/model_card.md")
    for key, value in {"outcome": "pushed", "blessed": "true", "champion_version": "none"}.items():
        client.set_tag(run_id, key, value)
    client.log_param(run_id, "training.seed", 42)
    history_before = {key: client.get_metric_history(run_id, key) for key in epochs[0]}

    version = registry.register_champion(
        uri,
        run_id,
        model_dir,
        "xfer-test",
        registry.input_example(model_dir, [raw_example(20, 255)]),
        data_digest="d1g35t",
    )
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    on_model = {metric.key: metric.value for metric in logged.metrics}
    assert len(logged.metrics) == len(on_model)  # One value per metric, not one per epoch.
    assert on_model == pytest.approx({**epochs[-1], **evaluation})
    assert on_model["train_loss"] != pytest.approx(epochs[0]["train_loss"])  # Not MLflow's step-0 copy.
    assert version.run_id == run_id and logged.source_run_id == run_id
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": "xfer-test", "version": 1}]
    assert logged.params == {"training.seed": "42"}
    assert client.get_run(run_id).outputs.model_outputs[0].step == 3
    # Linking the metrics to the model added no point to the run's own curves.
    assert {key: client.get_metric_history(run_id, key) for key in epochs[0]} == history_before
    assert version.description == "# Model card: xfer-test\n\n| accuracy (TFMA) | 0.9500 |\n"
    assert version.tags == {
        "pushed_path": model_dir,
        "outcome": "pushed",
        "blessed": "true",
        "champion_version": "none",
        "data_digest": "d1g35t",
    }


def test_the_data_digest_defaults_to_the_run_s_dataset_input_and_a_missing_card_is_said(tmp_path, tracking):
    import pandas as pd

    uri, client, experiment = tracking
    model_dir = tiny_saved_model(str(tmp_path / "serving" / "1"), 0.0)
    run_id = client.create_run(experiment).info.run_id
    dataset = mlflow.data.from_pandas(pd.DataFrame({"hour": [1, 2]}), source="data/sample", name="sample")
    client.log_inputs(run_id, datasets=[mlflow.entities.DatasetInput(dataset._to_mlflow_entity())])
    version = registry.register_champion(
        uri, run_id, model_dir, "xfer-test", registry.input_example(model_dir, [raw_example(20, 255)])
    )
    assert version.tags["data_digest"] == dataset.digest
    assert version.description.startswith(f"No model card: the report of run {run_id} has none")
