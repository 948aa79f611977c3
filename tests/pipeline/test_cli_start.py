"""What `xfer` prints, and what it imports before it can answer: config errors, --help and sample-data need no
TensorFlow, so they answer at once."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.trainer import training
from pipeline import logs
from tests.helpers import REPO_ROOT, SAMPLE_CONFIG

ROOT = REPO_ROOT

# Runs `xfer` in a fresh interpreter and reports which heavy libraries it had imported by the time it returned.
_PROBE = """
import json, sys
from pipeline import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
heavy = sorted(m for m in ("tensorflow", "tfx", "apache_beam", "mlflow", "tensorflow_transform") if m in sys.modules)
print("PROBE " + json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(*args: str) -> tuple[dict, str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE ")), result.stderr


def test_a_config_error_is_reported_before_tensorflow_is_imported(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    sample = SAMPLE_CONFIG.read_text()
    broken = re.sub(r"finetune: \{epochs: \d+", "finetune: {epochs: twelve", sample)
    assert broken != sample
    bad.write_text(broken)
    outcome, stderr = _probe("run", "--config", str(bad))
    assert outcome == {"code": 2, "heavy": []}
    assert "training.finetune.epochs: expected a whole number" in stderr


def test_a_missing_dataset_is_reported_before_tensorflow_is_imported(tmp_path: Path):
    outcome, stderr = _probe("run", "--data", str(tmp_path / "nowhere"))
    assert outcome == {"code": 2, "heavy": []}
    assert "does not exist" in stderr


def test_help_and_sample_data_import_no_tensorflow(tmp_path: Path):
    assert _probe("--help")[0] == {"code": 0, "heavy": []}
    outcome, _ = _probe("sample-data", "--out", str(tmp_path / "data"), "--num-images", "3")
    assert outcome == {"code": 0, "heavy": []}
    assert (tmp_path / "data" / "annotations.csv").exists()


THIRD_PARTY = "/venv/lib/python3.10/site-packages/apache_beam/io/util.py"
OWN = str(ROOT / "components" / "training.py")


def _record(name: str, level: int, message: str, args: tuple = (), path: str = THIRD_PARTY) -> logging.LogRecord:
    return logging.LogRecord(name, level, path, 1, message, args, None)


def test_the_quiet_log_keeps_xfers_lines_and_times_each_node(monkeypatch):
    clock = iter([100.0, 112.34])
    monkeypatch.setattr(logs.time, "monotonic", lambda: next(clock))
    progress = logs._Progress()
    assert progress.filter(_record("root", logging.INFO, "[finetune] epoch 3/12 ...", path=OWN))
    # TFX logs the node as an argument of the format string.
    started = _record("absl", logging.INFO, "Component %s is running.", ("Trainer",))
    assert progress.filter(started) and started.getMessage() == "Trainer: started"
    finished = _record("absl", logging.INFO, "Component %s is finished.", ("Trainer",))
    assert progress.filter(finished) and finished.getMessage() == "Trainer: finished in 12.3 s"
    # TFX's artifact protos, Beam's statistics, TFT's advice: dropped unless they are errors.
    assert not progress.filter(_record("absl", logging.INFO, "Resolved inputs: {...}"))
    assert not progress.filter(_record("absl", logging.WARNING, "ArtifactQuery.property_predicate is not supported."))
    assert not progress.filter(_record("apache_beam.transforms.util", logging.INFO, "BatchElements statistics"))
    # Beam and TFX log on the root logger too; only xfer's own files count as xfer's lines.
    assert not progress.filter(_record("root", logging.INFO, "Reading from pattern ['...'] for split train"))
    assert progress.filter(_record("apache_beam.runners", logging.ERROR, "a worker died"))


@pytest.mark.parametrize(
    "value, shown",
    [
        (1e-05, "1e-05"),
        (0.001, "0.001"),
        (0.4731, "0.4731"),
        (2.2913, "2.2913"),
        (0.0, "0.0000"),
        (123456.0, "1.23e+05"),
    ],
)
def test_numbers_are_shown_in_a_format_that_fits_their_size(value, shown):
    assert training.format_number(value) == shown


def test_durations_read_naturally():
    assert logs.format_seconds(0.42) == "0.4 s"
    assert logs.format_seconds(245) == "4 min 05 s"
