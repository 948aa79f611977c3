"""Feature transforms in tensorflow-transform, declared by the config's `features:` list.

`transform(inputs, settings)` is the whole `preprocessing_fn`: the TFX module file only adapts its signature.
The same declaration tells the model which inputs exist and how large each categorical vocabulary is
(`categorical_cardinalities`), so no feature name is written in Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from pipeline import config as config_lib

IMAGE = "image"
LABEL = "label"  # The raw column: a class name.
# The transformed label: the class's index in the label vocabulary. Named apart from the raw column so that
# TFMA, which sees raw and transformed features side by side, cannot mistake one for the other.
LABEL_ID = "label_id"
BOX = "box"
BOX_COORDINATES = ("xmin", "ymin", "xmax", "ymax")
LABEL_VOCABULARY = "label"
CATEGORICAL_KINDS = ("bucketized", "vocabulary", "crossed")


@dataclasses.dataclass(frozen=True)
class TransformSettings:
    """What Transform needs from the config; the Trainer and the exporter read the same object."""

    image_size: int
    features: tuple[config_lib.FeatureConfig, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TransformSettings:
        return cls(
            image_size=int(raw["image_size"]),
            features=tuple(config_lib.section_from_dict(config_lib.FeatureConfig, f) for f in raw["features"]),
        )

    @classmethod
    def from_config(cls, config: config_lib.Config) -> TransformSettings:
        return cls(image_size=config.image.size, features=config.features)

    @property
    def raw_metadata_columns(self) -> list[str]:
        """The raw columns the declared features read (crossed features read other features, not columns)."""
        return [feature.name for feature in self.features if feature.kind != "crossed"]


def transform(inputs: Mapping[str, Any], settings: TransformSettings) -> dict[str, tf.Tensor]:
    """preprocessing_fn: raw batch -> model inputs (image, metadata features) and labels (label_id, box)."""
    outputs: dict[str, tf.Tensor] = {IMAGE: decode_and_resize(dense_column(inputs[IMAGE], b""), settings.image_size)}
    outputs[LABEL_ID] = tft.compute_and_apply_vocabulary(
        dense_column(inputs[LABEL], b""), vocab_filename=LABEL_VOCABULARY
    )
    outputs[BOX] = tf.stack([dense_column(inputs[name], 0.0) for name in BOX_COORDINATES], axis=1)
    # Crossed features read the bucket/vocabulary ids of the others, so those come first.
    for feature in sorted(settings.features, key=lambda feature: feature.kind == "crossed"):
        outputs[feature.name] = transform_feature(feature, inputs, outputs)
    return outputs


def transform_feature(
    feature: config_lib.FeatureConfig, inputs: Mapping[str, Any], done: Mapping[str, tf.Tensor]
) -> tf.Tensor:
    if feature.kind == "crossed":
        return cross_hashed([done[name] for name in feature.inputs], feature.hash_buckets)
    if feature.name not in inputs:
        raise ValueError(f"feature {feature.name!r} is declared in the config but is not a column of the data")
    raw = inputs[feature.name]
    if feature.kind == "vocabulary":
        values = dense_column(raw, b"" if feature.default is None else str(feature.default).encode())
        return tft.compute_and_apply_vocabulary(
            values, top_k=feature.top_k, num_oov_buckets=feature.num_oov_buckets, vocab_filename=feature.name
        )
    values = tf.cast(dense_column(raw, 0 if feature.default is None else feature.default), tf.float32)
    if feature.kind == "numeric":
        return tft.scale_to_z_score(values)
    if feature.kind == "bucketized":
        return tft.apply_buckets(values, bucket_boundaries=[list(feature.boundaries)])
    raise ValueError(f"feature {feature.name!r}: unsupported kind {feature.kind!r}")


def cross_hashed(columns: Sequence[tf.Tensor], hash_buckets: int) -> tf.Tensor:
    """Crosses categorical ids by hashing their joined string form, as feature columns' crossed_column did."""
    joined = tf.strings.join([tf.strings.as_string(column) for column in columns], separator="_X_")
    return tf.strings.to_hash_bucket_fast(joined, hash_buckets)


def dense_column(values: Any, default: Any) -> tf.Tensor:
    """A [batch] tensor from a [batch, 1] dense or a sparse (optional) column, filling gaps with `default`."""
    if isinstance(values, tf.sparse.SparseTensor):
        batch_size = values.dense_shape[0]
        first = tf.sparse.slice(values, [0, 0], tf.stack([batch_size, tf.constant(1, tf.int64)]))
        first = tf.sparse.SparseTensor(first.indices, first.values, tf.stack([batch_size, tf.constant(1, tf.int64)]))
        values = tf.sparse.to_dense(first, default_value=tf.cast(default, values.dtype))
    return tf.reshape(values, [-1])


def decode_and_resize(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded JPEG/PNG bytes -> [batch, size, size, 3] pixels in 0..255.

    Stretching (not cropping) keeps box coordinates, which are fractions of the image, valid unchanged. The
    pixels are int64 because tf.Example has no uint8; normalisation for the backbone happens in the model.
    """

    def decode_one(image_bytes: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        image = tf.image.resize(image, [size, size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.int64)

    return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec([size, size, 3], tf.int64))


def categorical_cardinalities(settings: TransformSettings, vocabulary_size: Any) -> dict[str, int]:
    """Number of distinct ids of each categorical feature; `vocabulary_size(name)` reads a computed vocabulary."""
    sizes = {}
    for feature in settings.features:
        if feature.kind == "bucketized":
            sizes[feature.name] = len(feature.boundaries) + 1
        elif feature.kind == "vocabulary":
            sizes[feature.name] = int(vocabulary_size(feature.name)) + feature.num_oov_buckets
        elif feature.kind == "crossed":
            sizes[feature.name] = feature.hash_buckets
    return sizes


def numeric_features(settings: TransformSettings) -> list[str]:
    return [feature.name for feature in settings.features if feature.kind == "numeric"]
