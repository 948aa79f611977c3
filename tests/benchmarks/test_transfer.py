"""Transfer on tiny data: a backbone pretrained on another task, loaded from its weights file
(`model.weights: <file>`), beats the same network from scratch at the same number of steps.

The machinery is benchmarks/transfer.py's (the pipeline's own network, phases and weights loading, fed from
numpy), at a size a test can afford; the benchmark measures the same at full size and equal wall time.
"""

import dataclasses

import pytest

from benchmarks import plain_keras, transfer
from components.ingest import sample_data
from components.trainer import model as model_lib
from pipeline import config as config_lib
from tests.helpers import SAMPLE_CONFIG


@pytest.mark.slow
def test_a_backbone_pretrained_on_another_task_beats_scratch_at_equal_steps(tmp_path):
    config = config_lib.load_config(SAMPLE_CONFIG)
    config = dataclasses.replace(config, training=dataclasses.replace(config.training, batch_size=16))
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    # The source task is not the target: other images (another seed) and every shape in a random hue.
    sample_data.write_sample_dataset(source_dir, 160, seed=transfer.SOURCE_SEED, palette="random")
    sample_data.write_sample_dataset(target_dir, 80, seed=5)
    source, source_labels, source_cardinality = plain_keras.load_splits(config, source_dir)
    target, labels, cardinality = plain_keras.load_splits(config, target_dir)

    pretraining = transfer.Recipe("source", "none", 1, 1e-3, 6, 1e-3)
    network, _ = transfer.run_arm(config, pretraining, source, source_cardinality, len(source_labels), 1e9)
    weights = str(tmp_path / "source_backbone.weights.h5")
    network.get_layer(model_lib.BACKBONE_NAME).save_weights(weights)

    scratch = transfer.Recipe("scratch", "none", 1, 1e-3, 5, 1e-3)
    pretrained = transfer.Recipe("pretrained", weights, 3, 1e-3, 3, 1e-4)
    assert scratch.frozen_epochs + scratch.finetune_epochs == pretrained.frozen_epochs + pretrained.finetune_epochs
    _, from_scratch = transfer.run_arm(config, scratch, target, cardinality, len(labels), 1e9)
    _, from_file = transfer.run_arm(config, pretrained, target, cardinality, len(labels), 1e9)
    print(from_scratch, from_file)
    assert from_file["eval_iou"] > from_scratch["eval_iou"] + 0.05
