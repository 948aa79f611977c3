"""ImageExampleGen: a folder of images plus `annotations.csv` -> GZIP TFRecords of raw `tf.Example`s.

A thin TFX adapter over `components.ingest`. Records are read, de-duplicated and converted inside Beam; the
records that cannot be used go to `rejects.jsonl` at the root of the output Examples artifact, and a run whose
reject share exceeds `max_reject_fraction` stops with a message that names the commonest reasons.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components import ingest

ANNOTATIONS_FILE = "annotations.csv"
REJECTS_FILE = "rejects.jsonl"
SUMMARY_FILE = "ingest_summary.json"
_REJECTS_PATH_KEY = "_xfer_rejects_path"


def make_custom_config(settings: dict[str, Any]) -> example_gen_pb2.CustomConfig:
    """Packs plain settings (column types, limits) into the proto that ExampleGen carries to its executor."""
    struct = struct_pb2.Struct()
    struct.update(settings)
    custom_config = example_gen_pb2.CustomConfig()
    custom_config.custom_config.Pack(struct)
    return custom_config


def read_custom_config(exec_properties: dict[str, Any]) -> dict[str, Any]:
    custom_config = example_gen_pb2.CustomConfig()
    json_format.Parse(exec_properties.get("custom_config") or "{}", custom_config)
    struct = struct_pb2.Struct()
    if custom_config.HasField("custom_config"):
        custom_config.custom_config.Unpack(struct)
    return json_format.MessageToDict(struct)


class _ToExample(beam.DoFn):
    def __init__(self, root: str, column_types: dict[str, str], max_pixels: int, labels: list[str]):
        self._root = root
        self._column_types = column_types
        self._max_pixels = max_pixels
        self._labels = frozenset(labels)

    def process(self, record: ingest.Record):
        try:
            path = ingest.resolve_inside(self._root, record.filename)
            if not tf.io.gfile.exists(path):
                raise ingest.RecordError("missing_file", f"{record.filename} does not exist in the dataset folder")
            if self._labels and record.values.get("label") not in self._labels:
                raise ingest.RecordError("unknown_label", f"label {record.values.get('label')!r} is not in the label list")
            with tf.io.gfile.GFile(path, "rb") as handle:
                image_bytes = handle.read()
            yield ingest.record_to_example(record, image_bytes, self._column_types, self._max_pixels)
        except ingest.RecordError as error:
            yield beam.pvalue.TaggedOutput("rejects", ingest.Reject(record.filename, error.reason, str(error), record.line))


def _split_duplicates(keyed: tuple[str, Any]):
    """Keeps the first row (by line) of each filename and rejects the others, naming the line that was kept."""
    _, records = keyed
    first, *others = sorted(records, key=lambda record: record.line)
    yield first
    for other in others:
        detail = f"{other.filename} already appears on line {first.line}"
        yield beam.pvalue.TaggedOutput("rejects", ingest.Reject(other.filename, "duplicate_filename", detail, other.line))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImagesToExamples(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str):
    del split_pattern  # The fingerprinting pattern; the records themselves come from annotations.csv.
    root = exec_properties["input_base"]
    settings = read_custom_config(exec_properties)
    _, records = ingest.read_annotations(os.path.join(root, ANNOTATIONS_FILE))
    unique = (
        pipeline
        | "Records" >> beam.Create(records, reshuffle=True)
        | "KeyByFilename" >> beam.Map(lambda record: (record.filename, record))
        | "GroupByFilename" >> beam.GroupByKey()
        | "SplitDuplicates" >> beam.FlatMap(_split_duplicates).with_outputs("rejects", main="records")
    )
    converted = unique.records | "ToExample" >> beam.ParDo(
        _ToExample(
            root,
            settings.get("column_types", {}),
            int(settings.get("max_pixels", ingest.DEFAULT_MAX_PIXELS)),
            list(settings.get("labels", [])),
        )
    ).with_outputs("rejects", main="examples")
    (
        (unique.rejects, converted.rejects)
        | "AllRejects" >> beam.Flatten()
        | "RejectToJson" >> beam.Map(ingest.Reject.to_json)
        | "WriteRejects"
        >> beam.io.WriteToText(exec_properties[_REJECTS_PATH_KEY], shard_name_template="", num_shards=1)
    )
    return converted.examples


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImagesToExamples

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        rejects_path = os.path.join(examples.uri, REJECTS_FILE)
        super().Do(input_dict, output_dict, {**exec_properties, _REJECTS_PATH_KEY: rejects_path})
        settings = read_custom_config(exec_properties)
        _, records = ingest.read_annotations(os.path.join(exec_properties["input_base"], ANNOTATIONS_FILE))
        summary = summarize(len(records), rejects_path)
        with tf.io.gfile.GFile(os.path.join(examples.uri, SUMMARY_FILE), "w") as handle:
            handle.write(json.dumps(summary, indent=2, sort_keys=True))
        logging.info(
            "Ingest: %d records in, %d accepted, %d rejected %s",
            summary["records"], summary["accepted"], summary["rejected"], summary["rejected_by_reason"],
        )
        max_fraction = float(settings.get("max_reject_fraction", 0.05))
        check_reject_fraction(summary, max_fraction, rejects_path)


def summarize(num_records: int, rejects_path: str) -> dict[str, Any]:
    reasons: collections.Counter[str] = collections.Counter()
    if tf.io.gfile.exists(rejects_path):
        with tf.io.gfile.GFile(rejects_path) as handle:
            for line in handle:
                if line.strip():
                    reasons[json.loads(line)["reason"]] += 1
    rejected = sum(reasons.values())
    return {
        "records": num_records,
        "accepted": num_records - rejected,
        "rejected": rejected,
        "rejected_by_reason": dict(sorted(reasons.items())),
    }


def check_reject_fraction(summary: dict[str, Any], max_fraction: float, rejects_path: str) -> None:
    records = summary["records"]
    if records == 0:
        raise ingest.IngestError(f"{ANNOTATIONS_FILE} has no data rows")
    fraction = summary["rejected"] / records
    if fraction > max_fraction:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in summary["rejected_by_reason"].items())
        raise ingest.IngestError(
            f"{summary['rejected']} of {records} records rejected ({fraction:.1%}), more than max_reject_fraction "
            f"{max_fraction:.1%} ({reasons}). Each reject and its reason is in {rejects_path}"
        )


def ImageExampleGen(
    data_dir: str, split_buckets: dict[str, int], settings: dict[str, Any]
) -> FileBasedExampleGen:
    """The ExampleGen node: splits by a hash of the filename, so a file keeps its split across runs."""
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                for name, buckets in split_buckets.items()
            ],
            partition_feature_name="filename",
        )
    )
    # The pattern only drives TFX's input fingerprint (and so its cache): every file in the folder counts.
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")])
    return FileBasedExampleGen(
        input_base=data_dir,
        input_config=input_config,
        output_config=output_config,
        custom_config=make_custom_config(settings),
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
    ).with_id("ImageExampleGen")
