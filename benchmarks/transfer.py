"""Transfer, offline: a backbone pretrained on another task against training from scratch, at equal wall time.

    python -m benchmarks.transfer --data data/sample --budget 300 --json transfer.json

ImageNet weights cannot be downloaded here, so the source task is made: the sample generator with another
seed and `palette="random"` (every shape in a random hue, so colour says nothing of the class and the
network must learn shape and place). A network is trained there from scratch for `--source-budget` seconds
and its backbone saved as a Keras HDF5 weights file, the file `model.weights` takes.

Then the sample task (train split; the Trainer's val split watched; scored on the eval split, as the gates
are), twice, each for `--budget` seconds of training:
- scratch: `model.weights: none` and the sample config's recipe (1 frozen epoch, then fine-tuning at 1e-3);
- pretrained: `model.weights: <the file>` and the pretrained recipe: phase 1 long enough to train the heads on
  frozen features, BatchNorm kept in inference mode (components/model.py does it for any weights), phase 2 at
  a low learning rate.
Training stops at the budget, mid-phase if need be; the wall time of each row is measured, not assumed.
No TFX here (benchmarks/plain_keras.py's loading and the pipeline's own model and phases): the question is
the recipe, not the pipeline.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import plain_keras  # noqa: E402

SOURCE_SEED = 1009  # Not the sample's seed: other images, other backgrounds.


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    weights: str  # "none" or a weights file
    frozen_epochs: int
    frozen_lr: float
    finetune_epochs: int
    finetune_lr: float


def train_for(network, recipe: Recipe, config, train, val, budget_s: float) -> dict:
    """The two phases of components/training.py (freeze, then unfreeze), stopped when `budget_s` is spent."""
    import tf_keras

    from components import model as model_lib
    from components import training

    deadline = time.perf_counter() + budget_s

    class Budget(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() > deadline:
                self.model.stop_training = True

    started, epochs, first = time.perf_counter(), 0, 0
    phases = (
        (
            False,
            dataclasses.replace(config.training.frozen, epochs=recipe.frozen_epochs, learning_rate=recipe.frozen_lr),
        ),
        (
            True,
            dataclasses.replace(
                config.training.finetune, epochs=recipe.finetune_epochs, learning_rate=recipe.finetune_lr
            ),
        ),
    )
    for trainable, phase in phases:
        if time.perf_counter() > deadline or phase.epochs == 0:
            continue
        model_lib.set_backbone_trainable(network, trainable)
        model_lib.compile_model(network, config.model, phase.learning_rate)
        schedule = tf_keras.callbacks.LearningRateScheduler(
            lambda epoch, _, first=first, phase=phase: training.phase_learning_rate(phase, epoch - first)
        )
        history = network.fit(
            train,
            validation_data=val,
            initial_epoch=first,
            epochs=first + phase.epochs,
            callbacks=[schedule, Budget()],
            verbose=0,
        )
        epochs += len(history.history["loss"])
        first += phase.epochs
    return {"train_s": time.perf_counter() - started, "epochs": epochs}


def score(network, inputs: dict, targets: dict, hit_iou: float) -> dict:
    from components import metrics

    predicted = network.predict(inputs, batch_size=64, verbose=0)
    ious = metrics.box_iou_numpy(predicted["box"], targets["box"])
    return {
        "eval_accuracy": float(np.mean(np.argmax(predicted["probabilities"], axis=1) == targets["probabilities"])),
        "eval_iou": float(np.mean(ious)),
        "eval_hit_rate": float(np.mean(ious >= hit_iou)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sample.yaml")
    parser.add_argument("--data", default="data/sample")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of training per sample-task arm")
    parser.add_argument("--source-budget", type=float, default=300.0, help="seconds of source-task training")
    parser.add_argument("--source-images", type=int, default=500)
    parser.add_argument("--weights-out", help="keep the pretrained backbone's weights file here")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)

    import tensorflow as tf
    import tf_keras

    from components import model as model_lib
    from components import sample_data
    from pipeline import config as config_lib

    config = config_lib.load_config(args.config, {"data": args.data})
    batch = config.training.batch_size

    def datasets(splits):
        (train_x, train_y), (val_x, val_y) = splits["train"], splits["val"]
        train = (
            tf.data.Dataset.from_tensor_slices((train_x, train_y))
            .shuffle(config.training.shuffle_buffer, seed=config.training.seed)
            .batch(batch)
            .prefetch(tf.data.AUTOTUNE)
        )
        return train, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(batch).prefetch(tf.data.AUTOTUNE)

    def network_for(weights: str, cardinality, num_classes):
        tf_keras.utils.set_random_seed(config.training.seed)
        inputs = model_lib.ModelInputs(
            categorical=cardinality, numeric=(), embedding_dims={f.name: f.embedding_dim for f in config.features}
        )
        model_config = dataclasses.replace(config.model, weights=weights)
        return model_lib.build_model(model_config, config.image.size, inputs, num_classes)

    rows = []
    with tempfile.TemporaryDirectory(prefix="xfer-transfer-") as work:
        source_dir = Path(work) / "source"
        sample_data.write_sample_dataset(source_dir, args.source_images, seed=SOURCE_SEED, palette="random")
        source, source_labels, source_cardinality = plain_keras.load_splits(config, source_dir)
        source_recipe = Recipe("source task, from scratch", "none", 1, 1e-3, 15, 1e-3)
        network = network_for("none", source_cardinality, len(source_labels))
        timing = train_for(network, source_recipe, config, *datasets(source), args.source_budget)
        weights_file = args.weights_out or str(Path(work) / "source_backbone.h5")
        network.get_layer(model_lib.BACKBONE_NAME).save_weights(weights_file)
        rows.append({"arm": source_recipe.name, **timing, **score(network, *source["eval"], config.evaluation.hit_iou)})
        print(json.dumps(rows[-1]), flush=True)

        target, labels, cardinality = plain_keras.load_splits(config, Path(args.data))
        frozen, finetune = config.training.frozen, config.training.finetune
        for recipe in (
            Recipe("sample, from scratch (sample recipe)", "none", frozen.epochs, frozen.learning_rate,
                   finetune.epochs, finetune.learning_rate),
            Recipe("sample, from the source backbone (pretrained recipe)", weights_file, 4, 1e-3,
                   finetune.epochs, 1e-4),
        ):  # fmt: skip
            network = network_for(recipe.weights, cardinality, len(labels))
            timing = train_for(network, recipe, config, *datasets(target), args.budget)
            rows.append({"arm": recipe.name, **timing, **score(network, *target["eval"], config.evaluation.hit_iou)})
            print(json.dumps(rows[-1]), flush=True)

    print(f"\n{'arm':<55} {'train s':>8} {'epochs':>6} {'accuracy':>8} {'IoU':>6} {'hit rate':>8}")
    for row in rows:
        print(
            f"{row['arm']:<55} {row['train_s']:>8.0f} {row['epochs']:>6} {row['eval_accuracy']:>8.3f} "
            f"{row['eval_iou']:>6.3f} {row['eval_hit_rate']:>8.3f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
