"""The real DAG, end to end, on a tiny generated dataset: LocalDagRunner, Beam, MLMD, MLflow.

One module-scoped run is shared by the assertions; the cache and gate tests then run the pipeline again.
"""

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from components.ingest import sample_data
from components.serving import contract, predict
from pipeline import cli, local_runner
from pipeline import config as config_lib
from tests.helpers import REPO_ROOT, SAMPLE_CONFIG, local_services

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = str(REPO_ROOT)


def _config(tmp_path, **evaluation) -> config_lib.Config:
    base = config_lib.load_config(SAMPLE_CONFIG)
    raw = base.to_dict()
    raw.update(
        pipeline_name="xfer-e2e",
        data=str(tmp_path / "data"),
        workspace=str(tmp_path / "workspace"),
        schema=os.path.join(ROOT, "schemas", "schema.pbtxt"),
        training={
            **raw["training"],
            "batch_size": 8,
            "frozen": {"epochs": 1, "learning_rate": 1e-3},
            "finetune": {"epochs": 1, "learning_rate": 1e-4},
        },
        # Two epochs on 30 images learn little; these gates check the plumbing, the blocking test below checks
        # that a gate can block.
        evaluation={**raw["evaluation"], "min_accuracy": 0.0, "min_iou": 0.0, **evaluation},
    )
    return config_lib.config_from_dict(raw)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e")
    sample_data.write_sample_dataset(tmp_path / "data", num_images=30, seed=11)
    config = _config(tmp_path)
    return tmp_path, config, local_runner.run_local(config)


def _mlflow_run(config, run_id):
    return mlflow.tracking.MlflowClient(tracking_uri=config.tracking_uri).get_run(run_id)


def test_every_node_ran_and_the_model_was_blessed_and_pushed(first_run):
    _, config, summary = first_run
    assert set(summary.result.node_states) == {
        "ImageExampleGen",
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "Trainer",
        "Champion",
        "Evaluator",
        "Pusher",
    }
    assert all(state in ("COMPLETE", "CACHED") for state in summary.result.node_states.values())
    assert summary.result.node_states["Trainer"] == "COMPLETE"
    assert summary.result.evaluation.blessed is True
    assert summary.result.pushed_path.startswith(str(config.workspace_path / "serving"))
    assert tf.io.gfile.exists(os.path.join(summary.result.pushed_path, "saved_model.pb"))
    ingest = summary.result.ingest
    assert (ingest["records"], ingest["accepted"], ingest["rejected"], ingest["rejected_by_reason"]) == (30, 30, 0, {})
    # The first run has no champion to compare with: absolute gates only, and the table says so.
    assert summary.result.evaluation.outcome == "pushed" and summary.result.evaluation.comparison.compared is False
    assert [row.kind for row in summary.result.evaluation.gates] == ["absolute", "absolute"]
    assert summary.tracked.gate_table.endswith(
        "champion: no champion yet in the registry ('xfer-e2e'): the absolute gates alone decide"
    )


def test_pushed_model_scores_a_raw_example(first_run):
    tmp_path, config, summary = first_run
    model_dir = predict.resolve_model_dir(str(config.workspace_path / "serving"))
    assert model_dir == summary.result.pushed_path
    image = (tmp_path / "data" / "img_00000.jpg").read_bytes()
    types = contract.load_raw_feature_types(model_dir)
    assert types == {
        "image": "string",
        "capture_hour": "int",
        "camera_id": "string",
        "latitude": "float",
        "longitude": "float",
    }
    serialized = contract.make_raw_example(
        image, {"capture_hour": 7, "camera_id": "cam_01", "latitude": 48.0, "longitude": 11.0}, types
    )
    # Missing metadata and an unseen camera are served too: defaults and the OOV bucket.
    partial = contract.make_raw_example(image, {"camera_id": "never-seen"}, types)
    results = predict.predict_serialized(model_dir, [serialized, partial])
    for result in results:
        assert set(result["probabilities"]) == set(sample_data.CLASSES)
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert result["class"] == max(result["probabilities"], key=result["probabilities"].get)
        box = result["box"]
        assert 0 <= box["xmin"] <= box["xmax"] <= 1 and 0 <= box["ymin"] <= box["ymax"] <= 1


def test_mlflow_run_holds_config_epochs_and_eval_metrics(first_run):
    _, config, summary = first_run
    run = _mlflow_run(config, summary.tracked.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["training.finetune.epochs"] == "1"
    assert run.data.params["features.place.inputs"] == '["latitude", "longitude"]'
    assert run.data.metrics["eval_accuracy"] == pytest.approx(summary.result.evaluation.metrics["eval_accuracy"])
    assert 0.0 <= run.data.metrics["eval_iou"] <= 1.0
    assert run.data.tags["blessed"] == "true" and "blessed" not in run.data.metrics  # One home: the tag.
    assert run.data.tags["pushed_path"] == os.path.relpath(summary.result.pushed_path, config.workspace_path)
    assert run.data.tags["unfreeze_epoch"] == "1"
    assert run.data.tags["tfx_version"] == "1.16.0"
    assert run.data.tags["outcome"] == "pushed"
    # Per-class precision/recall (named by class) and the IoU hit rate come from TFMA too; one name per value.
    assert {f"eval_precision/{name}" for name in sample_data.CLASSES} <= set(run.data.metrics)
    assert 0.0 <= run.data.metrics["eval_hit_rate"] <= 1.0
    assert not any(name.startswith(("eval_probabilities_", "eval_box_")) for name in run.data.metrics)
    # Slices by camera name, not by vocabulary id.
    camera_slices = [name for name in summary.result.evaluation.slices if name.startswith("camera_id=")]
    assert camera_slices and all(("box", "box_iou") in summary.result.evaluation.slices[name] for name in camera_slices)
    # A camera the train split never saw has no vocabulary entry: its out-of-vocabulary bucket is "(other 0)".
    named = [name.removeprefix("camera_id=") for name in camera_slices]
    assert any(value.startswith("cam_") for value in named), camera_slices
    assert all(re.fullmatch(r"cam_\d\d|\(other \d+\)", value) for value in named), camera_slices
    # What the run page shows: a name that says what the run was, its description, its dataset, its params.
    assert run.info.run_name.startswith("pushed · data · ")
    description = run.data.tags["mlflow.note.content"]
    assert description.startswith("### Blessed and **pushed**, registered as `xfer-e2e` version")
    assert "| eval_accuracy | absolute |" in description
    [dataset_input] = run.inputs.dataset_inputs
    profile = json.loads(dataset_input.dataset.profile)
    assert (profile["records"], profile["accepted"], sum(profile["splits"].values())) == (30, 30, 30)
    assert dataset_input.dataset.digest == summary.tracked.data_digest != "unknown"
    schema_columns = {column["name"] for column in json.loads(dataset_input.dataset.schema)["mlflow_colspec"]}
    assert {"image", "label", "camera_id"} <= schema_columns
    assert not any(key.startswith("kubeflow.") for key in run.data.params)
    assert "features.capture_hour.top_k" not in run.data.params  # A bucketized feature has no vocabulary.
    long_tags = {key: value for key, value in run.data.tags.items() if len(value) > 60}
    assert set(long_tags) <= {"mlflow.note.content", "mlflow.log-model.history"}, long_tags
    client = mlflow.tracking.MlflowClient(tracking_uri=config.tracking_uri)
    val_loss = client.get_metric_history(run.info.run_id, "val_loss")
    assert sorted(metric.step for metric in val_loss) == [0, 1]  # Both phases, one epoch axis.
    assert np.isfinite([metric.value for metric in val_loss]).all()


def test_mlflow_run_has_the_report_and_a_champion_version(first_run):
    _, config, summary = first_run
    client = mlflow.tracking.MlflowClient(tracking_uri=config.tracking_uri)
    run_id = summary.tracked.mlflow_run_id
    logged = {os.path.basename(item.path) for item in client.list_artifacts(run_id, "report")}
    assert summary.tracked.report_failures == ()
    assert {
        "learning_curves.png",
        "confusion_matrix.png",
        "iou_histogram.png",
        "iou_by_box_size.png",
        "eval_boxes.png",
        "eval_boxes_worst.png",
        "grad_cam.png",
        "model_summary.txt",
        "statistics.html",
        "model_card.md",
    } <= logged
    champion = client.get_model_version_by_alias(config.pipeline_name, "champion")
    assert champion.run_id == run_id
    assert champion.tags["pushed_path"] == summary.result.pushed_path
    assert summary.tracked.registered_model.version == str(champion.version)
    logged_model = client.get_logged_model(champion.source.removeprefix("models:/"))
    assert logged_model.source_run_id == run_id
    assert logged_model.artifact_location.startswith((config.workspace_path / "mlartifacts").as_uri())


def _readme_request(port: int, image) -> str:
    """The README's serving request (the shell block after its marker), aimed at this server and image."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- the serving request:", 1)[1].split("```", 2)[1]
    return block.replace("127.0.0.1:5001", f"127.0.0.1:{port}").replace("data/sample/img_00000.jpg", str(image))


def _xfer_predict(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert cli.main(["predict", *args]) == 0
    return json.loads(capsys.readouterr().out)


# The metadata the README's request sends with the image.
_README_META = ("capture_hour=7", "camera_id=cam_01", "latitude=48.0", "longitude=11.0")


def test_the_champion_serves_from_its_own_requirements_as_xfer_predict_answers(first_run, tmp_path, capsys):
    data, config, summary = first_run
    image = data / "data" / "img_00000.jpg"
    expected = _xfer_predict(
        capsys, "--model", str(config.workspace_path / "serving"), str(image), "--meta", *_README_META
    )
    model_uri = f"models:/{config.pipeline_name}@champion"
    with local_services.model_server(model_uri, config.tracking_uri, tmp_path) as (url, python):
        port = int(url.rsplit(":", 1)[1])
        served = subprocess.run(
            ["bash", "-c", _readme_request(port, image)], capture_output=True, text=True, check=True
        )
        [answer] = json.loads(served.stdout)["predictions"]
        # MLflow's own loader, in the environment `mlflow models serve` built from the model's requirements.
        script = (
            "import json, sys, mlflow, pandas\n"
            f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
            f"row = {{'image': open({str(image)!r}, 'rb').read(), 'capture_hour': 7, 'camera_id': 'cam_01',"
            " 'latitude': 48.0, 'longitude': 11.0}\n"
            "print(model.predict(pandas.DataFrame([row])).to_json(orient='records'))\n"
            "for name in ('tfx', 'apache_beam', 'tensorflow_transform', 'components.trainer', 'pipeline'):\n"
            "    try:\n"
            "        __import__(name)\n"
            "        print('importable', name, file=sys.stderr)\n"
            "    except ImportError:\n"
            "        pass\n"
        )
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        loaded = subprocess.run(
            [str(python), "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**env, "MLFLOW_TRACKING_URI": config.tracking_uri},
        )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "importable" not in loaded.stderr, loaded.stderr  # Nothing of TFX, Beam, Transform or the pipeline.
    [in_fresh_env] = json.loads(loaded.stdout.strip().splitlines()[-1])
    for result in (answer, in_fresh_env):
        assert result["label"] == expected["class"]
        for corner in ("xmin", "ymin", "xmax", "ymax"):
            assert result[corner] == pytest.approx(expected["box"][corner], abs=1e-5)
        for name, probability in expected["probabilities"].items():
            assert result[f"probability_{name}"] == pytest.approx(probability, abs=1e-5)


def test_batch_scoring_writes_a_row_per_image_and_a_reason_per_bad_file(first_run, tmp_path, capsys):
    data, config, summary = first_run
    folder = tmp_path / "to_score"
    shutil.copytree(data / "data", folder)  # A copy: the reruns below must see the run's own data unchanged.
    (folder / "truncated.jpg").write_bytes((folder / "img_00001.jpg").read_bytes()[:200])
    with open(folder / "annotations.csv", "a") as handle:
        handle.write("truncated.jpg,circle,1,1,5,5,8,48.0,11.0,cam_01\n")
        handle.write("lost.jpg,circle,1,1,5,5,8,48.0,11.0,cam_01\n")
    out = tmp_path / "predictions.csv"
    model = f"models:/{config.pipeline_name}@champion"
    capsys.readouterr()
    assert (
        cli.main(
            ["predict", "--model", model, "--workspace", str(config.workspace_path), str(folder), "--out", str(out)]
        )
        == 0
    )
    assert "32 images (csv), 30 scored" in capsys.readouterr().out
    with open(out, newline="") as handle:
        rows = {row["filename"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 32
    assert {name for name, row in rows.items() if row["status"] == "rejected"} == {"truncated.jpg", "lost.jpg"}
    assert (rows["truncated.jpg"]["reason"], rows["lost.jpg"]["reason"]) == ("unreadable_image", "missing_file")
    # The batch row of an image equals `xfer predict` on that image with the metadata of its CSV row.
    with open(folder / "annotations.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    meta = [f"{key}={first[key]}" for key in ("capture_hour", "camera_id", "latitude", "longitude")]
    expected = _xfer_predict(
        capsys, "--model", str(config.workspace_path / "serving"), str(folder / first["filename"]), "--meta", *meta
    )
    row = rows[first["filename"]]
    assert (row["status"], row["label"], row["annotated_label"]) == ("scored", expected["class"], first["label"])
    for corner in ("xmin", "ymin", "xmax", "ymax"):
        assert float(row[corner]) == pytest.approx(expected["box"][corner], abs=1e-5)


def test_reruns_come_from_the_cache_and_do_not_push_the_champion_again(first_run, tmp_path):
    _, config, first = first_run
    client = mlflow.tracking.MlflowClient(tracking_uri=config.tracking_uri)
    versions = client.search_model_versions(f"name = '{config.pipeline_name}'")
    serving = sorted(os.listdir(config.workspace_path / "serving"))
    # The first push made a champion, so the unchanged model is now evaluated with it in view: it is the
    # champion's very files, so the gates are the absolute ones, and nothing is pushed or registered again.
    second = local_runner.run_local(config)
    reran = {"Champion", "Evaluator", "Pusher"}
    assert {node for node, state in second.result.node_states.items() if state != "CACHED"} == reran, (
        second.result.node_states
    )
    assert second.result.evaluation.outcome == "already_champion" and second.result.evaluation.blessed is True
    assert second.result.evaluation.comparison.champion_version == first.tracked.registered_model.version
    assert "the candidate is the champion" in second.tracked.gate_table
    assert second.result.evaluation.metrics["eval_accuracy"] == pytest.approx(
        first.result.evaluation.metrics["eval_accuracy"]
    )
    assert len(client.search_model_versions(f"name = '{config.pipeline_name}'")) == len(versions)
    assert sorted(os.listdir(config.workspace_path / "serving")) == serving
    # Same champion, same everything: the next run is served from the cache entirely.
    third = local_runner.run_local(config)
    assert set(third.result.node_states.values()) == {"CACHED"}, third.result.node_states
    assert third.result.evaluation.outcome == "already_champion"
    run = _mlflow_run(config, third.tracked.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["outcome"] == "already_champion"
    assert "eval_iou" in run.data.metrics
    # Nothing trained in this run: no curves replayed as if it had, no second report; it names the run that did.
    assert "val_loss" not in run.data.metrics
    assert run.data.tags["trained_in_run"] == first.tracked.mlflow_run_id
    logged = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert "report" not in logged and "evaluation" in logged
    # The run list tells the three runs apart.
    run_names = [_mlflow_run(config, r.tracked.mlflow_run_id).info.run_name for r in (first, second, third)]
    assert run_names[0].startswith("pushed · ") and "cached" not in run_names[0]
    assert run_names[1].startswith("kept champion · 7/10 cached · data · "), run_names
    assert run_names[2].startswith("kept champion · 10/10 cached · data · "), run_names
    assert run.data.tags["nodes"] == "all 10 cached"
    by_slice = client.download_artifacts(run.info.run_id, "evaluation/metrics_by_slice.json", str(tmp_path))
    with open(by_slice) as handle:
        # Valid JSON: Python's parser takes NaN unless told not to; a strict one would refuse the file.
        strict = json.loads(handle.read(), parse_constant=lambda constant: pytest.fail(f"{constant} in the JSON"))
    assert "eval_iou" in strict["overall"]


def test_an_unreachable_gate_blocks_the_push(first_run):
    _, config, _ = first_run
    serving = config.workspace_path / "serving"
    versions_before = sorted(os.listdir(serving))
    blocked = local_runner.run_local(config.replace(evaluation=config_lib.EvaluationConfig(min_accuracy=1.01)))
    assert blocked.result.node_states["Trainer"] == "CACHED"
    assert blocked.result.node_states["Evaluator"] == "COMPLETE"
    assert blocked.result.evaluation.blessed is False
    assert blocked.result.pushed_path is None
    assert any("sparse_categorical_accuracy" in failure for failure in blocked.result.evaluation.gate_failures)
    accuracy_gate = next(row for row in blocked.result.evaluation.gates if row.metric == "eval_accuracy")
    assert accuracy_gate.threshold == ">= 1.01" and accuracy_gate.passed is False
    assert "FAIL" in blocked.tracked.gate_table
    assert sorted(os.listdir(serving)) == versions_before
    run = _mlflow_run(config, blocked.tracked.mlflow_run_id)
    assert run.data.tags["blessed"] == "false"
    assert run.info.status == "FINISHED"
    assert run.data.tags["outcome"] == "blocked_by_gate"
    assert re.match(r"blocked by gate · \d+/10 cached · data · ", run.info.run_name), run.info.run_name
    assert "**FAIL**" in run.data.tags["mlflow.note.content"]


def test_a_retrained_model_is_held_to_the_change_gates_against_the_champion(first_run):
    """Another seed makes another model, compared with the champion the first run registered. The change gate
    asks for more than any model can gain (+1.01), so it is the gate that blocks, and the champion stays."""
    _, config, first = first_run
    champion_version = first.tracked.registered_model.version
    retrain = config.replace(
        training=dataclasses.replace(config.training, seed=config.training.seed + 1),
        evaluation=dataclasses.replace(config.evaluation, min_accuracy_change=1.01, min_iou_change=None),
    )
    retrained = local_runner.run_local(retrain)
    assert (
        retrained.result.node_states["Trainer"] == "COMPLETE" and retrained.result.node_states["Champion"] == "CACHED"
    )
    assert (
        retrained.result.evaluation.comparison.compared is True
        and retrained.result.evaluation.comparison.champion_version == champion_version
    )
    change = next(row for row in retrained.result.evaluation.gates if row.kind == "change")
    assert (change.metric, change.threshold, change.passed) == ("eval_accuracy", "change >= +1.01", False)
    # The champion's own accuracy is the first run's, recomputed by TFMA on the same eval split.
    assert change.champion == pytest.approx(first.result.evaluation.metrics["eval_accuracy"], abs=1e-6)
    assert change.change == pytest.approx(
        retrained.result.evaluation.metrics["eval_accuracy"] - first.result.evaluation.metrics["eval_accuracy"],
        abs=1e-5,
    )
    assert [row.kind for row in retrained.result.evaluation.gates] == [
        "absolute",
        "absolute",
        "change",
    ]  # IoU change: off.
    assert retrained.result.evaluation.blessed is False and retrained.result.evaluation.outcome == "blocked_by_gate"
    assert any("against the champion" in failure for failure in retrained.result.evaluation.gate_failures)
    client = mlflow.tracking.MlflowClient(tracking_uri=config.tracking_uri)
    assert str(client.get_model_version_by_alias(config.pipeline_name, "champion").version) == champion_version
    run = _mlflow_run(config, retrained.tracked.mlflow_run_id)
    assert run.data.tags["champion_version"] == champion_version
    assert run.data.metrics["champion_eval_accuracy"] == pytest.approx(
        first.result.evaluation.metrics["eval_accuracy"], abs=1e-6
    )


def _records(pattern):
    files = sorted(tf.io.gfile.glob(pattern))
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _rows(features_by_name, names):
    count = len(next(iter(features_by_name.values())))
    return sorted(
        tuple(np.asarray(features_by_name[name][index]).tobytes() for name in names) for index in range(count)
    )


def test_serving_sees_exactly_what_training_saw(first_run):
    """No training/serving skew: the eval split's raw examples, through the pushed model's own parsing and
    Transform graph, give the very features the Trainer read from Transform's output."""
    _, config, summary = first_run
    names = _assert_serving_equals_training(summary.result.pushed_path, config.workspace_path / "pipeline_root")
    assert {"image", "camera_id", "place", "capture_hour"} <= set(names)


def _assert_serving_equals_training(pushed_path: str, root) -> list[str]:
    """The eval split's raw examples through the pushed model's `transformed_inputs` equal, row for row, what
    the Trainer's own input pipeline (`training.make_dataset`) reads from Transform's output; returns the names
    compared."""
    raw = _records(str(root / "ImageExampleGen" / "examples" / "*" / "Split-eval" / "*"))
    model = tf.saved_model.load(pushed_path)
    served = {
        name: value.numpy() for name, value in model.signatures["transformed_inputs"](examples=tf.constant(raw)).items()
    }

    import tensorflow_transform as tft

    from components.trainer import training

    output = tft.TFTransformOutput(str(next((root / "Transform" / "transform_graph").iterdir())))
    pattern = str(root / "Transform" / "transformed_examples" / "*" / "Split-eval" / "*")
    names = sorted(served)
    image_size = len(served["image"][0])
    batches = training.make_dataset(
        [pattern], output.transformed_feature_spec(), names, 64, shuffle=False, seed=0, image_size=image_size
    )
    trained = {name: np.concatenate([inputs[name].numpy() for inputs, _ in batches]) for name in names}
    assert len(raw) == len(trained[names[0]]) > 0
    for name in names:
        served[name] = served[name].astype(trained[name].dtype)
    assert _rows(served, names) == _rows(trained, names)
    return names


def test_a_classification_only_dataset_runs_the_whole_dag_without_the_box_head(tmp_path):
    """Class folders (no boxes): the box head, the box loss and the IoU gate are off, driven by `task`."""
    import shutil

    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    flat = tmp_path / "flat"
    records = sample_data.write_sample_dataset(flat, num_images=20, seed=5)
    for record in records:
        (tmp_path / "folders" / record.label).mkdir(parents=True, exist_ok=True)
        shutil.move(str(flat / record.filename), tmp_path / "folders" / record.label / record.filename)
    schema = text_format.Parse((open(os.path.join(ROOT, "schemas", "schema.pbtxt")).read()), schema_pb2.Schema())
    kept = [f for f in schema.feature if f.name in ("filename", "image", "image_width", "image_height", "label")]
    del schema.feature[:]
    schema.feature.extend(kept)
    (tmp_path / "schema.pbtxt").write_text(text_format.MessageToString(schema))

    raw = _config(tmp_path).to_dict()
    raw.update(
        pipeline_name="xfer-e2e-classification",
        task="classification",
        data=str(tmp_path / "folders"),
        schema=str(tmp_path / "schema.pbtxt"),
        features=[],
        evaluation={"min_accuracy": 0.0, "slice_by": []},
    )
    config = config_lib.config_from_dict(raw)
    summary = local_runner.run_local(config)
    assert summary.result.evaluation.blessed is True and summary.result.ingest["has_boxes"] is False
    assert [row.metric for row in summary.result.evaluation.gates] == ["eval_accuracy"]
    assert "eval_iou" not in summary.result.evaluation.metrics
    result = predict.predict_serialized(
        summary.result.pushed_path,
        [
            contract.make_raw_example(
                (tmp_path / "folders" / records[0].label / records[0].filename).read_bytes(), {}, {}
            )
        ],
    )[0]
    assert "box" not in result and set(result["probabilities"]) == set(sample_data.CLASSES)
    run = _mlflow_run(config, summary.tracked.mlflow_run_id)
    assert run.data.params["task"] == "classification"
    assert "train_box_loss" not in run.data.metrics
