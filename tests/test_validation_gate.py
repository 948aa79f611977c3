import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import validation_gate


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
    schema = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(
        pd.DataFrame({"filename": [f"a_{index}.png" for index in range(30)]})
    ))
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
