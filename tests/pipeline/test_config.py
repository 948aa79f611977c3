import dataclasses
from pathlib import Path

import pytest

from pipeline import config as config_lib
from tests.helpers import REPO_ROOT, SAMPLE_CONFIG

ROOT = REPO_ROOT
SAMPLE = SAMPLE_CONFIG


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


MINIMAL = """
pipeline_name: p
data: d
training:
  frozen: {epochs: 1, learning_rate: 1e-3}
  finetune: {epochs: 1, learning_rate: 1e-4}
"""


def test_sample_config_parses_into_typed_objects():
    config = config_lib.load_config(SAMPLE)
    assert config.pipeline_name == "xfer-sample"
    assert config.image.size >= 71
    assert isinstance(config.training.finetune.learning_rate, float)
    kinds = {feature.kind for feature in config.features}
    assert {"bucketized", "vocabulary", "crossed"} <= kinds


def test_minimal_config_gets_defaults_and_reads_exponent_learning_rates(tmp_path):
    config = config_lib.load_config(_write(tmp_path, MINIMAL))
    assert config.training.finetune.learning_rate == pytest.approx(1e-4)
    assert config.workspace == "workspace"
    assert config.tracking_uri.endswith("workspace/mlflow.db")
    assert config.experiment_name == "p"


@pytest.mark.parametrize(
    "extra, message",
    [
        ("colour: red\n", "colour: unknown key"),
        ("image: {size: 64}\n", "image.size: xception needs at least 71 pixels"),
        ("image: {size: big}\n", "image.size: expected a whole number, got 'big'"),
        ("model: {weights: none, dropout: 0.1}\n", "model.dropout: unknown key"),
        ("evaluation: {min_accuracy: 2}\n", "evaluation.min_accuracy: must be between 0 and 1.01"),
        ("features: [{name: h, kind: bucketized}]\n", "features.h: a bucketized feature needs either boundaries or"),
        ("features: [{name: h, kind: identity}]\n", "features.h.num_buckets: an identity feature needs"),
        ("features: [{name: h, kind: hash, hash_buckets: 1}]\n", "features.h.hash_buckets: a hash feature needs"),
        ("features: [{name: h, kind: vocabulary_list}]\n", "features.h.vocabulary: a vocabulary_list feature"),
        ("features: [{name: h, kind: numeric, normalization: log}]\n", "features.h.normalization: expected one of"),
        (
            "features: [{name: h, kind: numeric}, {name: c, kind: crossed, inputs: [h, h], hash_buckets: 4}]\n",
            "features.c.inputs: 'h' is numeric; cross categorical features",
        ),
        ("features: [{name: h, kind: bucketized, boundaries: [3, 1]}]\n", "features.h.boundaries: must be strictly"),
        ("features: [{name: h, kind: magic}]\n", "features.h.kind: expected one of"),
        (
            "features: [{name: c, kind: crossed, inputs: [a, b], hash_buckets: 8}]\n",
            "features.c.inputs: unknown feature",
        ),
    ],
)
def test_bad_values_get_one_line_errors_that_name_the_key(tmp_path, extra, message):
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load_config(_write(tmp_path, MINIMAL + extra))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_required_key_is_named(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="^training: required key is missing$"):
        config_lib.load_config(_write(tmp_path, "pipeline_name: p\ndata: d\n"))


def test_learning_rate_must_be_a_number(tmp_path):
    text = MINIMAL.replace("learning_rate: 1e-4", "learning_rate: fast")
    with pytest.raises(config_lib.ConfigError, match=r"training.finetune.learning_rate: expected a number, got 'fast'"):
        config_lib.load_config(_write(tmp_path, text))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="config file not found"):
        config_lib.load_config(tmp_path / "nope.yaml")
    with pytest.raises(config_lib.ConfigError, match="not valid YAML"):
        config_lib.load_config(_write(tmp_path, "a: [1, 2"))


def test_overrides_replace_top_level_keys(tmp_path):
    config = config_lib.load_config(_write(tmp_path, MINIMAL), {"data": "elsewhere", "workspace": None})
    assert config.data == "elsewhere"
    assert config.workspace == "workspace"


def test_sections_round_trip_through_dicts():
    config = config_lib.load_config(SAMPLE)
    training = config_lib.section_from_dict(config_lib.TrainingConfig, config_lib.asdict(config.training))
    assert training == config.training
    feature = config.features[0]
    assert config_lib.section_from_dict(config_lib.FeatureConfig, config_lib.asdict(feature)) == feature


def test_a_weights_file_is_checked_before_the_run_starts(tmp_path):
    raw = config_lib.load_config(SAMPLE).to_dict()
    raw["model"]["weights"] = str(tmp_path / "missing.h5")
    with pytest.raises(config_lib.ConfigError, match="model.weights: .*missing.h5 does not exist"):
        config_lib.config_from_dict(raw)
    raw["model"]["weights"] = "resnet.ckpt"
    with pytest.raises(config_lib.ConfigError, match="none, imagenet or a Keras HDF5 weights file"):
        config_lib.config_from_dict(raw)
    (tmp_path / "backbone.h5").write_bytes(b"")
    raw["model"]["weights"] = str(tmp_path / "backbone.h5")
    assert config_lib.config_from_dict(raw).model.weights.endswith("backbone.h5")
    raw["model"]["weights"] = "s3://models/backbone.h5"  # Read by the Trainer, in its own place.
    config_lib.config_from_dict(raw)


def test_the_gates_judge_a_split_the_trainer_never_sees():
    split = config_lib.load_config(SAMPLE).split
    assert min(split.train, split.val, split.eval) >= 1
    raw = config_lib.load_config(SAMPLE).to_dict()
    raw["split"] = {"train": 4, "val": 0, "eval": 1}
    with pytest.raises(config_lib.ConfigError, match="train, val and eval need at least one hash bucket"):
        config_lib.config_from_dict(raw)


def test_the_pretrained_preset_changes_only_the_weights_and_the_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # The preset's weights path is relative to where xfer runs, as `data` is.
    preset = ROOT / "configs" / "pretrained.yaml"
    with pytest.raises(config_lib.ConfigError, match="model.weights: workspace/backbones/source_backbone.h5 does not"):
        config_lib.load_config(preset)
    (tmp_path / "workspace" / "backbones").mkdir(parents=True)
    (tmp_path / "workspace" / "backbones" / "source_backbone.h5").write_bytes(b"")
    pretrained, sample = config_lib.load_config(preset), config_lib.load_config(SAMPLE)
    assert pretrained.model.weights == "workspace/backbones/source_backbone.h5"
    assert (pretrained.training.frozen.epochs, pretrained.training.frozen.learning_rate) == (4, 1e-3)
    assert (pretrained.training.finetune.epochs, pretrained.training.finetune.learning_rate) == (12, 1e-4)
    # Everything else is the sample's, merged section by section (the finetune schedule included).
    assert pretrained.training.finetune.schedule == sample.training.finetune.schedule == "cosine"
    assert dataclasses.replace(pretrained.model, weights="none") == sample.model
    same_phases = {"frozen": sample.training.frozen, "finetune": sample.training.finetune}
    assert dataclasses.replace(pretrained.training, **same_phases) == sample.training
    assert (pretrained.features, pretrained.evaluation, pretrained.split) == (
        sample.features,
        sample.evaluation,
        sample.split,
    )


def test_a_base_file_is_merged_under_the_config_and_its_errors_name_it(tmp_path):
    (tmp_path / "base.yaml").write_text(MINIMAL + "image: {size: 96}\n")
    child = _write(tmp_path, "base: base.yaml\ntraining: {finetune: {epochs: 3}}\n")
    config = config_lib.load_config(child)
    assert config.training.finetune.epochs == 3 and config.training.finetune.learning_rate == 1e-4
    assert config.image.size == 96 and config.pipeline_name == "p"
    with pytest.raises(config_lib.ConfigError, match=r"base: config file not found: .*missing.yaml"):
        config_lib.load_config(_write(tmp_path, "base: missing.yaml\n"))
    (tmp_path / "loop.yaml").write_text("base: config.yaml\n")
    with pytest.raises(config_lib.ConfigError, match="a cycle of base files"):
        config_lib.load_config(_write(tmp_path, "base: loop.yaml\n"))
