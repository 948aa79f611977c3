"""Trains the real network (a small backbone) with the Trainer's own functions in a fresh process whose CPU is
split into N logical devices, so that `distribution` finds N replicas, as on a node with N GPUs.

    python -m tests.helpers.replica_trainer --replicas 2 --precision bfloat16 --out result.json [--checkpoints DIR]
        [--kill-after-epoch K] [--initial-weights FILE.h5] [--frozen-epochs N] [--finetune-epochs N]

Logical devices must be configured before TensorFlow initialises them, hence the process of its own. Writes
the history, the number of replicas, the policy and the outputs' dtypes as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Killed(Exception):
    pass


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, required=True)
    parser.add_argument("--precision", default="off")
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--kill-after-epoch", type=int, default=-1)
    parser.add_argument("--frozen-epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=0)
    # The same starting weights in both runs: variables created under another strategy draw other random
    # initial values, which would hide what the replicas themselves change.
    parser.add_argument("--initial-weights", default=None, help="load them if the file exists, else save them")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tf_keras

    from components.trainer import distribution, training
    from components.trainer import model as model_lib
    from pipeline import config as config_lib

    # Importing starts no TensorFlow runtime; the devices are split before anything below uses one.
    if args.replicas > 1:
        distribution.split_cpu(args.replicas)

    model_config = config_lib.ModelConfig(backbone="mobilenet_v2", weights="none", dropout_rate=0.0, head_units=16)
    training_config = config_lib.TrainingConfig(
        frozen=config_lib.PhaseConfig(epochs=args.frozen_epochs, learning_rate=1e-2),
        finetune=config_lib.PhaseConfig(epochs=args.finetune_epochs, learning_rate=1e-3),
        batch_size=8,  # Global: 4 per replica on two.
        mixed_precision=args.precision,
    )
    rng = np.random.default_rng(0)
    size, count = 32, 32
    features = {
        "image": rng.integers(0, 256, (count, size, size, 3)).astype(np.int64),
        "camera": rng.integers(0, 3, count).astype(np.int64),
    }
    labels = {
        model_lib.PROBABILITIES: rng.integers(0, 3, count).astype(np.int64),
        model_lib.BOX: np.tile([[0.1, 0.2, 0.6, 0.7]], (count, 1)).astype(np.float32),
    }
    train = tf.data.Dataset.from_tensor_slices((features, labels)).batch(training_config.batch_size)
    inputs = model_lib.ModelInputs(categorical={"camera": 3}, numeric=(), embedding_dims={"camera": 2})

    tf_keras.utils.set_random_seed(7)
    policy = distribution.set_precision(args.precision)
    epochs_logged = []
    strategy = distribution.strategy_for_this_process()

    class Kill(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == args.kill_after_epoch:
                raise Killed(f"killed after epoch {epoch}")

    try:
        with strategy.scope():
            model = model_lib.build_model(model_config, size, inputs, num_classes=3)
            if args.initial_weights and os.path.exists(args.initial_weights):
                model.load_weights(args.initial_weights)
            elif args.initial_weights:
                model.save_weights(args.initial_weights)
            history = training.train_two_phases(
                model,
                train,
                train,
                model_config,
                training_config,
                on_epoch=epochs_logged.append,  # What live MLflow logging receives.
                callbacks=[Kill()],
                checkpoint_dir=args.checkpoints,
            )
    except Killed:
        history = None
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    outputs = model({name: value[:2] for name, value in features.items()}, training=False)
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "policy": policy,
        "history": history,
        "epochs_logged": [row["epoch"] for row in epochs_logged],
        "output_dtypes": {name: tensor.dtype.name for name, tensor in outputs.items()},
        "compute_dtype_of_backbone": model.get_layer(model_lib.BACKBONE_NAME).compute_dtype,
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
