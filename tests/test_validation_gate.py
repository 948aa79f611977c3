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
