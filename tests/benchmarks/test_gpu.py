"""The GPU check (benchmarks/gpu.py), run as on a 2-GPU node with the CPU split into two logical devices: tiny
images and batches, so that it proves the check runs and reports what it claims, not any speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import gpu
from tests.helpers import REPO_ROOT


def _row(devices: int, precision: str, seconds: float, global_batch: int) -> gpu.Measurement:
    return gpu.measurement(devices, precision, devices, global_batch, steps=10, seconds=seconds)


def test_images_per_second_and_scaling_efficiency():
    one = _row(1, "float32", seconds=2.0, global_batch=32)  # 160 images/s.
    two = _row(2, "float32", seconds=2.5, global_batch=64)  # 256 images/s: 0.8 of twice 160.
    half = _row(2, "mixed_float16", seconds=1.0, global_batch=64)  # No 1-device row in its precision.
    rows = gpu.with_efficiency([one, two, half])
    assert [row.images_per_second for row in rows] == pytest.approx([160.0, 256.0, 640.0])
    assert [row.per_device_images_per_second for row in rows] == pytest.approx([160.0, 128.0, 320.0])
    assert rows[0].scaling_efficiency is None and rows[2].scaling_efficiency is None
    assert rows[1].scaling_efficiency == pytest.approx(0.8)


def test_a_run_that_took_no_time_is_refused():
    with pytest.raises(ValueError, match="some time"):
        gpu.measurement(1, "float32", 1, 32, 10, 0.0)


def test_the_table_has_a_row_per_configuration_and_aligned_columns():
    rows = gpu.with_efficiency([_row(1, "float32", 2.0, 32), _row(2, "float32", 2.5, 64)])
    lines = gpu.format_table(rows, "GPU").splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "GPUs",
        "precision",
        "global batch",
        "images/s",
        "per-device images/s",
        "scaling efficiency",
    ]
    assert [cell.strip() for cell in lines[3].strip("|").split("|")] == ["2", "float32", "64", "256.0", "128.0", "0.80"]
    assert lines[2].split("|")[-2].strip() == "-"


def test_the_notes_say_whose_numbers_they_are():
    assert gpu.notes([], 1, False) == [gpu.NO_GPU]
    assert "2 logical devices" in gpu.notes([], 2, False)[0]
    assert gpu.notes(["GPU:0 (8.0)", "GPU:1 (8.0)"], 1, False) == ["GPU:0 (8.0)", "GPU:1 (8.0)"]
    one_old_gpu = gpu.notes(["GPU:0 (6.1)"], 1, True)
    assert "One GPU visible" in one_old_gpu[1] and "without tensor cores" in one_old_gpu[2]


def test_one_device_and_all_of_them():
    assert gpu.device_counts(0) == gpu.device_counts(1) == [1]
    assert gpu.device_counts(8) == [1, 8]


# Early as well (tests/conftest.py): a process of up to 3.8 GB here (four Xception step graphs, two of them
# on two replicas), started before a worker holds the in-process end-to-end DAGs.
@pytest.mark.slow
@pytest.mark.early
def test_two_logical_devices_in_both_precisions(tmp_path):
    out = tmp_path / "out.json"
    command = [sys.executable, "-m", "benchmarks.gpu", "--cpu-devices", "2", "--image-size", "71"]
    command += ["--batch-size", "2", "--steps", "2", "--warmup-steps", "1", "--json", str(out)]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    report = json.loads(out.read_text())
    assert report["device_kind"] == "CPU" and len(report["devices"]) == 2
    rows = {(row["devices"], row["precision"]): row for row in report["rows"]}
    assert len(report["rows"]) == 4
    assert set(rows) == {(1, "float32"), (2, "float32"), (1, "mixed_bfloat16"), (2, "mixed_bfloat16")}
    for (devices, _), row in rows.items():
        assert row["num_replicas_in_sync"] == devices  # The 2-device rows really trained on two replicas.
        assert row["global_batch"] == 2 * devices
        assert row["images_per_second"] > 0
        assert (row["scaling_efficiency"] is None) == (devices == 1)
        if devices == 2:
            assert row["scaling_efficiency"] > 0
    header = next(line for line in done.stdout.splitlines() if line.startswith("| CPUs"))
    assert [cell.strip() for cell in header.strip("|").split("|")][3:] == [
        "images/s",
        "per-device images/s",
        "scaling efficiency",
    ]
