"""How a run reads in the MLflow UI: names, description, tags, metric and param names (pipeline/tracking/
mlflow_text.py)."""

import datetime
import json

import pytest

from components.evaluator import verdict
from pipeline.tracking import mlflow_text

CLASSES = ["circle", "square", "triangle"]


def test_each_eval_metric_gets_one_name_and_classes_their_labels():
    values = {
        ("probabilities", "sparse_categorical_accuracy"): 0.9,
        ("box", "box_iou"): 0.6,
        ("box", "box_hit_rate"): 0.7,
        ("probabilities", "precision/classId_0"): 1.0,
        ("probabilities", "recall/classId_2"): 0.5,
        ("probabilities", "recall/classId_7"): 0.25,  # Beyond the vocabulary: kept as TFMA names it.
        ("probabilities", "sparse_categorical_accuracy_diff"): 0.01,
        ("probabilities", "example_count"): 30.0,
        ("box", "example_count"): 30.0,
    }
    assert mlflow_text.eval_metrics(values, CLASSES) == {
        "eval_accuracy": 0.9,
        "eval_iou": 0.6,
        "eval_hit_rate": 0.7,
        "eval_precision/circle": 1.0,
        "eval_recall/triangle": 0.5,
        "eval_recall/classId_7": 0.25,
        "eval_accuracy_change": 0.01,
        "eval_examples": 30.0,
    }


def test_a_class_label_mlflow_would_refuse_is_made_safe():
    assert (
        mlflow_text.eval_metric_name("probabilities", "precision/classId_0", ["red:car?"]) == "eval_precision/red_car_"
    )


def test_nan_becomes_null_so_the_file_is_json():
    by_slice = {"overall": {"eval_precision/circle": float("nan"), "eval_iou": 0.5}, "x": [float("inf")]}
    text = json.dumps(mlflow_text.finite_or_none(by_slice), allow_nan=False)
    assert json.loads(text) == {"overall": {"eval_precision/circle": None, "eval_iou": 0.5}, "x": [None]}


@pytest.mark.parametrize(
    ("feature", "value", "vocabulary", "expected"),
    [
        ({"kind": "vocabulary"}, "1", ["cam_03", "cam_00"], "cam_00"),
        ({"kind": "vocabulary"}, "2", ["cam_03", "cam_00"], "(other 0)"),  # The first OOV bucket.
        ({"kind": "vocabulary_list", "vocabulary": ["a", "b"]}, "0", None, "a"),
        ({"kind": "bucketized", "boundaries": [4, 8, 12]}, "0", None, "< 4"),
        ({"kind": "bucketized", "boundaries": [4, 8, 12]}, "2", None, "8..12"),
        ({"kind": "bucketized", "boundaries": [4, 8, 12]}, "3", None, ">= 12"),
        ({"kind": "bucketized", "quantiles": 4}, "3", None, "bucketized bucket 3"),
        ({"kind": "identity", "num_buckets": 5}, "3", None, "3"),
        ({"kind": "identity", "num_buckets": 5}, "5", None, "(out of range)"),
        ({"kind": "hash", "hash_buckets": 8}, "6", None, "hash bucket 6"),
        (None, "cam_01", None, "cam_01"),  # A raw column: its value is already readable.
    ],
)
def test_slice_values_are_named_by_what_the_id_stands_for(feature, value, vocabulary, expected):
    assert mlflow_text.slice_value_label(feature, value, vocabulary) == expected


def test_a_slice_key_reads_as_feature_equals_name():
    features = {"camera_id": {"name": "camera_id", "kind": "vocabulary"}}
    vocabularies = {"camera_id": ["cam_07", "cam_00"]}.get
    assert mlflow_text.slice_label((("camera_id", 1),), features, vocabularies) == "camera_id=cam_00"
    assert mlflow_text.slice_label((), features, vocabularies) == "overall"


def test_params_keep_only_the_keys_a_feature_kind_reads_and_the_runners_own_sections():
    config = {
        "features": [
            {"name": "hour", "kind": "bucketized"},
            {"name": "camera", "kind": "vocabulary"},
            {"name": "place", "kind": "crossed"},
        ]
    }
    flat = {
        "features.hour.kind": "bucketized",
        "features.hour.boundaries": "[4, 8]",
        "features.hour.top_k": "1000",
        "features.hour.default": "None",
        "features.hour.source": "datetime",
        "features.hour.derive": "hour",
        "features.hour.cyclical": "",
        "features.camera.source": "",
        "features.camera.top_k": "100",
        "features.camera.default": "cam_00",
        "features.camera.boundaries": "[]",
        "features.place.inputs": '["hour", "camera"]',
        "features.place.normalization": "zscore",
        "kubeflow.image": "xfer:1",
        "beam_args": "[]",
        "training.batch_size": "32",
    }
    assert mlflow_text.params(flat, config, "local") == {
        "features.hour.kind": "bucketized",
        "features.hour.boundaries": "[4, 8]",
        "features.hour.source": "datetime",
        "features.hour.derive": "hour",
        "features.camera.top_k": "100",
        "features.camera.default": "cam_00",
        "features.place.inputs": '["hour", "camera"]',
        "beam_args": "[]",
        "training.batch_size": "32",
    }
    kubeflow = mlflow_text.params(flat, config, "kubeflow")
    assert "kubeflow.image" in kubeflow and "beam_args" not in kubeflow


def test_every_kind_the_config_knows_has_its_keys_listed():
    from pipeline import config as config_lib

    kinds = set(config_lib.FeatureKind.__args__)
    assert kinds == set(mlflow_text.FEATURE_KEYS)
    fields = {field.name for field in config_lib.dataclasses.fields(config_lib.FeatureConfig)}
    assert all(set(keys) <= fields for keys in mlflow_text.FEATURE_KEYS.values())


def test_run_names_tell_a_training_run_from_cached_reruns():
    started = datetime.datetime(2026, 12, 2, 9, 14)
    ran = {"ImageExampleGen": "COMPLETE", "Trainer": "COMPLETE", "Pusher": "COMPLETE"}
    partly = {"ImageExampleGen": "CACHED", "Trainer": "CACHED", "Pusher": "COMPLETE"}
    cached = dict.fromkeys(ran, "CACHED")
    names = [
        mlflow_text.run_name("pushed", "sample", started, ran),
        mlflow_text.run_name("already_champion", "sample", started, partly),
        mlflow_text.run_name("already_champion", "sample", started, cached),
    ]
    assert names == [
        "pushed · sample · 12-02 09:14",
        "kept champion · 2/3 cached · sample · 12-02 09:14",
        "kept champion · 3/3 cached · sample · 12-02 09:14",
    ]
    assert mlflow_text.run_name("failed", "cars", started) == "failed · cars · 12-02 09:14"


def test_data_name_is_the_folders_name():
    assert mlflow_text.data_name("data/sample") == "sample"
    assert mlflow_text.data_name("s3://bucket/sets/cars/") == "cars"


def test_a_long_tag_is_cut_and_says_where_the_rest_is():
    assert mlflow_text.short("short") == "short"
    cut = mlflow_text.short("x" * 100, where="evaluation/gates.txt")
    assert len(cut) <= mlflow_text.TAG_LIMIT and cut.endswith("(see evaluation/gates.txt)")


def test_node_summary():
    assert mlflow_text.node_summary({"A": "COMPLETE", "B": "COMPLETE"}) == "all 2 ran"
    assert mlflow_text.node_summary({"A": "CACHED", "B": "CACHED"}) == "all 2 cached"
    assert mlflow_text.node_summary({"A": "CACHED", "B": "COMPLETE"}) == "ran B (1 cached)"


def test_the_gate_table_says_pass_and_fail():
    rows = (
        verdict.GateRow("eval_accuracy", "absolute", ">= 0.9", 0.95, True),
        verdict.GateRow("eval_iou", "change", "change >= -0.01", 0.6, False, champion=0.65, change=-0.05),
    )
    table = mlflow_text.format_gate_table(rows, "compared with version 3").splitlines()
    assert table[1].split() == ["eval_accuracy", ">=", "0.9", "0.9500", "-", "-", "pass"]
    assert table[2].split() == ["eval_iou", "change", ">=", "-0.01", "0.6000", "0.6500", "-0.0500", "FAIL"]
    assert table[3] == "champion: compared with version 3"
