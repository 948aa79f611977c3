"""Reading TFDV's statistics protos: one split's features by name, and its example count."""

from __future__ import annotations

from tensorflow_metadata.proto.v0 import statistics_pb2


def feature_statistics(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
) -> dict[str, statistics_pb2.FeatureNameStatistics]:
    """One split's features by name (the last step of a feature's path: TFDV names nested features by path)."""
    if not statistics.datasets:
        return {}
    features = statistics.datasets[0].features
    return {(feature.path.step[-1] if feature.path.step else feature.name): feature for feature in features}


def example_count(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> int:
    """How many examples the split holds, as StatisticsGen counted them while it read them all."""
    return int(statistics.datasets[0].num_examples) if statistics.datasets else 0
