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
# TFDV lists every unexpected value (25 new file names make one line of 25); a few show what is wrong.
MAX_LISTED_VALUES = 5
# Past this many anomalies, a list on the terminal stops being read; the count says how many are left out.
MAX_LISTED_ANOMALIES = 20


class DataValidationError(RuntimeError):
    """The data does not match the curated schema."""


def shorten_values(description: str, limit: int = MAX_LISTED_VALUES) -> str:
    """TFDV's "Examples contain values missing from the schema: a (~4%), b (~4%), ..." with the list cut to
    `limit` values and a count of the others; a description without such a list is returned unchanged."""
    head, separator, tail = description.partition(": ")
    values = tail.strip().removesuffix(".").split(", ")
    if not separator or len(values) <= limit:
        return description
    return f"{head}: {', '.join(values[:limit])} and {len(values) - limit} more"


def shorten_lines(lines: list[str], limit: int = MAX_LISTED_ANOMALIES) -> list[str]:
    """The first `limit` lines, and one that counts the rest."""
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"... and {len(lines) - limit} more anomalies"]


def describe_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> list[str]:
    """One plain sentence per anomaly, naming the split and the feature; long value lists are shortened."""
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        details = "; ".join(shorten_values(reason.description) for reason in info.reason) or shorten_values(
            info.description
        )
        lines.append(f"[{split}] feature '{feature}': {info.short_description or 'anomaly'}: {details}")
    dataset = anomalies.dataset_anomaly_info
    if dataset.reason:
        details = "; ".join(shorten_values(reason.description) for reason in dataset.reason)
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
            "if the data is right:\n  " + "\n  ".join(shorten_lines(lines))
        )


@decorators.component
def AnomaliesGate(
    anomalies: annotations.InputArtifact[standard_artifacts.ExampleAnomalies],
    code_version: annotations.Parameter[str] = "",
) -> None:
    del code_version  # Only part of the cache key: a code change reruns the node.
    check_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
