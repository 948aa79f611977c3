"""A gate between ExampleValidator and Transform: any anomaly stops the run with a readable list.

ExampleValidator only records anomalies; left alone, a pipeline would train on data that broke the schema.
"""

# No `from __future__ import annotations`: TFX reads the component signature's annotations as live types.

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental import annotations, decorators
from tfx.types import artifact_utils, standard_artifacts

ANOMALIES_FILE = "SchemaDiff.pb"


class DataValidationError(RuntimeError):
    """The data does not match the curated schema."""


def describe_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> list[str]:
    """One plain sentence per anomaly, naming the split and the feature."""
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        details = "; ".join(reason.description for reason in info.reason) or info.description
        lines.append(f"[{split}] feature '{feature}': {info.short_description or 'anomaly'}: {details}")
    dataset = anomalies.dataset_anomaly_info
    if dataset.reason:
        details = "; ".join(reason.description for reason in dataset.reason)
        lines.append(f"[{split}] whole dataset: {dataset.short_description or 'anomaly'}: {details}")
    return lines


def load_anomalies(uri: str, split: str) -> anomalies_pb2.Anomalies:
    with tf.io.gfile.GFile(os.path.join(uri, f"Split-{split}", ANOMALIES_FILE), "rb") as handle:
        return anomalies_pb2.Anomalies.FromString(handle.read())


def check_anomalies(uri: str, splits: list[str]) -> None:
    lines = [line for split in splits for line in describe_anomalies(split, load_anomalies(uri, split))]
    if lines:
        raise DataValidationError(
            f"the data does not match the schema ({len(lines)} problem(s)); fix the data, or curate the schema "
            "if the data is right:\n  " + "\n  ".join(lines)
        )


@decorators.component
def AnomaliesGate(
    anomalies: annotations.InputArtifact[standard_artifacts.ExampleAnomalies],
    code_version: annotations.Parameter[str] = "",
) -> None:
    del code_version  # Only part of the cache key: a code change reruns the node.
    check_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
