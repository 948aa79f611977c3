"""Every device the Trainer's process sees, and the precision it trains in.

The replica tests split this machine's CPU into two logical devices in a process of their own
(tests/helpers/replica_trainer.py), as a node with two GPUs would present them, and train the real network
(a small backbone, 32 px) with the Trainer's own functions.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.trainer import distribution
from tests.helpers import REPO_ROOT

# Early (tests/conftest.py): its replica runs are processes of 2 to 3 GB, started before a worker holds the
# in-process end-to-end DAGs.
pytestmark = pytest.mark.early

V100, T4, K80 = (7, 0), (7, 5), (3, 7)


@pytest.mark.parametrize(
    "setting, gpus, flags, policy",
    [
        ("auto", [V100, V100], set(), "mixed_float16"),
        ("auto", [T4], {"amx_bf16"}, "mixed_float16"),
        ("auto", [K80], set(), "float32"),  # No tensor cores: float16 would be slower, not faster.
        ("auto", [V100, K80], set(), "float32"),  # Mixed nodes: the slowest GPU decides.
        ("auto", [], {"avx512f", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
        ("auto", [], {"avx512f", "avx512_bf16"}, "float32"),  # No AMX: the sample's run was not faster here (README).
        ("auto", [], set(), "float32"),
        ("off", [V100], {"amx_bf16"}, "float32"),
        ("float16", [], set(), "mixed_float16"),
        ("bfloat16", [K80], set(), "mixed_bfloat16"),
    ],
)
def test_the_policy_follows_the_setting_and_the_hardware(setting, gpus, flags, policy):
    assert distribution.choose_policy(setting, gpus, flags) == policy


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="training.mixed_precision"):
        distribution.choose_policy("half", [], set())


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert distribution.cpu_flags(str(info)) == {"fpu", "avx512f", "amx_bf16"}
    assert distribution.cpu_flags(str(tmp_path / "none")) == set()


@pytest.mark.parametrize(
    "gpus, cpus, devices",
    [
        (["/gpu:0", "/gpu:1"], ["/cpu:0"], ["/gpu:0", "/gpu:1"]),
        (["/gpu:0"], ["/cpu:0", "/cpu:1"], []),  # One GPU: TensorFlow's own placement.
        ([], ["/cpu:0", "/cpu:1"], ["/cpu:0", "/cpu:1"]),  # Logical CPUs standing in for GPUs.
        ([], ["/cpu:0"], []),
    ],
)
def test_replicas_are_every_accelerator_the_process_sees(gpus, cpus, devices):
    assert distribution.replica_devices(gpus, cpus) == devices


def _train(tmp_path, name, *args) -> dict:
    out = tmp_path / f"{name}.json"
    command = [sys.executable, "-m", "tests.helpers.replica_trainer", "--out", str(out), *args]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


# Measured here: the same starting weights, two frozen-phase epochs, one replica against two differ by at
# most 1e-7 relative in every logged loss and metric (the order in which the replicas' gradients are summed).
# Before the box head's BatchNormalization was synchronized across replicas, they differed by up to 9%.
REPLICA_TOLERANCE = 1e-5


@pytest.mark.slow
def test_two_replicas_train_as_one_does(tmp_path):
    weights = str(tmp_path / "initial.h5")
    one = _train(tmp_path, "one", "--replicas", "1", "--initial-weights", weights)
    two = _train(tmp_path, "two", "--replicas", "2", "--initial-weights", weights)
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert len(one["history"]) == len(two["history"]) == 2
    for first, second in zip(one["history"], two["history"], strict=True):
        for key in ("loss", "box_iou", "probabilities_accuracy", "val_loss", "val_box_iou"):
            assert second[key] == pytest.approx(first[key], rel=REPLICA_TOLERANCE), key


@pytest.mark.slow
def test_two_replicas_in_bfloat16_resume_after_a_kill_and_answer_in_float32(tmp_path):
    """Both phases on two replicas in mixed bfloat16: killed after epoch 1 and rerun, the run resumes from its
    checkpoint; every epoch reached the live-logging callback; the heads answer in float32."""
    checkpoints = str(tmp_path / "checkpoints")
    common = ["--replicas", "2", "--precision", "bfloat16", "--checkpoints", checkpoints, "--finetune-epochs", "1"]
    killed = _train(tmp_path, "killed", *common, "--kill-after-epoch", "1")
    assert killed["history"] is None and killed["epochs_logged"] == [0, 1]
    resumed = _train(tmp_path, "resumed", *common)
    assert resumed["replicas"] == 2 and resumed["policy"] == "mixed_bfloat16"
    assert [(row["phase"], row["epoch"]) for row in resumed["history"]] == [
        ("frozen", 0),
        ("frozen", 1),
        ("finetune", 2),
    ]
    assert resumed["epochs_logged"] == [2]  # Only the epoch left after the checkpoint ran.
    assert all(row["loss"] == row["loss"] and row["loss"] < 10 for row in resumed["history"])  # Finite, sane.
    assert resumed["compute_dtype_of_backbone"] == "bfloat16"
    assert resumed["output_dtypes"] == {"probabilities": "float32", "box": "float32"}
