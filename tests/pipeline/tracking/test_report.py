"""The run report as `xfer run` logs it (pipeline/tracking/report/): build_run_report on a tiny SavedModel with
the real export's signatures, logged to MLflow, the network reloaded for Grad-CAM, and the model card."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.evaluator import scores as eval_scores
from components.evaluator import verdict
from components.validation import gate as validation_gate
from pipeline import config as config_lib
from pipeline.tracking.report import build as pipeline_report
from pipeline.tracking.report import card as report_card
from pipeline.tracking.report import network
from tests.helpers import SAMPLE_CONFIG, run_results, tiny_report


@pytest.fixture()
def tiny_run(tmp_path):
    return tiny_report.make_tiny_run(tmp_path)


def _logged(client, run_id) -> dict[str, str]:
    return {
        os.path.basename(item.path): item.path for item in client.list_artifacts(run_id, pipeline_report.ARTIFACT_DIR)
    }


def test_the_report_loads_the_saved_network_itself(tmp_path):
    """What the report reads for Grad-CAM: the SavedModel, reloaded by Keras, answers as the network did."""
    tiny_report.tiny_classifier().save(str(tmp_path / "model"), save_format="tf")
    image = tf.constant(tiny_report.red_top_left_green_bottom_right()[np.newaxis])
    loaded = network.load_trained_model(str(tmp_path / "model"))
    np.testing.assert_allclose(
        loaded({"image": image})["probabilities"],
        tiny_report.tiny_classifier()({"image": image})["probabilities"],
        atol=1e-6,
    )


def test_run_report_scores_the_eval_split_and_logs_every_part(tiny_run, tmp_path):
    _, run, config, client, run_id = tiny_run
    evaluation = run_results.evaluation(
        metrics={"eval_accuracy": 0.66, "eval_iou": 0.5}, blessed=False, gate_failures=("accuracy too low",)
    )
    run = dataclasses.replace(run, evaluation=evaluation)
    result = pipeline_report.build_run_report(config, run, client, run_id)
    expected = {
        "learning_curves.png",
        "confusion_matrix.png",
        "iou_histogram.png",
        "iou_by_box_size.png",
        "eval_boxes_worst.png",
        "eval_boxes.png",
        "model_summary.txt",
        "grad_cam.png",
        "anomalies.txt",
        "statistics.html",
        "statistics_facets.html",
        "model_card.md",
    }
    assert result["failed"] == []
    assert set(result["written"]) == expected
    assert set(_logged(client, run_id)) == expected
    local = client.download_artifacts(run_id, pipeline_report.ARTIFACT_DIR, str(tmp_path / "downloaded"))
    card = open(os.path.join(local, "model_card.md")).read()
    # The tiny network gets the red and the green image right and the mislabelled third one "wrong".
    assert "| red | 2 | 0.5000 |" in card and "| green | 1 | 1.0000 |" in card
    assert "**Not blessed**: accuracy too low" in card
    assert "backbone: 2 layers" in open(os.path.join(local, "model_summary.txt")).read()
    assert "facets-overview" in open(os.path.join(local, "statistics_facets.html")).read()
    # The page people open renders offline: no script, nothing to fetch; and it says the data was clean.
    page = open(os.path.join(local, "statistics.html")).read()
    assert "<script" not in page and "src=" not in page and "@import" not in page
    assert "0 anomalies: the data matches the schema." in page and "<td>label</td>" in page
    assert open(os.path.join(local, "anomalies.txt")).read() == "0 anomalies: the data matches the schema.\n"
    for name in expected:
        assert os.path.getsize(os.path.join(local, name)) > 0


def test_a_part_that_fails_is_listed_and_the_rest_is_still_logged(tiny_run):
    root, run, config, client, run_id = tiny_run
    for split in ("train", "eval"):
        os.remove(root / "StatisticsGen" / "statistics" / "3" / f"Split-{split}" / "FeatureStats.pb")
    result = pipeline_report.build_run_report(config, run, client, run_id)
    assert [line.split(":")[0] for line in result["failed"]] == ["TFDV statistics"]
    logged = _logged(client, run_id)
    assert "statistics.html" not in logged
    assert {"failures.txt", "anomalies.txt", "grad_cam.png", "model_card.md", "eval_boxes.png"} <= set(logged)


def test_anomalies_are_listed_in_the_report_with_their_count(tiny_run, tmp_path):
    root, run, config, client, run_id = tiny_run
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["camera_id"]
    info.short_description = "Unexpected string values"
    info.reason.add(description="Examples contain values missing from the schema: cam_99 (~10%). ")
    (root / "ExampleValidator" / "anomalies" / "4" / "Split-eval" / validation_gate.ANOMALIES_FILE).write_bytes(
        anomalies.SerializeToString()
    )
    result = pipeline_report.build_run_report(config, run, client, run_id)
    assert result["failed"] == []
    local = client.download_artifacts(run_id, pipeline_report.ARTIFACT_DIR, str(tmp_path / "downloaded"))
    line = "[eval] feature 'camera_id': Unexpected string values: Examples contain values missing from the schema"
    text = open(os.path.join(local, "anomalies.txt")).read()
    assert text.startswith("1 anomalies:\n") and line in text
    page = open(os.path.join(local, "statistics.html")).read()
    assert "1 anomalies:" in page and "cam_99" in page and "0 anomalies" not in page


def test_grad_cam_refuses_a_network_that_is_not_the_served_one(tiny_run):
    _, run, config, client, run_id = tiny_run
    result = pipeline_report.build_run_report(
        config, run, client, run_id, load_network=lambda model_dir: tiny_report.untrained_tiny_classifier()
    )
    assert len(result["failed"]) == 1 and "differs from the served model" in result["failed"][0]
    logged = _logged(client, run_id)
    assert "grad_cam.png" not in logged and {"model_summary.txt", "failures.txt"} <= set(logged)


def test_model_card_states_data_metrics_gates_and_limits():
    config = config_lib.load_config(SAMPLE_CONFIG)
    scores = eval_scores.EvalScores(
        class_names=("a", "b"),
        true_labels=("a", "a", "b"),
        predicted_labels=("a", "b", "b"),
        true_boxes=np.array([[0, 0, 1, 1]] * 3, float),
        predicted_boxes=np.array([[0, 0, 1, 1], [0, 0, 0.5, 1], [0, 0, 0.1, 0.1]], float),
    )
    run = run_results.run_result(
        ingest={"records": 10, "accepted": 9, "rejected": 1},
        evaluation=run_results.evaluation(metrics={"eval_accuracy": 0.6667, "eval_iou": 0.5}, blessed=True),
        pushed_path="/serving/17",
    )
    card = report_card.model_card(config, run, scores, registered_model="xfer-sample")
    for heading in (
        "## Model",
        "## Training",
        "## Data",
        "## Evaluation",
        "## Gates and blessing",
        "## Intended use",
        "## Limitations",
    ):
        assert heading in card
    assert "10 read, 9 accepted, 1 rejected" in card
    assert f"| accuracy (TFMA) | 0.6667 | >= {config.evaluation.min_accuracy:g} |" in card
    assert "| share of boxes with IoU >= 0.5 | 0.6667 |" in card  # IoUs 1.0, 0.5, 0.01.
    assert "| a | 2 | 0.5000 |" in card and "| b | 1 | 1.0000 |" in card
    assert "**Blessed**" in card and "`/serving/17`; registered in MLflow as `xfer-sample`, alias `champion`" in card
    blocked = run_results.evaluation(blessed=False, gate_failures=("iou too low",))
    unpushed = report_card.model_card(config, run_results.run_result(evaluation=blocked), None)
    assert "**Not blessed**: iou too low" in unpushed and "Not pushed" in unpushed


def test_model_card_says_what_the_model_was_compared_with():
    config = config_lib.load_config(SAMPLE_CONFIG)
    gates = (
        verdict.GateRow("eval_accuracy", "absolute", ">= 0.9", 0.91, True),
        verdict.GateRow("eval_accuracy", "change", "change >= -0.01", 0.91, False, champion=0.95, change=-0.04),
    )
    note = "change gates against the champion, version 3"
    evaluation = run_results.evaluation(blessed=False, gates=gates, champion_note=note)
    card = report_card.model_card(config, run_results.run_result(evaluation=evaluation), None)
    assert "- Champion: change gates against the champion, version 3." in card
    assert "- eval_accuracy against the champion: 0.9100 vs 0.9500, change -0.0400 (change >= -0.01): FAIL." in card
    is_champion = run_results.evaluation(
        blessed=True, comparison=run_results.comparison(compared=False, is_champion=True)
    )
    again = report_card.model_card(config, run_results.run_result(evaluation=is_champion), None)
    assert "Not pushed: this model is already the champion." in again
