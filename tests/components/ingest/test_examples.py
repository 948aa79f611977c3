"""One record -> one `tf.Example` or one reason: the checks, the box arithmetic and the round trip."""

import os

import numpy as np
import pytest
import tensorflow as tf

from components import names
from components.ingest import examples as ingest
from components.ingest import image_io
from components.ingest.records import Box, Record, RecordError
from tests.helpers import SAMPLE_CONFIG, image_fixtures

SETTINGS = ingest.ExampleSettings(column_types={"hour": "int", "lat": "float", "camera": "string"})


def feature(example: tf.train.Example, name: str):
    kind = example.features.feature[name].WhichOneof("kind")
    return list(getattr(example.features.feature[name], kind).value)


def convert(record: Record, image_bytes: bytes, settings=SETTINGS) -> tf.train.Example:
    return ingest.record_to_example(record, record.filename, image_bytes, settings)


def reason_of(record: Record, image_bytes: bytes, settings=SETTINGS) -> str:
    with pytest.raises(RecordError) as caught:
        convert(record, image_bytes, settings)
    return caught.value.reason


def test_round_trip_image_and_box_come_back_equal():
    box = (7, 3, 29, 18)
    pixels = image_fixtures.picture(40, 24, box, seed=3)
    record = Record("a.png", "t", "cat", Box(*map(str, box)), {"hour": "7", "lat": "48.5", "camera": "c1"})
    example = tf.train.Example.FromString(convert(record, image_fixtures.encode(pixels)).SerializeToString())

    decoded = tf.io.decode_image(feature(example, "image")[0], channels=3).numpy()
    np.testing.assert_array_equal(decoded, pixels)
    width, height = feature(example, "image_width")[0], feature(example, "image_height")[0]
    assert (width, height) == (40, 24)
    fractions = [feature(example, key)[0] for key in names.BOX_CORNERS]
    np.testing.assert_allclose(np.array(fractions) * [width, height, width, height], box, atol=1e-4)
    assert image_fixtures.red_box(decoded) == box
    assert feature(example, "label") == [b"cat"] and feature(example, "filename") == [b"a.png"]
    assert feature(example, "hour") == [7] and feature(example, "camera") == [b"c1"]
    assert feature(example, "lat") == pytest.approx([48.5])


def test_classification_record_gets_no_box_features():
    example = convert(Record("a.png", "t", "cat"), image_fixtures.encode(image_fixtures.picture(10, 10)))
    assert not set(names.BOX_CORNERS) & set(example.features.feature)
    assert feature(example, "label") == [b"cat"]


@pytest.mark.parametrize(
    ("box", "problem"),
    [
        ((0, 0, 41, 10), "outside"),
        ((-1, 0, 10, 10), "outside"),
        ((10, 0, 5, 10), "inverted"),
        ((5, 5, 5, 10), "zero area"),
        (("a", 0, 5, 10), "not numbers"),
        (("", 0, 5, 10), "not numbers"),
        (("nan", 0, 5, 10), "not finite"),
    ],
)
def test_bad_boxes_are_rejected(box, problem):
    record = Record("a.png", "t", "cat", Box(*box))
    with pytest.raises(RecordError, match=problem) as caught:
        convert(record, image_fixtures.encode(image_fixtures.picture(40, 30)))
    assert caught.value.reason == "bad_box"


def test_a_box_may_touch_the_far_edges():
    example = convert(
        Record("a.png", "t", "cat", Box(0, 0, 40, 30)), image_fixtures.encode(image_fixtures.picture(40, 30))
    )
    assert [feature(example, key)[0] for key in names.BOX_CORNERS] == [0, 0, 1, 1]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"hour": "seven"}, "should be a number"),
        ({"hour": "7.5"}, "whole number"),
        ({"lat": "inf"}, "finite"),
    ],
)
def test_non_numeric_metadata_is_rejected(metadata, message):
    record = Record("a.png", "t", "cat", metadata=metadata)
    with pytest.raises(RecordError, match=message) as caught:
        convert(record, image_fixtures.encode(image_fixtures.picture(8, 8)))
    assert caught.value.reason == "bad_metadata"


def test_empty_metadata_stays_missing():
    example = convert(
        Record("a.png", "t", "cat", metadata={"hour": ""}),
        image_fixtures.encode(image_fixtures.picture(8, 8)),
    )
    assert "hour" not in example.features.feature


def test_labels_are_checked_against_the_configured_list():
    image = image_fixtures.encode(image_fixtures.picture(8, 8))
    settings = ingest.ExampleSettings(labels=("cat", "dog"))
    assert reason_of(Record("a.png", "t", "bird"), image, settings) == "unknown_label"
    assert reason_of(Record("a.png", "t", ""), image, settings) == "no_annotation"
    assert convert(Record("a.png", "t", "dog"), image, settings) is not None


def test_declared_size_must_match_the_file():
    image = image_fixtures.encode(image_fixtures.picture(40, 30))
    assert reason_of(Record("a.png", "t", "cat", Box(1, 1, 5, 5), declared_size=(80, 60)), image) == "size_mismatch"
    assert reason_of(Record("a.png", "t", "cat", declared_size=(80, 60)), image) == "size_mismatch"
    assert convert(Record("a.png", "t", "cat", Box(1, 1, 5, 5), declared_size=(40, 30)), image) is not None


def rotated_photo():
    """An upright 48x30 scene with a box, stored rotated with EXIF orientation 6 (as phones do)."""
    box = (6, 4, 20, 12)
    upright = image_fixtures.picture(48, 30, box)
    stored = image_fixtures.stored_for_orientation(upright, 6)
    return box, image_fixtures.red_box(stored), image_fixtures.encode(stored, orientation=6)


def fractions_of(example):
    return tuple(round(feature(example, key)[0], 5) for key in names.BOX_CORNERS)


def test_exif_rotated_photo_boxes_in_either_frame_end_up_on_the_upright_image():
    upright_box, stored_box, data = rotated_photo()
    expected = tuple(round(v, 5) for v in (6 / 48, 4 / 30, 20 / 48, 12 / 30))
    # The annotation states the size it was drawn on; that settles the frame whatever the config says.
    displayed = Record("a.png", "t", "cat", Box(*upright_box), declared_size=(48, 30))
    stored = Record("a.png", "t", "cat", Box(*stored_box), declared_size=(30, 48))
    assert fractions_of(convert(displayed, data)) == expected
    assert fractions_of(convert(stored, data)) == expected
    # Without a stated size (CSV), exif_box_frame decides.
    stored_settings = ingest.ExampleSettings(exif_box_frame="stored")
    assert fractions_of(convert(Record("a.png", "t", "cat", Box(*stored_box)), data, stored_settings)) == expected
    assert fractions_of(convert(Record("a.png", "t", "cat", Box(*upright_box)), data)) == expected
    example = convert(displayed, data)
    decoded = tf.io.decode_image(feature(example, "image")[0], channels=3).numpy()
    assert image_fixtures.red_box(decoded) == upright_box


def test_image_problems_surface_as_record_errors():
    assert reason_of(Record("a.png", "t", "cat"), b"") == "empty_file"
    assert reason_of(Record("a.png", "t", "cat"), b"GIF89a broken") == "unreadable_image"
    small_limit = ingest.ExampleSettings(max_pixels=100)
    assert (
        reason_of(Record("a.png", "t", "cat"), image_fixtures.encode(image_fixtures.picture(20, 20)), small_limit)
        == "too_many_pixels"
    )


def test_resolve_inside_refuses_paths_that_leave_the_root(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", root / "link.png")
    (root / "ok.png").write_bytes(b"x")
    assert ingest.resolve_inside(str(root), "ok.png") == f"{root}/ok.png"
    for name in (
        "../secret.png",
        "sub/../../secret.png",
        "/etc/passwd",
        "link.png",
        "file:///etc/passwd",
        "",
    ):
        with pytest.raises(RecordError) as caught:
            ingest.resolve_inside(str(root), name)
        assert caught.value.reason == "path_escape", name
    with pytest.raises(RecordError):
        ingest.resolve_inside("gs://bucket/data", "../other/x.png")


def test_locate_tries_the_fallbacks_in_order(tmp_path):
    image_fixtures.write_image(tmp_path / "images" / "a.png")
    record = Record("annotations/a.png", "t", "cat", fallback_filenames=("a.png", "images/a.png"))
    assert ingest.locate(str(tmp_path), record) == ("images/a.png", f"{tmp_path}/images/a.png")
    with pytest.raises(RecordError, match="also looked for a.png") as caught:
        ingest.locate(str(tmp_path), Record("annotations/b.png", "t", "cat", fallback_filenames=("a.png",)))
    assert caught.value.reason == "missing_file"


def test_stored_image_reports_both_grids():
    _, _, data = rotated_photo()
    stored = image_io.normalize(data)
    assert (stored.width, stored.height, stored.stored_width, stored.stored_height) == (48, 30, 30, 48)


def test_the_config_ingest_section_reaches_the_executor_intact():
    from components.ingest import beam as ingest_beam
    from pipeline import config as config_lib

    config = config_lib.load_config(SAMPLE_CONFIG)
    assert (config.ingest.format, config.ingest.multi_box_policy, config.ingest.exif_box_frame) == (
        "auto",
        "largest",
        "displayed",
    )
    changed = config_lib.config_from_dict(
        {
            **config.to_dict(),
            "features": [],
            "beam_args": [],
            "ingest": {"format": "voc", "multi_box_policy": "reject", "exif_box_frame": "stored", "labels": ["cat"]},
        }
    )
    settings = ingest_beam.IngestSettings.from_config(changed.ingest, {"hour": "int"}, {"when": "datetime"})
    # The ExampleGen carries settings as a protobuf Struct (all numbers floats): the round trip must be lossless.
    from google.protobuf import json_format

    from components.ingest import example_gen

    packed = json_format.MessageToJson(example_gen.make_custom_config(settings.to_dict()))
    assert ingest_beam.IngestSettings.from_dict(example_gen.read_custom_config({"custom_config": packed})) == settings
    assert (settings.format, settings.multi_box_policy, settings.example.labels) == ("voc", "reject", ("cat",))
    assert settings.example.derived == {"when": "datetime"}
    with pytest.raises(config_lib.ConfigError, match="ingest.format"):
        config_lib.config_from_dict({**config.to_dict(), "features": [], "ingest": {"format": "yolo"}})


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"when": "noon"}, "column 'when': 'noon' is not a date-time"),
        ({"when": "2019-02-30 10:00"}, "day is out of range for month"),
        ({"camera": "none"}, "column 'camera': 'none' holds no number"),
    ],
)
def test_a_value_a_derived_feature_cannot_read_is_rejected_at_ingest(metadata, message):
    settings = ingest.ExampleSettings(
        column_types={"camera": "string"}, derived={"when": "datetime", "camera": "number"}
    )
    record = Record("a.png", "t", "cat", metadata=metadata)
    with pytest.raises(RecordError, match=message) as caught:
        convert(record, image_fixtures.encode(image_fixtures.picture(8, 8)), settings)
    assert caught.value.reason == "bad_metadata"
    fine = Record("a.png", "t", "cat", metadata={"when": "2019-06-01 05:42:10", "camera": "cam_7"})
    example = convert(fine, image_fixtures.encode(image_fixtures.picture(8, 8)), settings)
    assert feature(example, "when") == [b"2019-06-01 05:42:10"]
