"""The network at Xception's minimum size (71 px), and the two-phase recipe on a few in-memory examples."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from components.trainer import model as model_lib
from components.trainer import training
from pipeline import config as config_lib

SIZE = 71
INPUTS = model_lib.ModelInputs(
    categorical={"camera": 3, "cell": 8}, numeric=("altitude",), embedding_dims={"camera": 2, "cell": 0}
)


def _batch(count=4, seed=0):
    rng = np.random.default_rng(seed)
    features = {
        "image": rng.integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.int64),
        "camera": rng.integers(0, 3, count).astype(np.int64),
        "cell": rng.integers(0, 8, count).astype(np.int64),
        "altitude": rng.normal(size=count).astype(np.float32),
    }
    corners = np.sort(rng.uniform(0, 1, (count, 2, 2)), axis=1)
    labels = {
        "probabilities": rng.integers(0, 3, count).astype(np.int64),
        "box": np.concatenate([corners[:, 0], corners[:, 1]], axis=1).astype(np.float32),
    }
    return features, labels


@pytest.fixture(scope="module")
def scratch_model():
    return model_lib.build_model(config_lib.ModelConfig(weights="none", dropout_rate=0.0), SIZE, INPUTS, 3)


def test_outputs_are_probabilities_and_well_formed_boxes(scratch_model):
    features, _ = _batch()
    outputs = scratch_model(features, training=False)
    probabilities, boxes = outputs["probabilities"].numpy(), outputs["box"].numpy()
    assert probabilities.shape == (4, 3) and boxes.shape == (4, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_inputs_are_the_image_and_each_declared_feature(scratch_model):
    assert set(scratch_model.input) == {"image", "camera", "cell", "altitude"}
    assert scratch_model.get_layer("camera_embedding").output_shape == (None, 2)
    assert scratch_model.get_layer("cell_one_hot").output_shape == (None, 8)


def test_center_size_to_corners():
    corners = model_lib.decode_box(tf.constant([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.4, 0.4]]))
    np.testing.assert_allclose(corners.numpy(), [[0.4, 0.3, 0.6, 0.7], [0.0, 0.7, 0.3, 1.0]], atol=1e-6)
    # Square-root sizes: the head's 0.5 is a quarter of the image wide.
    corners = model_lib.decode_sqrt_size_box(tf.constant([[0.5, 0.5, 0.5, 0.2]]))
    np.testing.assert_allclose(corners.numpy(), [[0.375, 0.48, 0.625, 0.52]], atol=1e-6)


def test_square_root_box_sizes_train_and_give_well_formed_boxes():
    model_config = config_lib.ModelConfig(weights="none", dropout_rate=0.0, box_size="sqrt")
    model = model_lib.build_model(model_config, SIZE, INPUTS, 3)
    box = model.get_layer("box")
    assert isinstance(box, model_lib.BoxDecode) and box.box_size == "sqrt"
    centre_and_root_size = tf.constant([[0.5, 0.5, 0.5, 0.2]])
    np.testing.assert_allclose(box(centre_and_root_size), model_lib.decode_sqrt_size_box(centre_and_root_size))
    model_lib.compile_model(model, model_config, 1e-3)
    assert model.loss["box"].__name__ == "box_loss_iou_sqrt"
    features, labels = _batch(8)
    history = model.fit(features, labels, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["box_loss"]).all()
    boxes = model(features, training=False)["box"].numpy()
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_scratch_backbone_uses_fast_batchnorm_statistics(scratch_model):
    backbone = scratch_model.get_layer(model_lib.BACKBONE_NAME)
    momenta = {layer.momentum for layer in backbone.layers if isinstance(layer, tf_keras.layers.BatchNormalization)}
    assert momenta == {model_lib.SCRATCH_BATCHNORM_MOMENTUM}


def test_pretrained_backbone_keeps_batchnorm_in_inference_mode(tmp_path, scratch_model):
    """With weights from a file, training=True must not switch BatchNorm to batch statistics."""
    weights = tmp_path / "backbone.h5"
    scratch_model.get_layer(model_lib.BACKBONE_NAME).save_weights(str(weights))
    pretrained = model_lib.build_model(config_lib.ModelConfig(weights=str(weights), dropout_rate=0.0), SIZE, INPUTS, 3)
    features, _ = _batch()
    # The pooled backbone output, as wired into the full model (the heads have BatchNorm of their own).
    pretrained_features = tf_keras.Model(pretrained.inputs, pretrained.get_layer("pool").output)
    np.testing.assert_allclose(
        pretrained_features(features, training=True).numpy(),
        pretrained_features(features, training=False).numpy(),
        atol=1e-5,
    )
    # The scratch model, by contrast, trains its BatchNorm normally: the two modes differ.
    scratch_features = tf_keras.Model(scratch_model.inputs, scratch_model.get_layer("pool").output)
    assert not np.allclose(
        scratch_features(features, training=True).numpy(),
        scratch_features(features, training=False).numpy(),
        atol=1e-5,
    )


def test_a_weights_file_loads_every_backbone_weight(tmp_path, scratch_model):
    """`model.weights: <file>` gives the backbone every weight the file holds, not a part of them."""
    saved = scratch_model.get_layer(model_lib.BACKBONE_NAME)
    path = tmp_path / "backbone.h5"
    saved.save_weights(str(path))
    loaded = model_lib.build_backbone(config_lib.ModelConfig(weights=str(path)), SIZE)
    assert len(loaded.weights) == len(saved.weights)
    for mine, theirs in zip(loaded.weights, saved.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.name)


def test_a_weights_file_of_another_network_is_a_clear_error(tmp_path):
    other = model_lib.build_backbone(config_lib.ModelConfig(backbone="mobilenet_v2", weights="none"), 32)
    path = tmp_path / "mobilenet.h5"
    other.save_weights(str(path))
    with pytest.raises(model_lib.WeightsError, match=r"mobilenet\.h5 does not hold the weights of a xception"):
        model_lib.build_backbone(config_lib.ModelConfig(weights=str(path)), SIZE)


def test_a_missing_or_non_hdf5_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(model_lib.WeightsError, match="does not exist"):
        model_lib.build_backbone(config_lib.ModelConfig(weights=str(tmp_path / "gone.h5")), SIZE)
    with pytest.raises(model_lib.WeightsError, match="not a Keras HDF5 weights file"):
        model_lib.build_backbone(config_lib.ModelConfig(weights=str(tmp_path / "ckpt")), SIZE)


def test_imagenet_weights_that_cannot_be_fetched_say_what_to_do_offline(monkeypatch):
    from tf_keras.src.utils import data_utils

    def offline(*args, **kwargs):  # What Keras raises when the download fails.
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- name resolution")

    monkeypatch.setattr(data_utils, "get_file", offline)
    with pytest.raises(model_lib.WeightsError, match=r"imagenet: the ImageNet weights of xception could not be"):
        model_lib.build_backbone(config_lib.ModelConfig(weights="ImageNet"), SIZE)


def test_two_phases_freeze_then_fine_tune_on_one_epoch_axis():
    model_config = config_lib.ModelConfig(weights="none")
    model = model_lib.build_model(model_config, SIZE, INPUTS, 3)
    features, labels = _batch(count=8, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)
    backbone = model.get_layer(model_lib.BACKBONE_NAME)
    first_conv = next(w for w in backbone.weights if "kernel" in w.name)
    start = first_conv.numpy().copy()
    head_start = model.get_layer("class_hidden").kernel.numpy().copy()
    seen = []
    config = config_lib.TrainingConfig(
        frozen=config_lib.PhaseConfig(epochs=1, learning_rate=1e-3),
        finetune=config_lib.PhaseConfig(epochs=2, learning_rate=1e-4),
        batch_size=4,
    )

    class Watch(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, first_conv.numpy().copy()))

    history = training.train_two_phases(model, dataset, dataset, model_config, config, callbacks=[Watch()])
    assert [(row["phase"], row["epoch"]) for row in history] == [("frozen", 0), ("finetune", 1), ("finetune", 2)]
    assert {"loss", "val_loss", "probabilities_accuracy", "val_box_iou"} <= set(history[0])
    np.testing.assert_array_equal(seen[0][1], start)  # Frozen: the backbone did not move...
    assert not np.allclose(model.get_layer("class_hidden").kernel.numpy(), head_start)  # ...the heads did.
    assert not np.allclose(seen[-1][1], start)  # Fine-tuning moved the backbone.
    assert training.tracking_metrics(history[0]).keys() >= {"train_loss", "val_accuracy", "val_iou", "train_box_loss"}


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v2", "efficientnet_b0"])
def test_other_backbones_build_with_both_feature_maps(backbone):
    model = model_lib.build_model(config_lib.ModelConfig(backbone=backbone, weights="none"), 64, INPUTS, 3)
    middle, final = model.get_layer(model_lib.BACKBONE_NAME).output
    assert middle.shape[1] == 4 and final.shape[1] == 2  # Strides 16 and 32 at 64 px.
    features, _ = _batch()
    features["image"] = features["image"][:, :64, :64]
    outputs = model(features, training=False)
    assert outputs["probabilities"].shape == (4, 3) and outputs["box"].shape == (4, 4)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v2", "efficientnet_b0"])
def test_other_backbones_train_in_both_phases(backbone):
    """The Trainer traces its steps without autograph (training.steps_traced_without_autograph): every backbone
    offered must trace that way, frozen and unfrozen."""
    model_config = config_lib.ModelConfig(backbone=backbone, weights="none")
    model = model_lib.build_model(model_config, 64, INPUTS, 3)
    features, labels = _batch()
    features["image"] = features["image"][:, :64, :64]
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)
    config = config_lib.TrainingConfig(
        frozen=config_lib.PhaseConfig(epochs=1, learning_rate=1e-3),
        finetune=config_lib.PhaseConfig(epochs=1, learning_rate=1e-4),
        batch_size=4,
    )
    history = training.train_two_phases(model, dataset, dataset, model_config, config)
    assert [row["phase"] for row in history] == ["frozen", "finetune"]
    assert all(np.isfinite(row["loss"]) and np.isfinite(row["val_loss"]) for row in history)


def test_unfreezing_the_top_layers_only(scratch_model):
    model_lib.set_backbone_trainable(scratch_model, True, top_layers=5)
    backbone = scratch_model.get_layer(model_lib.BACKBONE_NAME)
    trainable = [layer.trainable for layer in backbone.layers]
    assert trainable[-5:] == [True] * 5 and not any(trainable[:-5])
    model_lib.set_backbone_trainable(scratch_model, False)
    assert not scratch_model.get_layer(model_lib.BACKBONE_NAME).trainable


def test_unfreezing_the_top_blocks_only(scratch_model):
    model_lib.set_backbone_trainable(scratch_model, True, top_blocks=2, backbone_name="xception")
    backbone = scratch_model.get_layer(model_lib.BACKBONE_NAME)
    trainable = {layer.name for layer in backbone.layers if layer.trainable}
    assert {"block13_sepconv1", "block13_pool", "block14_sepconv2_act"} <= trainable
    assert not {"block12_sepconv3", "block1_conv1", "block2_sepconv1"} & trainable
    # Block 13's residual shortcut (a 1x1 conv Keras names `conv2d_*`) trains with its block.
    shortcuts = [layer for layer in backbone.layers if layer.name.startswith("conv2d")]
    assert [layer.trainable for layer in shortcuts] == [False, False, False, True]
    with pytest.raises(ValueError, match="xception has 14 blocks; cannot unfreeze the top 15"):
        model_lib.set_backbone_trainable(scratch_model, True, top_blocks=15, backbone_name="xception")
    model_lib.set_backbone_trainable(scratch_model, False)


@pytest.mark.parametrize("backbone", ["xception", "resnet50", "mobilenet_v2", "efficientnet_b0"])
def test_each_backbone_has_the_blocks_the_config_counts(backbone):
    spec = model_lib.backbone_spec(backbone)
    network = spec.constructor(include_top=False, weights=None, input_shape=(spec.min_size, spec.min_size, 3))
    blocks = model_lib.layer_blocks(network, spec.block_pattern)
    names = [block for block in dict.fromkeys(blocks) if block != model_lib.STEM]
    assert len(names) == config_lib.BACKBONE_BLOCKS[backbone]
    assert blocks[0] == model_lib.STEM and blocks[-1] == names[-1]


def test_classification_only_model_has_no_box_head():
    model = model_lib.build_model(config_lib.ModelConfig(weights="none"), SIZE, INPUTS, 3, with_box=False)
    assert model_lib.output_names(model) == ["probabilities"]
    assert not any(layer.name.startswith("box") for layer in model.layers)
    model_lib.compile_model(model, config_lib.ModelConfig(weights="none"), 1e-3)
    features, labels = _batch()
    model.fit(features, {"probabilities": labels["probabilities"]}, epochs=1, verbose=0)


def test_soft_argmax_box_takes_the_centre_offset_and_size_of_the_cell_it_scores_highest():
    score = np.full((1, 5, 5, 1), -50.0, np.float32)
    score[0, 1, 3] = 50.0  # Row 1, column 3: the cell centred at (0.7, 0.3).
    offset = np.zeros((1, 5, 5, 2), np.float32)
    offset[0, 1, 3] = [0.5, -1.0]  # Half a cell right, a whole cell up (cells are 0.2 wide).
    size = np.full((1, 5, 5, 2), 0.9, np.float32)
    size[0, 1, 3] = [0.1, 0.3]
    center_and_size = model_lib.SoftArgmaxBox()([score, offset, size]).numpy()
    np.testing.assert_allclose(center_and_size, [[0.8, 0.1, 0.1, 0.3]], atol=1e-5)
    # Equal scores: the mean of the cells, the image's centre.
    uniform = model_lib.SoftArgmaxBox()([np.zeros_like(score), np.zeros_like(offset), np.full_like(size, 0.9)])
    np.testing.assert_allclose(uniform.numpy(), [[0.5, 0.5, 0.9, 0.9]], atol=1e-5)


def test_the_spatial_box_head_starts_centred_and_trains_with_a_giou_loss():
    model_config = config_lib.ModelConfig(weights="none", dropout_rate=0.0, box_head="spatial", box_iou_loss="giou")
    model = model_lib.build_model(model_config, SIZE, INPUTS, 3)
    assert isinstance(model.get_layer("box_center_size"), model_lib.SoftArgmaxBox)
    assert not any(layer.name in ("box_flatten_middle", "box_flatten_final") for layer in model.layers)
    features, labels = _batch(8)
    # Zero-initialised scores, offsets and sizes: the centred half-size box, whatever the image.
    centred = np.array([[0.25, 0.25, 0.75, 0.75]] * 8)
    np.testing.assert_allclose(model(features, training=False)["box"].numpy(), centred, atol=1e-6)
    model_lib.compile_model(model, model_config, 1e-3)
    assert model.loss["box"].__name__ == "box_loss_giou"
    history = model.fit(features, labels, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["box_loss"]).all()
    boxes = model(features, training=False)["box"].numpy()
    assert not np.allclose(boxes, centred)  # The head moved...
    assert (boxes >= 0).all() and (boxes <= 1).all()  # ...and its boxes are still well formed.
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
