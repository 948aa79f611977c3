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
  frozen features, BatchNorm kept in inference mode (components/trainer/model.py does it for any weights), phase 2 at
  a low learning rate.
Training stops at the budget, mid-phase if need be; the wall time of each row is measured, not assumed.
No TFX here (benchmarks/plain_keras.py's loading and the pipeline's own model and phases): the question is
the recipe, not the pipeline.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import components  # noqa: E402, F401  sets TF_USE_LEGACY_KERAS (components/__init__.py)
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


def with_recipe(config, recipe: Recipe):
    """`config` with the recipe's weights and phases; everything else (network, batch, schedule) as is."""
    training = dataclasses.replace(
        config.training,
        frozen=dataclasses.replace(config.training.frozen, epochs=recipe.frozen_epochs, learning_rate=recipe.frozen_lr),
        finetune=dataclasses.replace(
            config.training.finetune, epochs=recipe.finetune_epochs, learning_rate=recipe.finetune_lr
        ),
    )
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, weights=recipe.weights), training=training
    )


def run_arm(config, recipe: Recipe, splits, cardinality, num_classes: int, budget_s: float):
    """One row: the network trained by `recipe` for `budget_s` seconds, scored on the eval split."""
    return plain_keras.run_arm(recipe.name, with_recipe(config, recipe), splits, cardinality, num_classes, budget_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sample.yaml")
    parser.add_argument("--data", default="data/sample")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of training per sample-task arm")
    parser.add_argument("--source-budget", type=float, default=300.0, help="seconds of source-task training")
    parser.add_argument("--source-images", type=int, default=500)
    parser.add_argument("--weights-out", help="keep the pretrained backbone's weights file here")
    parser.add_argument("--seed", type=int, help="training seed of every arm (default: the config's)")
    parser.add_argument(
        "--source-only", action="store_true", help="pretrain and write --weights-out only (configs/pretrained.yaml)"
    )
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    if args.source_only and not args.weights_out:
        parser.error("--source-only needs --weights-out")

    from components.ingest import sample_data
    from components.trainer import model as model_lib
    from pipeline import config as config_lib

    config = config_lib.load_config(args.config, {"data": args.data})
    if args.seed is not None:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, seed=args.seed))

    rows = []
    with tempfile.TemporaryDirectory(prefix="xfer-transfer-") as work:
        source_dir = Path(work) / "source"
        sample_data.write_sample_dataset(source_dir, args.source_images, seed=SOURCE_SEED, palette="random")
        source, source_labels, source_cardinality = plain_keras.load_splits(config, source_dir)
        source_recipe = Recipe("source task, from scratch", "none", 1, 1e-3, 15, 1e-3)
        network, row = run_arm(
            config, source_recipe, source, source_cardinality, len(source_labels), args.source_budget
        )
        weights_file = args.weights_out or str(Path(work) / "source_backbone.h5")
        Path(weights_file).parent.mkdir(parents=True, exist_ok=True)
        network.get_layer(model_lib.BACKBONE_NAME).save_weights(weights_file)
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
        if args.source_only:
            print(f"backbone weights: {weights_file}")
            return 0

        target, labels, cardinality = plain_keras.load_splits(config, Path(args.data))
        frozen, finetune = config.training.frozen, config.training.finetune
        for recipe in (
            Recipe("sample, from scratch (sample recipe)", "none", frozen.epochs, frozen.learning_rate,
                   finetune.epochs, finetune.learning_rate),
            Recipe("sample, from the source backbone (pretrained recipe)", weights_file, 4, 1e-3,
                   finetune.epochs, 1e-4),
        ):  # fmt: skip
            _, row = run_arm(config, recipe, target, cardinality, len(labels), args.budget)
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)

    plain_keras.print_rows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
