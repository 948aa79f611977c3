import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.validation import gate as validation_gate


def _anomalies() -> anomalies_pb2.Anomalies:
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["capture_hour"]
    info.short_description = "Out-of-range values"
    info.reason.add(description="Unexpectedly large value: 31.")
    return anomalies


def test_anomalies_are_described_in_plain_words():
    lines = validation_gate.describe_anomalies("train", _anomalies())
    assert lines == ["[train] feature 'capture_hour': Out-of-range values: Unexpectedly large value: 31."]
    assert validation_gate.describe_anomalies("eval", anomalies_pb2.Anomalies()) == []


def test_gate_raises_with_the_list_and_passes_clean_data(tmp_path):
    for split, anomalies in (("train", _anomalies()), ("eval", anomalies_pb2.Anomalies())):
        (tmp_path / f"Split-{split}").mkdir()
        (tmp_path / f"Split-{split}" / validation_gate.ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())
    with pytest.raises(validation_gate.DataValidationError, match=r"1 problem.*\n  \[train\] feature 'capture_hour'"):
        validation_gate.check_anomalies(str(tmp_path), ["train", "eval"])
    validation_gate.check_anomalies(str(tmp_path), ["eval"])


def test_a_long_list_of_unexpected_values_is_shortened_with_a_count():
    import pandas as pd
    import tensorflow_data_validation as tfdv

    # What TFDV itself says when a schema lists the first dataset's file names and 25 new ones arrive.
    schema = tfdv.infer_schema(
        tfdv.generate_statistics_from_dataframe(pd.DataFrame({"filename": [f"a_{index}.png" for index in range(30)]}))
    )
    anomalies = tfdv.validate_statistics(
        tfdv.generate_statistics_from_dataframe(pd.DataFrame({"filename": [f"b_{index}.png" for index in range(25)]})),
        schema,
    )
    assert anomalies.anomaly_info["filename"].reason[0].description.count(".png") == 25
    (line,) = validation_gate.describe_anomalies("eval", anomalies)
    assert line == (
        "[eval] feature 'filename': Unexpected string values: Examples contain values missing from the schema: "
        "b_0.png (~4%), b_1.png (~4%), b_10.png (~4%), b_11.png (~4%), b_12.png (~4%) and 20 more"
    )


def test_a_long_list_of_anomalies_is_cut_with_a_count():
    lines = [f"line {index}" for index in range(25)]
    assert validation_gate.shorten_lines(lines) == [*lines[:20], "... and 5 more anomalies"]
    assert validation_gate.shorten_lines(lines[:20]) == lines[:20]
    assert validation_gate.shorten_values("Unexpectedly large value: 31.") == "Unexpectedly large value: 31."


def _label_statistics(counts: dict[str, int]):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    feature = statistics.datasets.add(num_examples=sum(counts.values())).features.add()
    feature.path.step.append("label")
    for value, count in sorted(counts.items(), key=lambda item: -item[1]):
        feature.string_stats.rank_histogram.buckets.add(label=value, sample_count=count)
    return statistics


def test_a_class_only_eval_holds_stops_the_run_naming_it(tmp_path):
    """With 12 sample images, the filename hash gives every circle to eval: Transform's label vocabulary (from
    train) has no id for it and TFMA failed on label -1. The gate says so first, by class and split."""
    statistics = {
        "train": _label_statistics({"square": 3, "cross": 2}),
        "val": _label_statistics({"square": 1}),
        "eval": _label_statistics({"circle": 2, "cross": 1, "triangle": 1}),
    }
    lines = validation_gate.classes_missing_from_train(statistics, "label")
    assert lines == [
        "[eval] feature 'label': classes no train example has: circle (2), triangle (1); the model cannot learn "
        "them. Add train images of them (the split follows a hash of the filename), or drop them"
    ]
    assert validation_gate.classes_missing_from_train({**statistics, "eval": statistics["val"]}, "label") == []
    for split in ("train", "eval"):
        (tmp_path / f"Split-{split}").mkdir()
        (tmp_path / f"Split-{split}" / validation_gate.ANOMALIES_FILE).write_bytes(
            anomalies_pb2.Anomalies().SerializeToString()
        )
        (tmp_path / f"Split-{split}" / validation_gate.STATISTICS_FILE).write_bytes(
            statistics[split].SerializeToString()
        )
    loaded = {split: validation_gate.load_statistics(str(tmp_path), split) for split in ("train", "eval")}
    assert validation_gate.value_counts(loaded["eval"], "label") == {"circle": 2, "cross": 1, "triangle": 1}
    with pytest.raises(validation_gate.DataValidationError, match=r"1 problem.*\n  \[eval\] feature 'label'"):
        validation_gate.check_anomalies(str(tmp_path), ["train", "eval"], lines)
