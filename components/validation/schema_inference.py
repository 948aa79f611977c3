"""Schema bootstrapping for a dataset folder, on top of the ingest Beam pipeline.

`xfer schema infer` writes a first schema for the user to curate. It sees the data exactly as the pipeline does,
because it starts from the same ingest (`ingest_beam`). The statistics page is `statistics_page.py`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import posixpath
from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import tensorflow as tf
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components import names
from components.ingest import beam as ingest_beam
from components.ingest import examples as ingest
from components.ingest import formats
from components.ingest.records import Record
from components.validation import statistics as statistics_lib

# Written by ingest for bookkeeping and training; a client at serving time sends none of them.
TRAINING_ONLY_FEATURES = ("filename", "image_width", "image_height", "label", *names.BOX_CORNERS)


def value_type(text: str) -> ingest.ColumnType:
    """The narrowest column type that reads `text`: int, float or string."""
    try:
        number = float(text)
    except ValueError:
        return "string"
    if not math.isfinite(number):
        return "string"  # "nan" and "inf" are no usable number; ingest rejects them in a numeric column.
    return "int" if number.is_integer() and "." not in text and "e" not in text.lower() else "float"


def _metadata_types(item: Any):
    if isinstance(item, Record):
        for column, text in item.metadata.items():
            if text != "":
                yield column, value_type(text)


@dataclasses.dataclass(frozen=True)
class ColumnInference:
    """How many non-empty values of one metadata column read as each type, and the type chosen from them."""

    counts: Mapping[str, int]

    @property
    def column_type(self) -> ingest.ColumnType:
        # A column is numeric when most of its values are numbers: a stray "noon" among hours is a bad
        # record (ingest rejects it as bad_metadata), not a reason to type the column as text. A tie, or a
        # column with no values at all, stays string, the one type that cannot reject anything.
        numbers = self.counts.get("int", 0) + self.counts.get("float", 0)
        if numbers <= self.counts.get("string", 0):
            return "string"
        return "float" if self.counts.get("float", 0) else "int"

    @property
    def rejected_values(self) -> int:
        """Values that will not parse as the chosen type, so their records are rejected."""
        return 0 if self.column_type == "string" else self.counts.get("string", 0)


def count_value_types(
    dataset: formats.Dataset, work_dir: str, beam_args: list[str] | None = None, no_object_class: str = ""
) -> dict[str, ColumnInference]:
    """For each metadata column, how many of its values read as int, float and string; counted in Beam."""
    if not dataset.metadata_columns:
        return {}
    result_path = posixpath.join(work_dir, "_column_types.json")
    with beam.Pipeline(options=PipelineOptions(beam_args or [])) as pipeline:
        sources = pipeline | "Sources" >> beam.Create(dataset.sources)
        read = sources | "Read" >> beam.FlatMap(_read_source, dataset, no_object_class)
        if dataset.side_table:  # The side table's values are typed like the annotations' own.
            records = read | "RecordsOnly" >> beam.Filter(lambda item: isinstance(item, Record))
            join = beam.ParDo(ingest_beam.JoinSideTable(dataset.side_table))
            read = (records | "JoinSideTable" >> join.with_outputs("matched", "unmatched", main="records")).records
        (
            read
            | "ValueTypes" >> beam.FlatMap(_metadata_types)
            | "CountTypes" >> beam.combiners.Count.PerElement()
            | "ToList" >> beam.combiners.ToList()
            | "ToJson" >> beam.Map(json.dumps)
            | "Write" >> beam.io.WriteToText(result_path, shard_name_template="", num_shards=1)
        )
    with tf.io.gfile.GFile(result_path) as handle:
        found = json.loads(handle.read() or "[]")
    tf.io.gfile.remove(result_path)
    counts: dict[str, dict[str, int]] = {column: {} for column in dataset.metadata_columns}
    for (column, kind), number in found:
        counts.setdefault(column, {})[kind] = number
    return {column: ColumnInference(kinds) for column, kinds in counts.items()}


def _read_source(source: str, dataset: formats.Dataset, no_object_class: str = ""):
    return formats.read_source(dataset.root, dataset.format, source, no_object_class=no_object_class)


# A string column is taken for an identifier (no vocabulary to hold later data to) when every value is
# distinct across at least this many examples; below it, distinct values may just be a small category set.
MIN_IDENTIFIER_VALUES = 10
# Always identifiers, whatever the data: ingest rejects a repeated filename, so each one is new.
IDENTIFIER_FEATURES = ("filename",)


@dataclasses.dataclass(frozen=True)
class SchemaInference:
    """What `infer_schema` found: the schema to curate, the ingest summary, the statistics it came from,
    and how each metadata column was typed."""

    schema: schema_pb2.Schema
    summary: dict[str, Any]
    statistics: statistics_pb2.DatasetFeatureStatisticsList
    columns: dict[str, ColumnInference]


def identifier_features(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> list[str]:
    """String features whose values name one example each, such as file names or record ids."""
    found = []
    for name, feature in statistics_lib.feature_statistics(statistics).items():
        if not feature.HasField("string_stats") or name == "image":
            continue
        present = feature.string_stats.common_stats.num_non_missing
        if name in IDENTIFIER_FEATURES or (present >= MIN_IDENTIFIER_VALUES and feature.string_stats.unique == present):
            found.append(name)
    return sorted(found)


def curate_defaults(
    schema: schema_pb2.Schema,
    has_boxes: bool,
    statistics: statistics_pb2.DatasetFeatureStatisticsList | None = None,
) -> schema_pb2.Schema:
    """What xfer knows that inference cannot: the serving environment, the range of box fractions, and that
    an identifier column has no vocabulary (TFDV lists every value seen, so the next dataset would fail)."""
    del schema.default_environment[:]
    schema.default_environment.extend(["TRAINING", "SERVING"])
    identifiers = set(IDENTIFIER_FEATURES)
    if statistics is not None:
        identifiers.update(identifier_features(statistics))
    dropped_domains = set()
    for feature in schema.feature:
        if feature.name in TRAINING_ONLY_FEATURES:
            feature.not_in_environment.append("SERVING")
        if has_boxes and feature.name in names.BOX_CORNERS:
            feature.float_domain.min = 0.0
            feature.float_domain.max = 1.0
        if feature.name in ("image_width", "image_height"):
            feature.int_domain.min = 1
        if feature.name in identifiers and feature.type == schema_pb2.BYTES:
            if feature.HasField("domain"):
                dropped_domains.add(feature.domain)
            feature.ClearField("domain_info")
    kept = [domain for domain in schema.string_domain if domain.name not in dropped_domains]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)
    return schema


def infer_schema(
    data_dir: str,
    settings: ingest_beam.IngestSettings,
    work_dir: str,
    beam_args: list[str] | None = None,
    keep_rejects_at: str | None = None,
) -> SchemaInference:
    """Ingests the folder into `work_dir`, computes TFDV statistics and infers a schema.

    Metadata column types are inferred from the values, so numbers come out as numbers; a record whose value
    does not read as its column's type is rejected as bad_metadata, like any other reject. `keep_rejects_at`
    is where rejects.jsonl is kept (`work_dir` is usually temporary)."""
    dataset = formats.detect(data_dir, settings.format, settings.metadata)
    # Numeric columns must be typed before ingest, or every value would be stored as a string.
    columns = count_value_types(dataset, work_dir, beam_args, settings.no_object_class)
    example = ingest.ExampleSettings(
        column_types={column: found.column_type for column, found in columns.items()},
        max_pixels=settings.example.max_pixels,
        labels=settings.example.labels,
        exif_box_frame=settings.example.exif_box_frame,
    )
    settings = dataclasses.replace(settings, example=example)
    summary = ingest_beam.ingest_to_tfrecords(data_dir, settings, work_dir, beam_args, keep_rejects_at)
    statistics = tfdv.generate_statistics_from_tfrecord(
        posixpath.join(work_dir, "examples*.tfrecord.gz"), pipeline_options=PipelineOptions(beam_args or [])
    )
    schema = tfdv.infer_schema(statistics, infer_feature_shape=True)
    return SchemaInference(curate_defaults(schema, summary["has_boxes"], statistics), summary, statistics, columns)


def proposed_ranges(
    schema: schema_pb2.Schema, statistics: statistics_pb2.DatasetFeatureStatisticsList
) -> dict[str, str]:
    """For each numeric feature without a range, a comment proposing the range seen, for the user to confirm.

    Left as comments on purpose: the values seen are a sample, and a range written in for real would reject
    the next dataset's first value outside it, which is for a person to decide."""
    found = statistics_lib.feature_statistics(statistics)
    comments = {}
    for feature in schema.feature:
        stats = found.get(feature.name)
        if stats is None or not stats.HasField("num_stats") or feature.HasField("domain_info"):
            continue
        low, high = stats.num_stats.min, stats.num_stats.max
        present = stats.num_stats.common_stats.num_non_missing
        if feature.type == schema_pb2.INT:
            domain = f"int_domain {{ min: {int(low)} max: {int(high)} }}"
        elif feature.type == schema_pb2.FLOAT:
            domain = f"float_domain {{ min: {low:g} max: {high:g} }}"
        else:
            continue
        comments[feature.name] = (
            f"# {feature.name}: values from {low:g} to {high:g} in {present} examples. To hold later data to a\n"
            f"# range, confirm it and add inside this feature: {domain}\n"
        )
    return comments


def write_schema(
    schema: schema_pb2.Schema,
    out_path: str,
    data_dir: str,
    statistics: statistics_pb2.DatasetFeatureStatisticsList | None = None,
) -> None:
    """Writes the schema as a text proto, with a header and, given the statistics, a proposed range above
    each numeric feature (as comments: parsing the file gives back `schema` unchanged)."""
    from google.protobuf import text_format

    header = (
        f"# Inferred by `xfer schema infer` from {data_dir} on {datetime.date.today().isoformat()}.\n"
        "# A starting point: curate it before use. Check each feature's presence (required or optional), set\n"
        "# numeric ranges (int_domain/float_domain; the ranges seen are proposed below) and review the label\n"
        "# vocabulary (string_domain). ExampleValidator holds every later run to what this file says.\n"
    )
    comments = proposed_ranges(schema, statistics) if statistics is not None else {}
    rest = schema_pb2.Schema()
    rest.CopyFrom(schema)
    del rest.feature[:]
    parts = [header]
    for feature in schema.feature:
        body = text_format.MessageToString(feature, indent=2)
        parts.append(comments.get(feature.name, "") + "feature {\n" + body + "}\n")
    parts.append(text_format.MessageToString(rest))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with tf.io.gfile.GFile(out_path, "w") as handle:
        handle.write("".join(parts))
