"""Plain functions that turn one `Record` (from any format) and its image into a `tf.Example`, or a reject.

The Beam ExampleGen (`components/ingest/example_gen.py`) is a thin wrapper around these. Nothing is dropped silently:
a record either becomes an example or raises `RecordError`, which becomes a line of `rejects.jsonl`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import tensorflow as tf

from components import names
from components.ingest import image_io
from components.ingest.records import Box, Record, RecordError
from components.ingest.settings import DEFAULT_MAX_PIXELS, ExifBoxFrame
from components.transform import derive

ColumnType = Literal["int", "float", "string"]


@dataclasses.dataclass(frozen=True)
class ExampleSettings:
    """How records become examples; parsed once from the config and carried to the Beam workers."""

    column_types: Mapping[str, ColumnType] = dataclasses.field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS
    labels: tuple[str, ...] = ()
    exif_box_frame: ExifBoxFrame = "displayed"
    # Raw column -> "datetime" or "number": what a derived feature reads in it (components/transform/derive.py),
    # checked here so a value Transform could not read is a reject with its reason.
    derived: Mapping[str, str] = dataclasses.field(default_factory=dict)


def resolve_inside(root: str, filename: str) -> str:
    """The path of `filename` under `root`; RecordError if it escapes the root (../, absolute, symlink)."""
    if not filename:
        raise RecordError("path_escape", "empty filename")
    if os.path.isabs(filename) or "://" in filename or filename.startswith("\\"):
        raise RecordError(
            "path_escape", f"{filename!r} is an absolute path; filenames are relative to the dataset folder"
        )
    path = posixpath.join(root, filename)
    if "://" in root:  # Remote filesystems have no symlinks; check the path syntactically.
        if ".." in Path(filename).parts:
            raise RecordError("path_escape", f"{filename!r} escapes the dataset folder")
        return path
    real_root = os.path.realpath(root)
    real_path = os.path.realpath(path)
    if os.path.commonpath([real_root, real_path]) != real_root:
        raise RecordError("path_escape", f"{filename!r} resolves outside the dataset folder")
    return path


def locate(root: str, record: Record) -> tuple[str, str]:
    """(filename relative to root, path) of the record's image: its filename, or the first fallback found."""
    candidates = (record.filename, *record.fallback_filenames)
    for candidate in candidates:
        path = resolve_inside(root, candidate)
        if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
            return candidate, path
    tried = f" (also looked for {', '.join(record.fallback_filenames)})" if record.fallback_filenames else ""
    raise RecordError("missing_file", f"{record.filename} does not exist in the dataset folder{tried}")


def check_label(label: str, labels: tuple[str, ...]) -> None:
    if not label:
        raise RecordError("no_annotation", "empty label")
    if labels and label not in labels:
        raise RecordError("unknown_label", f"label {label!r} is not in the configured label list")


def box_numbers(box: Box) -> tuple[float, float, float, float]:
    values = (box.xmin, box.ymin, box.xmax, box.ymax)
    try:
        numbers = tuple(float(value) for value in values)
    except (TypeError, ValueError):
        raise RecordError("bad_box", "box coordinates are not numbers: " + ", ".join(map(str, values))) from None
    if not all(math.isfinite(number) for number in numbers):
        raise RecordError("bad_box", "box coordinates are not finite: " + ", ".join(map(str, values)))
    return numbers  # type: ignore[return-value]


def normalize_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel box (xmin, ymin, xmax, ymax) -> fractions of the image size; raises RecordError when invalid."""
    xmin, ymin, xmax, ymax = box
    if xmax <= xmin or ymax <= ymin:
        raise RecordError("bad_box", f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) is inverted or has zero area")
    if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
        raise RecordError(
            "bad_box", f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {width}x{height} image"
        )
    return (xmin / width, ymin / height, xmax / width, ymax / height)


def displayed_box(
    box: tuple[float, float, float, float], image: image_io.StoredImage, record: Record, frame: ExifBoxFrame
) -> tuple[float, float, float, float]:
    """The pixel box on the upright image that is stored, whichever grid the annotation drew it on."""
    upright = (image.width, image.height)
    stored = (image.stored_width, image.stored_height)
    if record.declared_size is not None:
        if record.declared_size == upright:
            return box
        if record.declared_size == stored:
            return image_io.orient_box(box, image.stored_width, image.stored_height, image.orientation)
        width, height = record.declared_size
        raise RecordError(
            "size_mismatch",
            f"the annotation says {width}x{height}, the file is "
            f"{image.width}x{image.height}; its boxes cannot be trusted",
        )
    if frame == "stored":
        return image_io.orient_box(box, image.stored_width, image.stored_height, image.orientation)
    return box


def record_to_example(record: Record, filename: str, image_bytes: bytes, settings: ExampleSettings) -> tf.train.Example:
    """Builds the raw `tf.Example` (image stored upright, box as fractions); raises RecordError when unusable.

    A record without a box (classification) gets no box features at all, rather than a made-up box.
    """
    check_label(record.label, settings.labels)
    box = box_numbers(record.box) if record.box is not None else None
    image = image_io.normalize(image_bytes, settings.max_pixels)
    features = {
        "filename": _bytes_feature(filename),
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.data])),
        "label": _bytes_feature(record.label),
        "image_width": _int_feature(image.width),
        "image_height": _int_feature(image.height),
    }
    if box is not None:
        fractions = normalize_box(displayed_box(box, image, record, settings.exif_box_frame), image.width, image.height)
        for key, value in zip(names.BOX_CORNERS, fractions, strict=True):
            features[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    elif record.declared_size is not None and record.declared_size not in (
        (image.width, image.height),
        (image.stored_width, image.stored_height),
    ):
        raise RecordError(
            "size_mismatch",
            f"the annotation says {record.declared_size}, the file is {image.width}x{image.height}",
        )
    for column, text in record.metadata.items():
        if text == "":
            continue  # Missing metadata stays missing; the schema says whether that is allowed.
        if column in settings.derived:
            problem = derive.check_text("hour" if settings.derived[column] == "datetime" else "number", text)
            if problem:
                raise RecordError("bad_metadata", f"column {column!r}: {problem}")
        features[column] = _typed_feature(column, text, settings.column_types.get(column, "string"))
    return tf.train.Example(features=tf.train.Features(feature=features))


def _typed_feature(column: str, text: str, column_type: ColumnType) -> tf.train.Feature:
    if column_type == "string":
        return _bytes_feature(text)
    try:
        number = float(text)
    except ValueError:
        raise RecordError("bad_metadata", f"column {column!r} should be a number, got {text!r}") from None
    if not math.isfinite(number):
        raise RecordError("bad_metadata", f"column {column!r} should be a finite number, got {text!r}")
    if column_type == "int":
        if not number.is_integer():
            raise RecordError("bad_metadata", f"column {column!r} should be a whole number, got {text!r}")
        return _int_feature(int(number))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[number]))


def _bytes_feature(text: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def load_schema(schema_path: str | Path):
    """The curated schema (schema_pb2.Schema) from its text file."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(Path(schema_path).read_text(), schema_pb2.Schema())


def schema_column_types(schema_path: str | Path) -> dict[str, ColumnType]:
    """Each feature of the curated schema and its column type; others are read as strings."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = load_schema(schema_path)
    types: dict[int, ColumnType] = {
        schema_pb2.INT: "int",
        schema_pb2.FLOAT: "float",
        schema_pb2.BYTES: "string",
    }
    return {feature.name: types.get(feature.type, "string") for feature in schema.feature}
