"""preprocessing_fn on a few rows, through tensorflow-transform's real Beam implementation."""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components import features
from pipeline import config as config_lib

FEATURES = (
    config_lib.FeatureConfig(name="hour", kind="bucketized", boundaries=(6.0, 12.0, 18.0)),
    config_lib.FeatureConfig(name="camera", kind="vocabulary", top_k=10, num_oov_buckets=1, embedding_dim=4),
    config_lib.FeatureConfig(name="altitude", kind="numeric"),
    config_lib.FeatureConfig(name="cell", kind="crossed", inputs=("hour", "camera"), hash_buckets=32),
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
for index, row in enumerate(ROWS):
    row.update(xmin=0.1 * index, ymin=0.2, xmax=0.5 + 0.1 * index, ymax=0.9)

RAW_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string),
    "hour": tf.io.FixedLenFeature([], tf.int64),
    "camera": tf.io.FixedLenFeature([], tf.string),
    "altitude": tf.io.FixedLenFeature([], tf.float32),
    **{name: tf.io.FixedLenFeature([], tf.float32) for name in features.BOX_COORDINATES},
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
    rows, _ = transformed
    image = np.asarray(rows[3]["image"]).reshape(8, 8, 3)
    assert (image == np.array([10, 20, 30])).all()
    assert np.asarray(rows[0]["image"]).reshape(8, 8, 3)[..., 0].min() == 255


def test_cardinalities_come_from_the_declaration():
    sizes = features.categorical_cardinalities(SETTINGS, lambda name: {"camera": 2}[name])
    assert sizes == {"hour": 4, "camera": 3, "cell": 32}
    assert features.numeric_features(SETTINGS) == ["altitude"]


def test_dense_column_fills_missing_values_with_the_default():
    sparse = tf.sparse.SparseTensor(indices=[[0, 0], [2, 0]], values=[5, 7], dense_shape=[3, 1])
    assert features.dense_column(sparse, -1).numpy().tolist() == [5, -1, 7]
    assert features.dense_column(tf.constant([[1], [2]]), 0).numpy().tolist() == [1, 2]
