"""Two-phase transfer learning on Transform's output, as plain functions the Trainer module calls."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from components.trainer import augment as augment_lib
from components.trainer import model as model_lib
from components.trainer.settings import AugmentConfig, ModelConfig, PhaseConfig, TrainingConfig
from components.transform import features as features_lib

LABEL_KEYS = {model_lib.PROBABILITIES: features_lib.LABEL_ID, model_lib.BOX: features_lib.BOX}


def make_dataset(
    file_patterns: Sequence[str],
    feature_spec: Mapping[str, Any],
    input_names: Sequence[str],
    batch_size: int,
    shuffle: bool,
    seed: int,
    image_size: int,
    shuffle_buffer: int = 1000,
    augment: AugmentConfig | None = None,
    cache_max_bytes: int = 0,
) -> tf.data.Dataset:
    """GZIP TFRecords of transformed examples -> batches of ({input: tensor}, {output: label}).

    Built to keep up at scale: the files are read interleaved (in a seeded order when shuffling), the stored
    image is decoded here (`features.decode_one_stored_image`, as the serving graph does), and the serialized
    examples are cached in memory only when their files take at most `cache_max_bytes` on disk, so a large
    dataset streams from disk every epoch instead of filling the memory. Order is deterministic only where the
    seed needs it (shuffled training); evaluation lets tf.data hand out whichever batch is ready first.
    One function, long on purpose: the stages' order matters (read, parse, cache, shuffle, batch, decode,
    augment) and is checked by reading it top to bottom.

    tf.data's autotuning optimizer is off (`AUTOTUNE` then means min(16, cores) parallel calls and a prefetch
    buffer that grows while the model waits): in TensorFlow 2.16 its thread finishes the wait it is in (its
    period doubles up to 60 s) before a dropped iterator is freed, and Keras drops the training iterator at
    every epoch's end. On the sample one run stalled 1.4 to 2.5 s at 8 of 11 epoch boundaries, others once each
    for 9.6 to 9.95 s (`TF_CPP_VMODULE=model=2` logs "Waiting for 9866 ms" as an epoch ends, and the next
    begins 9.9 s later).
    """
    files = sorted(path for pattern in file_patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {list(file_patterns)}")
    file_names = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        file_names = file_names.shuffle(len(files), seed=seed, reshuffle_each_iteration=False)
    dataset = file_names.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=shuffle,
    )
    if cache_max_bytes and files_bytes(files) <= cache_max_bytes:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    spec = dict(feature_spec)

    def split(serialized):
        # One example at a time, so that tf.data decodes images in parallel across examples; the decode is
        # the serving graph's (features.decode_one_stored_image).
        parsed = tf.io.parse_single_example(serialized, spec)
        if features_lib.IMAGE in parsed:
            parsed[features_lib.IMAGE] = features_lib.decode_one_stored_image(parsed[features_lib.IMAGE], image_size)
        inputs = {name: parsed[name] for name in input_names}
        labels = {output: parsed[key] for output, key in LABEL_KEYS.items() if key in parsed}
        return inputs, labels

    dataset = dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE, deterministic=shuffle)
    dataset = dataset.batch(batch_size)
    if augment is not None and augment != AugmentConfig():
        # Stateless ops seeded by (seed, batch position) keep runs reproducible; the shuffle before batching
        # pairs each example with different draws from one epoch to the next.
        def augmented(batch_index, example):
            inputs, labels = example
            images = inputs[features_lib.IMAGE]
            # Classification-only data has no box; a placeholder goes through and is dropped.
            boxes = labels.get(model_lib.BOX, tf.zeros([tf.shape(images)[0], 4]))
            images, boxes = augment_lib.augment_batch(
                images, boxes, augment, seed=tf.stack([tf.constant(seed, tf.int64), batch_index])
            )
            if model_lib.BOX in labels:
                labels = {**labels, model_lib.BOX: boxes}
            return {**inputs, features_lib.IMAGE: images}, labels

        dataset = dataset.enumerate().map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def files_bytes(files: Sequence[str]) -> int:
    """The files' size on disk (what decides whether the examples are cached in memory)."""
    return sum(tf.io.gfile.stat(path).length for path in files)


def format_number(value: float) -> str:
    """Four decimals where they fit (losses, accuracies, IoU), significant digits where they would round a
    small or large value away (a learning rate of 1e-05 is not 0.0000)."""
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.4f}"
    return f"{value:.3g}"


class EpochLog(tf_keras.callbacks.Callback):
    """One log line per epoch (phase, epoch, metrics, time left), and a hook for live tracking.

    An epoch's seconds (`seconds`, and the line's "in X s") run from the end of the previous epoch, so they
    include the boundary where Keras replaces the input iterator; a fit's first epoch runs from its start.
    benchmarks/plain_keras.py times its epochs with this same clock.
    """

    def __init__(self, phase: str, total_epochs: int, on_epoch: Callable[[dict[str, Any]], None] | None = None):
        super().__init__()
        self._phase = phase
        self._total_epochs = total_epochs
        self._on_epoch = on_epoch
        self._started = time.monotonic()
        self._first_epoch: int | None = None
        self._epoch_started = self._started
        self.rows: list[dict[str, Any]] = []
        self.seconds: list[float] = []

    def on_train_begin(self, logs=None):
        self._first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch
            self._started = self._epoch_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        row = {"phase": self._phase, "epoch": epoch, **{key: float(value) for key, value in (logs or {}).items()}}
        self.rows.append(row)
        done = epoch - self._first_epoch + 1
        remaining = self._total_epochs - (epoch + 1)
        eta = (time.monotonic() - self._started) / done * max(remaining, 0)
        shown = " ".join(f"{key}={format_number(value)}" for key, value in row.items() if key not in ("phase", "epoch"))
        if self._on_epoch is not None:
            self._on_epoch(row)
        now = time.monotonic()
        self.seconds.append(now - self._epoch_started)
        logging.info(
            "[%s] epoch %d/%d %s in %.2fs (ETA %.0fs)",
            self._phase,
            epoch + 1,
            self._total_epochs,
            shown,
            self.seconds[-1],
            eta,
        )
        self._epoch_started = now


def train_two_phases(
    model: tf_keras.Model,
    train_dataset: tf.data.Dataset,
    eval_dataset: tf.data.Dataset,
    model_config: ModelConfig,
    training: TrainingConfig,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    callbacks: Sequence[tf_keras.callbacks.Callback] = (),
    checkpoint_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Phase 1 trains the heads on a frozen backbone; phase 2 unfreezes it at a lower learning rate.

    Epochs are numbered on one axis across both phases; the first phase-2 epoch is the unfreeze point.
    With `checkpoint_dir`, the weights and the history so far are saved after every epoch, and a run that
    finds them there (a rerun after a kill) resumes after the last saved epoch. The optimizer's moments are
    not saved: a resumed phase restarts Adam's statistics, which costs a few steps, not correctness.
    Returns one dict per epoch with the phase, the epoch and Keras's logs.
    Long because both phases share one epoch axis, one history and one checkpoint: split, the resume
    arithmetic (which phase, which epoch) would be spread over the pieces.
    """
    total = training.frozen.epochs + training.finetune.epochs
    checkpoint = Checkpoint(checkpoint_dir) if checkpoint_dir else None
    history: list[dict[str, Any]] = checkpoint.restore(model) if checkpoint else []
    # After the last saved epoch: an early-stopped frozen phase leaves a gap in the epoch axis, so count no rows.
    next_epoch = history[-1]["epoch"] + 1 if history else 0
    if next_epoch:
        logging.info("Resuming training after epoch %d from %s", next_epoch, checkpoint_dir)
    phases = (
        ("frozen", False, training.frozen, 0),
        ("finetune", True, training.finetune, training.frozen.epochs),
    )
    for phase, backbone_trainable, phase_config, first_epoch in phases:
        last_epoch = first_epoch + phase_config.epochs
        if next_epoch >= last_epoch:
            continue
        model_lib.set_backbone_trainable(
            model,
            backbone_trainable,
            top_layers=phase_config.unfreeze_top_layers,
            top_blocks=phase_config.unfreeze_top_blocks,
            backbone_name=model_config.backbone,
        )
        model_lib.compile_model(model, model_config, phase_config.learning_rate)
        log = EpochLog(phase, total, on_epoch)
        schedule = tf_keras.callbacks.LearningRateScheduler(
            lambda epoch, _, first=first_epoch, config=phase_config: phase_learning_rate(config, epoch - first)
        )
        phase_callbacks = [schedule, log]
        if training.early_stopping_patience:
            phase_callbacks.append(
                tf_keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=training.early_stopping_patience, restore_best_weights=True
                )
            )
        if checkpoint:
            phase_callbacks.append(checkpoint.callback(history, log))
        with steps_traced_without_autograph(model):
            model.fit(
                train_dataset,
                validation_data=eval_dataset,
                initial_epoch=max(first_epoch, next_epoch),
                epochs=last_epoch,
                callbacks=[*phase_callbacks, *callbacks],
                verbose=0,
            )
        history.extend(log.rows)
        next_epoch = last_epoch
    if checkpoint:
        checkpoint.wait()
    return history


@contextlib.contextmanager
def steps_traced_without_autograph(model: tf_keras.Model) -> Iterator[None]:
    """Keras traces `train_step` and `test_step` into graphs with autograph on, and autograph then rewrites the
    Python source of every layer's `call` it meets, Xception's included. On the sample that was most of each
    phase's first epoch (37 and 34 s against 10 and 20 s without; the same losses and metrics to the last
    digit). Nothing in these steps branches or loops on a tensor's value (a layer that did would fail to trace
    with an error naming it, not train differently), so the steps are traced as plain Python."""
    model.train_step = tf.autograph.experimental.do_not_convert(model.train_step)
    model.test_step = tf.autograph.experimental.do_not_convert(model.test_step)
    try:
        yield
    finally:  # The class's own steps again, for whoever fits this model next.
        del model.train_step, model.test_step


class Checkpoint:
    """Weights and history after the last finished epoch.

    The weights are kept in the order of the network's layers, each layer's own weights in its own order
    (`layer_weights`), not in the order Keras's HDF5 files use: a nested model (the backbone) lists all its
    trainable weights before all its frozen ones, so freezing it reorders them, and HDF5 weights saved in the
    frozen phase did not load into a freshly built model ("axes don't match array", when a Trainer killed
    after its first epoch was rerun). Names would not do either: Keras numbers unnamed layers per process.
    TensorFlow's own checkpoint format matches by place too, but it also saves the optimizer and restores it
    lazily, from files a temporary copy no longer holds. The optimizer's moments are not kept: a resumed
    phase restarts Adam's statistics. The state is written last, after the weights it names, so a kill at any
    moment leaves a state and its weights.

    Keras's `BackupAndRestore` would write to S3 too (through TensorFlow's file systems), but it is made for
    one `fit` and this run is two. By default it deletes its backup when a `fit` ends: a run killed in the
    fine-tuning phase had its backup restored, then deleted, by the frozen phase's `fit`, and did the
    fine-tuning again from its first epoch. Kept (`delete_checkpoint=False`), it resumes at the right epoch,
    but it saves the variables and the epoch, not the history rows the run logs and writes (a resumed run
    kept only the rows after the kill), and its `on_epoch_end` saves on the epoch's path, synchronously
    (`CheckpointManager.save()`, Adam's moments included), where this class only copies the weights.
    """

    STATE = "state.json"

    def __init__(self, directory: str):
        self.directory = directory
        self._pending: threading.Thread | None = None
        self._error: BaseException | None = None

    def restore(self, model: tf_keras.Model) -> list[dict[str, Any]]:
        state_path = os.path.join(self.directory, self.STATE)
        if not tf.io.gfile.exists(state_path):
            return []
        with tf.io.gfile.GFile(state_path) as handle:
            state = json.load(handle)
        if "weights" not in state:  # Written by an older xfer (HDF5 weights): start afresh.
            return []
        with tf.io.gfile.GFile(os.path.join(self.directory, state["weights"]), "rb") as handle:
            saved = np.load(io.BytesIO(handle.read()))
            values = [saved[f"w{index}"] for index in range(len(saved["names"]))]
        weights = layer_weights(model)
        shapes = [tuple(weight.shape) for weight in weights]
        if shapes != [value.shape for value in values]:
            raise ValueError(f"checkpoint {self.directory} holds the weights of another network")
        for weight, value in zip(weights, values, strict=True):
            weight.assign(value)
        return state["history"]

    def callback(self, history: list[dict[str, Any]], log: EpochLog) -> tf_keras.callbacks.Callback:
        checkpoint = self

        class SaveEachEpoch(tf_keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                checkpoint.save_in_background(self.model, [*history, *log.rows])

        return SaveEachEpoch()

    def save(self, model: tf_keras.Model, history: list[dict[str, Any]]) -> None:
        self.wait()
        self._write(self._snapshot(model), history)

    def save_in_background(self, model: tf_keras.Model, history: list[dict[str, Any]]) -> None:
        """Copies the weights now and writes them while the next epoch trains.

        Writing ~90 MB of Xception weights (to S3 on Kubeflow) took 0.25 to 0.5 s of every 8 s epoch here,
        the largest part of what an epoch cost beyond plain Keras. Only the copy stays on the epoch's path.
        One write at a time: the next save, `wait` and `clear` wait for it first, and an error it met is
        raised there.
        """
        self.wait()
        snapshot = self._snapshot(model)
        self._error = None

        def write():
            try:
                self._write(snapshot, history)
            except BaseException as error:  # Raised on the training thread by the next wait().
                self._error = error

        self._pending = threading.Thread(target=write, name="checkpoint-writer", daemon=True)
        self._pending.start()

    def wait(self) -> None:
        """Until the write in progress (if any) is done; raises the error it met."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    @staticmethod
    def _snapshot(model: tf_keras.Model) -> list[tuple[str, np.ndarray]]:
        # `numpy()` is already a snapshot: TensorFlow's variable updates copy a buffer that a read still holds
        # (copy-on-write) instead of writing into it. A second copy cost 0.55 s for Xception's 22M weights here.
        return [(weight.name, weight.numpy()) for weight in layer_weights(model)]

    def _write(self, snapshot: list[tuple[str, np.ndarray]], history: list[dict[str, Any]]) -> None:
        buffer = io.BytesIO()
        arrays = {f"w{index}": value for index, (_, value) in enumerate(snapshot)}
        # The names are for a reader of the file; restoring goes by place.
        np.savez(buffer, names=np.array([name for name, _ in snapshot]), **arrays)
        tf.io.gfile.makedirs(self.directory)
        name = f"weights-{len(history):04d}.npz"
        with tf.io.gfile.GFile(os.path.join(self.directory, name), "wb") as handle:
            handle.write(buffer.getvalue())
        state = os.path.join(self.directory, self.STATE)
        with tf.io.gfile.GFile(state + ".tmp", "w") as handle:
            json.dump({"history": history, "weights": name}, handle)
        tf.io.gfile.rename(state + ".tmp", state, overwrite=True)
        for older in tf.io.gfile.listdir(self.directory):  # The state no longer names them.
            if older.startswith("weights-") and older != name:
                tf.io.gfile.remove(os.path.join(self.directory, older))

    def clear(self) -> None:
        self.wait()
        if tf.io.gfile.exists(self.directory):
            tf.io.gfile.rmtree(self.directory)


def layer_weights(model: tf_keras.Model) -> list[tf.Variable]:
    """Every weight of the network in the order of its layers (into nested models), each layer's weights in
    the layer's own order: an order that freezing and unfreezing do not change."""
    found = []
    for layer in model.layers:
        found.extend(layer_weights(layer) if isinstance(layer, tf_keras.Model) else layer.weights)
    return found


def phase_learning_rate(phase: PhaseConfig, epoch_in_phase: int) -> float:
    """The learning rate of an epoch of a phase (0-based within the phase)."""
    if phase.schedule == "cosine":
        return phase.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch_in_phase / max(phase.epochs, 1)))
    return phase.learning_rate


def unfreeze_epoch(training: TrainingConfig) -> int:
    return training.frozen.epochs


def write_history(history: list[dict[str, Any]], training: TrainingConfig, path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        json.dump({"unfreeze_epoch": unfreeze_epoch(training), "epochs": history}, handle, indent=1)


_METRIC_NAMES = {
    "loss": "loss",
    f"{model_lib.PROBABILITIES}_loss": "class_loss",
    f"{model_lib.BOX}_loss": "box_loss",
    f"{model_lib.PROBABILITIES}_accuracy": "accuracy",
    f"{model_lib.BOX}_iou": "iou",
}


def tracking_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """Keras's epoch logs under stable tracking names: train_loss, val_accuracy, train_iou, ..."""
    named = {}
    for key, value in row.items():
        if key in ("phase", "epoch"):
            continue
        split, base = ("val", key[4:]) if key.startswith("val_") else ("train", key)
        named[f"{split}_{_METRIC_NAMES.get(base, base)}"] = float(value)
    return named
