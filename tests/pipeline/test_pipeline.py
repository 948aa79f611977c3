"""create_pipeline()'s wiring of the three splits: what each node reads."""

import json

from google.protobuf import json_format

from pipeline import config as config_lib
from pipeline import pipeline as pipeline_lib
from tests.helpers import SAMPLE_CONFIG


def _as_dict(value):
    """A proto exec property, as TFX stores it (JSON, field names as in the .proto)."""
    return (
        json.loads(value)
        if isinstance(value, str)
        else json_format.MessageToDict(value, preserving_proto_field_name=True)
    )


def test_the_trainer_validates_on_val_and_only_the_evaluator_reads_eval(tmp_path):
    config = config_lib.load_config(SAMPLE_CONFIG)
    pipeline = pipeline_lib.create_pipeline(config, str(tmp_path / "root"), str(tmp_path / "serving"))
    nodes = {node.id: node for node in pipeline.components}
    output_config = _as_dict(nodes["ImageExampleGen"].exec_properties["output_config"])
    splits = {split["name"]: split["hash_buckets"] for split in output_config["split_config"]["splits"]}
    assert splits == {"train": config.split.train, "val": config.split.val, "eval": config.split.eval}
    trainer = nodes["Trainer"].exec_properties
    assert _as_dict(trainer["train_args"])["splits"] == ["train"]
    assert _as_dict(trainer["eval_args"])["splits"] == ["val"]
    assert json.loads(nodes["Evaluator"].exec_properties["example_splits"]) == ["eval"]


def test_the_gate_checks_classes_against_the_split_transform_learns_its_vocabulary_from(tmp_path):
    config = config_lib.load_config(SAMPLE_CONFIG)
    pipeline = pipeline_lib.create_pipeline(config, str(tmp_path / "root"), str(tmp_path / "serving"))
    nodes = {node.id: node for node in pipeline.components}
    gate = nodes["AnomaliesGate"]
    assert gate.inputs["statistics"] is nodes["StatisticsGen"].outputs["statistics"]
    assert gate.exec_properties["label"] == "label"
    # TFX Transform analyses the train split unless given a splits_config; the gate's train split is that one.
    assert (
        "splits_config" not in nodes["Transform"].exec_properties
        or not nodes["Transform"].exec_properties["splits_config"]
    )
    assert (
        gate.exec_properties["train_split"]
        == "train"
        == _as_dict(nodes["Trainer"].exec_properties["train_args"])["splits"][0]
    )
