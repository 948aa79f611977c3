"""Feature transforms in tensorflow-transform, declared by the config's `features:` list.

`transform(inputs, settings)` is the whole `preprocessing_fn`: the TFX module file only adapts its signature.
The same declaration tells the model which inputs exist and how large each categorical vocabulary is
(`categorical_cardinalities`), so no feature name is written in Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components import names
from components.settings import section_from_dict
from components.transform import derive as derive_lib
from components.transform import kinds as kinds_lib
from components.transform.settings import FeatureConfig

IMAGE = names.IMAGE
LABEL = "label"  # The raw column: a class name.
# The transformed label: the class's index in the label vocabulary. Named apart from the raw column so that
# TFMA, which sees raw and transformed features side by side, cannot mistake one for the other.
LABEL_ID = "label_id"
BOX = "box"
# How the resized image sits in the original one; see decode_and_resize.
IMAGE_FRAME = "image_frame"
LABEL_VOCABULARY = "label"


@dataclasses.dataclass(frozen=True)
class TransformSettings:
    """What Transform needs from the config; the Trainer and the exporter read the same object."""

    image_size: int
    features: tuple[FeatureConfig, ...]
    resize: str = "stretch"
    boxes: bool = True  # False for classification-only data, which has no box features.
    # The class of images with no object (ingest.no_object: keep); the served answer says it has no box.
    no_object_class: str = ""
    # How Transform stores the resized image for the Trainer: "jpeg" (encoded at the target size, decoded in
    # the Trainer's input pipeline and in the serving graph by `decode_one_stored_image`) or "pixels" (int64
    # 0..255, about 7x the bytes and a quarter of the read speed at 299 px; benchmarks/input_pipeline.py).
    stored_as: str = "jpeg"
    jpeg_quality: int = 95

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TransformSettings:
        return cls(
            image_size=int(raw["image_size"]),
            features=tuple(section_from_dict(FeatureConfig, f) for f in raw["features"]),
            resize=str(raw.get("resize", "stretch")),
            boxes=bool(raw.get("boxes", True)),
            no_object_class=str(raw.get("no_object_class", "")),
            # Settings saved before the compact layout existed describe pixels.
            stored_as=str(raw.get("stored_as", "pixels")),
            jpeg_quality=int(raw.get("jpeg_quality", 95)),
        )

    @property
    def raw_metadata_columns(self) -> list[str]:
        """The raw columns the declared features read (crossed features read other features, not columns)."""
        return list(dict.fromkeys(feature.raw_column for feature in self.features if not _reads_features(feature)))


def transform(inputs: Mapping[str, Any], settings: TransformSettings) -> dict[str, tf.Tensor]:
    """preprocessing_fn: raw batch -> model inputs (image, metadata features) and labels (label_id, box)."""
    images, frames = decode_and_resize(dense_column(inputs[IMAGE], b""), settings.image_size, settings.resize)
    outputs: dict[str, tf.Tensor] = {IMAGE: store_images(images, settings), IMAGE_FRAME: frames}
    outputs[LABEL_ID] = tft.compute_and_apply_vocabulary(
        dense_column(inputs[LABEL], b""), vocab_filename=LABEL_VOCABULARY
    )
    if settings.boxes:
        box = tf.stack([dense_column(inputs[name], 0.0) for name in names.BOX_CORNERS], axis=1)
        outputs[BOX] = box_to_frame(box, frames)
    # Crossed features read the bucket/vocabulary ids of the others, so those come first.
    for feature in sorted(settings.features, key=_reads_features):
        outputs[feature.name] = transform_feature(feature, inputs, outputs)
    return outputs


def transform_feature(feature: FeatureConfig, inputs: Mapping[str, Any], done: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """One declared feature -> its model input: a float for numeric kinds, an int64 id for categorical ones."""
    kind = _kind(feature)
    if kind.reads == "features":
        return TRANSFORMS[kind.name](feature, [done[name] for name in feature.inputs])
    if feature.raw_column not in inputs:
        raise ValueError(f"feature {feature.name!r} reads {feature.raw_column!r}, which is not a column of the data")
    raw = inputs[feature.raw_column]
    if feature.derive:
        if kind.reads != "number":
            raise ValueError(f"feature {feature.name!r}: unsupported kind {feature.kind!r}")
        # The raw column's own fill first (a missing date-time is ""), then the derived value's default.
        default = 0.0 if feature.default is None else float(feature.default)
        text = dense_column(raw, b"" if raw.dtype == tf.string else 0)
        values = derive_lib.derived_values(text, feature.derive, feature.cyclical, default)
    else:
        values = dense_column(raw, _default(feature, raw))
        if kind.reads == "string":
            values = _as_string(values)
    return TRANSFORMS[kind.name](feature, values)


def _kind(feature: FeatureConfig) -> kinds_lib.Kind:
    if feature.kind not in kinds_lib.KINDS:
        raise ValueError(f"feature {feature.name!r}: unsupported kind {feature.kind!r}")
    return kinds_lib.KINDS[feature.kind]


def _reads_features(feature: FeatureConfig) -> bool:
    return _kind(feature).reads == "features"


def _normalized(feature: FeatureConfig, values: tf.Tensor) -> tf.Tensor:
    values = tf.cast(values, tf.float32)
    if feature.normalization == "zscore":
        return tft.scale_to_z_score(values)
    if feature.normalization == "minmax":
        return tft.scale_to_0_1(values)
    return values


def _bucketized(feature: FeatureConfig, values: tf.Tensor) -> tf.Tensor:
    values = tf.cast(values, tf.float32)
    if feature.quantiles:
        return tft.bucketize(values, num_buckets=feature.quantiles)
    return tft.apply_buckets(values, bucket_boundaries=[list(feature.boundaries)])


def _vocabulary(feature: FeatureConfig, values: tf.Tensor) -> tf.Tensor:
    return tft.compute_and_apply_vocabulary(
        values, top_k=feature.top_k, num_oov_buckets=feature.num_oov_buckets, vocab_filename=feature.name
    )


def _vocabulary_list(feature: FeatureConfig, values: tf.Tensor) -> tf.Tensor:
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(feature.vocabulary), tf.range(len(feature.vocabulary), dtype=tf.int64)
        ),
        num_oov_buckets=feature.num_oov_buckets,
    )
    return table.lookup(values)


def _hashed(feature: FeatureConfig, values: tf.Tensor) -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(values, feature.hash_buckets)


def _identity(feature: FeatureConfig, values: tf.Tensor) -> tf.Tensor:
    ids = tf.cast(values, tf.int64)
    in_range = (ids >= 0) & (ids < feature.num_buckets)
    return tf.where(in_range, ids, tf.constant(feature.num_buckets, tf.int64))


def _crossed(feature: FeatureConfig, columns: Sequence[tf.Tensor]) -> tf.Tensor:
    return cross_hashed(columns, feature.hash_buckets)


# How Transform builds each kind (components/transform/kinds.py), from the values its `reads` says it gets: a
# [batch] column of numbers or strings, or the ids of the features it crosses. Apart from the table because
# that one stays free of TensorFlow.
TRANSFORMS: dict[str, Callable[[FeatureConfig, Any], tf.Tensor]] = {
    "numeric": _normalized,
    "bucketized": _bucketized,
    "vocabulary": _vocabulary,
    "vocabulary_list": _vocabulary_list,
    "hash": _hashed,
    "identity": _identity,
    "crossed": _crossed,
}


def _default(feature: FeatureConfig, raw: Any) -> Any:
    """The fill value for a missing entry, in the column's own dtype."""
    if raw.dtype == tf.string:
        return b"" if feature.default is None else str(feature.default).encode()
    return 0 if feature.default is None else feature.default


def _as_string(values: tf.Tensor) -> tf.Tensor:
    return values if values.dtype == tf.string else tf.strings.as_string(values)


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


def decode_and_resize(encoded: tf.Tensor, size: int, resize: str = "stretch") -> tuple[tf.Tensor, tf.Tensor]:
    """Encoded JPEG/PNG bytes -> ([batch, size, size, 3] pixels in 0..255, [batch, 4] frames).

    The pixels are int64 because tf.Example has no uint8; normalisation for the backbone happens in the model.
    A frame (x_offset, y_offset, x_scale, y_scale) maps a point of the resized image, as a fraction, back to
    the original: original = resized * scale + offset. Stretching keeps fractions unchanged: (0, 0, 1, 1).
    """
    if resize not in ("stretch", "crop", "pad"):
        raise ValueError(f"unknown resize mode {resize!r}")

    def decode_one(image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        frame = tf.constant([0.0, 0.0, 1.0, 1.0])
        if resize != "stretch":
            if resize == "crop":
                side = tf.minimum(height, width)
                top, left = (height - side) // 2, (width - side) // 2
                image = tf.image.crop_to_bounding_box(image, top, left, side, side)
            else:
                side = tf.maximum(height, width)
                pad_top, pad_left = (side - height) // 2, (side - width) // 2
                image = tf.image.pad_to_bounding_box(image, pad_top, pad_left, side, side)
                top, left = -pad_top, -pad_left  # The square starts before the image.
            w, h, s = (tf.cast(v, tf.float32) for v in (width, height, side))
            frame = tf.stack([tf.cast(left, tf.float32) / w, tf.cast(top, tf.float32) / h, s / w, s / h])
        resized = tf.image.resize(image, [size, size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.int64), frame

    return tf.map_fn(
        decode_one,
        encoded,
        fn_output_signature=(tf.TensorSpec([size, size, 3], tf.int64), tf.TensorSpec([4], tf.float32)),
    )


def store_images(pixels: tf.Tensor, settings: TransformSettings) -> tf.Tensor:
    """Resized pixels -> what Transform writes for the Trainer (`settings.stored_as`).

    JPEG at the target size: encoded here once, decoded by `decode_one_stored_image` in the Trainer's input
    pipeline and in the serving graph after the Transform layer, so training and serving see the very same
    pixels (the same bytes through the same decoder). The JPEG's loss is part of the transform, like the resize.
    """
    if settings.stored_as == "pixels":
        return pixels
    if settings.stored_as != "jpeg":
        raise ValueError(f"image.stored_as: jpeg or pixels, got {settings.stored_as!r}")
    as_bytes = tf.cast(pixels, tf.uint8)
    return tf.map_fn(
        lambda image: tf.io.encode_jpeg(image, quality=settings.jpeg_quality),
        as_bytes,
        fn_output_signature=tf.TensorSpec([], tf.string),
    )


def decode_stored_image(stored: tf.Tensor, size: int) -> tf.Tensor:
    """What Transform stored, for a batch -> [batch, size, size, 3] uint8 pixels, the network's image input.

    JPEG bytes are decoded, and pixels cast, by `decode_one_stored_image`, the function the Trainer's input
    pipeline maps over single examples, so training and serving decode alike. The dtype tells the layouts
    apart, so a Transform output written before the compact layout still trains.
    """
    if stored.dtype != tf.string:
        return decode_one_stored_image(tf.reshape(stored, [-1, size, size, 3]), size)
    return tf.map_fn(
        lambda image: decode_one_stored_image(image, size),
        tf.reshape(stored, [-1]),
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
    )


def decode_one_stored_image(stored: tf.Tensor, size: int) -> tf.Tensor:
    """One example's stored image -> [size, size, 3] uint8 pixels (pixels as int64 -> their uint8 values)."""
    if stored.dtype != tf.string:
        return tf.cast(stored, tf.uint8)  # 0..255 already (decode_and_resize clips); exact.
    return tf.ensure_shape(tf.io.decode_jpeg(tf.reshape(stored, []), channels=3), [size, size, 3])


def decode_stored_images(transformed: Mapping[str, tf.Tensor], size: int) -> dict[str, tf.Tensor]:
    """Transformed features with the stored image decoded to the network's pixels (when there is one)."""
    if IMAGE not in transformed:
        return dict(transformed)
    return {**transformed, IMAGE: decode_stored_image(transformed[IMAGE], size)}


def box_to_frame(box: tf.Tensor, frames: tf.Tensor) -> tf.Tensor:
    """Boxes as fractions of the original image -> fractions of the resized one, clipped to it."""
    offset = tf.tile(frames[:, :2], [1, 2])
    scale = tf.tile(frames[:, 2:], [1, 2])
    return tf.clip_by_value((tf.cast(box, tf.float32) - offset) / scale, 0.0, 1.0)


def box_from_frame(box: tf.Tensor, frames: tf.Tensor) -> tf.Tensor:
    """The inverse of `box_to_frame`: a predicted box back in the original image's fractions."""
    return tf.clip_by_value(box * tf.tile(frames[:, 2:], [1, 2]) + tf.tile(frames[:, :2], [1, 2]), 0.0, 1.0)


def categorical_cardinalities(settings: TransformSettings, vocabulary_size: Any) -> dict[str, int]:
    """Number of distinct ids of each categorical feature; `vocabulary_size(name)` reads a computed vocabulary."""
    return {
        feature.name: _kind(feature).ids(feature, vocabulary_size)
        for feature in settings.features
        if _kind(feature).categorical
    }


def numeric_features(settings: TransformSettings) -> list[str]:
    return [feature.name for feature in settings.features if not _kind(feature).categorical]


def describe(settings: TransformSettings, vocabulary_size: Any, num_classes: int) -> list[tuple[str, str, str]]:
    """(feature, transform, what the model gets) for each transformed feature: the readable Transform summary."""
    rows = [
        (
            IMAGE,
            f"decode JPEG/PNG, {settings.resize} to {settings.image_size}x{settings.image_size}"
            + (f", stored as JPEG q{settings.jpeg_quality}" if settings.stored_as == "jpeg" else ""),
            f"uint8 [{settings.image_size}, {settings.image_size}, 3]",
        ),
        (LABEL_ID, "vocabulary of the label column", f"int64 class id in [0, {num_classes})"),
    ]
    if settings.boxes:
        rows.append((BOX, "corners as fractions, mapped into the resized image", "float32 [4]"))
    cardinalities = categorical_cardinalities(settings, vocabulary_size)
    for feature in settings.features:
        how = _kind(feature).describe(feature)
        if not _kind(feature).categorical:
            rows.append((feature.name, how, "float32"))
            continue
        into = f"embedding {feature.embedding_dim}" if feature.embedding_dim else "one-hot"
        rows.append((feature.name, how, f"int64 id in [0, {cardinalities[feature.name]}) -> {into}"))
    return rows


def format_table(rows: list[tuple[str, str, str]]) -> str:
    header = ("feature", "transform", "model input")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)
