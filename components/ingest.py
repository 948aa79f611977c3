"""Plain functions that turn one annotated image into a `tf.Example`, or into a reject with a reason.

The Beam ExampleGen (`components/example_gen.py`) is a thin wrapper around these. Nothing is dropped silently:
a record either becomes an example or a `Reject` that is written to `rejects.jsonl` beside the examples.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import tensorflow as tf
from PIL import Image, UnidentifiedImageError

REQUIRED_COLUMNS = ("filename", "label", "xmin", "ymin", "xmax", "ymax")
BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")
# Features every example gets besides the CSV columns; a metadata column may not reuse these names.
RESERVED_FEATURES = ("image", "image_width", "image_height")
# Decompression-bomb guard: larger images are rejected before they are decoded.
DEFAULT_MAX_PIXELS = 50_000_000

ColumnType = Literal["int", "float", "string"]


class IngestError(ValueError):
    """The input as a whole cannot be read (as opposed to one bad record, which is rejected)."""


class RecordError(ValueError):
    """One record cannot be used; `reason` is a stable code for reports, the message says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Record:
    """One row of `annotations.csv`, as strings, with the line it came from."""

    line: int
    values: Mapping[str, str]

    @property
    def filename(self) -> str:
        return self.values.get("filename", "")


@dataclasses.dataclass(frozen=True)
class Reject:
    filename: str
    reason: str
    detail: str
    line: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def read_annotations(csv_path: str | Path) -> tuple[list[str], list[Record]]:
    """Parses `annotations.csv`; returns its metadata column names and one `Record` per data row."""
    with tf.io.gfile.GFile(str(csv_path), "r") as handle:
        text = handle.read()
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise IngestError(f"{csv_path}: missing column(s) {', '.join(missing)}; the header is {','.join(header)}")
    reader.fieldnames = header
    records = [
        Record(line=reader.line_num, values={key: (value or "").strip() for key, value in row.items() if key})
        for row in reader
    ]
    metadata = [name for name in header if name not in REQUIRED_COLUMNS]
    clashes = [name for name in metadata if name in RESERVED_FEATURES]
    if clashes:
        raise IngestError(f"{csv_path}: column(s) {', '.join(clashes)} clash with features ingest writes itself")
    return metadata, records


def normalize_box(box: Mapping[str, float], width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel box (xmin, ymin, xmax, ymax) -> fractions of the image size; raises RecordError when invalid."""
    xmin, ymin, xmax, ymax = (float(box[key]) for key in BOX_KEYS)
    if xmax <= xmin or ymax <= ymin:
        raise RecordError("bad_box", f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) is inverted or has zero area")
    if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
        raise RecordError("bad_box", f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {width}x{height} image")
    return (xmin / width, ymin / height, xmax / width, ymax / height)


def resolve_inside(root: str, filename: str) -> str:
    """The path of `filename` under `root`; raises RecordError if it escapes the root (../, absolute, symlink)."""
    if not filename:
        raise RecordError("path_escape", "empty filename")
    if os.path.isabs(filename) or "://" in filename:
        raise RecordError("path_escape", f"{filename!r} is an absolute path; filenames are relative to the dataset folder")
    path = os.path.join(root, filename)
    if "://" in root:  # Remote filesystems have no symlinks; check the path syntactically.
        if ".." in Path(filename).parts:
            raise RecordError("path_escape", f"{filename!r} escapes the dataset folder")
        return path
    real_root = os.path.realpath(root)
    real_path = os.path.realpath(path)
    if os.path.commonpath([real_root, real_path]) != real_root:
        raise RecordError("path_escape", f"{filename!r} resolves outside the dataset folder")
    return path


def image_size(image_bytes: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an encoded JPEG or PNG after fully decoding it; RecordError if unusable."""
    if not image_bytes:
        raise RecordError("empty_file", "the file has zero bytes")
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise RecordError("too_many_pixels", f"{width}x{height} exceeds the pixel limit of {max_pixels}")
            if image.format not in ("JPEG", "PNG"):
                raise RecordError("unreadable_image", f"unsupported image format {image.format}")
            image.load()  # Forces a full decode, which catches truncated files.
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise RecordError("unreadable_image", f"cannot decode: {error}") from None
    except Image.DecompressionBombError as error:
        raise RecordError("too_many_pixels", str(error)) from None
    return width, height


def record_to_example(
    record: Record,
    image_bytes: bytes,
    column_types: Mapping[str, ColumnType],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tf.train.Example:
    """Builds the raw `tf.Example`; raises RecordError when the record is unusable."""
    width, height = image_size(image_bytes, max_pixels)
    try:
        pixel_box = {key: float(record.values[key]) for key in BOX_KEYS}
    except ValueError:
        raise RecordError("bad_box", "box coordinates are not numbers: " + ", ".join(record.values[k] for k in BOX_KEYS)) from None
    box = normalize_box(pixel_box, width, height)
    label = record.values["label"]
    if not label:
        raise RecordError("bad_label", "empty label")
    features = {
        "filename": _bytes_feature(record.filename),
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "label": _bytes_feature(label),
        "image_width": _int_feature(width),
        "image_height": _int_feature(height),
    }
    for key, value in zip(BOX_KEYS, box, strict=True):
        features[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    for column, text in record.values.items():
        if column in REQUIRED_COLUMNS or text == "":
            continue  # Missing metadata stays missing; the schema says whether that is allowed.
        features[column] = _typed_feature(column, text, column_types.get(column, "string"))
    return tf.train.Example(features=tf.train.Features(feature=features))


def _typed_feature(column: str, text: str, column_type: ColumnType) -> tf.train.Feature:
    if column_type == "string":
        return _bytes_feature(text)
    try:
        number = float(text)
    except ValueError:
        raise RecordError("bad_metadata", f"column {column!r} should be a number, got {text!r}") from None
    if column_type == "int":
        if not number.is_integer():
            raise RecordError("bad_metadata", f"column {column!r} should be a whole number, got {text!r}")
        return _int_feature(int(number))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[number]))


def _bytes_feature(text: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def schema_column_types(schema_path: str | Path) -> dict[str, ColumnType]:
    """Each feature of the curated schema and its column type; a CSV column the schema lacks is read as a string."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(Path(schema_path).read_text(), schema_pb2.Schema())
    types: dict[int, ColumnType] = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "string"}
    return {feature.name: types.get(feature.type, "string") for feature in schema.feature}
