"""ImageExampleGen: a dataset folder in any supported annotation format -> GZIP TFRecords of `tf.Example`s.

A thin TFX adapter over `components.ingest.beam`, which reads (`components.ingest.formats`), checks and converts
(`components.ingest.examples`) inside Beam. Records that cannot be used go to `rejects.jsonl` at the root of the output
Examples artifact, beside `ingest_summary.json` (records in = accepted + rejected, rejects by reason, the
format, whether the examples carry boxes). A run whose reject share exceeds `max_reject_fraction` stops with
a message naming the reasons and the rejects.jsonl it copied to `<node>/stopped/<execution id>/`, outside the
artifact that TFX deletes when the execution fails.
"""

from __future__ import annotations

import posixpath
from typing import Any

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components import names
from components.ingest import beam as ingest_beam
from components.ingest import formats

# The node's settings and output files, named here too because they belong to the ExampleGen's interface.
IngestSettings = ingest_beam.IngestSettings
REJECTS_FILE = ingest_beam.REJECTS_FILE
SUMMARY_FILE = ingest_beam.SUMMARY_FILE
_OUTPUT_PATHS_KEY = "_xfer_output_dir"


def make_custom_config(settings: dict[str, Any]) -> example_gen_pb2.CustomConfig:
    """Packs plain settings into the proto that ExampleGen carries to its executor."""
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


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImagesToExamples(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str):
    del split_pattern  # The fingerprinting pattern; the records come from the dataset's own annotations.
    settings = IngestSettings.from_dict(read_custom_config(exec_properties))
    dataset = formats.detect(exec_properties["input_base"], settings.format, settings.metadata)
    return pipeline | "Ingest" >> ingest_beam.IngestDataset(dataset, settings, exec_properties[_OUTPUT_PATHS_KEY])


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImagesToExamples

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        super().Do(input_dict, output_dict, {**exec_properties, _OUTPUT_PATHS_KEY: examples.uri})
        settings = IngestSettings.from_dict(read_custom_config(exec_properties))
        dataset = formats.detect(exec_properties["input_base"], settings.format, settings.metadata)
        ingest_beam.finish(dataset, settings, examples.uri, keep_if_stopped_in=stopped_rejects_dir(examples.uri))


def stopped_rejects_dir(examples_uri: str) -> str:
    """Where a run stopped on its rejects keeps them: beside the Examples artifact, which TFX deletes when the
    execution fails (`<root>/ImageExampleGen/examples/<id>` -> `<root>/ImageExampleGen/stopped/<id>`)."""
    uri = examples_uri.rstrip("/")
    node_dir = posixpath.dirname(posixpath.dirname(uri))
    execution = posixpath.basename(uri)
    return posixpath.join(node_dir, "stopped", execution)


def ImageExampleGen(
    data_dir: str, split_buckets: dict[str, int], settings: IngestSettings, code_version: str = ""
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
        custom_config=make_custom_config({**settings.to_dict(), "code_version": code_version}),
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
    ).with_id(names.INGEST)
