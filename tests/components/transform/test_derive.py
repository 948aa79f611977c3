"""Derived features: the date-time and number grammar read the same at ingest (Python) and in Transform
(TensorFlow), through tensorflow-transform's Beam run and the served model's Transform layer alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.transform import derive, features
from pipeline import config as config_lib
from tests.helpers import SAMPLE_CONFIG

DATETIMES = [
    "2019-06-01 05:42:10",
    "2019:06:01 23:59:59",  # EXIF's separators.
    "2020-02-29T00:00",  # A leap day, ISO's T, no seconds.
    "2000-12-31",  # Date only: hour 0; 2000 is a leap year (day 366).
    "1900-03-01 12:00:00.5",  # 1900 is not a leap year; a fraction of a second.
    "2024/01/01 7:05",
    " 2023-07-15 18:30:00 ",
]


@pytest.mark.parametrize("part", ["hour", "day_of_week", "month", "day_of_year"])
@pytest.mark.parametrize("cyclical", ["", "sin", "cos"])
def test_tensorflow_reads_date_times_as_python_does(part, cyclical):
    got = derive.derived_values(tf.constant(DATETIMES), part, cyclical, default=-1.0).numpy()
    expected = [derive.python_value(part, cyclical, text) for text in DATETIMES]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_parts_are_the_calendars():
    assert [derive.python_value("day_of_week", "", text) for text in DATETIMES[:4]] == [
        5,
        5,
        5,
        6,
    ]  # Sat, Sat, Sat, Sun
    assert derive.python_value("day_of_year", "", "2000-12-31") == 366
    assert derive.python_value("hour", "sin", "2019-06-01 06:00") == pytest.approx(1.0)
    assert derive.python_value("hour", "cos", "2019-06-01 23:00") == pytest.approx(math.cos(2 * math.pi * 23 / 24))


def test_numbers_are_read_out_of_strings_as_python_reads_them():
    texts = ["12 km", "cam_07", "-3.5C", "t=0.25 s", "42"]
    got = derive.derived_values(tf.constant(texts), "number", "", default=-1.0).numpy()
    assert list(got) == pytest.approx([derive.python_value("number", "", text) for text in texts])
    assert list(got) == pytest.approx([12.0, 7.0, -3.5, 0.25, 42.0])


def test_missing_or_unreadable_values_get_the_default_in_serving():
    got = derive.derived_values(tf.constant(["", "noon", "2019-13-01x"]), "hour", "", default=-1.0).numpy()
    assert list(got) == [-1.0, -1.0, -1.0]
    assert list(derive.derived_values(tf.constant(["", "none"]), "number", "", default=9.0).numpy()) == [9.0, 9.0]


@pytest.mark.parametrize(
    "derive_kind, text, problem",
    [
        ("hour", "noon", "is not a date-time (YYYY-MM-DD[ HH:MM[:SS]])"),
        ("hour", "2019-13-01 05:00", "month must be in 1..12"),
        ("day_of_year", "2019-02-29", "day is out of range for month"),
        ("hour", "2019-06-01 25:00", "hour must be in 0..23"),
        ("number", "none", "holds no number"),
        ("hour", "", None),  # Missing is not malformed.
        ("hour", "2019-06-01 05:42:10", None),
        ("number", "cam 12", None),
    ],
)
def test_ingest_names_what_is_wrong_with_a_value(derive_kind, text, problem):
    found = derive.check_text(derive_kind, text)
    assert (found is None) if problem is None else (problem in found)


FEATURES = (
    config_lib.FeatureConfig(
        name="hour_bucket", kind="bucketized", source="datetime", derive="hour", boundaries=(6.0, 12.0, 18.0)
    ),
    config_lib.FeatureConfig(name="weekday", kind="identity", source="datetime", derive="day_of_week", num_buckets=7),
    config_lib.FeatureConfig(
        name="hour_sin", kind="numeric", source="datetime", derive="hour", cyclical="sin", normalization="none"
    ),
    config_lib.FeatureConfig(
        name="camera_number", kind="numeric", source="camera", derive="number", normalization="none"
    ),
    config_lib.FeatureConfig(name="camera", kind="vocabulary", top_k=10),
)
SETTINGS = features.TransformSettings(image_size=8, features=FEATURES, boxes=False)
RAW_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string),
    "datetime": tf.io.VarLenFeature(tf.string),
    "camera": tf.io.FixedLenFeature([], tf.string),
}


def _png() -> bytes:
    return tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)).numpy()


def test_one_raw_column_feeds_several_features_the_same_in_training_and_serving(tmp_path):
    """The Beam run (what the Trainer reads) and the Transform layer of the served model, on the same rows."""
    rows = [
        {"image": _png(), "label": b"cat", "datetime": [b"2019-06-01 05:42:10"], "camera": b"cam_07"},
        {"image": _png(), "label": b"dog", "datetime": [b"2019-06-02 13:00:00"], "camera": b"cam_12"},
        {"image": _png(), "label": b"cat", "datetime": [], "camera": b"cam_3"},  # No date-time: the default.
    ]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tft_beam.Context(temp_dir=str(tmp_path / "tft"), force_tf_compat_v1=False):
        (trained, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: features.transform(inputs, SETTINGS)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "graph"))
    assert [row["hour_bucket"] for row in trained] == [0, 2, 0]
    assert [row["weekday"] for row in trained] == [5, 6, 0]
    assert [row["camera_number"] for row in trained] == [7.0, 12.0, 3.0]
    assert trained[0]["hour_sin"] == pytest.approx(math.sin(2 * math.pi * 5 / 24), abs=1e-6)

    layer = tft.TFTransformOutput(str(tmp_path / "graph")).transform_features_layer()
    batch = {
        "image": tf.constant([row["image"] for row in rows]),
        "label": tf.constant([row["label"] for row in rows]),
        "camera": tf.constant([row["camera"] for row in rows]),
        "datetime": tf.sparse.from_dense(tf.constant([[b"2019-06-01 05:42:10"], [b"2019-06-02 13:00:00"], [b""]])),
    }
    served = layer(batch)
    for name in ("hour_bucket", "weekday", "hour_sin", "camera_number", "camera"):
        np.testing.assert_allclose(served[name].numpy(), [row[name] for row in trained], atol=1e-6)


def test_the_served_raw_inputs_are_the_source_columns_once():
    assert SETTINGS.raw_metadata_columns == ["datetime", "camera"]


@pytest.mark.parametrize(
    "feature, message",
    [
        ({"name": "h", "kind": "vocabulary", "source": "datetime", "derive": "hour"}, "a derived value is a number"),
        ({"name": "h", "kind": "numeric", "derive": "number", "cyclical": "sin"}, "cyclical: needs derive"),
        ({"name": "h", "kind": "bucketized", "derive": "hour", "cyclical": "sin", "boundaries": [1]}, "kind: numeric"),
        ({"name": "h", "kind": "numeric", "derive": "hour", "default": "x"}, "default is a number"),
    ],
)
def test_the_config_refuses_derivations_that_cannot_work(feature, message):
    raw = config_lib.load_config(SAMPLE_CONFIG).to_dict()
    raw["features"] = [feature]
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.config_from_dict(raw)


def test_one_column_read_as_a_date_time_and_a_number_is_refused():
    both = (
        config_lib.FeatureConfig(name="a", kind="numeric", source="x", derive="hour"),
        config_lib.FeatureConfig(name="b", kind="numeric", source="x", derive="number"),
    )
    with pytest.raises(config_lib.ConfigError, match="read as a date-time by one feature and as a number"):
        config_lib.derived_columns(both)
    assert config_lib.derived_columns(both[:1]) == {"x": "datetime"}
