"""The DataFingerprint step: its digest changes exactly when the dataset's files do."""

from __future__ import annotations

import os

from pipeline.kubeflow import fingerprint as kubeflow_fingerprint


def test_the_fingerprint_follows_the_files_not_the_listing_order(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "annotations.csv").write_text("filename,label\na.png,circle\n")
    (data / "images" / "a.png").write_bytes(b"a" * 10)
    first, count = kubeflow_fingerprint.fingerprint(str(data))
    assert count == 2
    assert kubeflow_fingerprint.fingerprint(str(data))[0] == first

    (data / "images" / "b.png").write_bytes(b"b" * 10)  # A new image lands, in a subfolder.
    added, count = kubeflow_fingerprint.fingerprint(str(data))
    assert count == 3 and added != first

    stat = os.stat(data / "images" / "b.png")
    (data / "images" / "b.png").write_bytes(b"c" * 10)  # Rewritten in place, same size, later mtime.
    os.utime(data / "images" / "b.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert kubeflow_fingerprint.fingerprint(str(data))[0] not in (first, added)


def test_the_step_writes_its_output_parameter_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("x")
    output = tmp_path / "kfp" / "outputs" / "fingerprint"
    assert kubeflow_fingerprint.main(["--data", str(tmp_path / "data"), "--output", str(output)]) == 0
    assert output.read_text() == kubeflow_fingerprint.fingerprint(str(tmp_path / "data"))[0]
