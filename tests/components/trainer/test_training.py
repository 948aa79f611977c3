"""The two-phase loop on a tiny stand-in network: resume after a kill, early stopping, schedules."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from components.trainer import model as model_lib
from components.trainer import training
from pipeline import config as config_lib

MODEL_CONFIG = config_lib.ModelConfig(weights="none")


def _tiny_model(seed=0):
    """Same contract as the real network (a 'backbone' layer, probabilities and box outputs), but tiny."""
    tf_keras.utils.set_random_seed(seed)
    image = tf_keras.Input(shape=(8, 8, 3), dtype=tf.int64, name="image")
    x = tf_keras.layers.Lambda(lambda t: tf.cast(t, tf.float32) / 255.0)(image)
    backbone_input = tf_keras.Input(shape=(8, 8, 3))
    backbone = tf_keras.Model(
        backbone_input, tf_keras.layers.Conv2D(4, 3, name="conv")(backbone_input), name=model_lib.BACKBONE_NAME
    )
    pooled = tf_keras.layers.GlobalAveragePooling2D()(backbone(x))
    probabilities = tf_keras.layers.Dense(3, activation="softmax", name=model_lib.PROBABILITIES)(pooled)
    box = tf_keras.layers.Dense(4, activation="sigmoid", name=model_lib.BOX)(pooled)
    return tf_keras.Model({"image": image}, {model_lib.PROBABILITIES: probabilities, model_lib.BOX: box})


def _dataset():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 8, 8, 3)).astype(np.int64)
    labels = {"probabilities": rng.integers(0, 3, 16), "box": np.tile([[0.1, 0.1, 0.6, 0.6]], (16, 1)).astype("f4")}
    return tf.data.Dataset.from_tensor_slices(({"image": images}, labels)).batch(8)


def _config(frozen=2, finetune=3, **extra):
    return config_lib.TrainingConfig(
        frozen=config_lib.PhaseConfig(epochs=frozen, learning_rate=1e-2),
        finetune=config_lib.PhaseConfig(epochs=finetune, learning_rate=1e-3),
        **extra,
    )


class _Kill(tf_keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt(f"simulated kill after epoch {epoch}")


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    directory = str(tmp_path / "checkpoints")
    killed = _tiny_model()
    with pytest.raises(KeyboardInterrupt):
        training.train_two_phases(
            killed, _dataset(), _dataset(), MODEL_CONFIG, _config(), callbacks=[_Kill(2)], checkpoint_dir=directory
        )
    weights_at_kill = [w.numpy().copy() for w in killed.weights]

    started = []

    class Record(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)

    resumed = _tiny_model(seed=1)  # Different initial weights: only the checkpoint can make them equal.
    history = training.train_two_phases(
        resumed, _dataset(), _dataset(), MODEL_CONFIG, _config(), callbacks=[Record()], checkpoint_dir=directory
    )
    assert started == [3, 4]  # Epochs 0..2 were done before the kill (epoch 2 was saved before the kill).
    assert [(row["phase"], row["epoch"]) for row in history] == [
        ("frozen", 0),
        ("frozen", 1),
        ("finetune", 2),
        ("finetune", 3),
        ("finetune", 4),
    ]
    assert not all(
        np.allclose(a, b) for a, b in zip(weights_at_kill, [w.numpy() for w in resumed.weights], strict=True)
    )


def test_a_run_killed_after_an_early_stopped_frozen_phase_resumes_in_fine_tuning(tmp_path):
    # A learning rate of 0 leaves val_loss flat, so patience 1 stops the frozen phase after 2 of its 5 epochs.
    config = config_lib.TrainingConfig(
        frozen=config_lib.PhaseConfig(epochs=5, learning_rate=0.0),
        finetune=config_lib.PhaseConfig(epochs=3, learning_rate=1e-3),
        early_stopping_patience=1,
    )
    directory = str(tmp_path / "checkpoints")
    with pytest.raises(KeyboardInterrupt):
        training.train_two_phases(
            _tiny_model(), _dataset(), _dataset(), MODEL_CONFIG, config, callbacks=[_Kill(5)], checkpoint_dir=directory
        )
    started = []

    class Record(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)

    history = training.train_two_phases(
        _tiny_model(seed=1),
        _dataset(),
        _dataset(),
        MODEL_CONFIG,
        config,
        callbacks=[Record()],
        checkpoint_dir=directory,
    )
    assert started == [6, 7]  # Fine-tuning goes on; the frozen phase, already over, is not run again.
    assert [(row["phase"], row["epoch"]) for row in history] == [
        ("frozen", 0),
        ("frozen", 1),
        ("finetune", 5),
        ("finetune", 6),
        ("finetune", 7),
    ]


def test_restore_loads_the_saved_weights(tmp_path):
    model = _tiny_model()
    checkpoint = training.Checkpoint(str(tmp_path))
    checkpoint.save(model, [{"phase": "frozen", "epoch": 0}])
    other = _tiny_model(seed=5)
    assert checkpoint.restore(other) == [{"phase": "frozen", "epoch": 0}]
    for a, b in zip(model.weights, other.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    checkpoint.clear()
    assert training.Checkpoint(str(tmp_path)).restore(_tiny_model()) == []


def test_early_stopping_ends_a_phase_but_not_the_run():
    # A zero learning rate leaves val_loss exactly flat: no improvement, so patience 1 stops after 2 epochs.
    config = config_lib.TrainingConfig(
        frozen=config_lib.PhaseConfig(epochs=30, learning_rate=0.0),
        finetune=config_lib.PhaseConfig(epochs=2, learning_rate=1e-3),
        early_stopping_patience=1,
    )
    history = training.train_two_phases(_tiny_model(), _dataset(), _dataset(), MODEL_CONFIG, config)
    assert [row["epoch"] for row in history if row["phase"] == "frozen"] == [0, 1]
    assert [row["epoch"] for row in history if row["phase"] == "finetune"] == [30, 31]


def test_cosine_schedule_decays_within_the_phase():
    phase = config_lib.PhaseConfig(epochs=4, learning_rate=0.1, schedule="cosine")
    rates = [training.phase_learning_rate(phase, epoch) for epoch in range(4)]
    assert rates[0] == pytest.approx(0.1)
    assert rates[2] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert rates == sorted(rates, reverse=True)
    assert training.phase_learning_rate(config_lib.PhaseConfig(epochs=4, learning_rate=0.1), 3) == 0.1


def _real_network():
    """The Trainer's network with a small backbone, as `run_fn` builds it."""
    config = config_lib.ModelConfig(backbone="mobilenet_v2", weights="none", head_units=8)
    inputs = model_lib.ModelInputs(categorical={"camera": 3}, numeric=(), embedding_dims={"camera": 2})
    return model_lib.build_model(config, 32, inputs, num_classes=3)


def test_a_checkpoint_saved_with_the_backbone_frozen_restores_into_a_fresh_network(tmp_path):
    saved = _real_network()
    for weight in saved.weights:
        weight.assign(tf.random.uniform(weight.shape, seed=len(weight.name)) + 1.0)
    model_lib.set_backbone_trainable(saved, False)  # As in the frozen phase.
    checkpoint = training.Checkpoint(str(tmp_path / "checkpoints"))
    checkpoint.save(saved, [{"epoch": 0}])
    fresh = _real_network()  # Built anew, in this process: its unnamed layers get other names.
    assert checkpoint.restore(fresh) == [{"epoch": 0}]
    for a, b in zip(training.layer_weights(saved), training.layer_weights(fresh), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_background_save_keeps_the_weights_of_its_epoch_and_reports_its_error(tmp_path):
    """The write runs while the next epoch trains: it must hold the weights as they were when it was asked
    for, not as training changes them meanwhile, and a failed write must not pass unnoticed."""
    model = _tiny_model()
    at_save = [weight.numpy().copy() for weight in model.weights]
    checkpoint = training.Checkpoint(str(tmp_path / "checkpoints"))
    checkpoint.save_in_background(model, [{"epoch": 0}])
    for weight in model.weights:  # The "next epoch" changes every weight at once.
        weight.assign(weight + 1.0)
    checkpoint.wait()
    restored = _tiny_model(seed=5)
    assert checkpoint.restore(restored) == [{"epoch": 0}]
    for expected, weight in zip(at_save, restored.weights, strict=True):
        np.testing.assert_array_equal(expected, weight.numpy())

    (tmp_path / "a_file").write_text("not a folder")
    broken = training.Checkpoint(str(tmp_path / "a_file" / "checkpoints"))
    broken.save_in_background(model, [{"epoch": 0}])
    with pytest.raises(tf.errors.OpError):  # The file system's error reaches the training thread.
        broken.wait()
    broken.wait()  # Reported once.


def test_the_input_pipeline_reads_every_example_without_the_autotuning_thread(tmp_path):
    """TF 2.16's autotuning thread holds a dropped iterator until its current wait (up to 60 s) ends, and Keras
    drops the training iterator at every epoch's end: the Trainer's datasets run without that thread, and still
    read every example once per pass, shuffled or not."""
    from components.transform import features as features_lib

    path = str(tmp_path / "part-0.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for index in range(10):
            feature = {
                "camera_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
                features_lib.LABEL_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[index % 3])),
                features_lib.BOX: tf.train.Feature(float_list=tf.train.FloatList(value=[0.1, 0.1, 0.5, 0.5])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    spec = {
        "camera_id": tf.io.FixedLenFeature([], tf.int64),
        features_lib.LABEL_ID: tf.io.FixedLenFeature([], tf.int64),
        features_lib.BOX: tf.io.FixedLenFeature([4], tf.float32),
    }
    for shuffle in (True, False):
        dataset = training.make_dataset([path], spec, ["camera_id"], 4, shuffle=shuffle, seed=0, image_size=8)
        assert dataset.options().autotune.enabled is False
        for _ in range(2):
            read = sorted(int(value) for inputs, _ in dataset for value in inputs["camera_id"].numpy())
            assert read == list(range(10))


class _BranchesOnATensor(tf_keras.layers.Layer):
    def call(self, inputs):
        if tf.reduce_sum(inputs) > 0:  # Autograph makes this a tf.cond; plain tracing cannot take a tensor's truth.
            return inputs
        return -inputs


def test_the_training_steps_are_traced_without_autograph():
    """Autograph rewrote every layer's source when Keras traced the steps (most of each phase's first epoch).
    The Trainer's steps are traced without it, and the model gets its own steps back afterwards."""
    inputs = tf_keras.Input(shape=(2,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(1)(_BranchesOnATensor()(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensor_slices((np.ones((4, 2), "f4"), np.ones((4, 1), "f4"))).batch(2)
    with training.steps_traced_without_autograph(model):
        with pytest.raises(TypeError, match="tf.Tensor"):
            model.fit(data, verbose=0)
    assert "train_step" not in vars(model) and "test_step" not in vars(model)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data, validation_data=data, verbose=0)  # With autograph, as Keras traces by default.


def test_steps_traced_without_autograph_train_to_the_same_weights():
    weights = []
    for plain in (True, False):
        model = _tiny_model(seed=3)
        model_lib.compile_model(model, MODEL_CONFIG, 1e-2)
        if plain:
            model.fit(_dataset(), validation_data=_dataset(), epochs=2, verbose=0)
        else:
            with training.steps_traced_without_autograph(model):
                model.fit(_dataset(), validation_data=_dataset(), epochs=2, verbose=0)
        weights.append(model.get_weights())
    for with_autograph, without in zip(*weights, strict=True):
        np.testing.assert_allclose(without, with_autograph, rtol=1e-6, atol=1e-7)
