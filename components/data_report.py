"""Schema bootstrapping and statistics reports for a dataset folder, on top of the ingest Beam pipeline.

`xfer schema infer` writes a first schema for the user to curate; `xfer validate` saves the TFDV statistics
as HTML. Both see the data exactly as the pipeline does, because both start from the same ingest (`ingest_beam`).
"""

from __future__ import annotations

import datetime
import json
import os
import posixpath
from typing import Any

import apache_beam as beam
import tensorflow as tf
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components import formats, ingest, ingest_beam
from components.records import Record

# Written by ingest for bookkeeping and training; a client at serving time sends none of them.
TRAINING_ONLY_FEATURES = ("filename", "image_width", "image_height", "label", *ingest.BOX_KEYS)
_TYPE_ORDER: tuple[ingest.ColumnType, ...] = ("int", "float", "string")


def value_type(text: str) -> ingest.ColumnType:
    """The narrowest column type that reads `text`: int, float or string."""
    try:
        number = float(text)
    except ValueError:
        return "string"
    return "int" if number.is_integer() and "." not in text and "e" not in text.lower() else "float"


def _metadata_types(item: Any):
    if isinstance(item, Record):
        for column, text in item.metadata.items():
            if text != "":
                yield column, value_type(text)


def _widest(types) -> ingest.ColumnType:
    return max(types, key=_TYPE_ORDER.index, default="string")


def infer_column_types(
    dataset: formats.Dataset, work_dir: str, beam_args: list[str] | None = None
) -> dict[str, ingest.ColumnType]:
    """The type of each metadata column from its values (any string makes it a string), computed in Beam."""
    if not dataset.metadata_columns:
        return {}
    result_path = posixpath.join(work_dir, "_column_types.json")
    with beam.Pipeline(options=PipelineOptions(beam_args or [])) as pipeline:
        (
            pipeline
            | "Sources" >> beam.Create(dataset.sources)
            | "Read" >> beam.FlatMap(_read_source, dataset)
            | "ValueTypes" >> beam.FlatMap(_metadata_types)
            | "Widest" >> beam.CombinePerKey(_widest)
            | "ToDict" >> beam.combiners.ToDict()
            | "ToJson" >> beam.Map(json.dumps)
            | "Write" >> beam.io.WriteToText(result_path, shard_name_template="", num_shards=1)
        )
    with tf.io.gfile.GFile(result_path) as handle:
        found = json.loads(handle.read() or "{}")
    tf.io.gfile.remove(result_path)
    # A column with no values at all says nothing about its type; string is the one that cannot fail.
    return {column: found.get(column, "string") for column in dataset.metadata_columns}


def _read_source(source: str, dataset: formats.Dataset):
    return formats.read_source(dataset.root, dataset.format, source)


def curate_defaults(schema: schema_pb2.Schema, has_boxes: bool) -> schema_pb2.Schema:
    """What xfer knows that inference cannot: the serving environment and the range of box fractions."""
    del schema.default_environment[:]
    schema.default_environment.extend(["TRAINING", "SERVING"])
    for feature in schema.feature:
        if feature.name in TRAINING_ONLY_FEATURES:
            feature.not_in_environment.append("SERVING")
        if has_boxes and feature.name in ingest.BOX_KEYS:
            feature.float_domain.min = 0.0
            feature.float_domain.max = 1.0
        if feature.name in ("image_width", "image_height"):
            feature.int_domain.min = 1
    return schema


def infer_schema(
    data_dir: str, settings: ingest_beam.IngestSettings, work_dir: str, beam_args: list[str] | None = None
) -> tuple[schema_pb2.Schema, dict[str, Any]]:
    """Ingests the folder into `work_dir`, computes TFDV statistics and infers a schema; returns it and the
    ingest summary. Metadata column types are inferred from the values, so numbers come out as numbers."""
    dataset = formats.detect(data_dir, settings.format)
    # Numeric columns must be typed before ingest, or every value would be stored as a string.
    column_types = infer_column_types(dataset, work_dir, beam_args)
    example = ingest.ExampleSettings(
        column_types=column_types,
        max_pixels=settings.example.max_pixels,
        labels=settings.example.labels,
        exif_box_frame=settings.example.exif_box_frame,
    )
    settings = ingest_beam.IngestSettings(
        settings.format, settings.multi_box_policy, settings.max_reject_fraction, example
    )
    summary = ingest_beam.ingest_to_tfrecords(data_dir, settings, work_dir, beam_args)
    statistics = tfdv.generate_statistics_from_tfrecord(
        posixpath.join(work_dir, "examples*.tfrecord.gz"), pipeline_options=PipelineOptions(beam_args or [])
    )
    schema = tfdv.infer_schema(statistics, infer_feature_shape=True)
    return curate_defaults(schema, summary["has_boxes"]), summary


def write_schema(schema: schema_pb2.Schema, out_path: str, data_dir: str) -> None:
    from google.protobuf import text_format

    header = (
        f"# Inferred by `xfer schema infer` from {data_dir} on {datetime.date.today().isoformat()}.\n"
        "# A starting point: curate it before use. Check each feature's presence (required or optional), set\n"
        "# numeric ranges (int_domain/float_domain) and review the label vocabulary (string_domain).\n"
        "# ExampleValidator holds every later run to what this file says.\n"
    )
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with tf.io.gfile.GFile(out_path, "w") as handle:
        handle.write(header + text_format.MessageToString(schema))


def load_statistics(statistics_uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    return tfdv.load_stats_binary(posixpath.join(statistics_uri, f"Split-{split}", "FeatureStats.pb"))


def statistics_html(statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList]) -> str:
    """One Facets overview page; with two splits (train, eval) they are shown side by side."""
    names = sorted(statistics, key=lambda name: name != "train")
    if len(names) == 1:
        return tfdv.utils.display_util.get_statistics_html(statistics[names[0]], lhs_name=names[0])
    return tfdv.utils.display_util.get_statistics_html(
        statistics[names[0]], statistics[names[1]], lhs_name=names[0], rhs_name=names[1]
    )
