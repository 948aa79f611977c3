"""Which devices the Trainer trains on, and in which precision: every device its process sees, chosen once.

- Strategy: several GPUs -> `MirroredStrategy` over all of them (one replica per GPU, gradients all-reduced);
  no GPU but several logical CPU devices (what a test or a benchmark configures to stand in for GPUs) ->
  `MirroredStrategy` over those; otherwise TensorFlow's default strategy, unchanged.
- Batch size: `training.batch_size` is the GLOBAL batch; each of N replicas computes on batch_size / N
  examples and the gradient is the mean over the global batch, so the learning rate that fits a batch size
  fits it whatever the number of replicas. Raising the batch with the replicas (to keep each GPU busy) is the
  case for the linear rule: multiply the learning rate by the same factor (Goyal et al. 2017), with a warm-up
  for large factors.
- Precision (`training.mixed_precision`): `auto` picks float16 on GPUs with tensor cores (compute capability
  7.0 or more), bfloat16 on CPUs with AMX (`amx_bf16`: where bfloat16 was measured faster, README), and
  float32 otherwise; `off`, `float16` and `bfloat16` force one. The heads' outputs and the losses stay float32
  (components/trainer/model.py), so the exported model serves float32.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import tensorflow as tf
import tf_keras

POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
# GPUs with tensor cores: Volta (7.0) and newer.
TENSOR_CORE_CAPABILITY = (7, 0)


def choose_policy(setting: str, gpu_capabilities: Sequence[tuple[int, int]], cpu_flags: Iterable[str]) -> str:
    """The Keras dtype policy for `training.mixed_precision` on this hardware."""
    if setting in POLICIES:
        return POLICIES[setting]
    if setting != "auto":
        raise ValueError(f"training.mixed_precision: one of auto, {', '.join(POLICIES)}, got {setting!r}")
    if gpu_capabilities:
        if all(tuple(capability) >= TENSOR_CORE_CAPABILITY for capability in gpu_capabilities):
            return "mixed_float16"
        return "float32"
    return "mixed_bfloat16" if "amx_bf16" in set(cpu_flags) else "float32"


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux lists them; empty where there is no such file."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_capabilities() -> list[tuple[int, int]]:
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


def set_precision(setting: str) -> str:
    """Sets the global Keras policy for `setting` on this machine; returns the policy's name."""
    policy = choose_policy(setting, gpu_capabilities(), cpu_flags())
    tf_keras.mixed_precision.set_global_policy(policy)
    logging.info("Training precision: %s (training.mixed_precision: %s)", policy, setting)
    return policy


def split_cpu(count: int) -> None:
    """The CPU as `count` logical devices, standing in for GPUs (tests, benchmarks/gpu.py); call it before
    anything initialises TensorFlow's runtime."""
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def replica_devices(gpus: Sequence[str], cpus: Sequence[str]) -> list[str]:
    """The devices to mirror over: the GPUs if several, else the logical CPUs if several (and no GPU); none
    (TensorFlow's default placement) when there is one device to train on."""
    if len(gpus) > 1:
        return list(gpus)
    if not gpus and len(cpus) > 1:
        return list(cpus)
    return []


def choose_strategy(gpus: Sequence[str], cpus: Sequence[str]) -> tf.distribute.Strategy:
    """MirroredStrategy over `replica_devices`, or the default strategy."""
    devices = replica_devices(gpus, cpus)
    return tf.distribute.MirroredStrategy(devices=devices) if devices else tf.distribute.get_strategy()


def strategy_for_this_process() -> tf.distribute.Strategy:
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    strategy = choose_strategy(gpus, cpus)
    logging.info("Training on %d replica(s): %s", strategy.num_replicas_in_sync, ", ".join(gpus or cpus))
    return strategy
