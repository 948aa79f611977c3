"""Exports the trained model as a SavedModel whose signatures take raw, serialized `tf.Example`s.

The Transform graph is attached to the model, so serving applies exactly the transforms training saw.
- `serving_default`: raw examples (no label or box needed) -> probabilities, the class names, the predicted
  label and the box.
- `transform_features`: raw examples -> transformed features (labels included); TFMA uses it to find labels.
- `transformed_inputs`: raw examples, parsed as `serving_default` parses them -> the network's inputs.
`assets.extra/raw_features.json` lists the raw inputs and their types, for clients such as `xfer predict`;
components/serving/contract.py holds what clients need of this contract.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from components.serving import contract
from components.trainer import model as model_lib
from components.transform import features as features_lib

_DTYPE_NAMES = {tf.string: "string", tf.int64: "int", tf.float32: "float"}


def serving_feature_spec(
    tf_transform_output: tft.TFTransformOutput, settings: features_lib.TransformSettings
) -> dict[str, tf.io.FixedLenFeature]:
    """Raw features a client sends: the image and the declared metadata columns, each with a default.

    With a default, a missing metadata value is filled in (and hashed or bucketed like any other) instead of
    failing the whole request.
    """
    raw_spec = tf_transform_output.raw_feature_spec()
    # A derived feature's default is for its derived value; its raw column's is the dtype's empty value.
    defaults = {feature.raw_column: feature.default for feature in reversed(settings.features) if not feature.derive}
    spec = {features_lib.IMAGE: tf.io.FixedLenFeature([1], tf.string)}
    for name in settings.raw_metadata_columns:
        dtype = raw_spec[name].dtype
        default = defaults.get(name)
        if default is None:
            default = "" if dtype == tf.string else 0
        spec[name] = tf.io.FixedLenFeature([1], dtype, default_value=[default])
    return spec


def serving_answer(
    outputs: dict[str, tf.Tensor], transformed: dict[str, tf.Tensor], label_names: list[str], no_object_class: str
) -> dict[str, tf.Tensor]:
    """What `serving_default` answers (serving/contract.py reads it), from the network's outputs."""
    probabilities = outputs[model_lib.PROBABILITIES]
    classes = tf.constant(label_names)
    answer = {
        "probabilities": probabilities,
        "classes": tf.tile(classes[tf.newaxis, :], [tf.shape(probabilities)[0], 1]),
        "label": tf.gather(classes, tf.argmax(probabilities, axis=1)),
    }
    if model_lib.BOX in outputs:
        # The model predicts in the resized image; clients want the box in the image they sent.
        answer["box"] = features_lib.box_from_frame(outputs[model_lib.BOX], transformed[features_lib.IMAGE_FRAME])
        if no_object_class:
            # An image said to hold nothing has no box, whatever numbers the box head gives.
            answer["has_box"] = answer["label"] != no_object_class
    return answer


def export_serving_model(
    model: tf_keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    settings: features_lib.TransformSettings,
    output_dir: str,
) -> None:
    """Saves the trained network as the SavedModel that is pushed and served, with three signatures on raw
    serialized examples: `serving_default` (the answer), `transform_features` (TFMA's labels) and
    `transformed_inputs` (what the network is fed), and the raw features' types in `assets.extra/`.

    Long because the three signatures are closures over the same model, Transform layer and feature specs,
    which a split would have to pass around; what the answer holds is `serving_answer`.
    """
    label_names = read_label_names(tf_transform_output)
    serving_spec = serving_feature_spec(tf_transform_output, settings)
    raw_spec = tf_transform_output.raw_feature_spec()
    # Tracked as an attribute so the Transform graph's assets (vocabularies) are saved with the model.
    model.tft_layer = tf_transform_output.transform_features_layer()
    input_names = list(model.input.keys())
    # Traced as plain Python: nothing here branches on a tensor, and autograph would rewrite the source of every
    # layer's `call` in the network (the export took 19 s with it, 4 s without, for the sample's Xception).
    raw_examples_signature = tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False
    )

    def transformed_for_the_network(serialized):
        """Parsed as a client's request, transformed, and the stored image decoded as the Trainer's input
        pipeline decodes it (features.decode_one_stored_image)."""
        raw = tf.io.parse_example(serialized, serving_spec)
        return features_lib.decode_stored_images(model.tft_layer(raw), settings.image_size)

    @raw_examples_signature
    def serve(serialized):
        transformed = transformed_for_the_network(serialized)
        outputs = model({name: transformed[name] for name in input_names}, training=False)
        return serving_answer(outputs, transformed, label_names, settings.no_object_class)

    @raw_examples_signature
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

    @raw_examples_signature
    def transformed_inputs(serialized):
        transformed = transformed_for_the_network(serialized)
        return {name: transformed[name] for name in input_names}

    # Serving needs the weights only. With the optimizer, Adam's two slots per weight triple the variables that
    # every push, registry version, champion download and serving pod carries; the compiled losses and metrics
    # are training state too. Serving, TF Serving, MLflow, TFMA and batch scoring call the signatures; only the
    # report reloads the network through Keras, and it rebuilds it from the layers' configs (model.py registers
    # them). So no per-layer call traces: they took half the export (38 s against 19 s for the sample's network,
    # in a fresh process, both before autograph was turned off above) and slowed every load (tf.saved_model.load
    # 5.8 s against 1.7 s).
    model.save(
        output_dir,
        save_format="tf",
        include_optimizer=False,
        save_traces=False,
        signatures={
            contract.SERVING_SIGNATURE: serve,
            "transform_features": transform_features,
            # What serving feeds the network; the skew test compares it with what training read.
            "transformed_inputs": transformed_inputs,
        },
    )
    extra = os.path.join(output_dir, "assets.extra")
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, contract.RAW_FEATURES_FILE), "w") as handle:
        json.dump({name: _DTYPE_NAMES[spec.dtype] for name, spec in serving_spec.items()}, handle, indent=1)


def read_label_names(tf_transform_output: tft.TFTransformOutput) -> list[str]:
    path = tf_transform_output.vocabulary_file_by_name(features_lib.LABEL_VOCABULARY)
    with tf.io.gfile.GFile(path) as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]
