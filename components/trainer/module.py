"""TFX Trainer module: `run_fn` adapts TFX's FnArgs to the plain functions in model, training and export."""

from __future__ import annotations

import gc
import hashlib
import json
import os

import tensorflow_transform as tft
import tf_keras

from components.settings import section_from_dict
from components.trainer import distribution, export, live_tracking, training
from components.trainer import model as model_lib
from components.trainer.settings import ModelConfig, TrainingConfig
from components.transform import features as features_lib

HISTORY_FILE = "history.json"


def run_fn(fn_args) -> None:
    custom_config = fn_args.custom_config
    settings = features_lib.TransformSettings.from_dict(custom_config["transform"])
    model_config = section_from_dict(ModelConfig, custom_config["model"], "model")
    training_config = section_from_dict(TrainingConfig, custom_config["training"], "training")

    # Seeded before the model is built, so weight initialisation is reproducible too.
    tf_keras.utils.set_random_seed(training_config.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    num_classes = len(export.read_label_names(tf_transform_output))
    inputs = model_lib.model_inputs(settings, tf_transform_output.vocabulary_size_by_name)
    # The precision and the devices are this process's: the global policy is put back afterwards, since the
    # local runner runs the other components in this same process.
    distribution.set_precision(training_config.mixed_precision)
    # The local runner trains in the process that ran Beam, TFT and TFDV: over a million Python objects that
    # every full garbage collection walks again (6 s of a 225 s Trainer here). Frozen, collections skip them.
    gc.collect()
    gc.freeze()
    try:
        with distribution.strategy_for_this_process().scope():
            model = model_lib.build_model(
                model_config, settings.image_size, inputs, num_classes, with_box=settings.boxes
            )
            history = _train(fn_args, model, tf_transform_output, settings, model_config, training_config)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
        gc.unfreeze()
    training.write_history(history, training_config, os.path.join(fn_args.model_run_dir, HISTORY_FILE))
    export.export_serving_model(model, tf_transform_output, settings, fn_args.serving_model_dir)
    training.Checkpoint(checkpoint_dir(fn_args)).clear()


def _train(fn_args, model, tf_transform_output, settings, model_config, training_config) -> list[dict]:
    """Both phases on the transformed examples, checkpointed where a rerun of the same training finds them."""
    common = dict(
        feature_spec=tf_transform_output.transformed_feature_spec(),
        input_names=list(model.input.keys()),
        batch_size=training_config.batch_size,
        seed=training_config.seed,
        image_size=settings.image_size,
        cache_max_bytes=training_config.cache_max_mb * 2**20,
    )
    train_dataset = training.make_dataset(
        fn_args.train_files,
        shuffle=True,
        shuffle_buffer=training_config.shuffle_buffer,
        augment=training_config.augment,
        **common,
    )
    eval_dataset = training.make_dataset(fn_args.eval_files, shuffle=False, **common)
    return training.train_two_phases(
        model,
        train_dataset,
        eval_dataset,
        model_config,
        training_config,
        on_epoch=live_tracking.from_environment(training.unfreeze_epoch(training_config)),
        callbacks=[tf_keras.callbacks.TensorBoard(log_dir=os.path.join(fn_args.model_run_dir, "tensorboard"))],
        checkpoint_dir=checkpoint_dir(fn_args),
    )


def checkpoint_dir(fn_args) -> str:
    """Where this training's checkpoints live: the same folder for a rerun of the same training.

    TFX gives every execution a fresh model_run_dir, so a Trainer that was killed and rerun would never see its
    own checkpoints there. The key is what determines the training (its inputs and its config), so a rerun
    resumes, and a changed config or new data starts afresh.
    """
    key = json.dumps(
        [sorted(fn_args.train_files), fn_args.transform_output, fn_args.custom_config], sort_keys=True, default=str
    )
    trainer_root = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip("/")))
    return os.path.join(trainer_root, "checkpoints", hashlib.sha256(key.encode()).hexdigest()[:16])
