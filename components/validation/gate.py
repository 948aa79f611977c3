"""A gate between ExampleValidator and Transform: any anomaly stops the run with a readable list.

ExampleValidator only records anomalies; left alone, a pipeline would train on data that broke the schema.
The gate adds one check the schema cannot express: every class of the other splits is in the train split.
A class only val or eval holds gets no id in the label vocabulary (Transform learns it from train), so the
model could never predict it, and TFMA fails on its label -1 with a message that does not say why.
"""

# No `from __future__ import annotations`: TFX reads the component signature's annotations as live types.

import os
from collections.abc import Sequence

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
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


STATISTICS_FILE = "FeatureStats.pb"


def value_counts(statistics: statistics_pb2.DatasetFeatureStatisticsList, feature: str) -> dict[str, float]:
    """A string feature's values and their counts in one split's statistics (TFDV's rank histogram, which holds
    up to StatisticsGen's 1000 most frequent values; its top values when there is no histogram)."""
    for dataset in statistics.datasets:
        for found in dataset.features:
            if found.path.step == [feature] or found.name == feature:
                stats = found.string_stats
                buckets = stats.rank_histogram.buckets
                if buckets:
                    return {bucket.label: bucket.sample_count for bucket in buckets}
                return {value.value: value.frequency for value in stats.top_values}
    return {}


def classes_missing_from_train(
    statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList], label: str, train_split: str = "train"
) -> list[str]:
    """One line per other split that holds classes the train split does not, naming them and their counts."""
    if train_split not in statistics:
        return []
    trained = value_counts(statistics[train_split], label)
    lines = []
    for split in sorted(set(statistics) - {train_split}):
        missing = {
            value: count for value, count in value_counts(statistics[split], label).items() if value not in trained
        }
        if missing:
            listed = ", ".join(f"{value} ({count:g})" for value, count in sorted(missing.items()))
            lines.append(
                f"[{split}] feature '{label}': classes no {train_split} example has: {listed}; the model cannot "
                f"learn them. Add {train_split} images of them (the split follows a hash of the filename), or "
                "drop them"
            )
    return lines


def load_statistics(uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    with tf.io.gfile.GFile(os.path.join(uri, f"Split-{split}", STATISTICS_FILE), "rb") as handle:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read())


def anomaly_lines(uri: str, splits: Sequence[str]) -> list[str]:
    """The anomalies ExampleValidator wrote under `uri` for `splits`, one plain line each (none: clean data)."""
    return [line for split in splits for line in describe_anomalies(split, load_anomalies(uri, split))]


def load_split_statistics(uri: str, splits: Sequence[str]) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    """StatisticsGen's statistics under `uri`, by split."""
    return {split: load_statistics(uri, split) for split in splits}


def check_anomalies(uri: str, splits: list[str], extra_lines: Sequence[str] = ()) -> None:
    """Raises DataValidationError listing the anomalies of `splits` (under `uri`) and `extra_lines`."""
    lines = anomaly_lines(uri, splits) + list(extra_lines)
    if lines:
        raise DataValidationError(
            f"the data does not match the schema ({len(lines)} problem(s)); fix the data, or curate the schema "
            "if the data is right:\n  " + "\n  ".join(shorten_lines(lines))
        )


@decorators.component
def AnomaliesGate(
    anomalies: annotations.InputArtifact[standard_artifacts.ExampleAnomalies],
    statistics: annotations.InputArtifact[standard_artifacts.ExampleStatistics],
    label: annotations.Parameter[str],
    train_split: annotations.Parameter[str],
    code_version: annotations.Parameter[str] = "",
) -> None:
    del code_version  # Only part of the cache key: a code change reruns the node.
    by_split = {
        split: load_statistics(statistics.uri, split)
        for split in artifact_utils.decode_split_names(statistics.split_names)
    }
    check_anomalies(
        anomalies.uri,
        artifact_utils.decode_split_names(anomalies.split_names),
        classes_missing_from_train(by_split, label, train_split),
    )
