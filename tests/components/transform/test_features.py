"""preprocessing_fn on a few rows, through tensorflow-transform's real Beam implementation."""

import io
from dataclasses import replace as dataclasses_replace

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components import names
from components.transform import features, kinds
from pipeline import config as config_lib

FEATURES = (
    config_lib.FeatureConfig(name="hour", kind="bucketized", boundaries=(6.0, 12.0, 18.0)),
    config_lib.FeatureConfig(name="camera", kind="vocabulary", top_k=10, num_oov_buckets=1, embedding_dim=4),
    config_lib.FeatureConfig(name="altitude", kind="numeric"),
    config_lib.FeatureConfig(name="cell", kind="crossed", inputs=("hour", "camera"), hash_buckets=32),
    config_lib.FeatureConfig(name="speed", kind="numeric", normalization="minmax"),
    config_lib.FeatureConfig(name="speed_quartile", kind="bucketized", quantiles=2),
    config_lib.FeatureConfig(name="weather", kind="vocabulary_list", vocabulary=("sun", "rain"), num_oov_buckets=1),
    config_lib.FeatureConfig(name="site", kind="hash", hash_buckets=16),
    config_lib.FeatureConfig(name="lane", kind="identity", num_buckets=3),
)
SETTINGS = features.TransformSettings(image_size=8, features=FEATURES)


def _png(color, size=(20, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


ROWS = [
    {"image": _png((255, 0, 0)), "label": b"cat", "hour": 3, "camera": b"a", "altitude": 1.0},
    {"image": _png((0, 255, 0)), "label": b"dog", "hour": 12, "camera": b"b", "altitude": 2.0},
    {"image": _png((0, 0, 255)), "label": b"cat", "hour": 20, "camera": b"a", "altitude": 3.0},
    {"image": _png((10, 20, 30)), "label": b"cat", "hour": 7, "camera": b"a", "altitude": 6.0},
]
EXTRA = {
    "speed": [10.0, 20.0, 30.0, 50.0],
    "speed_quartile": [1.0, 2.0, 3.0, 4.0],
    "weather": [b"sun", b"rain", b"snow", b"sun"],
    "site": [b"north", b"south", b"north", b"east"],
    "lane": [0, 2, 5, -1],
}
for index, row in enumerate(ROWS):
    row.update({name: values[index] for name, values in EXTRA.items()})
for index, row in enumerate(ROWS):
    row.update(xmin=0.1 * index, ymin=0.2, xmax=0.5 + 0.1 * index, ymax=0.9)

RAW_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string),
    "hour": tf.io.FixedLenFeature([], tf.int64),
    "camera": tf.io.FixedLenFeature([], tf.string),
    "altitude": tf.io.FixedLenFeature([], tf.float32),
    "speed": tf.io.FixedLenFeature([], tf.float32),
    "speed_quartile": tf.io.FixedLenFeature([], tf.float32),
    "weather": tf.io.FixedLenFeature([], tf.string),
    "site": tf.io.FixedLenFeature([], tf.string),
    "lane": tf.io.FixedLenFeature([], tf.int64),
    **{name: tf.io.FixedLenFeature([], tf.float32) for name in names.BOX_CORNERS},
}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft")), force_tf_compat_v1=False):
        (rows, _), transform_fn = (ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: features.transform(inputs, SETTINGS)
        )
    return rows, transform_fn


def test_bucketized_uses_the_configured_boundaries(transformed):
    rows, _ = transformed
    assert [row["hour"] for row in rows] == [0, 2, 3, 1]


def test_vocabulary_ids_follow_frequency(transformed):
    rows, _ = transformed
    assert [row["camera"] for row in rows] == [0, 1, 0, 0]  # "a" is seen three times, "b" once.
    assert [row[features.LABEL_ID] for row in rows] == [0, 1, 0, 0]


def test_numeric_is_z_scored(transformed):
    rows, _ = transformed
    values = np.array([1.0, 2.0, 3.0, 6.0])
    expected = (values - values.mean()) / values.std()
    np.testing.assert_allclose([row["altitude"] for row in rows], expected, rtol=1e-5)


def test_cross_hashes_the_joined_ids(transformed):
    rows, _ = transformed
    keys = [f"{row['hour']}_X_{row['camera']}" for row in rows]
    expected = tf.strings.to_hash_bucket_fast(keys, 32).numpy().tolist()
    assert [row["cell"] for row in rows] == expected
    assert all(0 <= row["cell"] < 32 for row in rows)


def test_box_is_stacked_in_corner_order(transformed):
    rows, _ = transformed
    np.testing.assert_allclose(rows[1]["box"], [0.1, 0.2, 0.6, 0.9], rtol=1e-6)


def test_image_is_decoded_and_stretched_to_the_configured_size(transformed):
    """Stored as JPEG at the target size (the default layout); decoded, the colours are back within JPEG's
    rounding."""
    rows, _ = transformed
    stored = tf.constant([rows[3]["image"], rows[0]["image"]])
    assert stored.dtype == tf.string and rows[3]["image"][:2] == b"\xff\xd8"  # JPEG's start-of-image marker.
    images = features.decode_stored_image(stored, 8).numpy()
    assert images.shape == (2, 8, 8, 3) and images.dtype == np.uint8
    assert np.abs(images[0] - np.array([10, 20, 30])).max() <= 2
    assert images[1, ..., 0].min() >= 253


def _gradient_pixels(count, size, seed=0):
    """Smooth images, as photographs mostly are (per-pixel colour noise is what JPEG's chroma subsampling drops)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-60, 60, size)
    smooth = rng.integers(60, 196, (count, 1, 1, 3)) + ramp[None, :, None, None] + ramp[None, None, :, None] / 2
    return np.clip(smooth, 0, 255).round().astype(np.int64)


def test_jpeg_layout_decodes_close_to_the_pixels_and_the_pixels_layout_is_exact():
    pixels = tf.constant(_gradient_pixels(3, 32))
    jpeg = dataclasses_replace(SETTINGS, stored_as="jpeg", jpeg_quality=95)
    decoded = features.decode_stored_image(features.store_images(pixels, jpeg), 32).numpy()
    error = np.abs(decoded - pixels.numpy())
    assert error.mean() < 1.5 and decoded.dtype == np.uint8
    lossless = features.store_images(pixels, dataclasses_replace(SETTINGS, stored_as="pixels"))
    np.testing.assert_array_equal(features.decode_stored_image(lossless, 32).numpy(), pixels.numpy())
    with pytest.raises(ValueError, match="stored_as"):
        features.store_images(pixels, dataclasses_replace(SETTINGS, stored_as="png"))


def test_settings_saved_before_the_compact_layout_read_as_pixels():
    raw = SETTINGS.to_dict()
    del raw["stored_as"]
    assert features.TransformSettings.from_dict(raw).stored_as == "pixels"
    assert features.TransformSettings.from_dict(SETTINGS.to_dict()) == SETTINGS


def test_minmax_scales_to_unit_range(transformed):
    rows, _ = transformed
    np.testing.assert_allclose([row["speed"] for row in rows], [0.0, 0.25, 0.5, 1.0], rtol=1e-6)


def test_quantile_buckets_split_at_the_median(transformed):
    rows, _ = transformed
    assert [row["speed_quartile"] for row in rows] == [0, 0, 1, 1]


def test_vocabulary_list_keeps_list_order_and_sends_unknowns_to_the_oov_bucket(transformed):
    rows, _ = transformed
    assert [row["weather"] for row in rows] == [0, 1, 2, 0]


def test_hash_buckets_are_stable_hashes_of_the_value(transformed):
    rows, _ = transformed
    expected = tf.strings.to_hash_bucket_fast(EXTRA["site"], 16).numpy().tolist()
    assert [row["site"] for row in rows] == expected
    assert rows[0]["site"] == rows[2]["site"]


def test_identity_passes_ids_and_sends_out_of_range_to_an_extra_bucket(transformed):
    rows, _ = transformed
    assert [row["lane"] for row in rows] == [0, 2, 3, 3]


def test_cardinalities_come_from_the_declaration():
    sizes = features.categorical_cardinalities(SETTINGS, lambda name: {"camera": 2}[name])
    assert sizes == {"hour": 4, "camera": 3, "cell": 32, "speed_quartile": 2, "weather": 3, "site": 16, "lane": 4}
    assert features.numeric_features(SETTINGS) == ["altitude", "speed"]


def test_dense_column_fills_missing_values_with_the_default():
    sparse = tf.sparse.SparseTensor(indices=[[0, 0], [2, 0]], values=[5, 7], dense_shape=[3, 1])
    assert features.dense_column(sparse, -1).numpy().tolist() == [5, -1, 7]
    assert features.dense_column(tf.constant([[1], [2]]), 0).numpy().tolist() == [1, 2]


def _jpeg_with_box(width, height, box):
    """A black image with a white rectangle at `box` (pixels, exclusive max)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    xmin, ymin, xmax, ymax = box
    pixels[ymin:ymax, xmin:xmax] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("resize", ["stretch", "crop", "pad"])
def test_resize_modes_keep_the_box_on_the_object_and_map_back(resize):
    """Whatever the resize mode, the transformed box covers the white rectangle in the transformed image, and
    mapping it back through the frame gives the original box."""
    width, height, box = 120, 60, (50, 10, 80, 40)
    encoded = tf.constant([_jpeg_with_box(width, height, box)])
    images, frames = features.decode_and_resize(encoded, 32, resize)
    original = tf.constant([[box[0] / width, box[1] / height, box[2] / width, box[3] / height]])
    moved = features.box_to_frame(original, frames).numpy()[0]
    image = images.numpy()[0, ..., 0]
    bright = np.argwhere(image > 127)
    (ymin, xmin), (ymax, xmax) = bright.min(axis=0), bright.max(axis=0) + 1
    np.testing.assert_allclose(moved * 32, [xmin, ymin, xmax, ymax], atol=1.5)
    np.testing.assert_allclose(features.box_from_frame(moved[None], frames).numpy(), original.numpy(), atol=1e-6)
    if resize == "stretch":
        np.testing.assert_allclose(frames.numpy()[0], [0, 0, 1, 1])


def test_transform_builds_every_kind_of_the_table():
    assert set(features.TRANSFORMS) == set(kinds.KINDS)
