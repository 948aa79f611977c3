"""The network: a keras.applications backbone (Xception by default), a metadata tower, a class head and a box
head, as one tf_keras Functional model."""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable, Mapping

import tensorflow as tf
import tf_keras

from components.trainer import metrics
from components.trainer.settings import BACKBONE_MIN_SIZE, WEIGHTS_SUFFIXES, ModelConfig
from components.transform import features as features_lib

BACKBONE_NAME = "backbone"
PROBABILITIES = "probabilities"
BOX = "box"
STEM = "stem"  # The backbone's layers before its first block.
SCRATCH_BATCHNORM_MOMENTUM = 0.9
IMAGENET = "imagenet"


class WeightsError(ValueError):
    """`model.weights` cannot give the backbone its weights: missing, unreadable or of another network."""


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A keras.applications network and what xfer needs to know about it.

    `middle_layer` is a stride-16 feature map (5x5 at 71 px): the box head reads it beside the final map,
    because finer spatial detail survives there. `preprocess` maps 0..255 pixels to what the weights expect.
    `block_pattern` captures a layer's block from its name (Keras names them `block13_...`, `conv5_block3_...`).
    """

    constructor: Callable[..., tf_keras.Model]
    preprocess: Callable[[tf.Tensor], tf.Tensor]
    middle_layer: str
    min_size: int
    block_pattern: str


BACKBONES = {
    "xception": Backbone(
        tf_keras.applications.Xception,
        tf_keras.applications.xception.preprocess_input,
        "block13_sepconv1_act",
        BACKBONE_MIN_SIZE["xception"],
        r"^(block\d+)_",
    ),
    "resnet50": Backbone(
        tf_keras.applications.ResNet50,
        tf_keras.applications.resnet50.preprocess_input,
        "conv4_block6_out",
        BACKBONE_MIN_SIZE["resnet50"],
        r"^(conv\d+_block\d+)_",
    ),
    "mobilenet_v2": Backbone(
        tf_keras.applications.MobileNetV2,
        tf_keras.applications.mobilenet_v2.preprocess_input,
        "block_13_expand_relu",
        BACKBONE_MIN_SIZE["mobilenet_v2"],
        r"^(block_\d+)_",
    ),
    # EfficientNet normalises inside the network: it takes 0..255 pixels as they are.
    "efficientnet_b0": Backbone(
        tf_keras.applications.EfficientNetB0,
        lambda x: x,
        "block6a_expand_activation",
        BACKBONE_MIN_SIZE["efficientnet_b0"],
        r"^(block\d+[a-z])_",
    ),
}


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """What the model is fed besides the image: categorical ids (with their cardinality) and numeric values."""

    categorical: Mapping[str, int]
    numeric: tuple[str, ...]
    embedding_dims: Mapping[str, int]


def model_inputs(settings: features_lib.TransformSettings, vocabulary_size) -> ModelInputs:
    return ModelInputs(
        categorical=features_lib.categorical_cardinalities(settings, vocabulary_size),
        numeric=tuple(features_lib.numeric_features(settings)),
        embedding_dims={feature.name: feature.embedding_dim for feature in settings.features},
    )


def uses_pretrained_weights(model_config: ModelConfig) -> bool:
    return model_config.weights.lower() != "none"


def backbone_spec(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unsupported backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(model_config: ModelConfig, image_size: int) -> tf_keras.Model:
    """The backbone as a model with two outputs: the stride-16 map (for the box) and the final map."""
    spec = backbone_spec(model_config.backbone)
    if image_size < spec.min_size:
        raise ValueError(f"{model_config.backbone} needs images of at least {spec.min_size} px, got {image_size}")
    weights = None if not uses_pretrained_weights(model_config) else model_config.weights
    weights = IMAGENET if weights and weights.lower() == IMAGENET else weights
    backbone = _constructed(model_config.backbone, spec, weights, image_size)
    if weights is not None and weights != IMAGENET:
        load_backbone_weights(backbone, weights, model_config.backbone)
    if weights is None:
        # Trained from scratch, BatchNorm's moving statistics must track weights that change fast. At Keras's
        # default momentum (0.99) they still reflect the first steps after a few hundred, and the eval-mode
        # network, which uses them, scores far below the train-mode one.
        for layer in backbone.layers:
            if isinstance(layer, tf_keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BATCHNORM_MOMENTUM
    middle = backbone.get_layer(spec.middle_layer).output
    return tf_keras.Model(backbone.inputs, [middle, backbone.output], name=BACKBONE_NAME)


def _constructed(name: str, spec: Backbone, weights: str | None, image_size: int) -> tf_keras.Model:
    """The keras.applications network, with ImageNet's weights when asked for (a file is loaded after)."""
    shape = (image_size, image_size, 3)
    if weights != IMAGENET:
        return spec.constructor(include_top=False, weights=None, input_shape=shape)
    try:
        return spec.constructor(include_top=False, weights=IMAGENET, input_shape=shape)
    except Exception as error:  # Keras's download raises a bare Exception ("URL fetch failure on ...").
        raise WeightsError(
            f"model.weights: imagenet: the ImageNet weights of {name} could not be fetched ({error}). Offline, put "
            "the file Keras names above in ~/.keras/models/, or set model.weights to a local weights file "
            "(or none to train from scratch)."
        ) from error


def load_backbone_weights(backbone: tf_keras.Model, path: str, name: str) -> None:
    """Every weight of `backbone` from the Keras HDF5 file at `path`, or a WeightsError that says why not.

    HDF5 only, loaded by topology: tf_keras then checks that the file holds exactly the backbone's layers with
    the backbone's shapes, so a file of another network fails instead of loading a part of it (a TensorFlow
    checkpoint would load what matches and skip the rest in silence). The file holds the backbone without its
    top, as `model.get_layer("backbone").save_weights("....h5")` writes it; the image size does not matter.
    """
    if not path.endswith(WEIGHTS_SUFFIXES):
        raise WeightsError(
            f"model.weights: {path} is not a Keras HDF5 weights file ({' or '.join(WEIGHTS_SUFFIXES)}); save one "
            'with model.get_layer("backbone").save_weights("backbone.weights.h5")'
        )
    if not tf.io.gfile.exists(path):
        raise WeightsError(f"model.weights: {path} does not exist")
    # Through a local copy: h5py reads local files only, and the file may be in the pipeline root's store.
    with tempfile.TemporaryDirectory(prefix="xfer-weights-") as local:
        local_path = os.path.join(local, os.path.basename(path))
        tf.io.gfile.copy(path, local_path)
        try:
            backbone.load_weights(local_path)
        except (ValueError, OSError) as error:
            raise WeightsError(
                f"model.weights: {path} does not hold the weights of a {name} backbone (model.backbone): {error}"
            ) from error


def build_model(
    model_config: ModelConfig,
    image_size: int,
    inputs: ModelInputs,
    num_classes: int,
    with_box: bool = True,
) -> tf_keras.Model:
    """Image (0..255 pixels) and metadata in; class probabilities and (unless `with_box` is False, for
    classification-only data) a (xmin, ymin, xmax, ymax) box out."""
    if num_classes < 2:
        raise ValueError(f"need at least two classes, got {num_classes}")
    # uint8: the Trainer's input pipeline decodes to it, and batches of it are an eighth of int64's, which halved
    # the images/s tf.data hands over at 299 px (benchmarks/input_pipeline.py). Keras casts other integer inputs.
    image = tf_keras.Input(shape=(image_size, image_size, 3), dtype=tf.uint8, name=features_lib.IMAGE)
    pixels = Normalize(model_config.backbone, name="normalize")(image)
    backbone = build_backbone(model_config, image_size)
    # A pretrained backbone keeps BatchNorm in inference mode even when unfrozen: fine-tuning on a small dataset
    # would otherwise overwrite the ImageNet statistics. A randomly initialised one has no statistics worth keeping.
    training_flag = False if uses_pretrained_weights(model_config) else None
    middle_map, feature_map = backbone(pixels, training=training_flag)

    pooled = tf_keras.layers.GlobalAveragePooling2D(name="pool")(feature_map)
    metadata_inputs, metadata = _metadata_tower(inputs)
    class_features = (
        tf_keras.layers.Concatenate(name="class_features")([pooled, metadata]) if metadata is not None else pooled
    )
    class_hidden = tf_keras.layers.Dropout(model_config.dropout_rate, name="class_dropout")(class_features)
    class_hidden = tf_keras.layers.Dense(model_config.head_units, activation="relu", name="class_hidden")(class_hidden)
    # The heads' outputs are float32 whatever the training precision: a softmax and the losses on them are
    # where float16 or bfloat16 lose what matters, and serving answers in float32.
    probabilities = tf_keras.layers.Dense(num_classes, activation="softmax", name=PROBABILITIES, dtype="float32")(
        class_hidden
    )

    outputs = {PROBABILITIES: probabilities}
    if not with_box:
        return tf_keras.Model(inputs={features_lib.IMAGE: image, **metadata_inputs}, outputs=outputs, name="xfer")

    # The box head keeps the spatial layout of the feature map (global pooling would throw away *where*).
    head = _spatial_box_head if model_config.box_head == "spatial" else _dense_box_head
    center_and_size = head(middle_map, feature_map, model_config.head_units)
    outputs[BOX] = BoxDecode(model_config.box_size, name=BOX, dtype="float32")(center_and_size)
    return tf_keras.Model(inputs={features_lib.IMAGE: image, **metadata_inputs}, outputs=outputs, name="xfer")


def _dense_box_head(middle_map: tf.Tensor, feature_map: tf.Tensor, units: int) -> tf.Tensor:
    """Both maps flattened into one dense layer: (cx, cy, w, h) in 0..1."""
    fine = _reduce(middle_map, "box_reduce_middle")
    coarse = _reduce(feature_map, "box_reduce_final")
    spatial = tf_keras.layers.Concatenate(name="box_features")(
        [
            tf_keras.layers.Flatten(name="box_flatten_middle")(fine),
            tf_keras.layers.Flatten(name="box_flatten_final")(coarse),
        ]
    )
    box_hidden = tf_keras.layers.Dense(units, activation="relu", name="box_hidden")(spatial)
    return tf_keras.layers.Dense(4, activation="sigmoid", name="box_center_size")(box_hidden)


def _spatial_box_head(middle_map: tf.Tensor, feature_map: tf.Tensor, units: int) -> tf.Tensor:
    """A soft argmax over the stride-16 map: (cx, cy, w, h) in 0..1.

    Every cell gets a score, an offset of the centre from the cell's own centre and a size, all from the
    same 3x3 convolution; the box is their softmax-weighted mean. A dense head must learn each position
    of the object separately from the few hundred images there are; here what is learnt at one place
    holds at every other. The final map, upsampled, gives each cell the context of the whole image.
    """
    fine = _reduce(middle_map, "box_reduce_middle")
    height, width = fine.shape[1], fine.shape[2]
    coarse = tf_keras.layers.Resizing(height, width, interpolation="bilinear", name="box_upsample_final")(
        _reduce(feature_map, "box_reduce_final")
    )
    joined = tf_keras.layers.Concatenate(name="box_features")([fine, coarse])
    hidden = tf_keras.layers.Conv2D(units, 3, padding="same", activation="relu", name="box_hidden")(joined)
    # Zero-initialised: the first box is the centred half-size one of the dense head (uniform scores, no
    # offset, sigmoid(0) = 0.5 sizes), which overlaps most objects, so IoU has a gradient from the start.
    zeros = "zeros"
    score = tf_keras.layers.Conv2D(1, 1, kernel_initializer=zeros, name="box_cell_score")(hidden)
    offset = tf_keras.layers.Conv2D(2, 1, activation="tanh", kernel_initializer=zeros, name="box_cell_offset")(hidden)
    size = tf_keras.layers.Conv2D(2, 1, activation="sigmoid", kernel_initializer=zeros, name="box_cell_size")(hidden)
    return SoftArgmaxBox(name="box_center_size", dtype="float32")([score, offset, size])


@tf_keras.utils.register_keras_serializable(package="xfer")
class SoftArgmaxBox(tf_keras.layers.Layer):
    """[scores (B,H,W,1), offsets (B,H,W,2) in -1..1 cells, sizes (B,H,W,2)] -> (cx, cy, w, h) (B,4): the
    softmax of the scores over the cells weighs each cell's centre (moved by its offset) and size."""

    def call(self, inputs):
        score, offset, size = inputs
        height, width = tf.shape(score)[1], tf.shape(score)[2]
        weights = tf.nn.softmax(tf.reshape(score, [-1, height * width]), axis=-1)[:, :, tf.newaxis]
        cell_x = (tf.cast(tf.range(width), tf.float32) + 0.5) / tf.cast(width, tf.float32)
        cell_y = (tf.cast(tf.range(height), tf.float32) + 0.5) / tf.cast(height, tf.float32)
        grid_y, grid_x = tf.meshgrid(cell_y, cell_x, indexing="ij")
        cell_size = tf.stack([1.0 / tf.cast(width, tf.float32), 1.0 / tf.cast(height, tf.float32)])
        centers = tf.stack([grid_x, grid_y], axis=-1)[tf.newaxis] + offset * cell_size
        per_cell = tf.concat([centers, size], axis=-1)
        return tf.reduce_sum(weights * tf.reshape(per_cell, [-1, height * width, 4]), axis=1)


def _reduce(feature_map: tf.Tensor, name: str) -> tf.Tensor:
    """1x1 conv to 32 channels, normalised: backbone maps (random ones especially) vary widely in scale, and
    an unnormalised one saturates the box head's sigmoid. The batch statistics are those of the global batch
    on several replicas (`synchronized`), so N GPUs train the head as one device would; on one device it is
    the plain layer."""
    reduced = tf_keras.layers.Conv2D(32, 1, use_bias=False, name=name)(feature_map)
    reduced = tf_keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(reduced)
    return tf_keras.layers.Activation("relu", name=f"{name}_relu")(reduced)


def decode_box(center_and_size: tf.Tensor) -> tf.Tensor:
    """The box head's (cx, cy, w, h) in 0..1 -> (xmin, ymin, xmax, ymax) clipped to the image.

    Predicting a centre and a size keeps every box well formed (positive area) from the first step; at
    initialisation it is a centred half-size box, which already overlaps most objects, so IoU has a gradient.
    """
    return metrics.center_size_to_corners(center_and_size)


def decode_sqrt_size_box(center_and_root_size: tf.Tensor) -> tf.Tensor:
    """`decode_box` for `model.box_size: sqrt`: the head predicts (cx, cy, sqrt w, sqrt h)."""
    return metrics.center_size_to_corners(center_and_root_size, sqrt_size=True)


# The network's own layers are registered Keras layers, not Lambdas: `tf_keras.models.load_model` rebuilds a
# SavedModel's network from their config, and a Lambda is saved as bytecode, which comes back broken when it
# closes over a local variable (the backbone's preprocessing did). So the pushed model reloads as the network it
# is (the report's Grad-CAM and summary read it), as long as this module is imported.
@tf_keras.saving.register_keras_serializable(package="xfer")
class Normalize(tf_keras.layers.Layer):
    """0..255 pixels to what the backbone's weights expect (its keras.applications `preprocess_input`)."""

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self._preprocess = backbone_spec(backbone).preprocess

    def call(self, images: tf.Tensor) -> tf.Tensor:
        return self._preprocess(tf.cast(images, tf.float32))

    def get_config(self) -> dict:
        return {**super().get_config(), "backbone": self.backbone}


@tf_keras.saving.register_keras_serializable(package="xfer")
class BoxDecode(tf_keras.layers.Layer):
    """The box head's centre and size to corners (`decode_box`, or `decode_sqrt_size_box` for `box_size: sqrt`)."""

    def __init__(self, box_size: str = "linear", **kwargs):
        super().__init__(**kwargs)
        if box_size not in ("linear", "sqrt"):
            raise ValueError(f"box_size is linear or sqrt, got {box_size!r}")
        self.box_size = box_size

    def call(self, center_and_size: tf.Tensor) -> tf.Tensor:
        return decode_sqrt_size_box(center_and_size) if self.box_size == "sqrt" else decode_box(center_and_size)

    def get_config(self) -> dict:
        return {**super().get_config(), "box_size": self.box_size}


def _metadata_tower(inputs: ModelInputs):
    model_inputs, parts = {}, []
    for name, cardinality in sorted(inputs.categorical.items()):
        ids = tf_keras.Input(shape=(), dtype=tf.int64, name=name)
        model_inputs[name] = ids
        dim = inputs.embedding_dims.get(name, 0)
        if dim > 0:
            embedded = tf_keras.layers.Embedding(cardinality, dim, name=f"{name}_embedding")(ids)
        else:
            embedded = tf_keras.layers.CategoryEncoding(cardinality, output_mode="one_hot", name=f"{name}_one_hot")(ids)
        parts.append(embedded)
    for name in inputs.numeric:
        value = tf_keras.Input(shape=(), dtype=tf.float32, name=name)
        model_inputs[name] = value
        parts.append(tf_keras.layers.Reshape((1,), name=f"{name}_column")(value))
    if not parts:
        return model_inputs, None
    joined = parts[0] if len(parts) == 1 else tf_keras.layers.Concatenate(name="metadata")(parts)
    return model_inputs, tf_keras.layers.Dense(32, activation="relu", name="metadata_tower")(joined)


def set_backbone_trainable(
    model: tf_keras.Model, trainable: bool, top_layers: int = 0, top_blocks: int = 0, backbone_name: str = ""
) -> None:
    """Freezes or unfreezes the backbone; with `top_layers` > 0 only its last that many layers train, with
    `top_blocks` > 0 only its last that many blocks (of `backbone_name`'s blocks, see `layer_blocks`)."""
    backbone = model.get_layer(BACKBONE_NAME)
    backbone.trainable = trainable
    if not trainable:
        return
    if top_layers > 0:
        for layer in backbone.layers[:-top_layers]:
            layer.trainable = False
    elif top_blocks > 0:
        blocks = layer_blocks(backbone, backbone_spec(backbone_name).block_pattern)
        names = [block for block in dict.fromkeys(blocks) if block != STEM]
        if top_blocks > len(names):
            raise ValueError(f"{backbone_name} has {len(names)} blocks; cannot unfreeze the top {top_blocks}")
        unfrozen = set(names[-top_blocks:])
        for layer, block in zip(backbone.layers, blocks, strict=True):
            layer.trainable = block in unfrozen


def layer_blocks(backbone: tf_keras.Model, pattern: str) -> list[str]:
    """The block of each backbone layer, in layer order. A layer whose name names no block (a residual
    shortcut's `conv2d`, an `add`) goes with the block that follows it; the layers after the last block
    (`top_conv`, `out_relu`) with the last block; those before the first (the stem) are `STEM`."""
    named = [match.group(1) if (match := re.match(pattern, layer.name)) else None for layer in backbone.layers]
    if not any(named):
        raise ValueError(f"no layer of {backbone.name} names a block (pattern {pattern})")
    blocks = [""] * len(named)
    upcoming = next(name for name in reversed(named) if name)
    for index in reversed(range(len(named))):
        upcoming = named[index] or upcoming
        blocks[index] = upcoming
    first = next(index for index, name in enumerate(named) if name)
    return [STEM] * first + blocks[first:]


def compile_model(model: tf_keras.Model, model_config: ModelConfig, learning_rate: float) -> None:
    """(Re)compiles; must be called after changing `trainable`, or the change has no effect."""
    box_loss = metrics.make_box_loss(model_config.box_iou_loss, sqrt_size=model_config.box_size == "sqrt")
    loss = {PROBABILITIES: tf_keras.losses.SparseCategoricalCrossentropy(), BOX: box_loss}
    loss_weights = {PROBABILITIES: model_config.class_loss_weight, BOX: model_config.box_loss_weight}
    compiled_metrics = {
        PROBABILITIES: [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        BOX: [metrics.BoxIoU(name="iou")],
    }
    names = output_names(model)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate),
        loss={name: loss[name] for name in names},
        loss_weights={name: loss_weights[name] for name in names},
        metrics={name: compiled_metrics[name] for name in names},
    )


def output_names(model: tf_keras.Model) -> list[str]:
    """The model's heads: probabilities, and box unless it was built for classification only."""
    return [name for name in (PROBABILITIES, BOX) if name in model.output]
