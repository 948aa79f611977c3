"""The Evaluator as the pipeline runs it (xfer's eval config, TFMA on Beam, the champion logic), on tiny models
whose accuracy and boxes are known in advance (tests/helpers/eval_fixtures.py): the IoU inside TFMA, and the gates with
and without a champion."""

import json
import os

import numpy as np
import pytest
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as keys

from components.champion import component as champion
from components.evaluator import verdict
from components.pusher import executor as pusher
from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib
from pipeline.tracking import mlflow_text
from tests.helpers import SAMPLE_CONFIG, eval_fixtures

EXAMPLES = eval_fixtures.make_examples(40)


def _config(**evaluation) -> config_lib.Config:
    raw = config_lib.load_config(SAMPLE_CONFIG).to_dict()
    raw["evaluation"].update(evaluation)
    return config_lib.config_from_dict(raw)


@pytest.fixture(scope="module")
def examples_uri(tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("examples"))
    eval_fixtures.write_eval_examples(uri, EXAMPLES)
    return uri


def _evaluate(tmp_path, examples_uri, config, candidate_dir, champion_artifact):
    return eval_fixtures.evaluate(
        tmp_path, examples_uri, pipeline_lib.eval_config(config), candidate_dir, champion_artifact
    )


_champion = eval_fixtures.champion_artifact


def _gates(config, evaluation_uri):
    slices = verdict.metrics_by_slice(evaluation_uri)
    rows, note, _ = verdict.champion_gates(config.evaluation, config.task, evaluation_uri, slices)
    return {(row.metric, row.kind): row for row in rows}, note


def test_iou_computed_inside_tfma_equals_numpy_iou_on_the_same_boxes(tmp_path, examples_uri):
    candidate = eval_fixtures.tiny_model(str(tmp_path / "candidate"), skill=0.6, box_shift=0.04)
    config = _config(min_accuracy=0.0, min_iou=0.0)
    evaluation_uri, _ = _evaluate(tmp_path, examples_uri, config, candidate, _champion(None))
    slices = verdict.metrics_by_slice(evaluation_uri)
    ious = eval_fixtures.expected_ious(EXAMPLES, 0.04)
    assert 0.3 < ious.mean() < 0.9  # The boxes overlap partly: not a trivial 0 or 1.
    assert slices["overall"][("box", "box_iou")] == pytest.approx(ious.mean(), abs=1e-5)
    assert slices["overall"][("box", "box_hit_rate")] == pytest.approx(np.mean(ious >= 0.5), abs=1e-6)
    for camera in eval_fixtures.CAMERAS:  # And per slice, on that slice's boxes.
        mine = [i for i, example in enumerate(EXAMPLES) if example.camera == camera]
        assert slices[f"camera_id={camera}"][("box", "box_iou")] == pytest.approx(ious[mine].mean(), abs=1e-5)
    accuracy = slices["overall"][("probabilities", "sparse_categorical_accuracy")]
    assert accuracy == pytest.approx(eval_fixtures.expected_accuracy(EXAMPLES, 0.6), abs=1e-6)


def test_no_champion_absolute_gates_alone_decide_and_say_so(tmp_path, examples_uri):
    candidate = eval_fixtures.tiny_model(str(tmp_path / "candidate"), skill=0.6, box_shift=0.0)
    config = _config(min_accuracy=0.5, min_iou=0.9, min_accuracy_change=0.5, min_iou_change=0.5)
    evaluation_uri, blessing = _evaluate(tmp_path, examples_uri, config, candidate, _champion(None))
    # The change gates could not pass against any champion (+0.5); with none they do not apply.
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert blessing.get_int_custom_property(verdict.COMPARED_PROPERTY) == 0
    rows, note = _gates(config, evaluation_uri)
    assert set(rows) == {("eval_accuracy", "absolute"), ("eval_iou", "absolute")}
    assert note == "no champion yet in the registry ('x'): the absolute gates alone decide"
    assert verdict.gate_failures(evaluation_uri) == []


def test_a_candidate_better_than_the_champion_passes_the_change_gates(tmp_path, examples_uri):
    champion_dir = eval_fixtures.tiny_model(str(tmp_path / "champion"), skill=0.5, box_shift=0.08)
    candidate = eval_fixtures.tiny_model(str(tmp_path / "candidate"), skill=0.8, box_shift=0.02)
    config = _config(min_accuracy=0.5, min_iou=0.3, min_accuracy_change=0.1, min_iou_change=0.0)
    evaluation_uri, blessing = _evaluate(tmp_path, examples_uri, config, candidate, _champion(champion_dir))
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert blessing.get_int_custom_property(verdict.COMPARED_PROPERTY) == 1
    assert blessing.get_string_custom_property(champion.VERSION_PROPERTY) == "7"
    rows, note = _gates(config, evaluation_uri)
    assert note == "change gates against the champion, version 7"
    accuracy = rows[("eval_accuracy", "change")]
    assert accuracy.champion == pytest.approx(0.5, abs=1e-6)
    assert accuracy.change == pytest.approx(0.3, abs=1e-6) and accuracy.passed
    iou = rows[("eval_iou", "change")]
    expected = eval_fixtures.expected_ious(EXAMPLES, 0.02).mean() - eval_fixtures.expected_ious(EXAMPLES, 0.08).mean()
    assert iou.change == pytest.approx(expected, abs=1e-5) and iou.passed
    assert all(row.passed for row in rows.values())


def test_a_candidate_worse_than_the_champion_is_blocked_by_the_change_gate(tmp_path, examples_uri):
    champion_dir = eval_fixtures.tiny_model(str(tmp_path / "champion"), skill=0.9, box_shift=0.0)
    candidate = eval_fixtures.tiny_model(str(tmp_path / "candidate"), skill=0.7, box_shift=0.0)
    # Absolute gates pass (0.7 >= 0.6, IoU 1.0): only the drop of 0.2 against the champion blocks it.
    config = _config(min_accuracy=0.6, min_iou=0.5, min_accuracy_change=-0.05, min_iou_change=-0.01)
    evaluation_uri, blessing = _evaluate(tmp_path, examples_uri, config, candidate, _champion(champion_dir))
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    assert blessing.get_int_custom_property("blessed") == 0
    rows, _ = _gates(config, evaluation_uri)
    assert rows[("eval_accuracy", "absolute")].passed and rows[("eval_iou", "absolute")].passed
    assert not rows[("eval_accuracy", "change")].passed and rows[("eval_iou", "change")].passed
    assert rows[("eval_accuracy", "change")].change == pytest.approx(-0.2, abs=1e-6)
    failures = verdict.gate_failures(evaluation_uri)
    assert len(failures) == 1
    assert failures[0].startswith("sparse_categorical_accuracy (probabilities) changed by -0.2000 against the champion")
    assert failures[0].endswith("needs >= -0.05")
    assert "FAIL" in mlflow_text.format_gate_table(list(rows.values()))


def test_a_candidate_that_is_the_champion_is_not_compared_and_not_pushed_again(tmp_path, examples_uri):
    candidate = eval_fixtures.tiny_model(str(tmp_path / "candidate"), skill=0.7, box_shift=0.0)
    config = _config(min_accuracy=0.5, min_iou=0.5, min_accuracy_change=0.5)
    evaluation_uri, blessing = _evaluate(tmp_path, examples_uri, config, candidate, _champion(candidate))
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))  # +0.5 against itself would have failed.
    assert blessing.get_int_custom_property(verdict.IS_CHAMPION_PROPERTY) == 1
    assert blessing.get_int_custom_property(verdict.COMPARED_PROPERTY) == 0
    with open(os.path.join(evaluation_uri, verdict.COMPARISON_FILE)) as handle:
        assert json.load(handle)["candidate_is_champion"] is True
    _, note = _gates(config, evaluation_uri)
    assert note.startswith("the candidate is the champion (version 7) itself")

    model = standard_artifacts.Model()
    model.uri = candidate
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    serving = tmp_path / "serving"
    pusher.Executor().Do(
        {keys.MODEL_KEY: [model], keys.MODEL_BLESSING_KEY: [blessing]},
        {keys.PUSHED_MODEL_KEY: [pushed]},
        {keys.PUSH_DESTINATION_KEY: json.dumps({"filesystem": {"base_directory": str(serving)}})},
    )
    assert pushed.get_int_custom_property("pushed") == 0
    assert pushed.get_string_custom_property(pusher.NOT_PUSHED_REASON_PROPERTY) == "already the champion"
    assert not serving.exists()
